"""Services: the nodes of the service graph, and the worker service that runs a worker.

Follows server/server.c++ at workerd commit 6552d999: a ``WorkerService`` starts one
``WorkerEntrypoint`` per event (``startRequest``, 3933-3945) and is at the same time the
worker's ``IoChannelFactory`` (its subrequest channels: bindings to other services, and the
"next" channel ``globalOutbound`` that ``passThroughOnException`` falls back to,
5887-5893) and its ``LimitEnforcer`` (4555-4589, delegating here to a limit profile).  It
also keeps the server-level task set into which requests drain (worker-entrypoint.c++:439).

Other services: `StaticService` (a fixed response; the demo's fallback), `FailingService`
(always throws: the fallback whose failure gives the synthetic empty 500) and
`ExternalService` (an HTTP/1.1 server on loopback, workerd's ``external`` service).  Bindings a
worker's ``env`` sees: `Fetcher` (a service binding: ``await env.SVC.fetch(request)``, whose
response body is an I/O object of the caller's context, and ``await env.SVC.scheduled(cron)``,
which needs workerd's ``service_binding_extra_handlers``) and `DurableObjectNamespace`
(``env.NS.get(name).fetch(request)``).
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import h11

from reference_impl.api import CollectingResponse, NativeBody, Request, Response, ResponseSink
from reference_impl.entrypoint import WorkerEntrypoint
from reference_impl.errors import JsError
from reference_impl.io_context import IoContext, ScheduledResult
from reference_impl.limits import LimitEnforcer
from reference_impl.loop import RuntimeThread
from reference_impl.worker import Actor, Worker

if TYPE_CHECKING:
    from reference_impl.runtime import Runtime

__all__ = [
    "DurableObjectNamespace",
    "ExternalService",
    "FailingService",
    "Fetcher",
    "Service",
    "ServiceStatistics",
    "StaticService",
    "WorkerService",
]


class Service(Protocol):
    name: str

    async def request(self, request: Request, response: ResponseSink) -> None: ...


@dataclass(frozen=True)
class ServiceStatistics:
    name: str
    limit_profile: str
    server_tasks: int
    actors: tuple[str, ...]


class WorkerService:
    """Runs one worker: entrypoint factory, I/O channel factory and limit enforcer in one."""

    def __init__(self, runtime: Runtime, name: str, worker: Worker, limits: LimitEnforcer, *,
                 bindings: Mapping[str, str] | None = None, global_outbound: str | None = None,
                 durable_objects: Mapping[str, type] | None = None, vars: Mapping[str, Any] | None = None) -> None:
        self.runtime = runtime
        self.name = name
        self.worker = worker
        self._limits = limits
        self.profile = limits.profile
        self.global_outbound = global_outbound
        self.durable_objects: dict[str, type] = dict(durable_objects or {})
        self.actors: dict[str, Actor] = {}
        self._server_tasks: set[asyncio.Task[Any]] = set()
        env: dict[str, Any] = dict(vars or {})
        for binding, target in (bindings or {}).items():
            env[binding] = Fetcher(runtime, target)
        for ns in self.durable_objects:
            env[ns] = DurableObjectNamespace(self, ns)
        self.env = _Env(env)
        worker.env.update(env)

    # ---- LimitEnforcer ---------------------------------------------------------------------------
    def limit_drain(self) -> asyncio.Future[None]:
        return self._limits.limit_drain()

    def limit_scheduled(self) -> asyncio.Future[None]:
        return self._limits.limit_scheduled()

    # ---- IoChannelFactory ------------------------------------------------------------------------
    def next_channel(self) -> Service | None:
        """``NEXT_CLIENT_CHANNEL``: the worker's ``globalOutbound`` (the pass-through fallback)."""
        if self.global_outbound is None:
            return None
        return self.runtime.services[self.global_outbound]

    # ---- the server-level task set ----------------------------------------------------------------
    def add_server_task(self, coro: Any) -> None:
        task = asyncio.Task(coro, loop=asyncio.get_running_loop())
        self._server_tasks.add(task)
        task.add_done_callback(self._server_task_done)

    def _server_task_done(self, task: asyncio.Task[Any]) -> None:
        self._server_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.runtime.log("error", f"{self.name}: server task failed: {task.exception()!r}")

    # ---- events -----------------------------------------------------------------------------------------
    async def request(self, request: Request, response: ResponseSink) -> None:
        """``startRequest(...)->request(...)``: a new entrypoint on the calling runtime thread."""
        await WorkerEntrypoint(self).request(request, response)

    async def scheduled(self, cron: str = "") -> ScheduledResult:
        return await WorkerEntrypoint(self).run_scheduled(cron)

    async def actor_request(self, namespace: str, actor_id: str, request: Request,
                            sink: CollectingResponse | None = None) -> Response:
        """A request to one Durable Object, run on the actor's thread (which may not be the caller's).

        ``sink``: where the response goes (the caller can look at what was sent when the actor's
        exception propagates); a new one by default.
        """
        actor = self._get_actor(namespace, actor_id)
        sink = CollectingResponse() if sink is None else sink

        async def run() -> None:
            await WorkerEntrypoint(self, actor=actor).request(request, sink)

        await actor.thread.run_here(run())
        return sink.to_response()

    def _get_actor(self, namespace: str, actor_id: str) -> Actor:
        key = f"{namespace}:{actor_id}"
        actor = self.actors.get(key)
        if actor is None:
            thread = self.runtime.actor_thread_for(key)
            actor = Actor(worker=self.worker, actor_id=actor_id, thread=thread,
                          name=self.runtime.recorder.new_id(key), namespace=namespace)
            self.actors[key] = actor
        return actor

    def evict_actor(self, namespace: str, actor_id: str) -> bool:
        """Evict an idle actor (server.c++:1036-1075): shut it down, drop its context, forget it.

        Returns False (and changes nothing) if the actor still has a delivered request.  The
        next request to the same id builds a new Actor, a new IoContext and a new DeleteQueue.
        """
        key = f"{namespace}:{actor_id}"
        actor = self.actors.get(key)
        if actor is None:
            return False

        def evict() -> bool:
            if actor.io_context is not None and actor.io_context.incoming:
                return False
            actor.shutdown()
            actor.drop_io_context()
            del self.actors[key]
            return True

        return actor.thread.call(evict).result(10)

    def statistics(self) -> ServiceStatistics:
        return ServiceStatistics(self.name, self.profile, len(self._server_tasks), tuple(sorted(self.actors)))


class _Env:
    """``env``: bindings as attributes (``env.FALLBACK``) and as a mapping."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]


class StaticService:
    """A service that answers every request with a fixed response (records what it received)."""

    def __init__(self, name: str, body: bytes = b"fallback", status: int = 200,
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.name = name
        self.body = body
        self.status = status
        self.headers = list(headers or [])
        self.received: list[tuple[str, str, list[tuple[str, str]], bytes]] = []

    async def request(self, request: Request, response: ResponseSink) -> None:
        self.received.append((request.method, request.url, list(request.headers), await request.body()))
        writer = await response.send(self.status, "", [*self.headers, ("content-length", str(len(self.body)))],
                                     len(self.body))
        await writer.write(self.body)
        await writer.end()


class FailingService:
    """A service that always fails (a fallback that is down)."""

    def __init__(self, name: str, message: str = "fallback is down") -> None:
        self.name = name
        self.message = message

    async def request(self, request: Request, response: ResponseSink) -> None:
        raise ConnectionRefusedError(self.message)


class ExternalService:
    """A service outside the runtime: HTTP/1.1 to ``host:port`` (workerd's ``external = (address, http)``).

    Each request opens a connection, sends the method, the URL's path, the headers and the body,
    and copies the answer into the response sink (h11 does the framing, as in the listener).
    """

    def __init__(self, name: str, host: str, port: int, timeout: float = 10.0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.timeout = timeout

    async def request(self, request: Request, response: ResponseSink) -> None:
        await asyncio.wait_for(self._exchange(request, response), self.timeout)

    async def _exchange(self, request: Request, response: ResponseSink) -> None:
        body = await request.body()
        target = urllib.parse.urlsplit(request.url)
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        headers = [(k, v) for k, v in request.headers if k.lower() not in ("host", "content-length",
                                                                          "transfer-encoding")]
        headers += [("host", f"{self.host}:{self.port}"), ("content-length", str(len(body)))]
        conn = h11.Connection(h11.CLIENT)
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            out = conn.send(h11.Request(method=request.method, target=path, headers=headers)) or b""
            if body:
                out += conn.send(h11.Data(data=body)) or b""
            out += conn.send(h11.EndOfMessage()) or b""
            writer.write(out)
            await writer.drain()
            sink_writer = None
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    hs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
                    sink_writer = await response.send(event.status_code, event.reason.decode("latin-1"), hs, None)
                elif isinstance(event, h11.Data):
                    assert sink_writer is not None
                    await sink_writer.write(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    assert sink_writer is not None
                    await sink_writer.end()
                    return
                else:
                    raise ConnectionError(f"{self.name}: the connection closed before a complete response")
        finally:
            writer.close()


class Fetcher:
    """A service binding: ``await env.SVC.fetch(request)`` is a subrequest (``awaitIo``)."""

    def __init__(self, runtime: Runtime, target: str) -> None:
        self._rt = runtime
        self.target = target

    async def fetch(self, request: Request) -> Response:
        """The response's body is a native stream owned by the calling context (an I/O object of it)."""
        ctx = IoContext.current()
        service = self._rt.services[self.target]
        sink = CollectingResponse()
        await ctx.await_io(_outside_context(service.request(request, sink)))
        return Response(body=NativeBody(sink.body, IoContext.current()), status=sink.status or 0,
                        headers=list(sink.headers), reason=sink.reason)

    async def scheduled(self, cron: str = "") -> ScheduledResult:
        """``env.SVC.scheduled({cron})``: a scheduled event on the target; its ``{outcome, noRetry}``."""
        ctx = IoContext.current()
        service = self._rt.services[self.target]
        if not isinstance(service, WorkerService):
            raise JsError(f"service {self.target} has no scheduled handler")
        return await ctx.await_io(_outside_context(service.scheduled(cron)))


class DurableObjectNamespace:
    """``env.NS``: ``get(name)`` returns a stub whose ``fetch`` reaches that actor."""

    def __init__(self, service: WorkerService, namespace: str) -> None:
        self._service = service
        self.namespace = namespace

    def get(self, name: str) -> _ActorStub:
        return _ActorStub(self._service, self.namespace, name)


class _ActorStub:
    def __init__(self, service: WorkerService, namespace: str, actor_id: str) -> None:
        self._service = service
        self._ns = namespace
        self._id = actor_id

    async def fetch(self, request: Request) -> Response:
        ctx = IoContext.try_current()
        if ctx is None:
            return await self._service.actor_request(self._ns, self._id, request)
        return await ctx.await_io(_outside_context(self._service.actor_request(self._ns, self._id, request)))


def _outside_context(coro: Any) -> asyncio.Future[Any]:
    """Run runtime-side I/O as a plain task (not one of the calling context's tasks)."""
    thread = RuntimeThread.current()
    assert thread is not None
    return asyncio.Task(coro, loop=thread.loop)
