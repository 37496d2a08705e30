"""Runtime threads: real OS threads, each running its own asyncio event loop (a KJ event loop).

workerd runs each request on a thread's KJ event loop; an IoContext is pinned to the thread
that created it (io/io-context.c++:161, ``threadId = getThreadId()``).  Here a `RuntimeThread`
is an OS thread that owns one `RuntimeLoop`.  Two hooks make ordinary asyncio code inside a
worker behave like JS inside an IoContext:

* the loop's *task factory* asks `on_create_task` (installed by `reference_impl.io_context`)
  whether a context is current; if so the new task is driven step by step under that
  context, like a JS promise continuation that re-enters its context (``awaitIo`` → ``run()``);
* the loop's ``call_at`` reports timers created while a context is current to `on_timer`, so
  ``asyncio.sleep`` inside a handler is a context timer (io/io-context.c++:915: an armed timer
  holds a PendingEvent, and destruction cancels it).

`RuntimeThread.when_idle` is ``AsyncLock::whenThreadIdle()`` (io/async-lock-scheduler.h:276-294):
it resolves when the loop has no runnable callbacks and the thread holds or awaits no AsyncLock.
It reads the loop's ready queue (CPython's ``_ready``), the one private attribute this uses.

Every hand-off to a loop from another thread goes through ``call_soon_threadsafe`` (a task or
function given to a thread, ``RuntimeThread.submit`` / ``call``; a completion awaited on a loop,
``asyncio.wrap_future``; an AsyncLock turn granted to another thread; the DeleteQueue's signal,
``crossThreadFulfiller->fulfill()`` in io/io-context.c++).  When the runtime's recorder records
synchronisation, `RuntimeLoop.call_soon_threadsafe` records it as a hand-off: ``note.post`` on
the calling thread, ``note.wait`` on the loop's thread when the callback starts (a happens-before
edge for predictive checking, docs/predictive-checking.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["RuntimeLoop", "RuntimeThread", "current_thread_name"]

T = TypeVar("T")

_tls = threading.local()

#: Set by reference_impl.io_context: ``hook(loop, coro) -> Task | None`` (None: a plain task).
on_create_task: Callable[[RuntimeLoop, Coroutine[Any, Any, Any]], asyncio.Task[Any] | None] | None = None
#: Set by reference_impl.io_context: ``hook(schedule, callback) -> handle`` for every timer created on a
#: runtime loop; ``schedule(cb)`` arms the timer with ``cb`` (the hook may wrap the callback).
on_timer: Callable[[Callable[[Callable[..., object]], asyncio.TimerHandle], Callable[..., object]],
                   asyncio.TimerHandle] | None = None


def current_thread_name() -> str:
    """The trace name of the calling thread (``thread-0``, ``gc``, ...; OS threads keep their own name)."""
    return threading.current_thread().name


class RuntimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose tasks and timers follow the IoContext current at creation."""

    def __init__(self, owner: RuntimeThread) -> None:
        super().__init__()
        self.owner = owner
        self.set_task_factory(self._context_task_factory)  # type: ignore[arg-type]

    def _context_task_factory(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                      **kwargs: Any) -> asyncio.Task[Any]:
        hook = on_create_task
        if hook is not None:
            task = hook(self, coro)
            if task is not None:
                return task
        return asyncio.Task(coro, loop=loop, **kwargs)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any,  # type: ignore[override]
                context: Any = None) -> asyncio.TimerHandle:
        hook = on_timer
        schedule = lambda cb: super(RuntimeLoop, self).call_at(when, cb, *args, context=context)
        if hook is None:
            return schedule(callback)
        return hook(schedule, callback)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any,  # type: ignore[override]
                             context: Any = None) -> asyncio.Handle:
        """Schedule ``callback`` from any thread; a call from another thread is recorded as a hand-off."""
        rec = self.owner.recorder
        if rec is None or not rec.sync or rec.closed or self.owner.is_current():
            return super().call_soon_threadsafe(callback, *args, context=context)
        edge = rec.new_id("handoff")
        rec.sync_event("post", edge=edge, via="call_soon_threadsafe")

        def handed_over(*a: Any) -> object:
            rec.sync_event("wait", edge=edge, via="call_soon_threadsafe")
            return callback(*a)

        return super().call_soon_threadsafe(handed_over, *args, context=context)

    def ready_count(self) -> int:
        """Runnable callbacks queued on this loop (CPython's private ready deque)."""
        return len(getattr(self, "_ready", ()))


class RuntimeThread:
    """An OS thread running a `RuntimeLoop` until `stop`.

    ``name`` is the thread's identity in traces (``thread-0``).  `submit` runs a coroutine on
    the loop from any thread; `call` runs a plain function there.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._started = threading.Event()
        self.loop: RuntimeLoop
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._idle_check_scheduled = False
        #: set by the AsyncLock scheduler: this thread holds or awaits a lock turn
        self.lock_busy: Callable[[], bool] = lambda: False
        #: set by the Runtime: its `reference_impl.trace.Recorder` (hand-offs to this thread are recorded)
        self.recorder: Any = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._started.wait()

    # -- thread body -------------------------------------------------------------------------
    def _main(self) -> None:
        self.loop = RuntimeLoop(self)
        _tls.runtime_thread = self
        asyncio.set_event_loop(self.loop)
        self._started.set()
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                self.loop.close()

    @staticmethod
    def current() -> RuntimeThread | None:
        """The runtime thread the caller runs on, or None on any other OS thread."""
        return getattr(_tls, "runtime_thread", None)

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    # -- cross-thread entry points -----------------------------------------------------------
    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on this thread's loop (from any thread); a future for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn()`` on this thread's loop (from any thread)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as e:  # delivered to the caller
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return fut

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on this thread and wait for its result (from another thread)."""
        return self.submit(coro).result(timeout)

    async def run_here(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on this thread, from a coroutine on any runtime thread."""
        if self.is_current():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    # -- idleness -------------------------------------------------------------------------------
    def when_idle(self) -> asyncio.Future[None]:
        """Resolves once the loop would sleep and this thread holds or awaits no AsyncLock."""
        fut: asyncio.Future[None] = self.loop.create_future()
        self._idle_waiters.append(fut)
        if not self._idle_check_scheduled:
            self._idle_check_scheduled = True
            self.loop.call_soon(self._check_idle)
        return fut

    def _check_idle(self) -> None:
        self._idle_waiters = [f for f in self._idle_waiters if not f.done()]
        if not self._idle_waiters:
            self._idle_check_scheduled = False
            return
        if self.lock_busy():
            self.loop.call_later(0.002, self._check_idle)
            return
        if self.loop.ready_count() > 0:
            self.loop.call_soon(self._check_idle)
            return
        self._idle_check_scheduled = False
        waiters, self._idle_waiters = self._idle_waiters, []
        for f in waiters:
            f.set_result(None)

    async def _cancel_all(self) -> None:
        me = asyncio.current_task()
        for _ in range(5):  # cancelling a task can start others (a drain's cleanup); a few rounds settle it
            pending = [t for t in asyncio.all_tasks(self.loop) if t is not me and not t.done()]
            if not pending:
                return
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every task on this thread (on this thread), then stop the loop and join."""
        if self._thread.is_alive():
            try:
                self.run(self._cancel_all(), timeout=timeout)
            except Exception:  # a task that refuses to die must not block shutdown
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)

    def __repr__(self) -> str:
        return f"<RuntimeThread {self.name}>"
