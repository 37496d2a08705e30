"""The HTTP listener: real HTTP/1.1 on a loopback socket, parsed and framed by h11.

Follows workerd's ``HttpListener`` (server/server.c++:6480-6600) and the wire behaviour seen
from ``workerd serve`` (/work/shared/research/workerd-observed.md):

* each connection is served on the runtime thread that accepted it (one listening socket,
  every runtime thread's loop accepting from it), and its requests go to the listener's
  service (a `WorkerService` creates a new entrypoint per request);
* an exception that escapes the service before any response byte was sent is the listener's
  ``handleApplicationError`` (6581-6591): ``500 Internal Server Error`` with exactly the
  headers ``connection: close`` and ``content-length: 21``, body ``Internal Server Error``,
  then the connection is closed;
* an exception after the headers went out cannot change the status: the connection is closed
  without the chunked terminator (a truncated body);
* the status line and headers are written together with the first body bytes (or the end), as
  kj's HttpServer does: a body that fails before yielding anything leaves the client with no
  status line at all;
* a service that answers normally (including the fail-open path's synthetic empty 500) keeps
  the connection open.

Why h11: it is a small, pure-Python, well-maintained HTTP/1.1 state machine that does no I/O,
so it runs inside each runtime thread's own asyncio loop exactly where workerd's HttpServer
runs (on the thread's event loop), while doing the parsing, keep-alive bookkeeping and
chunked framing we would otherwise write by hand (the stdlib ``http.server`` is
thread-per-connection and blocking, and has no chunked-response support).
"""

from __future__ import annotations

import asyncio
import http
import socket
from typing import TYPE_CHECKING, Any

import h11

from reference_impl.api import BodyWriter, Request
from reference_impl.errors import JsError, WorkerdError, describe_exception

if TYPE_CHECKING:
    from reference_impl.loop import RuntimeThread
    from reference_impl.runtime import Runtime
    from reference_impl.service import Service

__all__ = ["LISTENER_500_BODY", "HttpListener"]

LISTENER_500_BODY = b"Internal Server Error"
_MAX_BODY = 16 * 1024 * 1024


class _Connection:
    """One accepted connection: read requests with h11, hand each to the service, write its response."""

    def __init__(self, listener: HttpListener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER)

    async def _next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(65536)
                self.h11.receive_data(data)
                continue
            return event

    async def serve(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, (h11.ConnectionClosed,)) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    return
                body = bytearray()
                while True:
                    ev = await self._next_event()
                    if isinstance(ev, h11.Data):
                        body += ev.data
                        if len(body) > _MAX_BODY:
                            return
                    elif isinstance(ev, h11.EndOfMessage):
                        break
                    else:
                        return
                if not await self._handle(event, bytes(body)):
                    return
                if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
                    return
                self.h11.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError):
            return
        finally:
            self.writer.close()

    async def _handle(self, event: h11.Request, body: bytes) -> bool:
        """Serve one request; False if the connection must close now."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
        host = next((v for k, v in headers if k.lower() == "host"), "localhost")
        url = f"http://{host}{event.target.decode('latin-1')}"
        request = Request(event.method.decode("ascii"), url, headers, body)
        sink = _H11Response(self)
        try:
            await self.listener.service.request(request, sink)
        except Exception as e:
            if sink.sent:
                self.listener.runtime.log("error", f"Uncaught exception after the response started: {e}")
                self._abort_connection()
                return False
            what = f"remote.{describe_exception(e)}" if isinstance(e, (JsError, WorkerdError)) else (
                f"{type(e).__name__}: {e}")
            self.listener.runtime.log("error", f"Uncaught exception: {what}")
            await self._send_listener_500()
            return False
        if not sink.ended:
            self._abort_connection()
            return False
        return True

    async def _send_listener_500(self) -> None:
        out = self.h11.send(h11.Response(status_code=500, reason=b"Internal Server Error", headers=[
            (b"connection", b"close"), (b"content-length", str(len(LISTENER_500_BODY)).encode())]))
        out += self.h11.send(h11.Data(data=LISTENER_500_BODY)) or b""
        out += self.h11.send(h11.EndOfMessage()) or b""
        self.writer.write(out)
        await self.writer.drain()

    def _abort_connection(self) -> None:
        """Close mid-response: the client sees a truncated body (no chunked terminator)."""
        transport = self.writer.transport
        transport.abort()


class _H11Response:
    """The ResponseSink of one HTTP exchange."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status: int | None = None
        self.ended = False
        self._head = b""  # the status line and headers, written with the first body bytes

    @property
    def sent(self) -> bool:
        return self.status is not None

    async def send(self, status: int, reason: str, headers: list[tuple[str, str]], length: int | None) -> BodyWriter:
        if self.status is not None:
            raise RuntimeError("response headers were already sent")
        hs = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if length is not None and not any(k == b"content-length" for k, _ in hs):
            hs.append((b"content-length", str(length).encode()))
        self.status = status
        phrase = reason or _phrase(status)
        self._head = self._conn.h11.send(h11.Response(status_code=status, reason=phrase.encode("latin-1"),
                                                      headers=hs)) or b""
        return self

    async def _write(self, data: bytes) -> None:
        head, self._head = self._head, b""
        self._conn.writer.write(head + data)
        await self._conn.writer.drain()

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        await self._write(self._conn.h11.send(h11.Data(data=chunk)) or b"")

    async def end(self) -> None:
        await self._write(self._conn.h11.send(h11.EndOfMessage()) or b"")
        self.ended = True


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


class HttpListener:
    """Listens on ``host:port`` (loopback) and serves ``service`` on every runtime thread."""

    def __init__(self, runtime: Runtime, service: Service, threads: list[RuntimeThread],
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.runtime = runtime
        self.service = service
        self._threads = threads
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.host, self.port = self._sock.getsockname()[:2]
        self._servers: list[tuple[RuntimeThread, asyncio.base_events.Server]] = []
        for t in threads:
            server = t.run(self._start(), timeout=10)
            self._servers.append((t, server))

    async def _start(self) -> asyncio.base_events.Server:
        return await asyncio.start_server(self._on_connection, sock=self._sock)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # headers and body go out in separate writes: do not let Nagle hold the body back
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await _Connection(self, reader, writer).serve()
        except asyncio.CancelledError:
            # the connection's task is cancelled (runtime shutdown, or its context torn down while the handler
            # waited): end it quietly, as asyncio.streams (3.11) would otherwise report a cancelled callback
            writer.transport.abort()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        for t, server in self._servers:
            async def stop(s: asyncio.base_events.Server = server) -> None:
                s.close()

            try:
                t.run(stop(), timeout=5)
            except Exception:  # the thread may be stopping already
                pass
        self._servers = []
        self._sock.close()
