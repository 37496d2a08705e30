"""A raw HTTP/1.1 client that reports what a runtime did on the wire, not just the parsed result.

http.client hides exactly what the conformance suite must see: a chunked body cut off before
its terminator, a connection closed before any status line, whether the server kept the
connection open after a complete response.  So each request uses its own loopback socket and
reads the bytes itself.  Every wait has a deadline (the request's ``timeout_ms``).
"""

from __future__ import annotations

import socket
import time
from typing import Any

__all__ = ["KEEP_ALIVE_PROBE_S", "exchange"]

#: How long to watch for the server closing an idle connection after a complete response.
KEEP_ALIVE_PROBE_S = 0.1


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""
        self.eof = False

    def _fill(self) -> bool:
        """Read more bytes; False at EOF. Raises TimeoutError past the deadline."""
        if self.eof:
            return False
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise
        except OSError:  # connection reset counts as the server closing it
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.buffer:
            if not self._fill():
                return None
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, n: int) -> tuple[bytes, bool]:
        while len(self.buffer) < n:
            if not self._fill():
                data, self.buffer = self.buffer, b""
                return data, False
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data, True

    def rest(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data


def _request_bytes(port: int, request: Any) -> bytes:
    method = request.get("method", "GET")
    body = request.get("body", "").encode()
    lines = [f"{method} {request['path']} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    for name, value in request.get("headers", {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _since(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


def exchange(port: int, request: Any, t0: float) -> dict[str, Any]:
    """Send one request (a scenario request object) to 127.0.0.1:port and observe the answer.

    Times are milliseconds since `t0` (a time.monotonic() value, the scenario's start).
    """
    timeout = request.get("timeout_ms", 5000) / 1000
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {"outcome": None}
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        record.update(outcome="refused", error=f"connect failed: {e.strerror or e}")
        return record
    with sock:
        sock.sendall(_request_bytes(port, request))
        record["t_sent"] = _since(t0)
        if "disconnect_after_ms" in request:
            time.sleep(request["disconnect_after_ms"] / 1000)
            record["outcome"] = "client_disconnected"
            record["t_done"] = _since(t0)
            return record
        reader = _Reader(sock, deadline)
        try:
            _read_response(reader, request, record, t0)
        except TimeoutError:
            record["outcome"] = record["outcome"] or "timeout"
            record["timed_out"] = True
            record["t_done"] = _since(t0)
    return record


def _read_response(reader: _Reader, request: Any, record: dict[str, Any], t0: float) -> None:
    head = reader.until(b"\r\n\r\n")
    if head is None:
        record.update(outcome="no_response", received=reader.buffer.decode("latin-1"), t_done=_since(t0),
                      connection="closed")
        return
    record["t_headers"] = _since(t0)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _version, status, *reason = status_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    record.update(outcome="response", status=int(status), reason=reason[0] if reason else "", headers=headers)
    body, complete, chunked = b"", True, False
    no_body = request.get("method", "GET") == "HEAD" or record["status"] in (204, 304) or record["status"] < 200
    if no_body:
        pass
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        chunked = True
        body, complete = _read_chunked(reader)
    elif "content-length" in headers:
        body, complete = reader.exactly(int(headers["content-length"]))
    else:
        body = reader.rest()
    record.update(body=body.decode("utf-8", errors="replace"), complete=complete, chunked=chunked,
                  t_done=_since(t0))
    if reader.eof:
        record["connection"] = "closed"
        return
    # A complete response on a connection still open: does the server close it by itself?
    reader.deadline = min(reader.deadline, time.monotonic() + KEEP_ALIVE_PROBE_S)
    try:
        more = reader._fill()
    except TimeoutError:
        record["connection"] = "kept"
        return
    record["connection"] = "closed" if not more else "kept"
    if more:
        record["extra_bytes"] = reader.buffer.decode("latin-1")


def _read_chunked(reader: _Reader) -> tuple[bytes, bool]:
    body = b""
    while True:
        size_line = reader.until(b"\r\n")
        if size_line is None:
            return body + reader.buffer, False
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            return body, False
        if size == 0:
            trailer = reader.until(b"\r\n")
            return body, trailer is not None
        data, whole = reader.exactly(size)
        body += data
        if not whole:
            return body, False
        if reader.until(b"\r\n") is None:
            return body, False
