"""`reference_impl.loop.ThreadPool`: runtimes that borrow started threads and give them back clean.

The stateful machine (tests/stateful_reference.py) builds two runtimes per program on pooled threads; its teardown
requires that `Runtime.close` found nothing left on them.  These tests show a clean runtime's threads are lent again,
and that each kind of leftover is reported (the check can fail) and keeps the thread from being lent again.
"""

from __future__ import annotations

import asyncio
import threading

from reference_impl import Runtime
from reference_impl.loop import RuntimeThread, ThreadPool


def _assert_not_lent_again(pool: ThreadPool, thread: RuntimeThread) -> None:
    again = Runtime(threads=1, pool=pool)
    assert again.threads[0] is not thread
    again.close()


def test_a_clean_runtime_gives_its_threads_back_for_the_next_one() -> None:
    pool = ThreadPool()
    try:
        first = Runtime(threads=2, pool=pool)
        threads, gc = list(first.threads), first.gc
        first.close()
        assert first.left_on_threads == []
        second = Runtime(threads=2, pool=pool)
        assert second.threads == threads and second.gc is gc  # the same started threads, by name
        assert [t.name for t in second.threads] == ["thread-0", "thread-1"]
        assert second.threads[0].recorder is second.recorder and gc.recorder is second.recorder
        second.close()
        assert second.left_on_threads == []
    finally:
        assert pool.close() == []
    assert not any(t._thread.is_alive() for t in threads) and not gc.alive()


def test_a_queued_async_lock_waiter_is_reported_and_the_thread_not_lent_again() -> None:
    pool = ThreadPool()
    try:
        rt = Runtime(threads=1, pool=pool)
        thread = rt.threads[0]
        thread.async_waiter = object()  # as reference_impl.locks leaves it while a turn is awaited
        rt.close()
        assert rt.left_on_threads == ["thread-0: an AsyncLock waiter is still queued"]
        assert not thread._thread.is_alive()
        _assert_not_lent_again(pool, thread)
    finally:
        pool.close()


def test_a_task_that_will_not_end_is_reported() -> None:
    pool = ThreadPool()
    release = threading.Event()
    try:
        rt = Runtime(threads=1, pool=pool)

        async def stubborn() -> None:
            while not release.is_set():
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    continue  # refuses to be cancelled

        rt.threads[0].call(lambda: asyncio.ensure_future(stubborn())).result(5)
        thread = rt.threads[0]
        problems = pool.give_back(rt.threads, timeout=0.5)
        assert problems and all(p.startswith("thread-0: ") for p in problems), problems
        release.set()  # the thread was told to stop: it ends once the task lets it
        thread._thread.join(5)
        assert not thread._thread.is_alive()
        _assert_not_lent_again(pool, thread)
    finally:
        release.set()
        pool.close()


def test_a_finaliser_still_running_on_the_gc_thread_is_reported() -> None:
    pool = ThreadPool()
    go = threading.Event()
    try:
        rt = Runtime(threads=1, pool=pool)
        gc = rt.gc
        rt.gc.submit(lambda: go.wait(2))  # queued or running until it returns, 2 s from now
        rt.close()  # finds it unfinished, stops the GC thread (after the job)
        assert rt.left_on_threads == ["gc: a finaliser is still queued or running"]
        assert not gc.alive()
    finally:
        go.set()
        pool.close()
