"""The Workers API a worker's Python code sees: Request, Response, ``ctx``, ``controller``, I/O objects.

A worker is a Python class with ``async def fetch(self, request, env, ctx)`` (and optionally
``async def scheduled(self, controller, env, ctx)``), the analogue of an ES module's default
export.  Its code runs inside an IoContext one step at a time (see `IoContext.drive`).

* `Request` / `Response`: a request body is an I/O object of the context that received it
  (an `IoOwn`, type ``ReadableStreamSource>`` as workerd's message prints it), so reading a
  saved request's body from another request fails with workerd's "different request" error.
  A response body is ``bytes``/``str`` or an async iterator of chunks (a streamed body).
* `ExecutionContext` (``ctx``): ``wait_until``, ``pass_through_on_exception``, ``abort``
  (api/global-scope.c++:67-73, 165-175).
* `ScheduledController`: ``no_retry()`` (``setNoRetryScheduled``).
* `IoStream`: a generic I/O object (think ``IdentityTransformStream``) whose wrapper holds an
  IoOwn; `Wrapper.finalize` is what the GC thread calls.  `IdentityTransformStream` is the
  native stream itself, and `NativeBody` a body backed by a native stream (``new
  Response("...")``, a subrequest's response body): both are I/O objects of their context.
* JavaScript-only objects, which hold no IoOwn: `ReadableStream` (made of JS values;
  ``error()`` drops queued chunks, WHATWG Streams), `Promise` and `TransformStream`, whose
  pending promises belong to the context that created them: settling one from another context
  is a cross-context action on the creator's DeleteQueue (io-own.c++:22-55), dropped with
  workerd's warning once the creator has ended.
* A request body is neutered once the response was sent or failed (api/global-scope.c++:440-480):
  reading it then throws a ``TypeError``.
* `ResponseSink`: the ``kj::HttpService::Response`` a service writes to (``send`` headers,
  then body chunks, then ``end``; ``sent`` once headers went out).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from model.vocab import MESSAGES
from reference_impl.errors import JsError, JsTypeError
from reference_impl.io_context import IoContext
from reference_impl.io_own import IoOwn

__all__ = [
    "REQUEST_BODY_IO_TYPE",
    "Body",
    "BodyWriter",
    "CollectingResponse",
    "ExecutionContext",
    "IdentityTransformStream",
    "IoStream",
    "NativeBody",
    "Promise",
    "ReadableStream",
    "ReadableStreamController",
    "TransformStream",
    "Request",
    "Response",
    "ResponseSink",
    "ScheduledController",
]

#: The type suffix workerd prints for a request body used from another request (observed, with its stray ">").
REQUEST_BODY_IO_TYPE = "ReadableStreamSource>"

class NativeBody:
    """A body backed by a native (KJ) stream: an I/O object of the context that created it.

    workerd wraps ``new Response("...")`` and a subrequest's response body this way, so reading
    one from another request fails with the different-request error (I/O type
    ``ReadableStreamSource>``).  Create it while its context is current.
    """

    def __init__(self, data: bytes | str, ctx: IoContext | None = None) -> None:
        owner = ctx if ctx is not None else IoContext.current()
        raw = data.encode() if isinstance(data, str) else data
        self._own: IoOwn[_BodySource] = owner.add_object(_BodySource(raw), REQUEST_BODY_IO_TYPE)
        self.length = len(raw)

    def read(self) -> bytes:
        """The whole body (checked: only the owning context may read it)."""
        return self._own.get().data


Body = bytes | str | NativeBody | AsyncIterator[bytes] | None


class _BodySource:
    """The object behind a request body's IoOwn (a KJ input stream)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Request:
    """An incoming (or outgoing) HTTP request, as a worker sees it."""

    def __init__(self, method: str = "GET", url: str = "http://localhost/",
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> None:
        self.method = method
        self.url = url
        self.headers: list[tuple[str, str]] = list(headers or [])
        self._raw_body = body
        self._body: IoOwn[_BodySource] | None = None
        self._neutered: str | None = None

    def bind_body(self, ctx: IoContext) -> None:
        """Make the body an I/O object of ``ctx`` (called inside the context when the request arrives)."""
        if self._raw_body:
            self._body = ctx.add_object(_BodySource(self._raw_body), REQUEST_BODY_IO_TYPE)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    async def body(self) -> bytes:
        """Read the whole body (checked: only the owning context may read it; not after it was neutered)."""
        if self._body is None:
            return self._raw_body
        await asyncio.sleep(0)
        data = self._body.get().data
        if self._neutered is not None:
            raise JsTypeError(MESSAGES[self._neutered])
        return data

    def neuter(self, reason: str) -> None:
        """The event is over: later reads throw ``reason`` (a MESSAGES key), like workerd's NeuterableInputStream."""
        if self._neutered is None:
            self._neutered = reason

    async def text(self) -> str:
        return (await self.body()).decode()

    def clone_for_fallback(self) -> Request:
        """The same method, URL, headers and body, for ``passThroughOnException``'s re-issue."""
        return Request(self.method, self.url, self.headers, self._raw_body)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


@dataclass
class Response:
    """What a handler returns: status, headers, and a body (bytes, str, or an async iterator)."""

    body: Body = b""
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str = ""

    def body_bytes(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, NativeBody):
            return self.body.read()
        if isinstance(self.body, str):
            return self.body.encode()
        if isinstance(self.body, bytes):
            return self.body
        raise TypeError("the body is a stream; read it with read_all()")

    async def text(self) -> str:
        if isinstance(self.body, (bytes, str, NativeBody)) or self.body is None:
            await asyncio.sleep(0)
            return self.body_bytes().decode()
        return b"".join([c async for c in self.body]).decode()


class ExecutionContext:
    """``ctx``: the handler's view of its IoContext (``ExecutionContext``)."""

    def __init__(self, io_context: IoContext) -> None:
        self._io = io_context

    def wait_until(self, work: Any) -> None:
        """``ctx.waitUntil(promise)``: ``IoContext::current().addWaitUntil`` (global-scope.c++:67-69)."""
        IoContext.current().add_wait_until(work)

    def pass_through_on_exception(self) -> None:
        """``ctx.passThroughOnException()``: set the (never reset) fail-open flag of the current context."""
        cur = IoContext.current()
        rec = cur.runtime.recorder
        with rec.atomic():
            cur.fail_open = True
            rec.emit("pass_through_on_exception", {"c": cur.name})

    def abort(self, reason: BaseException | None = None) -> None:
        """``ctx.abort(reason)``: abort the context, then stop running this code at once."""
        err = reason if reason is not None else JsError("Worker execution was aborted due to call to ctx.abort().")
        IoContext.current().abort(err)
        raise err

    def create_stream(self) -> IoStream:
        """A new I/O object of the current context (an IdentityTransformStream, say)."""
        return IoStream(IoContext.current())


class ScheduledController:
    """The ``controller`` of a scheduled (cron) event."""

    def __init__(self, cron: str, scheduled_time: float) -> None:
        self.cron = cron
        self.scheduled_time = scheduled_time

    def no_retry(self) -> None:
        IoContext.current().set_no_retry()


class _Pipe:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def close(self) -> None:
        self.closed = True


class IoStream:
    """A JS wrapper around an I/O object: every use goes through its IoOwn's access check."""

    IO_TYPE = "IdentityTransformStream"

    def __init__(self, ctx: IoContext) -> None:
        self.handle: IoOwn[_Pipe] = ctx.add_object(_Pipe(), self.IO_TYPE)

    def write(self, data: bytes) -> None:
        self.handle.get().chunks.append(data)

    def read(self) -> bytes:
        pipe = self.handle.get()
        out = b"".join(pipe.chunks)
        pipe.chunks.clear()
        return out

    def finalize(self) -> None:
        """What the GC does when it collects the wrapper: destroy the IoOwn on the GC's thread."""
        self.handle.drop()


class IdentityTransformStream(IoStream):
    """workerd's ``IdentityTransformStream``: a native stream (an IoOwn of its context).

    workerd's different-request error names the readable side's source, ``ReadableStreamSource>``.
    """

    IO_TYPE = REQUEST_BODY_IO_TYPE


class ReadableStreamController:
    """``ReadableStreamDefaultController``: ``enqueue``, ``close``, ``error``."""

    def __init__(self, stream: ReadableStream) -> None:
        self._stream = stream

    def enqueue(self, chunk: bytes | str) -> None:
        self._stream._push(chunk.encode() if isinstance(chunk, str) else chunk)

    def close(self) -> None:
        self._stream._end(None)

    def error(self, reason: BaseException) -> None:
        self._stream._end(reason)


class ReadableStream:
    """A JavaScript ``ReadableStream`` made of JS values (no I/O object: any context may read it).

    ``start(controller)`` runs at construction, as in JS.  ``controller.error(e)`` drops the
    chunks still queued (WHATWG Streams), so a stream that errors in the turn it was started
    yields no chunk at all.  Read it with ``async for`` (one consumer, on the creating thread).
    """

    def __init__(self, start: Any) -> None:
        self._queue: list[bytes] = []
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        start(ReadableStreamController(self))

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None

    def _push(self, chunk: bytes) -> None:
        if not self._done:
            self._queue.append(chunk)
            self._wake()

    def _end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if error is not None:
            self._error = error
            self._queue.clear()
        self._wake()

    def __aiter__(self) -> ReadableStream:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._error is not None:
                raise self._error
            if self._queue:
                return self._queue.pop(0)
            if self._done:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


def _settle_future(future: asyncio.Future[Any], value: Any) -> None:
    """Resolve ``future`` on its own loop (the context that awaits it may live on another thread)."""
    loop = future.get_loop()

    def settle() -> None:
        if not future.done():
            future.set_result(value)

    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
    else:
        loop.call_soon_threadsafe(settle)


class Promise:
    """A JavaScript promise; its reactions belong to the context that created it.

    With cross-request promise resolution (compatibility date 2024-10-14 and later) settling it
    from another context schedules the reaction on the creator's DeleteQueue (``scheduleAction``,
    io-own.c++:22-55): it runs in the creator, or is dropped with workerd's warning if the
    creator has ended.  Create it while a context is current; ``await`` it in that context.
    """

    def __init__(self) -> None:
        self._ctx = IoContext.current()
        self._future: asyncio.Future[Any] = self._ctx.loop.create_future()

    def __await__(self) -> Any:
        return self._future.__await__()

    def resolve(self, value: Any = None) -> None:
        """``resolve(value)`` from any context: directly in the creator, else a cross-context action."""
        if IoContext.try_current() is self._ctx:
            if not self._future.done():
                self._future.set_result(value)
            return
        self._ctx.delete_queue.schedule_action(lambda: _settle_future(self._future, value))


class TransformStream:
    """A JavaScript ``TransformStream`` (identity transform, JS values only; no I/O object).

    Its internal promises belong to the context that created it: a write from another context
    hands the chunk over through a cross-context action of the creator (`Promise`), which is
    dropped once the creator has ended, so the reader then waits forever (workerd-observed.md).
    """

    def __init__(self) -> None:
        self._ctx = IoContext.current()
        self._chunks: list[bytes] = []
        self._readers: list[asyncio.Future[bytes]] = []

    def write(self, chunk: bytes) -> None:
        if IoContext.try_current() is self._ctx:
            self._deliver(chunk)
        else:
            self._ctx.delete_queue.schedule_action(lambda: self._deliver(chunk))

    def _deliver(self, chunk: bytes) -> None:
        if self._readers:
            _settle_future(self._readers.pop(0), chunk)
        else:
            self._chunks.append(chunk)

    async def read(self) -> bytes:
        if self._chunks:
            return self._chunks.pop(0)
        reader: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._readers.append(reader)
        return await reader


class BodyWriter(Protocol):
    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None: ...


class ResponseSink(Protocol):
    """``kj::HttpService::Response``: send headers once, then the body."""

    @property
    def sent(self) -> bool: ...

    async def send(self, status: int, reason: str, headers: list[tuple[str, str]],
                   length: int | None) -> BodyWriter: ...


class CollectingResponse:
    """A ResponseSink that keeps everything in memory (subrequests, the programmatic API).

    Safe to write from one thread and read from another once `done` is set.
    """

    def __init__(self) -> None:
        self.status: int | None = None
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.ended = False
        self.done = threading.Event()

    @property
    def sent(self) -> bool:
        return self.status is not None

    async def send(self, status: int, reason: str, headers: list[tuple[str, str]],
                   length: int | None) -> BodyWriter:
        if self.status is not None:
            raise RuntimeError("response headers were already sent")
        self.status, self.reason, self.headers = status, reason, list(headers)
        return self

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def end(self) -> None:
        self.ended = True

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def to_response(self) -> Response:
        return Response(body=self.body, status=self.status or 0, headers=list(self.headers), reason=self.reason)
