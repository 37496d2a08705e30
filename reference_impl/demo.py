"""A demo service graph: one worker that shows each behaviour workerd-observed.md records.

``python -m reference_impl serve`` serves it on 127.0.0.1.  Paths of the ``app`` worker:

======================  =====================================================================
``/``                   200 "hello from the reference implementation"
``/throw``              an uncaught exception: the listener's 500 (21-byte body, connection: close)
``/hang``               awaits a promise nobody resolves: hang detection, then the listener's 500
``/pass``               ``ctx.pass_through_on_exception()`` then throw: the fallback's response
``/pass-down``          the same on ``app-down``, whose fallback fails: 500 with an empty body
``/stream``             a streamed body that fails after the first chunk: a truncated chunked body
``/wait``               responds at once; a ``ctx.wait_until`` task finishes 200 ms later
``/count``              how many ``/wait`` tasks have finished (their effect after the response)
``/save``, ``/use``     ``/save`` keeps its request body's stream; ``/use`` (another request) reads it:
                        "Cannot perform I/O on behalf of a different request. ..." (a 500; logged)
``/do/<name>``          a Durable Object counter: requests to one name share one IoContext
======================  =====================================================================
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from reference_impl.api import IoStream, Request, Response
from reference_impl.errors import JsError
from reference_impl.runtime import Runtime
from reference_impl.service import FailingService, StaticService

__all__ = ["Counter", "DemoWorker", "build_demo"]


class Counter:
    """A Durable Object: a counter whose I/O object is shared by all requests to the same name."""

    def __init__(self) -> None:
        self.count = 0
        self.log: IoStream | None = None

    async def fetch(self, request: Request, env: Any, ctx: Any) -> Response:
        self.count += 1
        if self.log is None:
            self.log = ctx.create_stream()
        self.log.write(b"%d " % self.count)
        return Response(f"count={self.count}\n")


class DemoWorker:
    """The demo worker (see the module docstring)."""

    finished: ClassVar[list[str]] = []
    saved: ClassVar[list[Request]] = []

    async def fetch(self, request: Request, env: Any, ctx: Any) -> Response:
        path = "/" + request.url.split("/", 3)[3] if request.url.count("/") >= 3 else "/"
        if path == "/":
            return Response("hello from the reference implementation\n")
        if path == "/throw":
            raise JsError("boom")
        if path == "/hang":
            await asyncio.get_running_loop().create_future()
        if path in ("/pass", "/pass-down"):
            ctx.pass_through_on_exception()
            raise JsError("boom, but pass through")
        if path == "/stream":
            async def body() -> Any:
                yield b"first chunk\n"
                await asyncio.sleep(0.01)
                raise JsError("the stream broke")

            return Response(body())
        if path == "/wait":
            async def later() -> None:
                await asyncio.sleep(0.2)
                DemoWorker.finished.append(request.url)

            ctx.wait_until(later())
            return Response("responded; the waitUntil task finishes in 200 ms\n")
        if path == "/count":
            return Response(f"{len(DemoWorker.finished)} waitUntil tasks finished\n")
        if path == "/save":
            DemoWorker.saved[:] = [request]
            return Response("saved this request's body stream\n")
        if path == "/use":
            if not DemoWorker.saved:
                return Response("POST something to /save first\n", status=409)
            return Response(await DemoWorker.saved[0].text())
        if path.startswith("/do/"):
            return await env.COUNTER.get(path[4:]).fetch(request)  # type: ignore[no-any-return]
        return Response("not found\n", status=404)


def build_demo(runtime: Runtime) -> None:
    """Add the demo's services: ``app`` (fallback ``fallback``), ``app-down`` (fallback ``down``)."""
    runtime.add_service(StaticService("fallback", b"the fallback service answered\n"))
    runtime.add_service(FailingService("down"))
    runtime.add_worker("app", DemoWorker, global_outbound="fallback", durable_objects={"COUNTER": Counter})
    runtime.add_worker("app-down", DemoWorker, global_outbound="down")
