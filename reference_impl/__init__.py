"""The reference implementation: a runnable Workers-style runtime core with real threads.

The executable counterpart of the models in `model/`: workerd's request handling (IoContext,
IncomingRequest, IoOwn and the DeleteQueue, Worker::Lock and AsyncLock, WorkerEntrypoint,
limits, the service graph and an HTTP listener), written so a reader can follow workerd's
rules one by one, and emitting every state change the models care about as an iospec trace
(docs/trace-format.md).  The conformance suite runs against it by default.

Start with `Runtime` (runtime.py); the rules live in io_context.py, io_own.py, locks.py and
entrypoint.py, each citing workerd's source.
"""

from reference_impl.api import ExecutionContext, IoStream, Request, Response, ScheduledController
from reference_impl.errors import JsError, WorkerdError
from reference_impl.faults import FAULTS
from reference_impl.io_context import IncomingRequest, IoContext, ScheduledResult
from reference_impl.runtime import Runtime
from reference_impl.service import FailingService, StaticService, WorkerService
from reference_impl.worker import IsolateConfig

__all__ = [
    "FAULTS", "ExecutionContext", "FailingService", "IncomingRequest", "IoContext", "IoStream", "IsolateConfig",
    "JsError", "Request", "Response", "Runtime", "ScheduledController", "ScheduledResult", "StaticService",
    "WorkerService", "WorkerdError",
]
