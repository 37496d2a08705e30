"""``WorkerEntrypoint``: one event (a fetch or a scheduled event) delivered to a worker.

Follows io/worker-entrypoint.c++ at workerd commit 6552d999:

* construction (``init``, 197-308): a stateless event gets a NEW IoContext; an actor's events
  reuse the actor's one context (``setIoContext`` once).  Then an `IncomingRequest`.
* single use (377-399): every event method takes the IncomingRequest out first; a second call
  raises "<method>() can only be called once".
* ``request()`` (361-634):
  1. ``delivered()``, then the handler runs inside the context (``context.run``);
  2. on every exit of stage 2 (success, failure, cancellation) the fail-open service is
     captured if ``passThroughOnException()`` was called, and the request is drained into
     the *service's* task set;
  3. an exception: if a response was already started, fail-open is disabled and no status
     can be sent (the body is cut short); else, in priority order: an actor rethrows to its
     caller; fail-open re-issues the original request to the fallback service (and if that
     fails sends a synthetic 500 with an empty body); otherwise the exception is tunnelled
     to the HTTP listener (standalone workerd always tunnels: server.c++:3938), which sends
     its own 500 ("Internal Server Error", ``connection: close``).
* ``runScheduled()`` (790-832): not for actors; the whole handler runs as a waitUntil task,
  then ``finishScheduled()`` gives ``{outcome, no_retry}`` after every waitUntil task.

A streamed body here is a worker-side async iterator, so it is pumped inside the context in
stage 2 (workerd pumps JS streams through the context too); a failure after the headers were
sent truncates the response.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from reference_impl.api import (
    BodyWriter,
    ExecutionContext,
    NativeBody,
    Request,
    Response,
    ResponseSink,
    ScheduledController,
)
from reference_impl.errors import JsError, WorkerdError
from reference_impl.io_context import IncomingRequest, IoContext, ScheduledResult
from reference_impl.loop import RuntimeThread

if TYPE_CHECKING:
    from reference_impl.service import Service, WorkerService
    from reference_impl.worker import Actor

__all__ = ["HandlerMissing", "ResponseSentTracker", "WorkerEntrypoint"]


class HandlerMissing(JsError):
    pass


class ResponseSentTracker:
    """``ResponseSentTracker`` (162-195): remembers whether a status line went out, and which."""

    def __init__(self, inner: ResponseSink, request_name: str, runtime: Any) -> None:
        self._inner = inner
        self._r = request_name
        self._rt = runtime
        self.status: int | None = None
        self.writer: BodyWriter | None = None

    @property
    def sent(self) -> bool:
        return self.status is not None or self._inner.sent

    def commit_handler_response(self, status: int) -> None:
        """Inside the context: the handler's Response is being sent (``send_response``)."""
        rec = self._rt.recorder
        with rec.atomic():
            self.status = status
            rec.emit("send_response", {"r": self._r})

    async def send(self, status: int, reason: str, headers: list[tuple[str, str]], length: int | None) -> BodyWriter:
        """``send()``: the status line and headers go out (the handler's, the fallback's, or a synthetic one)."""
        self.status = status
        self.writer = await self._inner.send(status, reason, headers, length)
        return self.writer


class WorkerEntrypoint:
    """One event for one worker (or one actor of it)."""

    def __init__(self, service: WorkerService, *, actor: Actor | None = None) -> None:
        self.service = service
        self.runtime = service.runtime
        self.actor = actor
        thread = RuntimeThread.current()
        if thread is None:
            raise RuntimeError("a WorkerEntrypoint is constructed on a runtime thread")
        if actor is not None:
            if actor.thread is not thread:
                raise RuntimeError(f"actor {actor.name} lives on {actor.thread.name}, not {thread.name}")
            ctx = actor.io_context
            if ctx is None or self.runtime.fault("actor_new_context_per_request"):
                ctx = IoContext(self.runtime, service.worker, service, actor=actor)
                if actor.io_context is not None and self.runtime.fault("actor_new_context_per_request"):
                    actor.io_context = None
                actor.set_io_context(ctx)
        else:
            ctx = IoContext(self.runtime, service.worker, service)
        self.context = ctx
        self.incoming_request: IncomingRequest | None = IncomingRequest(ctx)
        self._request_name = self.incoming_request.name

    def _take(self, method: str, op: str) -> IncomingRequest:
        """Every event method first takes the IncomingRequest: "<method>() can only be called once"."""
        rec = self.runtime.recorder
        with rec.atomic():
            r = self.incoming_request
            rec.emit(op, {"r": self._request_name}, result="OK" if r is not None else "ERR_CALLED_TWICE")
            if r is None:
                raise WorkerdError("ERR_CALLED_TWICE", method=method)
            self.incoming_request = None
            return r

    def _handler(self) -> Any:
        if self.actor is not None:
            return self.actor.handler
        return self.service.worker.handler

    def _emit(self, op: str, args: dict[str, Any], outputs: dict[str, Any] | None = None) -> None:
        rec = self.runtime.recorder
        with rec.atomic():
            rec.emit(op, args, outputs=outputs)

    # ---- fetch -------------------------------------------------------------------------------------
    async def request(self, request: Request, response: ResponseSink) -> None:
        """``request()``: deliver, run ``fetch``, respond; on failure fail open, tunnel, or rethrow."""
        r = self._take("request", "request")
        ctx = r.context
        rt = self.runtime
        name = r.name
        tracker = ResponseSentTracker(response, name, rt)
        r.delivered()
        if self.actor is not None:
            self._ensure_constructed(ctx)
        fail_open_service: Service | None = None
        failure: BaseException | None = None
        # Stage 2: the handler (and, here, the body it streams) runs in the context.
        try:
            await self._run_fetch(ctx, request, tracker)
            self._emit("handler_returned", {"r": name})
        except asyncio.CancelledError:
            self._emit("request_canceled", {"r": name}, {"response": "NO_RESPONSE"})
            self._leave_stage_two(r)
            raise
        except Exception as e:
            failure = e
            request.neuter("REQUEST_BODY_AFTER_EXCEPTION")
            # the Lock logs an uncaught JS exception at INFO (worker.c++:2544-2581); the listener logs at ERROR
            ctx.log("info", f"Uncaught exception: {type(e).__name__}: {e}")
            self._emit("handler_threw", {"r": name})
        # The KJ_DEFER leaving stage 2: capture the fail-open channel, then drain into the service's task set.
        if ctx.fail_open and not rt.fault("pass_through_ignored"):
            fail_open_service = self.service.next_channel()
        self._leave_stage_two(r)
        if failure is None:
            # Stage 3: nothing is deferred here (a streamed body was pumped in stage 2).
            self._emit("proxy_done", {"r": name, "ok": True}, {"response": "WORKER_RESPONSE"})
            return
        # Stage 4: exactly one disposition.
        if tracker.sent and not rt.fault("fallback_after_headers"):
            fail_open_service = None  # "Can't fail open if a response was already started"
        if self.actor is not None:
            self._emit("tunnel_to_actor_caller", {"r": name},
                       {"response": "TRUNCATED" if tracker.sent else "EXCEPTION_TO_ACTOR_CALLER"})
            raise failure
        if fail_open_service is not None:
            self._emit("fail_open", {"r": name})
            try:
                await fail_open_service.request(request.clone_for_fallback(), tracker)
            except Exception as fallback_error:
                if not isinstance(fallback_error, (JsError, WorkerdError)):  # a tunnelled JS exception is not logged
                    ctx.log("error", f"failOpenFallback: {fallback_error}")
                self._emit("fallback_done", {"r": name, "ok": False},
                           {"response": "TRUNCATED" if tracker.sent else "FALLBACK_500_EMPTY"})
                await self._send_synthetic_status(tracker, 500, "Internal Server Error")
                return
            self._emit("fallback_done", {"r": name, "ok": True}, {"response": "FALLBACK_RESPONSE"})
            return
        if tracker.sent and rt.fault("exception_after_headers_500"):
            self._emit("send_synthetic_status", {"r": name}, {"response": "SYNTHETIC_500"})
            await self._send_synthetic_status(tracker, 500, "Internal Server Error", force=True)
            return
        self._emit("tunnel_exception", {"r": name}, {"response": "TRUNCATED" if tracker.sent else "LISTENER_500"})
        raise failure

    def _leave_stage_two(self, r: IncomingRequest) -> None:
        """``drain()`` into the service's task set (worker-entrypoint.c++:439)."""
        self.service.add_server_task(r.drain())

    async def _send_synthetic_status(self, tracker: ResponseSentTracker, status: int, reason: str,
                                     *, force: bool = False) -> None:
        """``sendSyntheticStatus``: nothing if a response started; else the status with an empty body."""
        if tracker.sent and not force:
            return
        if tracker.writer is not None:
            # Headers already went out (only a faulty runtime gets here): all it can do is end the body.
            await tracker.writer.end()
            return
        writer = await tracker.send(status, reason, [("content-length", "0")], 0)
        await writer.end()

    async def _run_fetch(self, ctx: IoContext, request: Request, tracker: ResponseSentTracker) -> None:
        handler = self._handler()
        fetch = getattr(handler, "fetch", None)
        env = self.service.env
        ectx = ExecutionContext(ctx)
        await ctx.run(lambda: request.bind_body(ctx))
        if fetch is None:
            raise JsError("Handler does not export a fetch() function.")
        result = await ctx.drive(fetch(request, env, ectx))
        if not isinstance(result, Response):
            raise JsError("Incorrect type for Promise: the Promise did not resolve to 'Response'.")
        await self._send_response(ctx, result, tracker)
        request.neuter("REQUEST_BODY_AFTER_RESPONSE")  # after the body was sent (global-scope.c++:466-475)

    async def _send_response(self, ctx: IoContext, resp: Response, tracker: ResponseSentTracker) -> None:
        """Send the Response: its headers are committed inside the context; a streamed body is pumped there."""
        body = resp.body
        headers = list(resp.headers)
        streamed = not (body is None or isinstance(body, (bytes, str, NativeBody)))
        await ctx.run(lambda: tracker.commit_handler_response(resp.status))
        if not streamed:
            data = await ctx.run(resp.body_bytes) if isinstance(body, NativeBody) else resp.body_bytes()
            with ctx.pending_io():
                writer = await tracker.send(resp.status, resp.reason, headers, len(data))
                if data:
                    await writer.write(data)
                await writer.end()
            return
        assert body is not None and not isinstance(body, (bytes, str, NativeBody))
        iterator = body.__aiter__()
        with ctx.pending_io():
            writer = await tracker.send(resp.status, resp.reason, headers, None)
        while True:
            try:
                chunk = await ctx.drive(_anext(iterator))
            except StopAsyncIteration:
                break
            with ctx.pending_io():
                await writer.write(chunk if isinstance(chunk, bytes) else str(chunk).encode())
        with ctx.pending_io():
            await writer.end()

    def _ensure_constructed(self, ctx: IoContext) -> None:
        """``actor.ensureConstructed``: the Durable Object class is instantiated on the first delivery."""
        actor = self.actor
        assert actor is not None
        if actor.handler is None:
            cls = self.service.durable_objects[actor.namespace]
            actor.handler = cls()

# ---- scheduled ---------------------------------------------------------------------------------
    async def run_scheduled(self, cron: str = "", scheduled_time: float | None = None) -> ScheduledResult:
        """``runScheduled()``: the handler runs as a waitUntil task; ``finishScheduled()`` gives the result."""
        r = self._take("runScheduled", "run_scheduled")
        ctx = r.context
        if ctx.actor is not None:
            raise AssertionError("scheduled events are never delivered to actors")
        r.delivered()
        handler = self._handler()
        controller = ScheduledController(cron, time.time() if scheduled_time is None else scheduled_time)
        env = self.service.env
        ectx = ExecutionContext(ctx)

        async def start_scheduled() -> None:
            scheduled = getattr(handler, "scheduled", None)
            if scheduled is None:
                ctx.set_no_retry()
                raise HandlerMissing("Handler does not export a scheduled() function")
            await scheduled(controller, env, ectx)

        ctx.add_wait_until(start_scheduled())
        return await r.finish_scheduled()


async def _anext(it: Any) -> Any:
    return await it.__anext__()
