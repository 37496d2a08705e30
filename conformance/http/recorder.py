"""The recorder: an HTTP server on loopback that workers report side effects to.

The vocabulary's ``record`` step POSTs ``{scenario, worker, event, value}`` here.  The harness
stamps each event with its own monotonic clock on arrival, so "this waitUntil finished after
the response" is measured on one clock with the client's response times.  In workerd the
recorder is an ``external`` service bound as ``RECORDER`` in every worker; the reference
implementation can post to the same server.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Recorder"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            data = json.loads(raw)
            event = {
                "scenario": str(data["scenario"]),
                "worker": str(data["worker"]),
                "event": str(data["event"]),
                "value": str(data.get("value", "")),
            }
        except (ValueError, KeyError, TypeError):
            self._answer(400, b"bad event")
            return
        self.server.recorder.add(event, arrived)
        self._answer(200, b"recorded")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder


class Recorder:
    """Collects events per scenario.  Use as a context manager: it listens on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[float, dict[str, str]]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "recorder not started"
        return int(self._server.server_address[1])

    def add(self, event: dict[str, str], arrived: float) -> None:
        with self._lock:
            self._events.append((arrived, event))

    def events(self, scenario: str) -> list[tuple[float, dict[str, str]]]:
        """(monotonic arrival time, event) for one scenario, in arrival order."""
        with self._lock:
            return [(t, e) for t, e in self._events if e["scenario"] == scenario]

    def start(self) -> Recorder:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.recorder = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="iospec-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
