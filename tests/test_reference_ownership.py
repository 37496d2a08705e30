"""IoOwn / IoPtr / ReverseIoOwn and the DeleteQueue in the reference implementation, on real threads."""

from __future__ import annotations

import threading

import pytest

from model.vocab import IO_TYPE_SUFFIX, MESSAGES
from reference_impl import WorkerdError
from reference_impl.errors import message_for
from tests.reference_helpers import assert_monitor_ok, drain, new_context, on, run_in, runtime


class Closable:
    def __init__(self) -> None:
        self.closed_on: list[str] = []

    def close(self) -> None:
        self.closed_on.append(threading.current_thread().name)


def test_access_from_another_request_has_workerds_exact_message() -> None:
    with runtime(threads=2, direct=True) as rt:
        a, ra = new_context(rt, 0)
        b, rb = new_context(rt, 1)
        own = run_in(rt, a, lambda: a.add_object(Closable(), "ReadableStreamSource>"))
        assert run_in(rt, a, own.get) is not None
        with pytest.raises(WorkerdError) as e:
            run_in(rt, b, own.get)
        assert e.value.result == "ERR_DIFFERENT_REQUEST"
        suffix = IO_TYPE_SUFFIX.format(io_type="ReadableStreamSource>")
        assert str(e.value) == MESSAGES["ERR_DIFFERENT_REQUEST"] + suffix
        with pytest.raises(WorkerdError, match="there is no current request on this thread"):
            on(rt, 0, own.get)
        drain(rt, ra)
        drain(rt, rb)
        assert_monitor_ok(rt)


def test_the_message_follows_the_accessing_contexts_kind() -> None:
    with runtime(threads=1, direct=True) as rt:
        stateless, r1 = new_context(rt)
        actor, _r2 = new_context(rt, actor=True)
        own = run_in(rt, stateless, lambda: stateless.add_object(object(), "Client"))
        with pytest.raises(WorkerdError) as e:
            run_in(rt, actor, own.get)
        assert e.value.result == "ERR_DIFFERENT_DO"
        assert str(e.value).startswith("Cannot perform I/O on behalf of a different Durable Object.")
        assert str(e.value).endswith(" (I/O type: Client)")
        actor_own = run_in(rt, actor, lambda: actor.add_object(object(), "Pipeline"))
        with pytest.raises(WorkerdError, match="different request"):
            run_in(rt, stateless, actor_own.get)
        drain(rt, r1)
        assert_monitor_ok(rt)


def test_add_object_requires_the_context_to_be_current() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        with pytest.raises(WorkerdError, match="request is not current in this isolate"):
            on(rt, 0, lambda: ctx.add_object(object(), "X"))
        drain(rt, r)
        assert_monitor_ok(rt)


def test_drop_in_owner_deletes_at_once() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        obj = Closable()
        run_in(rt, ctx, lambda: ctx.add_object(obj, "X").drop())
        assert obj.closed_on == ["thread-0"]
        assert ctx.statistics().owned_objects == 0
        drain(rt, r)
        assert obj.closed_on == ["thread-0"]  # exactly once
        assert_monitor_ok(rt)


def test_gc_drop_is_queued_and_processed_at_the_next_entry_on_the_owners_thread() -> None:
    with runtime(threads=2, direct=True) as rt:
        ctx, r = new_context(rt, 1)
        obj = Closable()
        own = run_in(rt, ctx, lambda: ctx.add_object(obj, "X"))
        rt.gc.collect(own.drop)  # the GC thread finalises the wrapper
        q = ctx.delete_queue.statistics()
        assert q.queued_deletions == (own.name,) and not q.signaled  # deletions do not wake the context
        assert obj.closed_on == []
        run_in(rt, ctx, lambda: None)  # next entry processes the queue, under the mutex, on thread-1
        assert obj.closed_on == ["thread-1"]
        assert ctx.delete_queue.statistics().queued_deletions == ()
        drain(rt, r)
        assert obj.closed_on == ["thread-1"]
        ops = [e["op"] for e in rt.trace.events if e["op"] in ("drop_elsewhere", "push_deletion")]
        assert ops == ["drop_elsewhere", "push_deletion"]
        assert_monitor_ok(rt)


def test_deletion_after_the_owner_died_is_ignored() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        obj = Closable()
        own = run_in(rt, ctx, lambda: ctx.add_object(obj, "X"))
        drain(rt, r)  # the context dies; teardown frees the object
        assert obj.closed_on == ["thread-0"]
        rt.gc.collect(own.drop)
        assert obj.closed_on == ["thread-0"]
        assert not ctx.delete_queue.statistics().open
        assert_monitor_ok(rt)


def test_access_after_the_owner_died_throws_from_any_context() -> None:
    with runtime(threads=1, direct=True) as rt:
        a, ra = new_context(rt)
        b, rb = new_context(rt)
        own = run_in(rt, a, lambda: a.add_object(object(), "X"))
        drain(rt, ra)
        with pytest.raises(WorkerdError, match="different request"):
            run_in(rt, b, own.get)
        drain(rt, rb)
        assert_monitor_ok(rt)


def test_release_moves_the_object_out() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        obj = Closable()
        got = run_in(rt, ctx, lambda: ctx.add_object(obj, "X").release())
        assert got is obj
        drain(rt, r)
        assert obj.closed_on == []  # it outlives the context
        assert_monitor_ok(rt)


def test_io_ptr_is_checked_but_owns_nothing() -> None:
    with runtime(threads=1, direct=True) as rt:
        a, ra = new_context(rt)
        b, rb = new_context(rt)
        obj = Closable()
        ptr = run_in(rt, a, lambda: a.add_object_ptr(obj, "X"))
        assert run_in(rt, a, ptr.get) is obj
        with pytest.raises(WorkerdError, match="different request"):
            run_in(rt, b, ptr.get)
        rt.gc.collect(ptr.drop)
        drain(rt, ra)
        drain(rt, rb)
        assert obj.closed_on == []
        assert_monitor_ok(rt)


def test_reverse_io_own_is_invalid_after_teardown() -> None:
    with runtime(threads=1, direct=True) as rt:
        ctx, r = new_context(rt)
        obj = Closable()
        rev = on(rt, 0, lambda: ctx.add_object_reverse(obj))
        assert on(rt, 0, rev.get) is obj
        drain(rt, r)
        assert obj.closed_on == ["thread-0"]
        with pytest.raises(WorkerdError) as e:
            on(rt, 0, rev.get)
        assert str(e.value) == message_for("ERR_CONTEXT_ENDED")
        on(rt, 0, rev.drop)  # destroying an invalid handle does nothing
        assert obj.closed_on == ["thread-0"]
        assert_monitor_ok(rt)


def test_scheduled_actions_run_in_the_owner_and_are_dropped_with_a_warning_after_death() -> None:
    with runtime(threads=2, direct=True) as rt:
        a, ra = new_context(rt, 0)
        b, rb = new_context(rt, 1)
        ran_in: list[object] = []
        done = threading.Event()

        def action() -> None:
            from reference_impl import IoContext

            ran_in.append(IoContext.current())
            done.set()

        # b (on thread-1) resolves something a owns: the reaction runs in a, on thread-0
        assert run_in(rt, b, lambda: a.delete_queue.schedule_action(action)) is True
        assert done.wait(5)
        assert ran_in == [a]
        drain(rt, ra)
        assert run_in(rt, b, lambda: a.delete_queue.schedule_action(action)) is False
        assert any(MESSAGES["WARN_CROSS_REQUEST_PROMISE"] in text for _, text in b.logs)
        warnings = [e["outputs"]["warning"] for e in rt.trace.events if e["op"] == "schedule_action"]
        assert warnings == ["NO_WARNING", "CROSS_REQUEST_PROMISE"]
        drain(rt, rb)
        assert_monitor_ok(rt)


def test_many_gc_drops_race_with_entries_and_every_object_dies_once_on_its_thread() -> None:
    """Real threads: the GC thread drops handles while the owner keeps entering."""
    with runtime(threads=2, direct=True) as rt:
        ctx, r = new_context(rt, 1)
        objs = [Closable() for _ in range(60)]
        owns = run_in(rt, ctx, lambda: [ctx.add_object(o, "X") for o in objs])
        stop = threading.Event()

        def keep_entering() -> None:
            while not stop.is_set():
                run_in(rt, ctx, lambda: None)

        enterer = threading.Thread(target=keep_entering)
        enterer.start()
        try:
            rt.gc.collect(*[o.drop for o in owns[:40]])
        finally:
            stop.set()
            enterer.join()
        run_in(rt, ctx, lambda: None)
        drain(rt, r)
        assert all(o.closed_on == ["thread-1"] for o in objs)
        assert_monitor_ok(rt)
