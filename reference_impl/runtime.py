"""The runtime: threads, isolates, services, the trace recorder, faults, and the HTTP listener.

`Runtime` is the one object a user builds::

    rt = Runtime(threads=2)
    rt.add_worker("app", MyWorker, global_outbound="fallback")
    rt.add_service(StaticService("fallback"))
    resp = rt.fetch("app", Request("GET", "http://x/"))     # programmatic
    listener = rt.serve("app")                               # real HTTP on 127.0.0.1
    rt.close()

Isolates are shared by workers with identical configuration (`IsolateConfig`); a stateless
request runs on the runtime thread it arrives on; an actor lives on one thread chosen when it
is first used.  ``faults`` selects faulty variants (`reference_impl.faults`); ``limits``
selects the limit profile; ``trace`` adds trace sinks; ``monitor`` runs the models alongside
(``"c"``: the compiled checker, docs/compiled-engine.md); ``on_log(level, text)`` sees every
log line as it is written (levels: error, warning, info; workerd prints info lines only with
``--verbose``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reference_impl.api import CollectingResponse, Request, Response
from reference_impl.faults import check_faults
from reference_impl.http_server import HttpListener
from reference_impl.io_context import IoContext, ScheduledResult
from reference_impl.io_own import GcThread
from reference_impl.limits import make_limits
from reference_impl.loop import RuntimeThread, ThreadPool
from reference_impl.service import Service, WorkerService
from reference_impl.trace import MemorySink, Recorder, Sink
from reference_impl.worker import Isolate, IsolateConfig, Script, Worker

__all__ = ["TRACE_MODELS", "Runtime", "RuntimeStatistics"]

#: The models whose actions the reference implementation's events are.
TRACE_MODELS = ["context", "ownership", "lifecycle", "entrypoint", "actor", "locks"]


@dataclass(frozen=True)
class RuntimeStatistics:
    threads: tuple[str, ...]
    isolates: tuple[Any, ...]
    contexts_alive: int
    contexts_total: int
    faults: tuple[str, ...]
    limit_profile: str


class Runtime:
    """A Workers-style runtime with real threads; see the module docstring."""

    def __init__(self, *, threads: int = 2, faults: Iterable[str] = (), limits: str = "workerd-serve",
                 drain_seconds: float | None = None, scheduled_seconds: float | None = None,
                 trace: Iterable[Sink] = (), memory_trace: bool = True, monitor: bool | str = False,
                 models: Iterable[str] | None = None, log_to_stderr: bool = False,
                 on_log: Callable[[str, str], None] | None = None,
                 record_sync: bool = False, scheduler: Any = None, pool: ThreadPool | None = None) -> None:
        self.faults = check_faults(list(faults))
        self.limits = make_limits(limits, drain_seconds=drain_seconds, scheduled_seconds=scheduled_seconds)
        self.trace = MemorySink() if memory_trace else None
        sinks: list[Sink] = list(trace)
        if self.trace is not None:
            sinks.append(self.trace)
        from reference_impl.monitoring import available_models, known_operations

        # The models the trace is for: by default every model of TRACE_MODELS this checkout has.  Code that
        # builds contexts by hand (tests) leaves out "entrypoint", whose rules need an entrypoint per event.
        models = available_models(TRACE_MODELS if models is None else list(models))
        # record_sync: lock sections and thread hand-offs too (predictive checking); scheduler: a
        # reference_impl.scheduler.ControlledScheduler deciding the order of every recorded step
        self.recorder = Recorder(sinks, models=models, known_ops=known_operations(models),
                                 sync=record_sync or scheduler is not None)
        self.monitor: Any = None
        if monitor:
            from reference_impl.monitoring import attach_monitor

            # monitor="c": the compiled checker (properties/compiled), the Python monitor on demand
            self.monitor = attach_monitor(self, engine="c" if monitor == "c" else "python")
        # started together: each thread's start-up (its loop, its first scheduling) overlaps the others'.
        # pool: threads borrowed from a `ThreadPool` and given back by `close` (a harness building many runtimes)
        self.pool = pool
        self.threads = [RuntimeThread(f"thread-{i}", wait=False) if pool is None else pool.take(f"thread-{i}")
                        for i in range(threads)]
        for t in self.threads:
            t.wait_started()
            t.lock_busy = (lambda th=t: getattr(th, "async_waiter", None) is not None)  # type: ignore[misc]
            t.recorder = self.recorder
        if pool is None:
            self.gc = GcThread(recorder=self.recorder)
        else:
            self.gc = pool.take_gc(GcThread)
            self.gc.recorder = self.recorder
        #: what `close` found left on borrowed threads (`ThreadPool.give_back`); empty without a pool
        self.left_on_threads: list[str] = []
        if scheduler is not None:
            scheduler.attach(self)
        self.isolates: dict[IsolateConfig, Isolate] = {}
        self.isolates_by_name: dict[str, Isolate] = {}
        self.services: dict[str, Service] = {}
        self.contexts: list[IoContext] = []
        self.logs: list[tuple[str, str]] = []
        self._log_lock = threading.Lock()
        self._log_to_stderr = log_to_stderr
        self._on_log = on_log
        self._actor_rr = itertools.count()
        self.listeners: list[HttpListener] = []
        self._closed = False

    # ---- configuration -----------------------------------------------------------------------------
    def fault(self, name: str) -> bool:
        """True if the faulty variant ``name`` is switched on for this runtime."""
        return name in self.faults

    def isolate_for(self, config: IsolateConfig) -> Isolate:
        """The shared isolate for ``config`` (a new one for a configuration not seen before)."""
        iso = self.isolates.get(config)
        if iso is None:
            iso = Isolate(self.recorder.new_id("iso"), config, self)
            self.isolates[config] = iso
            self.isolates_by_name[iso.name] = iso
        return iso

    def add_worker(self, name: str, handler_class: type, *, config: IsolateConfig | None = None,
                   bindings: Mapping[str, str] | None = None, global_outbound: str | None = None,
                   durable_objects: Mapping[str, type] | None = None, vars: Mapping[str, Any] | None = None,
                   limits: str | None = None) -> WorkerService:
        """Add a worker service; ``bindings`` map env names to service names."""
        iso = self.isolate_for(config or IsolateConfig())
        script = Script(iso, handler_class, name)
        worker = Worker(script, {}, name)
        enforcer = self.limits if limits is None else make_limits(limits)
        svc = WorkerService(self, name, worker, enforcer, bindings=bindings, global_outbound=global_outbound,
                            durable_objects=durable_objects, vars=vars)
        self.services[name] = svc
        return svc

    def add_service(self, service: Service) -> Service:
        self.services[service.name] = service
        return service

    def actor_thread_for(self, key: str) -> RuntimeThread:
        """The thread a new actor lives on (round robin)."""
        return self.threads[next(self._actor_rr) % len(self.threads)]

    # ---- programmatic use --------------------------------------------------------------------------
    def fetch(self, service: str, request: Request | None = None, *, thread: int = 0,
              timeout: float = 30.0) -> CollectingResponse:
        """Send ``request`` to ``service`` on runtime thread ``thread``; wait for the response.

        Raises what the service raised (an exception workerd would tunnel to the listener).
        """
        sink = CollectingResponse()
        svc = self.services[service]
        req = request or Request()
        self.threads[thread].run(svc.request(req, sink), timeout=timeout)
        return sink

    def fetch_response(self, service: str, request: Request | None = None, **kw: Any) -> Response:
        return self.fetch(service, request, **kw).to_response()

    def scheduled(self, service: str, cron: str = "", *, thread: int = 0, timeout: float = 30.0) -> ScheduledResult:
        svc = self.services[service]
        assert isinstance(svc, WorkerService)
        return self.threads[thread].run(svc.scheduled(cron), timeout=timeout)

    def serve(self, service: str, *, host: str = "127.0.0.1", port: int = 0,
              threads: Iterable[int] | None = None) -> HttpListener:
        """Serve ``service`` over HTTP/1.1 on ``host:port`` (port 0: any free port)."""
        ts = [self.threads[i] for i in threads] if threads is not None else list(self.threads)
        listener = HttpListener(self, self.services[service], ts, host, port)
        self.listeners.append(listener)
        return listener

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until no context is alive (every request drained) or ``timeout`` passes."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.state == "DEAD" or c.actor is not None for c in list(self.contexts)):
                return
            time.sleep(0.005)
        raise TimeoutError("contexts still alive: " + ", ".join(
            c.name for c in self.contexts if c.state != "DEAD" and c.actor is None))

    # ---- logs and views ----------------------------------------------------------------------------
    def log(self, level: str, text: str) -> None:
        with self._log_lock:
            self.logs.append((level, text))
        if self._on_log is not None:
            self._on_log(level, text)
        if self._log_to_stderr:
            import sys

            print(f"{level}: {text}", file=sys.stderr, flush=True)

    def logged(self, needle: str) -> bool:
        with self._log_lock:
            return any(needle in t for _, t in self.logs)

    def statistics(self) -> RuntimeStatistics:
        return RuntimeStatistics(
            threads=tuple(t.name for t in self.threads),
            isolates=tuple(i.statistics() for i in self.isolates.values()),
            contexts_alive=sum(1 for c in self.contexts if c.state != "DEAD"),
            contexts_total=len(self.contexts),
            faults=tuple(sorted(self.faults)),
            limit_profile=self.limits.profile,
        )

    @property
    def closing(self) -> bool:
        """True once `close` has begun (its cancellations are the process ending, not request events)."""
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in self.listeners:
            listener.close()
        if self.pool is None:
            RuntimeThread.stop_all(self.threads)
            self.gc.stop()
        else:
            self.left_on_threads = self.pool.give_back(self.threads) + self.pool.give_back_gc(self.gc)
            self.gc.recorder = None
        self.recorder.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
