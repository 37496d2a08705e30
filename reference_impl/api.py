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
  IoOwn; `Wrapper.finalize` is what the GC thread calls.
* `ResponseSink`: the ``kj::HttpService::Response`` a service writes to (``send`` headers,
  then body chunks, then ``end``; ``sent`` once headers went out).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from reference_impl.errors import JsError
from reference_impl.io_context import IoContext
from reference_impl.io_own import IoOwn

__all__ = [
    "REQUEST_BODY_IO_TYPE",
    "Body",
    "BodyWriter",
    "CollectingResponse",
    "ExecutionContext",
    "IoStream",
    "Request",
    "Response",
    "ResponseSink",
    "ScheduledController",
]

#: The type suffix workerd prints for a request body used from another request (observed, with its stray ">").
REQUEST_BODY_IO_TYPE = "ReadableStreamSource>"

Body = bytes | str | AsyncIterator[bytes] | None


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
        """Read the whole body (checked: only the owning context may read it)."""
        if self._body is None:
            return self._raw_body
        await asyncio.sleep(0)
        return self._body.get().data

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
        if isinstance(self.body, str):
            return self.body.encode()
        if isinstance(self.body, bytes):
            return self.body
        raise TypeError("the body is a stream; read it with read_all()")

    async def text(self) -> str:
        if isinstance(self.body, (bytes, str)) or self.body is None:
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
