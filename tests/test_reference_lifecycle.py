"""IncomingRequest, WorkerEntrypoint, actors and limits in the reference implementation."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import ClassVar

import pytest

from model.vocab import MESSAGES
from reference_impl import (
    FailingService,
    IncomingRequest,
    JsError,
    Request,
    Response,
    StaticService,
    WorkerdError,
)
from reference_impl.api import CollectingResponse
from reference_impl.entrypoint import WorkerEntrypoint
from tests.reference_helpers import assert_monitor_ok, drain, new_context, on, run_in, runtime, service

# ---- IncomingRequest -------------------------------------------------------------------------------


def test_delivered_only_once() -> None:
    with runtime(threads=1, direct=True) as rt:
        _ctx, r = new_context(rt)
        with pytest.raises(WorkerdError) as e:
            on(rt, 0, r.delivered)
        assert str(e.value) == "delivered() can only be called once"
        drain(rt, r)
        assert_monitor_ok(rt)


def test_a_request_destroyed_before_delivery_needs_no_drain() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt, deliver=False, keep_alive=False)
        on(rt, 0, r.destroy)
        assert ctx.statistics().state == "DEAD"
        assert not any("drain" in t for _, t in ctx.logs)
        assert_monitor_ok(rt)


def test_current_request_is_the_newest_delivered_one() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r1 = new_context(rt, actor=True)
        r2 = on(rt, 0, lambda: IncomingRequest(ctx))
        assert ctx.front is r1
        on(rt, 0, r2.delivered)
        assert ctx.front is r2 and r1.statistics().state == "SUPERSEDED"
        on(rt, 0, r2.destroy)
        assert ctx.front is r1 and r1.statistics().state == "CURRENT"
        # draining a superseded request returns at once; here r1 is the front again, so it really drains
        r3 = on(rt, 0, lambda: IncomingRequest(ctx))
        on(rt, 0, r3.delivered)
        drain(rt, r1)  # not the front: destroyed at once
        assert r1.statistics().state == "DRAIN_SKIPPED" and ctx.front is r3
        assert_monitor_ok(rt)


def test_a_new_delivery_cancels_the_previous_actor_drain() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r1 = new_context(rt, actor=True)
        gate = threading.Event()

        async def slow() -> None:
            while not gate.is_set():
                await asyncio.sleep(0.005)

        run_in(rt, ctx, lambda: ctx.add_wait_until(slow()))
        drain_future = rt.threads[0].submit(r1.drain())
        r2 = on(rt, 0, lambda: IncomingRequest(ctx))
        on(rt, 0, r2.delivered)
        drain_future.result(5)  # r1's drain ended although the waitUntil task is still running
        assert r1.statistics().state == "DRAIN_SUPERSEDED"
        assert ctx.statistics().wait_until_tasks == 1
        gate.set()
        drain(rt, r2)
        assert_monitor_ok(rt)


def test_superseded_drain_fault_keeps_the_old_drain_running() -> None:
    with runtime(threads=1, faults={"superseded_drain_not_cancelled"}, direct=True) as rt:
        ctx, r1 = new_context(rt, actor=True)
        gate = threading.Event()

        async def slow() -> None:
            while not gate.is_set():
                await asyncio.sleep(0.005)

        run_in(rt, ctx, lambda: ctx.add_wait_until(slow()))
        drain_future = rt.threads[0].submit(r1.drain())
        r2 = on(rt, 0, lambda: IncomingRequest(ctx))
        on(rt, 0, r2.delivered)
        with pytest.raises(TimeoutError):
            drain_future.result(0.1)
        gate.set()
        drain_future.result(5)


def test_forgetting_to_drain_warns() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        run_in(rt, ctx, lambda: ctx.add_wait_until(asyncio.sleep(5)))
        on(rt, 0, r.destroy)
        assert any(MESSAGES["DRAIN_FORGOTTEN"] in t for _, t in ctx.logs)
        assert ctx.statistics().state == "DEAD"


# ---- the entrypoint: fetch ---------------------------------------------------------------------------


class Worker:
    """A worker whose behaviour is chosen by the request path."""

    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        path = request.url.rsplit("/", 1)[-1]
        if path == "ok":
            return Response("ok")
        if path == "throw":
            raise JsError("boom")
        if path == "pass":
            ctx.pass_through_on_exception()
            raise JsError("boom")
        if path == "pass-ok":
            ctx.pass_through_on_exception()
            return Response("normal")
        if path == "stream":
            ctx.pass_through_on_exception()

            async def body():  # type: ignore[no-untyped-def]
                yield b"first"
                await asyncio.sleep(0.001)
                raise JsError("stream broke")

            return Response(body())
        if path == "wait":
            async def work() -> None:
                # the test opens the gate after it saw the response: no timer races its check
                while not Worker.may_finish.is_set():
                    await asyncio.sleep(0.002)
                Worker.finished.append(request.url)

            async def fails() -> None:
                raise JsError("waitUntil failure")

            ctx.wait_until(work())
            ctx.wait_until(fails())
            return Response("responded")
        if path == "notresponse":
            return "a string"
        return Response("?", status=404)

    finished: ClassVar[list[str]] = []
    may_finish: ClassVar[threading.Event] = threading.Event()


def test_exception_before_headers_is_tunnelled_and_logged() -> None:
    with runtime(threads=1) as rt:
        service(rt, "w", Worker)
        with pytest.raises(JsError, match="boom"):
            rt.fetch("w", Request("GET", "http://x/throw"))
        ops = [e["op"].removeprefix("note.") for e in rt.trace.events]
        assert "tunnel_exception" in ops and "response_sent" not in ops
        rt.settle()
        assert rt.logged("Uncaught exception: JsError: boom")
        assert_monitor_ok(rt)


def test_pass_through_serves_the_fallbacks_response() -> None:
    with runtime(threads=1) as rt:
        fb = StaticService("fb", b"fallback")
        rt.add_service(fb)
        service(rt, "w", Worker, global_outbound="fb")
        resp = rt.fetch("w", Request("POST", "http://host/pass", [("x-a", "1")], b"payload"))
        assert (resp.status, resp.body) == (200, b"fallback")
        assert fb.received == [("POST", "http://host/pass", [("x-a", "1")], b"payload")]
        assert rt.fetch("w", Request("GET", "http://host/pass-ok")).body == b"normal"
        assert len(fb.received) == 1
        rt.settle()
        assert_monitor_ok(rt)


def test_a_failing_fallback_gives_a_synthetic_empty_500() -> None:
    with runtime(threads=1) as rt:
        rt.add_service(FailingService("down"))
        service(rt, "w", Worker, global_outbound="down")
        resp = rt.fetch("w", Request("GET", "http://x/pass"))
        assert (resp.status, resp.body, resp.headers) == (500, b"", [("content-length", "0")])
        rt.settle()
        assert rt.logged("failOpenFallback")


def test_exception_after_headers_truncates_and_never_fails_open() -> None:
    with runtime(threads=1) as rt:
        fb = StaticService("fb")
        rt.add_service(fb)
        service(rt, "w", Worker, global_outbound="fb")
        sink = CollectingResponse()
        with pytest.raises(JsError, match="stream broke"):
            rt.threads[0].run(rt.services["w"].request(Request("GET", "http://x/stream"), sink))
        assert sink.status == 200 and sink.body == b"first" and not sink.ended
        assert fb.received == []
        rt.settle()


def test_a_non_response_result_is_an_error() -> None:
    with runtime(threads=1) as rt:
        service(rt, "w", Worker)
        with pytest.raises(JsError, match="did not resolve to 'Response'"):
            rt.fetch("w", Request("GET", "http://x/notresponse"))


def test_wait_until_runs_after_the_response_and_failures_are_logged_not_returned() -> None:
    Worker.finished.clear()
    Worker.may_finish.clear()
    with runtime(threads=1) as rt:
        service(rt, "w", Worker)
        resp = rt.fetch("w", Request("GET", "http://x/wait"))
        assert resp.body == b"responded"
        assert Worker.finished == []  # the response came first
        Worker.may_finish.set()
        rt.settle()
        assert Worker.finished == ["http://x/wait"]
        assert rt.logged("waitUntil failure")
        assert_monitor_ok(rt)


def test_an_entrypoint_serves_one_event() -> None:
    with runtime(threads=1) as rt:
        svc = service(rt, "w", Worker)

        async def twice() -> None:
            ep = WorkerEntrypoint(svc)
            await ep.request(Request("GET", "http://x/ok"), CollectingResponse())
            with pytest.raises(WorkerdError, match=r"^request\(\) can only be called once$"):
                await ep.request(Request("GET", "http://x/ok"), CollectingResponse())

        rt.threads[0].run(twice())
        rt.settle()


def test_stateless_requests_get_a_new_context_each() -> None:
    with runtime(threads=2) as rt:
        service(rt, "w", Worker)
        rt.fetch("w", Request("GET", "http://x/ok"))
        rt.fetch("w", Request("GET", "http://x/ok"), thread=1)
        rt.settle()
        assert [(c.thread.name, c.state) for c in rt.contexts] == [("thread-0", "DEAD"), ("thread-1", "DEAD")]


# ---- actors ------------------------------------------------------------------------------------------


class Counter:
    """A Durable Object: a counter, and a stream saved across requests."""

    def __init__(self) -> None:
        self.count = 0
        self.stream = None

    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        self.count += 1
        if self.stream is None:
            self.stream = ctx.create_stream()
        self.stream.write(b"%d," % self.count)
        if request.url.endswith("read"):
            return Response(self.stream.read())
        return Response(str(self.count))


class Front:
    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        name = request.url.rsplit("/", 2)[-2]
        return await env.COUNTER.get(name).fetch(request)


def test_an_actor_shares_one_context_across_requests() -> None:
    with runtime(threads=2) as rt:
        service(rt, "front", Front, durable_objects={"COUNTER": Counter})
        assert rt.fetch("front", Request("GET", "http://x/a/inc")).body == b"1"
        assert rt.fetch("front", Request("GET", "http://x/a/inc"), thread=1).body == b"2"
        assert rt.fetch("front", Request("GET", "http://x/a/read")).body == b"1,2,3,"
        assert rt.fetch("front", Request("GET", "http://x/b/inc")).body == b"1"
        rt.settle()
        actor_contexts = [c for c in rt.contexts if c.actor is not None]
        assert len(actor_contexts) == 2  # one per actor, whatever thread the request came from
        assert_monitor_ok(rt)


def test_actor_new_context_fault_breaks_sharing() -> None:
    with runtime(threads=1, faults={"actor_new_context_per_request"}) as rt:
        service(rt, "front", Front, durable_objects={"COUNTER": Counter})
        rt.fetch("front", Request("GET", "http://x/a/inc"))
        with pytest.raises(WorkerdError, match="different Durable Object"):
            rt.fetch("front", Request("GET", "http://x/a/inc"))


# ---- scheduled events and limits -----------------------------------------------------------------------


class Cron:
    async def scheduled(self, controller, env, ctx):  # type: ignore[no-untyped-def]
        cron = controller.cron

        async def sleep_then(result: str, delay: float) -> None:
            await asyncio.sleep(delay)
            Cron.done.append(result)
            if result.startswith("fail"):
                raise JsError(result)

        if cron == "ok":
            # long enough that the fault's early return is seen before the task ends, even on a loaded machine
            ctx.wait_until(sleep_then("a", 0.5))
        elif cron == "fail":
            ctx.wait_until(sleep_then("fail-first", 0.01))
            ctx.wait_until(sleep_then("fail-second", 0.03))
        elif cron == "noretry":
            controller.no_retry()
        elif cron == "throw":
            raise JsError("handler threw")
        elif cron == "slow":
            ctx.wait_until(sleep_then("slow", 1.0))  # 20x the production test's limit: no stall reaches it

    done: ClassVar[list[str]] = []


class NoScheduled:
    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        return Response("x")


def test_finish_scheduled_waits_for_every_wait_until_task() -> None:
    Cron.done.clear()
    with runtime(threads=1) as rt:
        service(rt, "c", Cron)
        res = rt.scheduled("c", "ok")
        assert res.as_dict() == {"outcome": "ok", "no_retry": False}
        assert Cron.done == ["a"]
        assert rt.scheduled("c", "noretry").as_dict() == {"outcome": "ok", "no_retry": True}
        assert rt.scheduled("c", "throw").outcome == "exception"
        assert rt.scheduled("c", "fail").outcome == "exception"
        assert Cron.done[-2:] == ["fail-first", "fail-second"]
        assert_monitor_ok(rt)


def test_a_worker_without_scheduled_gives_exception_and_no_retry() -> None:
    with runtime(threads=1) as rt:
        service(rt, "n", NoScheduled)
        assert rt.scheduled("n").as_dict() == {"outcome": "exception", "no_retry": True}


def test_finish_scheduled_fault_returns_before_wait_until_tasks() -> None:
    Cron.done.clear()
    with runtime(threads=1, faults={"finish_scheduled_ignores_wait_until"}) as rt:
        service(rt, "c", Cron)
        rt.scheduled("c", "ok")
        assert Cron.done == []


def test_workerd_serve_has_no_drain_or_scheduled_limit() -> None:
    Cron.done.clear()
    with runtime(threads=1, limits="workerd-serve") as rt:
        service(rt, "c", Cron)
        assert rt.scheduled("c", "slow").outcome == "ok"
        assert Cron.done == ["slow"]


def test_production_scheduled_limit_gives_exceeded_wall_time() -> None:
    Cron.done.clear()
    with runtime(threads=1, limits="production", scheduled_seconds=0.05) as rt:
        service(rt, "c", Cron)
        assert rt.scheduled("c", "slow").outcome == "exceededWallTime"
        assert Cron.done == []


class Lingers:
    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        async def linger() -> None:
            await asyncio.sleep(1.0)  # 20x the production test's drain limit
            Lingers.done.append(1)

        ctx.wait_until(linger())
        return Response("ok")

    done: ClassVar[list[int]] = []


def test_production_drain_limit_cancels_wait_until_with_workerds_warning() -> None:
    Lingers.done.clear()
    with runtime(threads=1, limits="production", drain_seconds=0.05) as rt:
        service(rt, "l", Lingers)
        assert rt.fetch("l", Request()).body == b"ok"
        rt.settle()
        assert Lingers.done == []
        assert rt.logged(MESSAGES["DRAIN_TIMEOUT"])


def test_workerd_serve_lets_wait_until_finish() -> None:
    Lingers.done.clear()
    with runtime(threads=1, limits="workerd-serve", drain_seconds=0.05) as rt:
        service(rt, "l", Lingers)
        rt.fetch("l", Request())
        rt.settle()
        assert Lingers.done == [1]
        assert not rt.logged(MESSAGES["DRAIN_TIMEOUT"])


def test_an_evicted_actor_comes_back_as_a_new_actor_with_a_new_context() -> None:
    with runtime(threads=2) as rt:
        svc = service(rt, "front", Front, durable_objects={"COUNTER": Counter})
        assert rt.fetch("front", Request("GET", "http://x/a/inc")).body == b"1"
        rt.settle()
        old = svc.actors["COUNTER:a"]
        first_ctx = old.io_context
        assert svc.evict_actor("COUNTER", "a")
        assert first_ctx is not None and first_ctx.statistics().state == "DEAD"
        assert rt.fetch("front", Request("GET", "http://x/a/inc")).body == b"1"  # constructed again
        assert svc.actors["COUNTER:a"] is not old
        ops = [e["op"].removeprefix("note.") for e in rt.trace.events]
        assert ops.count("set_io_context") == 2 and "actor_shutdown" in ops and "drop_actor_context" in ops
        assert_monitor_ok(rt)


def test_shutdown_ends_an_actor_drain() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt, actor=True)
        run_in(rt, ctx, lambda: ctx.add_wait_until(asyncio.sleep(5)))
        drain_future = rt.threads[0].submit(r.drain())
        on(rt, 0, ctx.actor.shutdown)  # type: ignore[union-attr]
        drain_future.result(5)
        assert r.statistics().state == "SHUT_DOWN"
        assert_monitor_ok(rt)


def test_no_code_runs_in_an_actor_context_whose_last_request_was_dropped() -> None:
    """INV-R8: ``run()`` needs a current IncomingRequest (``getCurrentIncomingRequest``, io-context.h:1273-1277).

    The Actor keeps its context alive after its last request was dropped undrained; running code in it
    then throws workerd's "the IoContext has no current IncomingRequest" and enters nothing, and a JS
    waitUntil chain that resumes there fails (its failure is the waitUntil status), as in workerd.
    """
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt, actor=True)
        gate: asyncio.Future[None] = on(rt, 0, lambda: asyncio.get_running_loop().create_future())

        async def chain() -> None:
            await gate

        run_in(rt, ctx, lambda: ctx.add_wait_until(chain()))
        on(rt, 0, r.destroy)
        assert ctx.state == "ALIVE" and not ctx.incoming
        with pytest.raises(WorkerdError) as info:
            run_in(rt, ctx, lambda: None)
        assert str(info.value) == MESSAGES["NO_CURRENT_INCOMING_REQUEST"]
        on(rt, 0, lambda: gate.set_result(None))
        rt.threads[0].run(asyncio.sleep(0.05))
        stats = ctx.statistics()
        assert stats.wait_until_tasks == 0 and stats.wait_until_status == "exception" and not stats.entered
        events = list(rt.trace.events)  # type: ignore[union-attr]
        dropped = max(e["seq"] for e in events if e["op"] == "drop_request")
        assert not [e for e in events if e["op"] == "enter" and e["seq"] > dropped], "code ran without a request"
        assert_monitor_ok(rt)


async def an_hour() -> None:
    await asyncio.sleep(3600)  # a timer: the context waits, it is not hung (a bare future would be hang-aborted)


class Endless:
    """waitUntil tasks that outlast the test: a drain and a finishScheduled() still waiting when the runtime stops."""

    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        ctx.wait_until(an_hour())
        return Response("responded")

    async def scheduled(self, controller, env, ctx):  # type: ignore[no-untyped-def]
        ctx.wait_until(an_hour())


def test_shutting_down_with_waiting_drains_records_no_request_end() -> None:
    """Closing the runtime cancels what still waits; that is the process ending, not a drain or scheduled end.

    (Found with ``python -m reference_impl serve --monitor``: Ctrl-C during a waitUntil recorded
    ``drain_done`` with the task pending, which the models reject.  Whether a cancelled drain's
    cleanup runs before the loop stops depends on the order the loop cancels things in, so the
    drain and finishScheduled() ends check `Runtime.closing` instead of relying on that order.)
    """
    with runtime(threads=1) as rt:
        service(rt, "w", Endless)
        assert rt.fetch("w", Request("GET", "http://x/")).body == b"responded"
        scheduled = rt.threads[0].submit(rt.services["w"].scheduled("never"))  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not any(e["op"] == "finish_scheduled" for e in rt.trace.events):  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "finishScheduled() never started"
            time.sleep(0.01)
        rt.close()
        assert scheduled.cancelled() or isinstance(scheduled.exception(timeout=5), BaseException)
        ends = [e["op"] for e in rt.trace.events if e["op"].startswith(("drain_", "finish_scheduled_"))]  # type: ignore[union-attr]
        assert ends == []
        assert_monitor_ok(rt)
