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

Trace events are the locks model's actions (``model/locks.py``), each with ``t`` (thread) and
``i`` (isolate): ``request_lock`` / ``retry_lock`` (output ``joined`` = QUEUED, COALESCED or
BLOCKED), ``grant`` (one request resumes with the turn), ``release_lock`` (one AsyncLock dropped;
the last reference hands the turn on), ``cancel_wait`` / ``cancel_blocked``, and
``take_sync_lock`` (result) / ``release_sync_lock`` for Worker::Lock.
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

__all__ = ["AsyncLock", "AsyncLockQueue", "AsyncLockStatistics", "Waiter", "WorkerLock"]


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
        """``lock()`` (``takeAsyncLock``): queue, coalesce with this thread's turn, or wait for its other isolate."""
        rt = RuntimeThread.current()
        if rt is None:
            raise RuntimeError("Worker::AsyncLock can only be taken on a runtime thread")
        rec = self._rt.recorder
        op = "request_lock"
        while True:
            w: Waiter | None = getattr(rt, "async_waiter", None)
            if w is None or w.queue is self:
                with self._mutex, rec.atomic():
                    joined = "QUEUED" if w is None else "COALESCED"
                    if w is None:
                        w = Waiter(self, rt)
                        self._waiters.append(w)
                        rt.async_waiter = w  # type: ignore[attr-defined]
                        if len(self._waiters) == 1:
                            self._make_front(w)
                    w.refs += 1
                    rec.emit(op, {"t": rt.name, "i": self.name}, outputs={"joined": joined}, model="locks")
                await self._wait_turn(w)
                return AsyncLock(w)
            # This thread holds or awaits another isolate's turn: wait for it to end, then retry.
            with rec.atomic():
                rec.emit(op, {"t": rt.name, "i": self.name}, outputs={"joined": "BLOCKED"}, model="locks")
            try:
                await asyncio.shield(w.released)
            except asyncio.CancelledError:
                with rec.atomic():
                    rec.emit("cancel_blocked", {"t": rt.name, "i": self.name}, model="locks")
                raise
            op = "retry_lock"

    async def _wait_turn(self, w: Waiter) -> None:
        """Wait until ``w`` is at the front, then resume this request with the turn: ``grant``."""
        if not w.granted:
            try:
                await asyncio.shield(w.ready)
            except asyncio.CancelledError:
                self._unref(w, op="cancel_wait")
                raise
        with self._mutex, self._rt.recorder.atomic():
            self._grants += 1
            self._rt.isolates_by_name[self.name].thread = w.thread.name
            self._rt.recorder.emit("grant", {"t": w.thread.name, "i": self.name}, model="locks")

    def _make_front(self, w: Waiter) -> None:
        """Under the mutex: ``w`` holds the turn now; wake it on its own loop (``readyFulfiller``)."""
        w.granted = True
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
    def _unref(self, w: Waiter, *, op: str = "release_lock") -> None:
        """Drop one reference (``release`` of an AsyncLock, ``cancel_wait`` of a pending request)."""
        if not w.thread.is_current():
            raise RuntimeError("an AsyncLock must be released on the thread that took it")
        rec = self._rt.recorder
        with self._mutex, rec.atomic():
            w.refs -= 1
            last = w.refs == 0
            if last:
                was_front = bool(self._waiters) and self._waiters[0] is w
                self._waiters.remove(w)
                if was_front:
                    nxt = self._choose_next()
                    if nxt is not None:
                        # LIFO fault: the chosen waiter moves to the front, so "front holds the turn" stays true.
                        self._waiters.remove(nxt)
                        self._waiters.insert(0, nxt)
                        self._make_front(nxt)
                w.thread.async_waiter = None  # type: ignore[attr-defined]
            rec.emit(op, {"t": w.thread.name, "i": self.name}, model="locks")
        if last and not w.released.done():
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
        w.queue._unref(w, op="release_lock")

    async def __aenter__(self) -> AsyncLock:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class WorkerLock:
    """``Worker::Lock``: the synchronous isolate lock, taken under a turn (or synchronously).

    Use as a context manager.  Raises `RuntimeError` if the calling thread already holds it
    (never re-entrant) and `WorkerdError` (ERR_LOCK_OTHER_ISOLATE) for another isolate's turn.
    ``lock=None`` is ``Worker::Lock::TakeSynchronously``, the escape hatch the locks model
    leaves out (its events are recorded as notes).
    """

    def __init__(self, queue: AsyncLockQueue, lock: AsyncLock | None) -> None:
        self._queue = queue
        self._lock = lock
        self._sync = queue._rt.isolates_by_name[queue.name].sync_lock

    def __enter__(self) -> WorkerLock:
        me = threading.current_thread().name
        rec = self._queue._rt.recorder
        if self._lock is not None and self._lock.queue is not self._queue:
            with rec.atomic():
                rec.emit("take_sync_lock", {"t": me, "i": self._queue.name}, result="ERR_LOCK_OTHER_ISOLATE",
                         model="locks")
            raise WorkerdError("ERR_LOCK_OTHER_ISOLATE")
        if self._queue.sync_holder == me:
            raise RuntimeError("Worker::Lock taken recursively")
        self._sync.acquire()
        with rec.atomic():
            self._queue.sync_holder = me
            self._queue._rt.isolates_by_name[self._queue.name].thread = me
            if self._lock is not None:
                rec.emit("take_sync_lock", {"t": me, "i": self._queue.name}, result="OK", model="locks")
            else:
                rec.emit("take_sync_lock_synchronously", {"t": me, "i": self._queue.name}, model="locks")
        return self

    def __exit__(self, *exc: object) -> None:
        rec = self._queue._rt.recorder
        with rec.atomic():
            self._queue.sync_holder = None
            op = "release_sync_lock" if self._lock is not None else "release_sync_lock_synchronously"
            rec.emit(op, {"t": threading.current_thread().name, "i": self._queue.name}, model="locks")
        self._sync.release()
