"""Isolate locks: ``Worker::AsyncLock`` (a fair FIFO of turns across threads) and ``Worker::Lock``.

Follows io/async-lock-scheduler.h and io/worker.c++ at workerd commit 6552d999:

* `AsyncLockQueue` is ``AsyncLockQueue<Isolate>`` (async-lock-scheduler.h:76-162): a
  mutex-guarded FIFO of waiters, one per (thread, isolate) attempt.  The front waiter holds
  the turn; releasing it grants the next waiter, possibly on another thread (202-230).
* ``threadCurrentWaiter`` (242-273): a thread has at most ONE outstanding waiter across all
  isolates.  A second request for the *same* isolate on that thread coalesces (it shares the
  turn, refcounted); a request for *another* isolate waits until the thread's waiter is
  released, then retries (deliberate head-of-line blocking).
* A cancelled attempt leaves no trace: its waiter is unlinked (and, if it had just been
  granted, the turn passes on).
* `WorkerLock` is ``Worker::Lock`` (worker.c++:563-626): synchronous, never re-entrant, and,
  when built from an AsyncLock, only for the same isolate ("async lock was taken against a
  different isolate than the synchronous lock", 577-578).  The isolate "moves" to the thread
  that holds its lock: `Isolate.thread` follows the turn.

Trace events (the locks model's actions): ``lock_request``, ``lock_coalesce``, ``lock_grant``,
``lock_release``, ``lock_cancel`` (AsyncLock turns) and ``sync_lock`` / ``sync_unlock``
(Worker::Lock), each with ``t`` (thread) and ``i`` (isolate).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reference_impl.errors import WorkerdError
from reference_impl.loop import RuntimeThread

if TYPE_CHECKING:
    from reference_impl.runtime import Runtime

__all__ = ["AsyncLockQueue", "AsyncLock", "WorkerLock", "AsyncLockStatistics", "Waiter"]


class Waiter:
    """One thread's attempt at one isolate's lock; shared (refcounted) by same-thread requests."""

    def __init__(self, queue: AsyncLockQueue, thread: RuntimeThread) -> None:
        self.queue = queue
        self.thread = thread
        self.refs = 0
        self.granted = False
        self.ready: asyncio.Future[None] = thread.loop.create_future()
        self.released: asyncio.Future[None] = thread.loop.create_future()

    def __repr__(self) -> str:
        return f"<Waiter {self.thread.name} for {self.queue.name} refs={self.refs} granted={self.granted}>"


@dataclass(frozen=True)
class AsyncLockStatistics:
    """A read-only view of one isolate's lock queue."""

    isolate: str
    holder: str | None  # thread holding the turn
    waiting: tuple[str, ...]  # threads queued behind it, in grant order
    holder_refs: int  # coalesced requests sharing the turn
    sync_holder: str | None  # thread inside Worker::Lock
    grants: int  # turns granted so far


class AsyncLockQueue:
    """The fair, cross-thread queue of turns for one isolate."""

    def __init__(self, name: str, runtime: Runtime) -> None:
        self.name = name
        self._rt = runtime
        self._mutex = threading.Lock()
        self._waiters: list[Waiter] = []
        self._grants = 0
        self.sync_holder: str | None = None

    # -- acquiring -----------------------------------------------------------------------------
    async def lock(self) -> AsyncLock:
        """Wait for this thread's turn (``takeAsyncLock``); coalesce with this thread's own turn."""
        rt = RuntimeThread.current()
        if rt is None:
            raise RuntimeError("Worker::AsyncLock can only be taken on a runtime thread")
        rec = self._rt.recorder
        while True:
            w: Waiter | None = getattr(rt, "async_waiter", None)
            if w is None:
                w = Waiter(self, rt)
                with self._mutex, rec.atomic():
                    self._waiters.append(w)
                    rec.emit("lock_request", {"t": rt.name, "i": self.name})
                    if len(self._waiters) == 1:
                        self._grant(w)
                rt.async_waiter = w  # type: ignore[attr-defined]
                w.refs += 1
                await self._wait_ready(w)
                return AsyncLock(w)
            if w.queue is self:
                w.refs += 1
                with rec.atomic():
                    rec.emit("lock_coalesce", {"t": rt.name, "i": self.name})
                await self._wait_ready(w)
                return AsyncLock(w)
            # This thread chases another isolate: wait for that turn to end, then retry.
            await asyncio.shield(w.released)

    async def _wait_ready(self, w: Waiter) -> None:
        if w.granted:
            return
        try:
            await asyncio.shield(w.ready)
        except asyncio.CancelledError:
            self._unref(w, cancelled=True)
            raise

    def _grant(self, w: Waiter) -> None:
        """Under the mutex and the recorder lock: ``w`` now holds the turn; wake it on its own loop."""
        w.granted = True
        self._grants += 1
        self._rt.isolates_by_name[self.name].thread = w.thread.name
        self._rt.recorder.emit("lock_grant", {"t": w.thread.name, "i": self.name})
        if w.thread.is_current():
            if not w.ready.done():
                w.ready.set_result(None)
        else:
            w.thread.loop.call_soon_threadsafe(_set_if_pending, w.ready)

    def _choose_next(self) -> Waiter | None:
        if not self._waiters:
            return None
        if self._rt.fault("async_lock_lifo"):
            return self._waiters[-1]
        return self._waiters[0]

    # -- releasing -----------------------------------------------------------------------------
    def _unref(self, w: Waiter, *, cancelled: bool = False) -> None:
        if not w.thread.is_current():
            raise RuntimeError("an AsyncLock must be released on the thread that took it")
        w.refs -= 1
        if w.refs > 0:
            return
        rec = self._rt.recorder
        with self._mutex, rec.atomic():
            held = w.granted
            if w in self._waiters:
                self._waiters.remove(w)
            rec.emit("lock_release" if held else "lock_cancel", {"t": w.thread.name, "i": self.name})
            if held:
                nxt = self._choose_next()
                if nxt is not None:
                    # LIFO fault: the chosen waiter moves to the front, so "front holds the turn" stays true.
                    self._waiters.remove(nxt)
                    self._waiters.insert(0, nxt)
                    self._grant(nxt)
        w.thread.async_waiter = None  # type: ignore[attr-defined]
        if not w.released.done():
            w.released.set_result(None)

    def statistics(self) -> AsyncLockStatistics:
        with self._mutex:
            holder = self._waiters[0] if self._waiters and self._waiters[0].granted else None
            return AsyncLockStatistics(
                isolate=self.name,
                holder=holder.thread.name if holder else None,
                waiting=tuple(w.thread.name for w in self._waiters if not w.granted),
                holder_refs=holder.refs if holder else 0,
                sync_holder=self.sync_holder,
                grants=self._grants,
            )


def _set_if_pending(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class AsyncLock:
    """A held turn (``Worker::AsyncLock``); release it exactly once, on the same thread."""

    def __init__(self, waiter: Waiter) -> None:
        self._waiter: Waiter | None = waiter

    @property
    def queue(self) -> AsyncLockQueue:
        assert self._waiter is not None, "AsyncLock used after release"
        return self._waiter.queue

    def release(self) -> None:
        if self._waiter is None:
            raise RuntimeError("can't release an AsyncLock twice")
        w, self._waiter = self._waiter, None
        w.queue._unref(w)

    async def __aenter__(self) -> AsyncLock:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class WorkerLock:
    """``Worker::Lock``: the synchronous isolate lock, taken under a turn (or synchronously).

    Use as a context manager.  Raises `RuntimeError` if the calling thread already holds it
    (never re-entrant) and `WorkerdError` (ERR_LOCK_OTHER_ISOLATE) for another isolate's turn.
    """

    def __init__(self, queue: AsyncLockQueue, lock: AsyncLock | None) -> None:
        if lock is not None and lock.queue is not queue:
            raise WorkerdError("ERR_LOCK_OTHER_ISOLATE")
        self._queue = queue
        self._sync = queue._rt.isolates_by_name[queue.name].sync_lock

    def __enter__(self) -> WorkerLock:
        me = threading.current_thread().name
        if self._queue.sync_holder == me:
            raise RuntimeError("Worker::Lock taken recursively")
        self._sync.acquire()
        rec = self._queue._rt.recorder
        with rec.atomic():
            self._queue.sync_holder = me
            self._queue._rt.isolates_by_name[self._queue.name].thread = me
            rec.emit("sync_lock", {"t": me, "i": self._queue.name})
        return self

    def __exit__(self, *exc: object) -> None:
        rec = self._queue._rt.recorder
        with rec.atomic():
            self._queue.sync_holder = None
            rec.emit("sync_unlock", {"t": threading.current_thread().name, "i": self._queue.name})
        self._sync.release()
