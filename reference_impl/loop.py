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

Inside one loop (``"sync_version": 3``) every callback the loop runs is a *step* (`LoopStep`):
``call_soon`` (a task's next step, a future's callbacks, an ``asyncio.Event`` waking its waiters),
``call_soon_threadsafe`` and timers are wrapped so that a step knows its *unit* (the asyncio task
it advances, or the callback itself) and the step that scheduled it (its *cause*).  The recorder
records a step that records anything as a section of the loop's lock (``loop:<thread>``): KJ and
asyncio run one callback at a time, so steps of one loop never interleave; the section's
``after`` names the steps that happen before it (its cause, through causes that recorded
nothing).  A step is KJ's ``EventLoop::turn()`` running one event (kj/async.c++).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopStep", "RecordedEvent", "RuntimeLoop", "RuntimeThread", "ThreadPool", "current_step",
           "current_thread_name"]

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


class LoopStep:
    """One callback run by a `RuntimeLoop` (a task step up to its next ``await``, or a plain callback).

    ``cause`` is the step of the same loop that scheduled it (None: scheduled from another thread or from
    outside any step); ``unit`` the asyncio task it advances (its name), a hand-off's callback (its edge), or
    None for another callback (the recorder names it ``cb-N`` when it records something).  The recorder
    opens the step's loop-lock section at its first recorded event (``opened``) and closes it when the
    callback returns (``edge``: the hand-off the steps it caused wait for).  A step that recorded nothing
    passes its own predecessors on (``carry``).
    """

    __slots__ = ("after_edges", "carry", "cause", "edge", "lock", "opened", "task", "unit")

    def __init__(self, lock: str, cause: LoopStep | None, unit: str | None) -> None:
        self.lock = lock
        self.cause = cause
        self.unit = unit
        self.task = False  # the unit is an asyncio task (it has further steps)
        self.opened = False
        self.edge = ""
        self.carry: tuple[str, ...] = ()
        self.after_edges: tuple[str, ...] | None = None

    def out_edges(self) -> tuple[str, ...]:
        """What a step this one caused happens after (valid once this step ended)."""
        return (self.edge,) if self.opened else self.carry

    def after(self) -> tuple[str, ...]:
        """The edges this step waits for (its cause's, computed once: the cause has ended)."""
        if self.after_edges is None:
            self.after_edges = self.cause.out_edges() if self.cause is not None else ()
            self.cause = None  # no chain of steps kept alive
        return self.after_edges


class RecordedEvent(asyncio.Event):
    """An `asyncio.Event` whose ``set`` → ``wait`` is a recorded hand-off (``note.post`` / ``note.wait``, via
    ``event``).  A waiter woken by ``set`` is caused by the setting step anyway (call_soon), but one that finds
    the event already set reads it without a wake-up: that read is what the edge records."""

    def __init__(self, recorder: Any, name: str) -> None:
        super().__init__()
        self._recorder = recorder
        self._name = name
        self._edge: str | None = None

    def set(self) -> None:
        rec = self._recorder
        if not self.is_set() and rec is not None and rec.sync and not rec.closed:
            self._edge = rec.new_id(f"event-{self._name}")
            rec.sync_event("post", edge=self._edge, via="event")
        super().set()

    async def wait(self) -> bool:  # type: ignore[override]
        await super().wait()
        rec, edge = self._recorder, self._edge
        if edge is not None and rec is not None and rec.sync:
            rec.sync_event("wait", edge=edge, via="event")
        return True


def current_step() -> LoopStep | None:
    """The loop step the calling thread is running (only while a recorder records synchronisation)."""
    return getattr(_tls, "step", None)


class RuntimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose tasks and timers follow the IoContext current at creation."""

    def __init__(self, owner: RuntimeThread) -> None:
        super().__init__()
        self.owner = owner
        self.set_task_factory(self._context_task_factory)  # type: ignore[arg-type]
        #: the unit name of each task seen on this loop (its explicit name, else ``task-N`` in order of first step)
        self._units: weakref.WeakKeyDictionary[asyncio.Task[Any], str] = weakref.WeakKeyDictionary()
        self._unit_count = 0
        #: the last step of each unit that recorded something (its edge): a later step of the unit that records
        #: nothing still passes it on to the steps it causes
        self._unit_edge: dict[str, str] = {}

    # -- steps (recorded only when the runtime's recorder records synchronisation) ------------------
    def unit_of(self, callback: Callable[..., object]) -> str | None:
        """The asyncio task ``callback`` advances (its step or wake-up), by name; None for a plain callback."""
        task = getattr(callback, "__self__", None)
        if not isinstance(task, asyncio.Task):
            return getattr(callback, "iospec_unit", None)  # a hand-off from another thread: its edge
        name = self._units.get(task)
        if name is None:
            given = task.get_name()
            if given.startswith("Task-"):  # asyncio's process-wide default: not stable between runs
                self._unit_count += 1
                given = f"task-{self._unit_count}"
            name = self._units[task] = given
        return name

    def _track(self, callback: Callable[..., object], context: Any) -> Callable[..., object]:
        """Wrap ``callback`` as a `LoopStep` (its cause: the step running now on this loop's thread, if any)."""
        rec = self.owner.recorder
        if rec is None or not rec.sync or rec.closed:
            return callback
        here = self.owner.is_current()
        step = LoopStep(f"loop:{self.owner.name}", current_step() if here else None, None)
        base = asyncio.BaseEventLoop

        def run_step(*args: Any) -> object:
            sched = rec.scheduler
            if sched is not None and sched.defer_step(self.owner.name, self.unit_of(callback)):
                # the controlled scheduler runs another unit's step first: run this one a little later
                base.call_at(self, self.time() + 0.002, run_step, *args, context=context)
                return None
            prev = getattr(_tls, "step", None)
            _tls.step = step
            step.unit = self.unit_of(callback)
            step.task = isinstance(getattr(callback, "__self__", None), asyncio.Task)
            try:
                return callback(*args)
            finally:
                _tls.step = prev
                self._step_done(rec, step)

        return run_step

    def _step_done(self, rec: Any, step: LoopStep) -> None:
        if step.opened:
            rec.close_step(step)
            if step.task and step.unit is not None:
                self._unit_edge[step.unit] = step.edge
        else:
            edges = set(step.after())
            last = self._unit_edge.get(step.unit) if step.task and step.unit is not None else None
            if last is not None:
                edges.add(last)
            step.carry = tuple(sorted(edges))

    def note_cancel(self, task: asyncio.Future[Any] | None) -> None:
        """About to cancel ``task`` (on this loop's thread): the steps it ran so far ran because it was not
        cancelled yet, so they stay before this step in every schedule (``note.wait`` for its last step's edge;
        a step of it after the cancel is caused by this step anyway: the cancel wakes it through call_soon)."""
        rec = self.owner.recorder
        if rec is None or not rec.sync or rec.closed or not isinstance(task, asyncio.Task):
            return
        unit = self._units.get(task)
        edge = self._unit_edge.get(unit) if unit is not None else None
        if edge is not None:
            rec.sync_event("wait", edge=edge, via="cancel")

    def _call_soon(self, callback: Callable[..., object], args: Any, context: Any) -> asyncio.Handle:
        # call_soon and call_soon_threadsafe both come here (CPython's BaseEventLoop)
        rec = self.owner.recorder
        if rec is not None and rec.sync:
            if context is None:
                context = contextvars.copy_context()
            callback = self._track(callback, context)
        return super()._call_soon(callback, args, context)  # type: ignore[misc,no-any-return]

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
        rec = self.owner.recorder
        if rec is not None and rec.sync and context is None:
            context = contextvars.copy_context()
        schedule = lambda cb: super(RuntimeLoop, self).call_at(when, self._track(cb, context), *args, context=context)
        if hook is None:
            return schedule(callback)
        return hook(schedule, callback)

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any,  # type: ignore[override]
                             context: Any = None) -> asyncio.Handle:
        """Schedule ``callback`` from any thread; a call from another thread is recorded as a hand-off."""
        rec = self.owner.recorder
        if rec is None or not rec.sync or rec.closed or self.owner.is_current():
            return super().call_soon_threadsafe(callback, *args, context=context)
        edge = rec.post_handoff(via="call_soon_threadsafe")
        if edge is None:
            return super().call_soon_threadsafe(callback, *args, context=context)

        def handed_over(*a: Any) -> object:
            rec.sync_event("wait", edge=edge, via="call_soon_threadsafe")
            return callback(*a)

        handed_over.iospec_unit = edge  # type: ignore[attr-defined]  # the step's unit: stable in a replay

        return super().call_soon_threadsafe(handed_over, *args, context=context)

    def ready_count(self) -> int:
        """Runnable callbacks queued on this loop (CPython's private ready deque)."""
        return len(getattr(self, "_ready", ()))


class RuntimeThread:
    """An OS thread running a `RuntimeLoop` until `stop`.

    ``name`` is the thread's identity in traces (``thread-0``).  `submit` runs a coroutine on
    the loop from any thread; `call` runs a plain function there.
    """

    def __init__(self, name: str, *, wait: bool = True) -> None:
        """Start the thread; ``wait=False`` returns before its loop runs (call `wait_started` before using it:
        a runtime starts its threads together instead of paying each thread's start-up in turn)."""
        self.name = name
        self._started = threading.Event()
        self.loop: RuntimeLoop
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._idle_check_scheduled = False
        #: set by the AsyncLock scheduler: this thread holds or awaits a lock turn
        self.lock_busy: Callable[[], bool] = lambda: False
        #: set by the Runtime: its `reference_impl.trace.Recorder` (hand-offs to this thread are recorded)
        self.recorder: Any = None
        #: set by the AsyncLock scheduler (reference_impl.locks): this thread's queued lock waiter, if any
        self.async_waiter: Any = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        if wait:
            self._started.wait()

    def wait_started(self) -> None:
        """Block until the thread's loop exists (see ``wait``)."""
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
    def submit(self, coro: Coroutine[Any, Any, T], name: str | None = None,
               settled: Callable[[], None] | None = None) -> concurrent.futures.Future[T]:
        """Run ``coro`` on this thread's loop (from any thread); a future for its result.  ``name`` names its
        task (a stable unit of program order in traces, which a replayed schedule refers to); ``settled`` is
        called on this thread just before the future is resolved (after the task's last step)."""
        if name is None and settled is None:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def done(task: asyncio.Task[T]) -> None:
            if settled is not None:
                settled()
            if task.cancelled():
                fut.cancel()
            elif task.exception() is not None:
                fut.set_exception(task.exception())  # type: ignore[arg-type]
            else:
                fut.set_result(task.result())

        if name is not None:
            done.iospec_unit = f"{name}:settled"  # type: ignore[attr-defined]  # a stable unit for a replay

        def start() -> None:
            if fut.set_running_or_notify_cancel():
                self.loop.create_task(coro, name=name).add_done_callback(done)
            else:
                coro.close()

        self.loop.call_soon_threadsafe(start)
        return fut

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
        """Run ``coro`` on this thread and wait for its result (from another thread).  The wait is a hand-off
        when synchronisation is recorded (``note.post {run-...}`` where the result is set, ``note.wait`` here)."""
        rec = self.recorder
        if rec is None or not rec.sync or rec.closed:
            return self.submit(coro).result(timeout)
        edge = rec.new_id(f"run-{current_thread_name()}")
        result = self.submit(coro, settled=lambda: rec.sync_event("post", edge=edge)).result(timeout)
        rec.sync_event("wait", edge=edge)
        return result

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
                self.loop.note_cancel(t)
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    @staticmethod
    def stop_all(threads: list[RuntimeThread], timeout: float = 10.0) -> None:
        """`stop` for several threads, each phase on every thread at once (cancel, stop the loop, join) instead of
        one thread after another.  With synchronisation recorded the threads stop one by one (the trace's order of
        hand-offs stays the one `stop` records)."""
        live = [t for t in threads if t._thread.is_alive()]
        if any(t.recorder is not None and t.recorder.sync and not t.recorder.closed for t in live):
            for t in live:
                t.stop(timeout)
            return
        cancels = [t.submit(t._cancel_all()) for t in live]
        for f in cancels:
            try:
                f.result(timeout)
            except Exception:  # a task that refuses to die must not block shutdown
                pass
        for t in live:
            t.loop.call_soon_threadsafe(t.loop.stop)
        for t in live:
            t._thread.join(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every task on this thread (on this thread), then stop the loop and join."""
        if self._thread.is_alive():
            try:
                self.run(self._cancel_all(), timeout=timeout)
            except Exception:  # a task that refuses to die must not block shutdown
                pass
            rec = self.recorder
            edge = rec.new_id(f"stop-{self.name}") if rec is not None and rec.sync and not rec.closed else None
            last_step: list[str] = []

            def stop_loop() -> None:
                if edge is not None:
                    rec.sync_event("post", edge=edge)  # opens this step's section of the loop lock
                    step = current_step()
                    if step is not None and step.opened:
                        last_step.append(step.edge)
                self.loop.stop()

            self.loop.call_soon_threadsafe(stop_loop)
            self._thread.join(timeout)
            if edge is not None:
                # the loop stops once this step has returned: the joining thread goes on after the step's end
                # (its release edge), not merely after the post inside it
                rec.sync_event("wait", edge=last_step[0] if last_step else edge)

    def _give_back_here(self) -> list[str]:
        """On this thread, after `_cancel_all`: what a runtime left here (as `ThreadPool.give_back` reports it),
        then drop it so a later runtime starts from an empty loop: callbacks and timers still queued (a thread
        that stops drops them with its loop), the hooks the runtime installed, the loop's step bookkeeping."""
        left = []
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        if tasks:
            left.append(f"{self.name}: {len(tasks)} task(s) still running")
        if self.async_waiter is not None:
            left.append(f"{self.name}: an AsyncLock waiter is still queued")
            self.async_waiter = None
        if getattr(_tls, "step", None) is not None:
            left.append(f"{self.name}: a loop step is still open")
        # the loop's own I/O readers (its self-pipe, which call_soon_threadsafe wakes) stay
        selector = getattr(self.loop, "_selector", None)
        io_handles = {id(h) for key in (selector.get_map().values() if selector is not None else ())
                      for h in key.data if h is not None}
        for handle in list(getattr(self.loop, "_ready", ())) + list(getattr(self.loop, "_scheduled", ())):
            if id(handle) not in io_handles:
                handle.cancel()
        self._idle_waiters = []
        self._idle_check_scheduled = False
        self.lock_busy = lambda: False
        self.recorder = None
        self.loop._units = weakref.WeakKeyDictionary()
        self.loop._unit_count = 0
        self.loop._unit_edge = {}
        return left

    def __repr__(self) -> str:
        return f"<RuntimeThread {self.name}>"


class ThreadPool:
    """Started runtime threads kept for the next runtime: a `Runtime` built with ``pool=`` borrows its threads
    (by name) and gives them back on `close` instead of stopping them.

    For a harness that builds a runtime per short program (tests/stateful_reference.py), where starting and
    joining the threads would cost more than the program.  A thread is given back after every task on it was
    cancelled, as `RuntimeThread.stop` does; `give_back` reports what a runtime left on a thread (a task that
    would not end, a queued AsyncLock waiter), and such a thread is stopped, never lent again.  `close` stops
    every thread and returns the names of those still running.
    """

    def __init__(self) -> None:
        self._free: dict[str, list[RuntimeThread]] = {}
        self._lock = threading.Lock()
        self._all: list[RuntimeThread] = []
        #: free GC threads (`reference_impl.io_own.GcThread`; anything with ``stop()`` and ``idle()``)
        self._free_gc: list[Any] = []
        self._all_gc: list[Any] = []

    def take_gc(self, make: Callable[[], T]) -> T:
        """A free GC thread, or ``make()``."""
        with self._lock:
            if self._free_gc:
                return self._free_gc.pop()  # type: ignore[no-any-return]
        gc = make()
        with self._lock:
            self._all_gc.append(gc)
        return gc

    def give_back_gc(self, gc: Any) -> list[str]:
        """Lend ``gc`` again if it has no finaliser queued or running; else stop it and say so."""
        if not gc.idle():
            gc.stop()
            return [f"{gc.name}: a finaliser is still queued or running"]
        with self._lock:
            self._free_gc.append(gc)
        return []

    def take(self, name: str) -> RuntimeThread:
        """A free thread named ``name`` (a new one if none is free; it may still be starting: `wait_started`)."""
        with self._lock:
            free = self._free.get(name)
            if free:
                return free.pop()
        t = RuntimeThread(name, wait=False)
        with self._lock:
            self._all.append(t)
        return t

    def give_back(self, threads: list[RuntimeThread], timeout: float = 10.0) -> list[str]:
        """Cancel every task on ``threads`` (all at once), check and reset each; what was left on them."""
        live = [t for t in threads if t._thread.is_alive()]
        problems = [f"{t.name}: the thread died" for t in threads if t not in live]
        cancels = [t.submit(t._cancel_all()) for t in live]
        for t, cancelled in zip(live, cancels):
            try:
                cancelled.result(timeout)
            except Exception as e:  # a task that refuses to die: the thread is not lent again
                problems.append(f"{t.name}: cancelling its tasks failed: {e!r}")
        checks = [t.call(t._give_back_here) for t in live]
        for t, check in zip(live, checks):
            try:
                left = check.result(timeout)
            except Exception as e:
                left = [f"{t.name}: {e!r}"]
            problems += left
            if left:
                t.stop(timeout)
            else:
                with self._lock:
                    self._free.setdefault(t.name, []).append(t)
        return problems

    def close(self, timeout: float = 10.0) -> list[str]:
        """Stop every thread of the pool; the names of threads still running afterwards."""
        with self._lock:
            threads, self._all, self._free = self._all, [], {}
            gcs, self._all_gc, self._free_gc = self._all_gc, [], []
        for t in threads:
            t.recorder = None
        RuntimeThread.stop_all(threads, timeout)
        for gc in gcs:
            gc.stop()
        return [t.name for t in threads if t._thread.is_alive()] + [gc.name for gc in gcs if gc.alive()]
