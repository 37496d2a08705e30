"""Worker::AsyncLock and Worker::Lock in the reference implementation, across real threads."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from reference_impl import IsolateConfig, WorkerdError
from reference_impl.locks import AsyncLockQueue, WorkerLock
from reference_impl.runtime import Runtime
from tests.reference_helpers import runtime


def _wait_until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.001)


class Holder:
    """Holds one AsyncLock turn on a runtime thread until released (a test's handle on a turn)."""

    def __init__(self, rt: Runtime, thread: int, queue: AsyncLockQueue, log: list[str] | None = None) -> None:
        self.granted = threading.Event()
        self._release = threading.Event()
        self.rt = rt
        self.thread = rt.threads[thread]
        self.log = log
        self.future = self.thread.submit(self._run(queue))

    async def _run(self, queue: AsyncLockQueue) -> None:
        lock = await queue.lock()
        if self.log is not None:
            self.log.append(self.thread.name)
        self.granted.set()
        while not self._release.is_set():
            await asyncio.sleep(0.001)
        lock.release()

    def release(self) -> None:
        self._release.set()
        self.future.result(5)


def test_turns_are_granted_across_threads_in_fifo_order() -> None:
    with runtime(threads=4) as rt:
        q = rt.isolate_for(IsolateConfig()).lock_queue
        order: list[str] = []
        first = Holder(rt, 0, q, order)
        assert first.granted.wait(5)
        waiters = []
        for i in (1, 2, 3):
            waiters.append(Holder(rt, i, q, order))
            _wait_until(lambda n=i: len(q.statistics().waiting) == n)
        assert q.statistics().waiting == ("thread-1", "thread-2", "thread-3")
        assert q.statistics().holder == "thread-0"
        first.release()
        for w in waiters:
            assert w.granted.wait(5)
            w.release()
        assert order == ["thread-0", "thread-1", "thread-2", "thread-3"]
        assert q.statistics().holder is None and q.statistics().grants == 4


def test_lifo_fault_breaks_fifo_order() -> None:
    with runtime(threads=4, faults={"async_lock_lifo"}) as rt:
        q = rt.isolate_for(IsolateConfig()).lock_queue
        order: list[str] = []
        first = Holder(rt, 0, q, order)
        assert first.granted.wait(5)
        waiters = []
        for i in (1, 2, 3):
            waiters.append(Holder(rt, i, q, order))
            _wait_until(lambda n=i: len(q.statistics().waiting) == n)
        first.release()
        for w in reversed(waiters):
            assert w.granted.wait(5)
            w.release()
        assert order == ["thread-0", "thread-3", "thread-2", "thread-1"]


def test_same_thread_requests_coalesce_into_one_turn() -> None:
    with runtime(threads=2) as rt:
        q = rt.isolate_for(IsolateConfig()).lock_queue
        other = Holder(rt, 1, q)
        assert other.granted.wait(5)

        async def two_requests() -> int:
            pending = [asyncio.ensure_future(q.lock()), asyncio.ensure_future(q.lock())]
            await asyncio.sleep(0.01)
            refs = len(q.statistics().waiting)
            assert not any(p.done() for p in pending)
            rt.threads[1].call(lambda: None)
            return refs

        fut = rt.threads[0].submit(two_requests())
        assert fut.result(5) == 1  # one waiter for both requests
        joined = [e["outputs"]["joined"] for e in rt.trace.events
                  if e["op"].endswith("request_lock") and e["args"]["t"] == "thread-0"]
        assert joined == ["QUEUED", "COALESCED"]
        other.release()


def test_a_thread_chasing_one_isolate_waits_before_queueing_for_another() -> None:
    with runtime(threads=2) as rt:
        qa = rt.isolate_for(IsolateConfig()).lock_queue
        qb = rt.isolate_for(IsolateConfig(compatibility_date="2020-01-01")).lock_queue
        held_a = Holder(rt, 0, qa)
        assert held_a.granted.wait(5)
        got_b = Holder(rt, 0, qb)  # same thread, other isolate: head-of-line blocking
        time.sleep(0.02)
        assert not got_b.granted.is_set()
        assert qb.statistics().waiting == () and qb.statistics().holder is None
        held_a.release()
        assert got_b.granted.wait(5)
        got_b.release()
        ops = [(e["op"].removeprefix("note."), e.get("outputs", {}).get("joined")) for e in rt.trace.events
               if e["args"].get("i") == qb.name and "lock" in e["op"]]
        assert ops[:2] == [("request_lock", "BLOCKED"), ("retry_lock", "QUEUED")]


def test_a_cancelled_attempt_leaves_no_trace() -> None:
    with runtime(threads=2) as rt:
        q = rt.isolate_for(IsolateConfig()).lock_queue
        held = Holder(rt, 0, q)
        assert held.granted.wait(5)

        async def attempt_then_cancel() -> None:
            t = asyncio.ensure_future(q.lock())
            while not q.statistics().waiting:
                await asyncio.sleep(0.001)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t

        rt.threads[1].run(attempt_then_cancel())
        assert q.statistics().waiting == ()
        held.release()
        assert q.statistics().holder is None


def test_worker_lock_is_not_reentrant_and_must_match_the_async_lock() -> None:
    with runtime(threads=1) as rt:
        qa = rt.isolate_for(IsolateConfig()).lock_queue
        qb = rt.isolate_for(IsolateConfig(compatibility_date="2020-01-01")).lock_queue

        async def check() -> None:
            lock = await qa.lock()
            try:
                with WorkerLock(qa, lock):
                    assert qa.statistics().sync_holder == "thread-0"
                    with pytest.raises(RuntimeError, match="recursively"):
                        with WorkerLock(qa, lock):
                            pass
                with pytest.raises(WorkerdError) as e:
                    with WorkerLock(qb, lock):
                        pass
                assert str(e.value) == "async lock was taken against a different isolate than the synchronous lock"
            finally:
                lock.release()

        rt.threads[0].run(check())


def test_the_isolate_moves_between_threads_with_its_lock() -> None:
    with runtime(threads=2) as rt:
        iso = rt.isolate_for(IsolateConfig())
        h0 = Holder(rt, 0, iso.lock_queue)
        assert h0.granted.wait(5)
        assert iso.statistics().thread == "thread-0"
        h1 = Holder(rt, 1, iso.lock_queue)
        h0.release()
        assert h1.granted.wait(5)
        assert iso.statistics().thread == "thread-1"
        h1.release()


def test_mutual_exclusion_under_contention() -> None:
    with runtime(threads=4) as rt:
        q = rt.isolate_for(IsolateConfig()).lock_queue
        inside = [0]
        worst = [0]

        async def hammer() -> None:
            for _ in range(30):
                lock = await q.lock()
                inside[0] += 1
                worst[0] = max(worst[0], inside[0])
                await asyncio.sleep(0)
                inside[0] -= 1
                lock.release()

        futs = [t.submit(hammer()) for t in rt.threads]
        for f in futs:
            f.result(20)
        assert worst[0] == 1
        assert q.statistics().grants == 120
