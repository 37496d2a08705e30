"""IoContext in the reference implementation: pinning, current(), nesting, abort, hang detection, teardown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from reference_impl import IoContext, JsError, Request, Response, WorkerdError
from reference_impl.errors import message_for
from tests.reference_helpers import assert_monitor_ok, drain, new_context, on, run_in, runtime, service


def test_context_is_pinned_to_its_thread() -> None:
    with runtime(threads=2, direct=True) as rt:
        ctx, r = new_context(rt, thread=0)
        assert ctx.statistics().thread == "thread-0"
        with pytest.raises(WorkerdError) as e:
            on(rt, 1, lambda: ctx.run_sync(lambda: None))
        assert e.value.result == "ERR_WRONG_THREAD"
        assert str(e.value) == "IoContext cannot switch threads"
        with pytest.raises(WorkerdError, match="IoContext cannot switch threads"):
            ctx.run_sync(lambda: None)  # the test's own (main) thread
        enters = [ev for ev in rt.trace.events if ev["op"] == "enter"]
        assert [ev["result"] for ev in enters] == ["ERR_WRONG_THREAD", "ERR_WRONG_THREAD"]
        drain(rt, r)
        assert_monitor_ok(rt)


def test_current_is_set_only_while_running_and_nesting_restores() -> None:
    with runtime(threads=1, direct=True) as rt:
        a, ra = new_context(rt)
        b, rb = new_context(rt, svc=service(rt, "other", config=None))
        seen: list[object] = []

        def inner() -> None:
            seen.append(IoContext.current())

        def outer() -> None:
            seen.append(IoContext.current())
            b.run_sync(inner)  # a different context nests (a different worker's isolate is needed)
            seen.append(IoContext.current())

        assert on(rt, 0, IoContext.try_current) is None
        with pytest.raises(RuntimeError, match="recursively"):
            # the same isolate's Worker::Lock is not re-entrant
            run_in(rt, a, outer)
        with pytest.raises(WorkerdError, match="there is no current request on this thread"):
            on(rt, 0, IoContext.current)
        drain(rt, ra)
        drain(rt, rb)
        assert_monitor_ok(rt)


def test_different_isolates_nest_and_restore_current() -> None:
    from reference_impl import IsolateConfig

    with runtime(threads=1, direct=True) as rt:
        a, ra = new_context(rt)
        b, rb = new_context(rt, svc=service(rt, "other", config=IsolateConfig(compatibility_date="2020-01-01")))
        assert a.worker.isolate is not b.worker.isolate
        seen: list[object] = []

        def outer() -> None:
            seen.append(IoContext.current())
            b.run_sync(lambda: seen.append(IoContext.current()))
            seen.append(IoContext.current())

        run_in(rt, a, outer)
        assert seen == [a, b, a]
        assert on(rt, 0, IoContext.try_current) is None
        # re-entering the context that is already entered is refused
        with pytest.raises(WorkerdError, match="re-entrantly"):
            run_in(rt, a, lambda: a.run_sync(lambda: None))
        drain(rt, ra)
        drain(rt, rb)
        assert_monitor_ok(rt)


def test_isolates_are_shared_by_identical_configuration() -> None:
    from reference_impl import IsolateConfig

    with runtime(threads=1, direct=True) as rt:
        s1 = service(rt, "one")
        s2 = service(rt, "two")
        s3 = service(rt, "three", config=IsolateConfig(compatibility_flags=("nodejs_compat",)))
        assert s1.worker.isolate is s2.worker.isolate
        assert s3.worker.isolate is not s1.worker.isolate
        assert s1.worker.isolate.statistics().scripts == 2


def test_abort_is_idempotent_first_reason_wins_and_refuses_runs() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        first, second = JsError("first"), JsError("second")
        on(rt, 0, lambda: ctx.abort(first))
        on(rt, 0, lambda: ctx.abort(second))
        st = ctx.statistics()
        assert st.aborted and st.abort_reason == "REASON_A"
        assert ctx.abort_exception is first
        ran: list[int] = []
        with pytest.raises(JsError, match="first"):
            run_in(rt, ctx, lambda: ran.append(1))
        assert ran == []
        assert [e["args"]["reason"] for e in rt.trace.events if e["op"] == "abort"] == ["REASON_A", "REASON_B"]
        drain(rt, r)
        assert_monitor_ok(rt)


def test_no_code_runs_after_ctx_abort() -> None:
    after: list[str] = []

    class Aborter:
        async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0)
            ctx.abort(JsError("test abort reason"))
            after.append("ran")  # never reached
            return Response("no")

    with runtime(threads=1, direct=True) as rt:
        service(rt, "a", Aborter)
        with pytest.raises(JsError, match="test abort reason"):
            rt.fetch("a", Request())
        assert after == []
        rt.settle()
        assert_monitor_ok(rt)


def test_queued_run_does_not_start_after_abort() -> None:
    """io-context-abort-test.c++:15: two queued runs, the first aborts, the second never runs."""
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        ran: list[str] = []

        async def two_runs() -> list[object]:
            a = asyncio.ensure_future(ctx.run(lambda: (ran.append("A"), ctx.abort(JsError("test abort reason")))))
            b = asyncio.ensure_future(ctx.run(lambda: ran.append("B")))
            return await asyncio.gather(a, b, return_exceptions=True)

        results = rt.threads[0].run(two_runs())
        assert ran == ["A"]
        assert isinstance(results[1], JsError) and str(results[1]) == "test abort reason"
        drain(rt, r)
        assert_monitor_ok(rt)


def test_hang_detection_aborts_a_stateless_request() -> None:
    class Hangs:
        async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
            await asyncio.get_running_loop().create_future()

    with runtime(threads=1, direct=True) as rt:
        service(rt, "h", Hangs)
        with pytest.raises(JsError) as e:
            rt.fetch("h", Request())
        assert str(e.value) == message_for("HANG")
        rt.settle()
        assert_monitor_ok(rt)


def test_timers_are_pending_events_so_sleeping_is_not_a_hang() -> None:
    class Sleeps:
        async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.05)
            return Response("slept")

    with runtime(threads=1, direct=True) as rt:
        service(rt, "s", Sleeps)
        assert rt.fetch("s", Request()).body == b"slept"
        rt.settle()
        assert_monitor_ok(rt)


def test_actors_never_hang_abort() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, _r = new_context(rt, actor=True)
        started = threading.Event()

        async def wait_forever() -> None:
            started.set()
            await asyncio.get_running_loop().create_future()

        on(rt, 0, lambda: ctx.run_sync(lambda: ctx.add_wait_until(wait_forever())))
        assert started.wait(5)
        # Give the loop many idle turns: nothing may abort the actor's context.
        on(rt, 0, lambda: None)
        rt.threads[0].run(asyncio.sleep(0.05))
        assert ctx.statistics().aborted is False
        assert ctx.pending_events() == 0


def test_destruction_cancels_tasks_wait_until_timers_and_objects() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        finished: list[str] = []
        fired: list[int] = []

        async def plain() -> None:
            await asyncio.sleep(5)
            finished.append("plain")

        def setup() -> None:
            ctx.spawn(plain())
            asyncio.get_running_loop().call_later(5, lambda: fired.append(1))
            ctx.add_object(object(), "Socket")

        run_in(rt, ctx, setup)
        st = ctx.statistics()
        assert st.tasks == 1 and st.timers >= 1 and st.owned_objects == 1
        drain(rt, r)  # stateless: the drain does not wait for plain tasks or timers (INV-T5)
        st = ctx.statistics()
        assert st.state == "DEAD" and st.tasks == 0 and st.timers == 0 and st.owned_objects == 0
        rt.threads[0].run(asyncio.sleep(0.01))
        assert finished == [] and fired == []
        ops = [e["op"] for e in rt.trace.events]
        assert ops.index("destroy_begin") < ops.index("teardown_free") < ops.index("destroy_end")
        assert_monitor_ok(rt)


def test_context_statistics_and_tasks_created_in_a_context_belong_to_it() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        seen: list[object] = []
        spawned: list[object] = []

        async def child() -> None:
            seen.append(IoContext.current())

        def spawn() -> None:
            spawned.append(asyncio.ensure_future(child()))  # an ordinary asyncio task: it runs in the context

        run_in(rt, ctx, spawn)
        rt.threads[0].run(asyncio.sleep(0.01))
        assert seen == [ctx]
        drain(rt, r)
        assert_monitor_ok(rt)
