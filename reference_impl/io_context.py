"""``IoContext`` and ``IoContext::IncomingRequest``: the per-request (or per-actor) I/O world.

Follows io/io-context.{h,c++} at workerd commit 6552d999; the trace events are the actions of
`model.context`, `model.ownership` and the lifecycle models.

IoContext (`IoContext`):

* created on, and pinned to, one runtime thread (c++:152-218): ``create_context``;
* `IoContext.current` is thread-local (``threadLocalRequest``, c++:27) and is set only while
  code runs under the context's lock: ``run()`` → ``runSingle`` refuses an aborted context
  before and after taking the isolate's AsyncLock (h:1335-1339, 1358-1361), then
  ``runInContextScope`` checks the thread ("IoContext cannot switch threads", c++:1302) and
  re-entry (1307-1308), saves the previously current context (different contexts nest),
  processes the DeleteQueue under its mutex (1317-1326) and runs the functor: ``enter`` /
  ``exit``;
* "JS" is Python: a worker's coroutine is driven one step at a time, each step inside
  ``run()`` (`IoContext.drive`), like a JS continuation re-entering its context through
  ``awaitIo``; tasks and timers created while the context is current belong to it;
* ``abort(e)`` (c++:488-499) is idempotent, the first reason wins, and it cancels nothing
  synchronously; every later ``run()`` refuses;
* hang detection (c++:723-772, 1583-1594): a stateless context with no pending event (no
  step running, no armed timer, no I/O in flight) is aborted with the hang message once its
  thread is idle; actors never hang-abort;
* ``addTask`` / ``addWaitUntil`` (c++:513-553): in an actor every task is a waitUntil task;
  a failing task sets the waitUntil status once (first failure wins) and is logged
  (``taskFailed``, c++:1257-1273);
* destruction (c++:700-721 + member order): ``destroy_begin`` (ReverseIoOwns invalid, tasks,
  waitUntil tasks, timers and the signal task cancelled), ``teardown_free`` per owned object
  (newest first), ``destroy_end`` (the DeleteQueue closed under its mutex).

IncomingRequest (`IncomingRequest`, h:74-218, c++:220-368, 586-689): ``delivered()`` once,
newest-delivered first (the front is "current"); ``drain()`` (stateless: waitUntil tasks, the
drain limit or an abort; actor: all tasks, shutdown, a newer delivery or an abort);
``finishScheduled()`` (outcome after every waitUntil task; the scheduled limit); destruction
(warning if a delivered front request was never drained while waitUntil tasks remain).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from reference_impl import loop as _loop
from reference_impl.errors import ExceededCpu, ExceededMemory, JsError, WorkerdError, js_name, message_for
from reference_impl.io_own import DeleteQueue, IoOwn, IoPtr, OwnedObject, OwnedObjectList, ReverseIoOwn
from reference_impl.locks import WorkerLock
from reference_impl.loop import RuntimeThread

if TYPE_CHECKING:
    from reference_impl.limits import LimitEnforcer
    from reference_impl.runtime import Runtime
    from reference_impl.worker import Actor, Worker

__all__ = [
    "ContextStatistics",
    "IncomingRequest",
    "IoContext",
    "RequestStatistics",
    "ScheduledResult",
    "outcome_from_exception",
]

T = TypeVar("T")

_tls = threading.local()


class ExceededWallTime(JsError):
    """The scheduled event ran past the limit enforcer's wall-time limit (``exceededWallTime``)."""


def outcome_from_exception(e: BaseException) -> str:
    """``RequestObserver::outcomeFromException`` (io/observer.c++:53-72), for the cases modelled here."""
    if isinstance(e, ExceededMemory):
        return "exceededMemory"
    if isinstance(e, ExceededCpu):
        return "exceededCpu"
    if isinstance(e, ExceededWallTime):
        return "exceededWallTime"
    if isinstance(e, asyncio.CancelledError):
        return "canceled"
    return "exception"


@dataclass(frozen=True)
class ScheduledResult:
    """``WorkerInterface::ScheduledResult``: what ``finishScheduled()`` resolves to."""

    outcome: str
    no_retry: bool

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "no_retry": self.no_retry}


@dataclass(frozen=True)
class ContextStatistics:
    """A read-only view of an IoContext (for tests and the model comparison)."""

    name: str
    thread: str
    actor: bool
    state: str  # ALIVE | TEARDOWN | DEAD
    entered: bool
    aborted: bool
    abort_reason: str  # NOT_ABORTED | REASON_A | REASON_B (the model's abstraction)
    requests: tuple[str, ...]  # delivered, newest first
    tasks: int
    wait_until_tasks: int
    wait_until_status: str
    timers: int
    pending_events: int
    owned_objects: int
    fail_open: bool
    refs: int
    #: retryScheduled (cleared by ``setNoRetryScheduled``)
    retry_scheduled: bool = True
    #: awaitIo I/O in flight (KJ tasks: a PendingEvent each; in an actor also waitUntil tasks)
    io_in_flight: int = 0


@dataclass(frozen=True)
class RequestStatistics:
    name: str
    context: str
    state: str  # the lifecycle model's Phase: CREATED, CURRENT, SUPERSEDED, DRAINING, ..., DONE, DRAIN_SKIPPED, ...
    delivered: bool
    waited: bool


class IoContext:
    """One request's (or one actor's) I/O context, pinned to the thread that created it."""

    def __init__(self, runtime: Runtime, worker: Worker, limits: LimitEnforcer, *, actor: Actor | None = None) -> None:
        thread = RuntimeThread.current()
        if thread is None:
            raise RuntimeError("an IoContext must be created on a runtime thread")
        self.runtime = runtime
        self.worker = worker
        self.limits = limits
        self.actor = actor
        self.thread = thread
        self.loop = thread.loop
        rec = runtime.recorder
        self.name = rec.new_id("ctx")
        self.state = "ALIVE"
        self.entered = False
        self._outer: IoContext | None = None
        self.abort_exception: BaseException | None = None
        self._abort_labels: dict[int, str] = {}
        self._abort_label = "NOT_ABORTED"
        self._abort_waiters: list[asyncio.Future[None]] = []
        self.incoming: list[IncomingRequest] = []  # delivered, newest first
        self.refs = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.wait_until_tasks: set[asyncio.Task[Any]] = set()
        self._empty_waiters: list[asyncio.Future[None]] = []
        self.wait_until_status = "ok"
        self.retry_scheduled = True
        self.fail_open = False
        self.timers: set[asyncio.TimerHandle] = set()
        self._js_running = 0
        self._io_pending = 0
        self._runtime_io = 0
        self._io_tasks: set[asyncio.Task[Any]] = set()
        self._hang_task: asyncio.Task[None] | None = None
        self.owned = OwnedObjectList()
        self.reverse_valid = True
        self.logs: list[tuple[str, str]] = []
        self.delete_queue = DeleteQueue(self, self._signal)
        self._signal_event = _loop.RecordedEvent(rec, f"signal:{self.name}")
        with rec.atomic():
            rec.emit("create_context", {"c": self.name, "t": thread.name, "actor": actor is not None})
        self._signal_task: asyncio.Task[None] | None = asyncio.Task(self._delete_queue_signal_task(), loop=self.loop,
                                                                    name=f"signal:{self.name}")
        runtime.contexts.append(self)

    # ---- identity and "current" --------------------------------------------------------------
    @property
    def is_actor(self) -> bool:
        return self.actor is not None

    @staticmethod
    def try_current() -> IoContext | None:
        """``tryCurrent()``: the context current on the calling thread, if any."""
        ctx: IoContext | None = getattr(_tls, "ctx", None)
        return ctx

    @staticmethod
    def current() -> IoContext:
        """``current()``: raises "there is no current request on this thread" when none is."""
        ctx = IoContext.try_current()
        if ctx is None:
            raise WorkerdError("ERR_NO_CURRENT")
        return ctx

    def is_current(self) -> bool:
        return IoContext.try_current() is self

    def require_current(self) -> None:
        """``requireCurrent()``: "request is not current in this isolate"."""
        if not self.is_current():
            raise WorkerdError("ERR_NOT_CURRENT")

    @property
    def front(self) -> IncomingRequest | None:
        """The current IncomingRequest: the newest delivered one that still exists."""
        return self.incoming[0] if self.incoming else None

    # ---- entering ------------------------------------------------------------------------------
    def _entry_error(self) -> str | None:
        """``runInContextScope``'s checks in the model's order: aborted, thread, re-entry."""
        if self.abort_exception is not None and not self.runtime.fault("run_after_abort"):
            return "ERR_ABORTED"
        if not self.thread.is_current():
            return "ERR_WRONG_THREAD"
        if self.entered:
            return "ERR_REENTERED"
        return None

    def _refuse(self, result: str) -> None:
        """Record the refused ``enter`` and raise its error."""
        rec = self.runtime.recorder
        with rec.atomic():
            rec.emit("enter", {"c": self.name, "t": threading.current_thread().name}, result=result)
        if result == "ERR_ABORTED":
            assert self.abort_exception is not None
            raise self.abort_exception
        raise WorkerdError(result)

    def _check_entry(self) -> None:
        """Refuse before taking the isolate lock (so re-entry is reported as such, not as a lock recursion)."""
        if self.state != "ALIVE":
            raise RuntimeError(f"{self.name} is not alive ({self.state})")
        result = self._entry_error()
        if result is not None:
            self._refuse(result)

    def _enter(self) -> None:
        """``runInContextScope``'s entry: become current, then process the DeleteQueue under its mutex."""
        rec = self.runtime.recorder
        t = threading.current_thread().name
        with self.delete_queue.mutex, rec.atomic():
            result = self._entry_error()
            if result is None:
                self.entered = True
                self._outer = IoContext.try_current()
                _tls.ctx = self
                self.delete_queue.process_deletions_locked()
                rec.read("enter", "alive", {"c": self.name, "t": t})  # _check_entry's state check, this step
                rec.emit("enter", {"c": self.name, "t": t}, result="OK")
        if result is not None:
            self._refuse(result)

    def _exit(self) -> None:
        rec = self.runtime.recorder
        with rec.atomic():
            self.entered = False
            _tls.ctx = self._outer
            self._outer = None
            rec.emit("exit", {"c": self.name, "t": threading.current_thread().name})

    def _refuse_if_aborted(self) -> None:
        """``runSingle``'s abort check (before and after the lock): an ``enter`` refused with ERR_ABORTED."""
        if self.abort_exception is None or self.runtime.fault("run_after_abort"):
            return
        if self.state != "ALIVE":
            raise self.abort_exception
        self._refuse("ERR_ABORTED")

    @contextmanager
    def _scope(self) -> Iterator[None]:
        self._enter()
        self._js_running += 1
        self._cancel_hang_check()
        try:
            yield
        finally:
            self._js_running -= 1
            self._exit()
            self._pending_event_dropped()

    def _require_incoming_request(self) -> None:
        """``getCurrentIncomingRequest()`` (h:1273-1277), which ``runSingle`` and ``runImpl`` call for the metrics
        and the timer (h:1351-1353, c++:1341): JS runs only while a delivered request of the context exists.

        An actor context outlives its requests (its Actor holds it): once the last one was dropped, running
        code in it throws "the IoContext has no current IncomingRequest" before anything is entered (INV-R8).
        """
        if not self.incoming and not self.runtime.fault("run_without_request"):
            raise WorkerdError("NO_CURRENT_INCOMING_REQUEST")

    async def run(self, fn: Callable[[], T]) -> T:
        """``run()``: take the isolate's turn and ``Worker::Lock``, enter, call ``fn``, exit."""
        if self.state != "ALIVE":
            raise asyncio.CancelledError(f"{self.name} is {self.state}")
        self._refuse_if_aborted()
        self._require_incoming_request()
        lock = await self.worker.isolate.lock_queue.lock()
        try:
            if self.state != "ALIVE":
                raise asyncio.CancelledError(f"{self.name} is {self.state}")
            self._refuse_if_aborted()
            self._require_incoming_request()  # the last request may have gone while the turn was awaited
            self._check_entry()
            with WorkerLock(self.worker.isolate.lock_queue, lock), self._scope():
                return fn()
        finally:
            lock.release()

    def run_sync(self, fn: Callable[[], T]) -> T:
        """``run()`` with ``Worker::Lock::TakeSynchronously``: usable from any thread (checks apply)."""
        if self.state != "ALIVE":
            raise RuntimeError(f"{self.name} is not alive ({self.state})")
        self._require_incoming_request()
        self._check_entry()
        with WorkerLock(self.worker.isolate.lock_queue, None), self._scope():
            return fn()

    async def drive(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a worker coroutine step by step, each step inside `run` (a JS continuation per step).

        The coroutine never resumes once the context is aborted or gone: the first refused
        ``run()`` ends the drive with the abort reason (or `asyncio.CancelledError`), and the
        coroutine is closed with no context current.
        """
        send: Any = None
        throw: BaseException | None = None
        finished = False

        def step() -> tuple[bool, Any]:
            try:
                if throw is not None:
                    return False, coro.throw(throw)
                return False, coro.send(send)
            except StopIteration as stop:
                return True, stop.value

        try:
            while True:
                done, out = await self.run(step)
                if done:
                    finished = True
                    return out  # type: ignore[no-any-return]
                send, throw = None, None
                if out is None:  # a bare yield (asyncio.sleep(0))
                    await asyncio.sleep(0)
                    continue
                if hasattr(out, "_asyncio_future_blocking"):
                    out._asyncio_future_blocking = False
                if not out.done():
                    # awaitJs joins onAbort(): an abort ends the wait, and no JS resumes after it.
                    aborted = self.on_abort()
                    try:
                        await asyncio.wait([out, aborted], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        aborted.cancel()
                    if not out.done():
                        assert self.abort_exception is not None
                        raise self.abort_exception
                try:
                    send = out.result()
                except asyncio.CancelledError:
                    throw = asyncio.CancelledError()
                except BaseException as e:  # delivered into the coroutine at the next step
                    throw = e
        finally:
            if not finished:
                coro.close()

    # ---- tasks and waitUntil ----------------------------------------------------------------
    def _new_task(self, aw: Awaitable[Any], *, promise: bool = False) -> asyncio.Task[Any]:
        coro = aw if asyncio.iscoroutine(aw) else _await(aw)
        task = asyncio.Task(self._promise_chain(coro) if promise else self.drive(coro), loop=self.loop)
        task.add_done_callback(lambda _t: coro.close())  # cancelled before its first step: never started
        return task

    async def _promise_chain(self, coro: Coroutine[Any, Any, T]) -> T:
        """A JS promise chain of this context: when the context ends first, the promise can never settle.

        Awaiting it from another request then rejects with workerd's "can never settle" error (the promise's
        IoContext is gone) instead of resolving or hanging.
        """
        try:
            return await self.drive(coro)
        except asyncio.CancelledError:
            if self.state in ("TEARDOWN", "DEAD"):
                raise JsError(message_for("PROMISE_FROM_ENDED_REQUEST")) from None
            raise

    def spawn(self, aw: Awaitable[Any]) -> asyncio.Task[Any]:
        """A Python task started by worker code (``asyncio.ensure_future`` in a handler): a JS promise chain.

        It runs step by step inside the context and dies with it.  In a stateless context it
        is not a KJ task (a floating JS promise holds no PendingEvent and no drain waits for
        it); in an actor it is run as a waitUntil task, so the actor's drain covers it and it
        never runs without a live request (a simplification: workerd would only wait for
        the I/O such a promise chain starts).
        """
        if self.actor is not None:
            return self.add_wait_until(aw)
        task = self._new_task(aw, promise=True)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def add_wait_until(self, aw: Awaitable[Any]) -> asyncio.Task[Any]:
        """``addWaitUntil`` (``ctx.waitUntil``): the drain waits for it; its failure is logged, never returned."""
        rec = self.runtime.recorder
        # JS code (a coroutine) runs in the context, a turn per step; a native promise (an
        # awaitable that is not a coroutine, like a kj promise added from C++) is only awaited:
        # it enters no context, so it needs no request (INV-R8) and an abort does not refuse it
        task = self._new_task(aw) if asyncio.iscoroutine(aw) else asyncio.Task(_await(aw), loop=self.loop)
        with rec.atomic():
            listed = bool(self.incoming)
            self.wait_until_tasks.add(task)
            rec.emit("add_wait_until", {"c": self.name},
                     outputs={"warning": "NO_WARNING" if listed else "TASK_WITHOUT_REQUEST"})
        if not listed:
            self.log("warning", "Adding task to IoContext with no current IncomingRequest")
        task.add_done_callback(self._wait_until_done)
        return task

    def await_io(self, aw: Awaitable[T]) -> asyncio.Future[T]:
        """``awaitIo``: runtime I/O started by worker code (a subrequest) is a task of the context.

        Holds a PendingEvent until it settles; in an actor it is a waitUntil task (INV-T1).
        Call it while the context is current; await the returned future from the worker code.
        """
        self.require_current()
        rec = self.runtime.recorder
        task: asyncio.Task[T] = asyncio.Task(_await(aw), loop=self.loop)
        with rec.atomic():
            self._io_tasks.add(task)
            self._io_pending += 1
            rec.emit("add_task", {"c": self.name})
        self._cancel_hang_check()
        task.add_done_callback(self._io_done)
        return task

    def _io_done(self, task: asyncio.Task[Any]) -> None:
        rec = self.runtime.recorder
        with rec.atomic():
            if task not in self._io_tasks:  # cleared by teardown: cancelled with the context
                return
            self._io_tasks.discard(task)
            self._io_pending -= 1
            ok = not task.cancelled() and task.exception() is None
            op = "wait_until_done" if self.actor is not None else "task_done"
            rec.emit(op, {"c": self.name, "ok": ok})
        self._check_wait_until_empty()
        self._pending_event_dropped()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A worker-spawned Python task settled (no model event: it is a JS promise chain)."""
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log("info", _uncaught_in_promise(task.exception()))
        self._check_wait_until_empty()

    def _wait_until_done(self, task: asyncio.Task[Any]) -> None:
        rec = self.runtime.recorder
        exc = None if task.cancelled() else task.exception()
        with rec.atomic():
            if task not in self.wait_until_tasks:  # cleared by teardown: cancelled with the context
                return
            self.wait_until_tasks.discard(task)
            if exc is not None:
                self._task_failed(exc)
            ok = exc is None and not task.cancelled()
            rec.emit("wait_until_done", {"c": self.name, "ok": ok}, outputs={"log": "NO_LOG" if ok else "ASYNC_TASK"})
        if exc is not None:
            self.log("info", _uncaught_in_promise(exc))
        self._check_wait_until_empty()

    def _task_failed(self, e: BaseException) -> None:
        """``taskFailed``: the first failure sets the waitUntil status (the log line follows)."""
        if self.wait_until_status == "ok" or self.runtime.fault("last_failure_wins"):
            self.wait_until_status = outcome_from_exception(e)

    def wait_until_count(self) -> int:
        """``waitUntilTasks``' size: waitUntil tasks (in an actor also armed timers and I/O, INV-T1)."""
        n = len(self.wait_until_tasks)
        if self.actor is not None:
            n += self._live_timers() + len(self._io_tasks)
        return n

    def _waits_pending(self) -> int:
        """What a drain waits for: the waitUntil tasks."""
        n = self.wait_until_count()
        if self.actor is None and self.runtime.fault("drain_waits_for_tasks"):
            n += len(self.tasks) + self._live_timers() + len(self._io_tasks)
        return n

    def _check_wait_until_empty(self) -> None:
        if self._waits_pending() == 0:
            waiters, self._empty_waiters = self._empty_waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(None)

    def wait_until_empty(self) -> asyncio.Future[None]:
        """``waitUntilTasks.onEmpty()``."""
        fut: asyncio.Future[None] = self.loop.create_future()
        if self._waits_pending() == 0:
            fut.set_result(None)
        else:
            self._empty_waiters.append(fut)
        return fut

    # ---- timers and pending events ------------------------------------------------------------
    def _on_timer(self, schedule: Callable[[Callable[..., object]], asyncio.TimerHandle],
                  callback: Callable[..., object]) -> asyncio.TimerHandle:
        """A timer armed by worker code (``asyncio.sleep``): ``setTimeout`` (a task; in an actor a waitUntil)."""
        holder: list[asyncio.TimerHandle] = []

        def fired(*args: Any) -> None:
            self._timer_ended(holder[0])
            try:
                callback(*args)
            finally:
                self._check_wait_until_empty()
                self._pending_event_dropped()

        rec = self.runtime.recorder
        with rec.atomic():
            handle = schedule(fired)
            holder.append(handle)
            self.timers.add(handle)
            rec.emit("set_timeout", {"c": self.name})
        self._cancel_hang_check()
        return handle

    def _timer_ended(self, handle: asyncio.TimerHandle) -> None:
        """The timer fired or was cancelled: its task is done (reported in an event-loop turn)."""
        rec = self.runtime.recorder
        with rec.atomic():
            if handle not in self.timers:
                return
            self.timers.discard(handle)
            op = "wait_until_done" if self.actor is not None else "task_done"
            rec.emit(op, {"c": self.name, "ok": True})

    def _prune_timers(self) -> None:
        """Report timers cancelled by worker code (``clearTimeout``, a finished ``wait_for``); only between turns."""
        if IoContext.try_current() is not None:
            return
        for h in [h for h in self.timers if h.cancelled()]:
            self._timer_ended(h)

    def _live_timers(self) -> int:
        return sum(1 for h in self.timers if not h.cancelled())

    def pending_events(self) -> int:
        """The PendingEvent's refcount: running steps, armed timers, I/O in flight (0 for actors)."""
        if self.actor is not None:
            return 0
        return self._js_running + self._io_pending + self._runtime_io + self._live_timers()

    @contextmanager
    def pending_io(self) -> Iterator[None]:
        """Hold a PendingEvent while the runtime does I/O for this context (writing its response)."""
        self._runtime_io += 1
        self._cancel_hang_check()
        try:
            yield
        finally:
            self._runtime_io -= 1
            self._pending_event_dropped()

    def _cancel_hang_check(self) -> None:
        if self._hang_task is not None:
            self.loop.note_cancel(self._hang_task)
            self._hang_task.cancel()
            self._hang_task = None

    def _pending_event_dropped(self) -> None:
        """``~PendingEvent``: with none left, abort for hanging once the thread is idle (stateless only)."""
        if self.state == "ALIVE":
            self._prune_timers()
        if (self.actor is not None or self.state != "ALIVE" or self.abort_exception is not None
                or self._hang_task is not None or self.pending_events() > 0):
            return
        if not self.thread.is_current():
            return
        self._hang_task = asyncio.Task(self._abort_from_hang(), loop=self.loop)

    async def _abort_from_hang(self) -> None:
        await self.thread.when_idle()
        self._hang_task = None
        if self.state == "ALIVE" and self.pending_events() == 0 and self.abort_exception is None:
            self.abort(JsError(message_for("HANG")), hang=True)

    def set_no_retry(self) -> None:
        """``setNoRetryScheduled()`` (``controller.noRetry()``, or a missing scheduled handler)."""
        rec = self.runtime.recorder
        with rec.atomic():
            self.retry_scheduled = False
            rec.emit("set_no_retry", {"c": self.name})

    # ---- abort ----------------------------------------------------------------------------------
    def abort(self, reason: BaseException, *, hang: bool = False) -> None:
        """``abort(e)``: the first reason wins; nothing is cancelled here; every later ``run()`` refuses."""
        if not self.thread.is_current():
            self.thread.call(lambda: self.abort(reason, hang=hang))
            return
        rec = self.runtime.recorder
        with rec.atomic():
            if self.state == "DEAD":
                return
            label = self._abort_labels.setdefault(id(reason), "REASON_A" if not self._abort_labels else "REASON_B")
            first = self.abort_exception is None
            if first or self.runtime.fault("abort_last_reason_wins"):
                self.abort_exception = reason
                self._abort_label = label
            if hang:
                rec.emit("abort_from_hang", {"c": self.name})
            else:
                rec.read("abort", "exists", {"c": self.name, "reason": label})  # the state check above
                rec.emit("abort", {"c": self.name, "reason": label})
        if first:
            self.log("error" if hang else "info", f"aborted: {reason}")
            waiters, self._abort_waiters = self._abort_waiters, []
            for f in waiters:
                if not f.done():
                    f.set_exception(reason)
                    f.exception()  # mark retrieved: an abort nobody waits for is not an error

    def on_abort(self) -> asyncio.Future[None]:
        """``onAbort()``: rejects with the abort reason."""
        fut: asyncio.Future[None] = self.loop.create_future()
        if self.abort_exception is not None:
            fut.set_exception(self.abort_exception)
            fut.exception()
        else:
            self._abort_waiters.append(fut)
        return fut

    # ---- I/O objects ------------------------------------------------------------------------------
    def add_object(self, value: Any, io_type: str) -> IoOwn[Any]:
        """``addObject(Own<T>)``: an IoOwn of the current context (requireCurrent)."""
        rec = self.runtime.recorder
        name = rec.new_id("obj")
        t = threading.current_thread().name
        with rec.atomic():
            ok = self.is_current()
            rec.emit("add_object", {"o": name, "c": self.name, "t": t, "kind": "IO_OWN"},
                     result="OK" if ok else "ERR_NOT_CURRENT")
            if not ok:
                raise WorkerdError("ERR_NOT_CURRENT")
            node = OwnedObject(name, value, io_type)
            self.owned.link(node)
            return IoOwn(self.delete_queue, node)

    def add_object_ptr(self, value: Any, io_type: str) -> IoPtr[Any]:
        """``addObject(T&)``: an IoPtr (checked on access, tracks nothing)."""
        rec = self.runtime.recorder
        name = rec.new_id("obj")
        t = threading.current_thread().name
        with rec.atomic():
            ok = self.is_current()
            rec.emit("add_object", {"o": name, "c": self.name, "t": t, "kind": "IO_PTR"},
                     result="OK" if ok else "ERR_NOT_CURRENT")
            if not ok:
                raise WorkerdError("ERR_NOT_CURRENT")
            return IoPtr(self.delete_queue, name, value, io_type)

    def add_object_reverse(self, value: Any, io_type: str = "object") -> ReverseIoOwn[Any]:
        """``addObjectReverse``: a KJ-side owner; only needs the context's thread."""
        if not self.thread.is_current():
            raise RuntimeError("addObjectReverse must be called on the context's thread")
        rec = self.runtime.recorder
        name = rec.new_id("obj")
        with rec.atomic():
            node = OwnedObject(name, value, io_type)
            self.owned.link(node)
            rec.emit("add_reverse", {"o": name, "c": self.name, "t": threading.current_thread().name})
            return ReverseIoOwn(self, node)

    # ---- cross-context actions (the DeleteQueue signal task) -------------------------------------
    def _signal(self) -> None:
        """``crossThreadFulfiller->fulfill()``, from any thread."""
        if self.thread.is_current():
            self._signal_event.set()
        else:
            self.loop.call_soon_threadsafe(self._signal_event.set)

    async def _delete_queue_signal_task(self) -> None:
        """``startDeleteQueueSignalTask`` (c++:1652-1675): wait, ``run()``, run every action FIFO."""
        rec = self.runtime.recorder
        while True:
            await self._signal_event.wait()
            self._signal_event.clear()
            checked = not self.runtime.fault("queue_processed_when_dead")
            if self.state != "ALIVE" and checked:
                return
            t = threading.current_thread().name
            with self.delete_queue.mutex, rec.atomic():
                if checked:  # the branch above (this step; only this loop's steps change state): guard "alive"
                    rec.read("run_actions", "alive", {"c": self.name, "t": t})
                refused = self.abort_exception is not None
                actions = [] if refused else self.delete_queue.take_actions_locked()
                if refused:
                    self.delete_queue.signaled = False
                else:
                    self.delete_queue.process_deletions_locked()
                rec.emit("run_actions", {"c": self.name, "t": t})
            if refused:
                return  # run() refused: the task ends (workerd aborts the context with the same reason)
            if not actions or self.state != "ALIVE":
                continue
            try:
                await self.run(lambda acts=actions: [a() for a in acts])  # type: ignore[misc]
            except BaseException as e:  # a failing action aborts the context (c++:1672-1674)
                if isinstance(e, asyncio.CancelledError):
                    raise
                self.abort(e)
                return

    def actor_shutdown(self) -> asyncio.Future[None]:
        """``actor.onShutdown()``: resolves when the actor shuts down (never for a stateless context)."""
        fut: asyncio.Future[None] = self.loop.create_future()
        if self.actor is not None:
            self.actor.shutdown_waiters.append(fut)
            if self.actor.shut_down:
                fut.set_result(None)
        return fut

    # ---- logging ----------------------------------------------------------------------------------
    def log(self, level: str, text: str) -> None:
        self.logs.append((level, text))
        self.runtime.log(level, f"{self.name}: {text}")

    def log_warning(self, key: str) -> None:
        """``logWarning`` with one of workerd's texts (model.vocab.MESSAGES)."""
        self.log("warning", message_for(key))

    # ---- ownership by requests and the actor ------------------------------------------------------
    def add_ref(self) -> None:
        self.refs += 1

    def release_ref(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            self.destroy()

    def _cancel_all_tasks(self) -> None:
        """Cancel every task, waitUntil task, I/O task and timer; forget them first so none reports completion."""
        tasks = list(self.tasks) + list(self.wait_until_tasks) + list(self._io_tasks)
        timers = list(self.timers)
        self.tasks.clear()
        self.wait_until_tasks.clear()
        self._io_tasks.clear()
        self.timers.clear()
        self._io_pending = 0
        for task in tasks:
            self.loop.note_cancel(task)
            task.cancel()
        for h in timers:
            h.cancel()

    def destroy(self) -> None:
        """``~IoContext``: cancel everything the context owns, free its objects, close its queue."""
        if not self.thread.is_current():
            raise RuntimeError("an IoContext is destroyed on its own thread")
        if self.state != "ALIVE":
            return
        if self.entered:
            raise RuntimeError(f"{self.name} destroyed while entered")
        rt = self.runtime
        rec = rt.recorder
        with rec.atomic():
            self.state = "TEARDOWN"
            self.reverse_valid = False
            rec.emit("destroy_begin", {"c": self.name})
        self._cancel_hang_check()
        if self._signal_task is not None and not rt.fault("queue_processed_when_dead"):
            self.loop.note_cancel(self._signal_task)
            self._signal_task.cancel()
            self._signal_task = None
        self._cancel_all_tasks()
        for node in self.owned.newest_first():
            with rec.atomic():
                self.owned.unlink(node)
                rec.emit("teardown_free", {"o": node.name})
        from reference_impl.io_own import _Unlocked

        with _Unlocked() if rt.fault("queue_closed_without_lock") else self.delete_queue.mutex, rec.atomic():
            self.delete_queue.close_locked()
            self.state = "DEAD"
            rec.emit("destroy_end", {"c": self.name})
        for f in self._empty_waiters + self._abort_waiters:
            f.cancel()
        self._empty_waiters, self._abort_waiters = [], []

    # ---- views ----------------------------------------------------------------------------------
    def statistics(self) -> ContextStatistics:
        return ContextStatistics(
            name=self.name,
            thread=self.thread.name,
            actor=self.actor is not None,
            state=self.state,
            entered=self.entered,
            aborted=self.abort_exception is not None,
            abort_reason=self._abort_label,
            requests=tuple(r.name for r in self.incoming),
            tasks=len(self.tasks),
            wait_until_tasks=len(self.wait_until_tasks),
            wait_until_status=self.wait_until_status,
            timers=len(self.timers),
            pending_events=self.pending_events(),
            owned_objects=len(self.owned),
            fail_open=self.fail_open,
            refs=self.refs,
            retry_scheduled=self.retry_scheduled,
            io_in_flight=len(self._io_tasks),
        )

    def __repr__(self) -> str:
        return f"<IoContext {self.name} {self.state} on {self.thread.name}{' actor' if self.actor else ''}>"


def _uncaught_in_promise(e: BaseException | None) -> str:
    """workerd's INFO line for a rejected task or waitUntil promise (visible with ``--verbose``)."""
    name = js_name(e) if e is not None else "Error"
    return f"uncaught exception; source = Uncaught (in promise); exception = {name + ': ' if name else ''}{e}"


async def _await(aw: Awaitable[T]) -> T:
    return await aw


def _first(*futs: Awaitable[Any]) -> Coroutine[Any, Any, tuple[int, BaseException | None]]:
    """Await the first of ``futs`` to settle (``exclusiveJoin``); returns its index and its error."""

    async def run() -> tuple[int, BaseException | None]:
        tasks = [asyncio.ensure_future(f) for f in futs]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for i, t in enumerate(tasks):
                if t in done:
                    if t.cancelled():
                        return i, asyncio.CancelledError()
                    return i, t.exception()
            raise AssertionError("asyncio.wait returned nothing")
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()

    return run()


class IncomingRequest:
    """``IoContext::IncomingRequest``: one event delivered to a context (stateless: the only one).

    Trace events are the lifecycle model's: ``create_request``, ``deliver`` (result),
    ``cancel_request`` / ``drop_request`` (destroyed undelivered / undrained), ``drain`` and its
    ends ``drain_done`` / ``drain_timeout`` / ``drain_aborted`` / ``drain_superseded``,
    ``finish_scheduled`` and ``finish_scheduled_done`` / ``_timeout`` / ``_aborted`` (outputs:
    the outcome and noRetry).  Each end is recorded atomically with the request's destruction.
    """

    def __init__(self, ctx: IoContext) -> None:
        self.context = ctx
        rec = ctx.runtime.recorder
        self.name = rec.new_id("req")
        self.was_delivered = False
        self.waited = False
        self.destroyed = False
        self.state = "CREATED"
        self._drain_fulfiller: asyncio.Future[None] | None = None
        self.handed_over = False
        with rec.atomic():
            ctx.add_ref()
            rec.emit("create_request", {"r": self.name, "c": ctx.name})

    @property
    def is_current(self) -> bool:
        return self.context.front is self

    def delivered(self) -> None:
        """``delivered()``: at most once; becomes the front ("current") request."""
        ctx = self.context
        rt = ctx.runtime
        rec = rt.recorder
        superseded: IncomingRequest | None = None
        with rec.atomic():
            if self.was_delivered and not rt.fault("deliver_twice"):
                rec.emit("deliver", {"r": self.name}, result="ERR_DELIVERED_TWICE")
                raise WorkerdError("ERR_DELIVERED_TWICE")
            if ctx.incoming:
                superseded = ctx.incoming[0]
            if self in ctx.incoming:
                ctx.incoming.remove(self)
            ctx.incoming.insert(0, self)
            self.was_delivered = True
            self.state = "CURRENT"
            if superseded is not None and superseded.state == "CURRENT":
                superseded.state = "SUPERSEDED"
            hand_over = (superseded is not None and superseded._drain_fulfiller is not None
                         and not superseded._drain_fulfiller.done() and not superseded.destroyed
                         and not rt.fault("superseded_drain_not_cancelled"))
            if hand_over:
                assert superseded is not None
                superseded.handed_over = True
            rec.emit("deliver", {"r": self.name}, result="OK")
        if hand_over:
            # "the new request will take over responsibility for completing any tasks" (c++:261-265)
            assert superseded is not None and superseded._drain_fulfiller is not None
            superseded._drain_fulfiller.set_result(None)

    def drain(self) -> Coroutine[Any, Any, None]:
        """``drain()``: consumes the request; only the front request waits (for what depends on the kind).

        The synchronous part (recording ``drain``, or destroying a request that is not the
        front) happens at the call; the returned coroutine waits and ends the drain.
        """
        ctx = self.context
        rec = ctx.runtime.recorder
        with rec.atomic():
            self.waited = True
            front = ctx.front is self
            if front:
                self.state = "DRAINING"
                rec.emit("drain", {"r": self.name})
            else:  # "a newer request was received, so draining isn't our job": destroyed at once
                self._destroy_locked("drain", final="DRAIN_SKIPPED")
        if not front:
            self._after_destroy()
            return _done()
        if ctx.actor is not None:
            self._drain_fulfiller = ctx.loop.create_future()
        return self._wait_drain()

    async def _wait_drain(self) -> None:
        ctx = self.context
        rt = ctx.runtime
        rec = rt.recorder
        end, outputs = "drain_done", None
        try:
            if ctx.actor is None:
                if not rt.fault("drain_ignores_wait_until"):
                    which, _ = await _first(ctx.wait_until_empty(), ctx.limits.limit_drain(), ctx.on_abort())
                    if which == 1:
                        end, outputs = "drain_timeout", {"warning": "DRAIN_TIMEOUT"}
                        ctx.log_warning("DRAIN_TIMEOUT")
                    elif which == 2:
                        end = "drain_aborted"
            else:
                assert self._drain_fulfiller is not None
                which, _ = await _first(ctx.wait_until_empty(), ctx.actor_shutdown(), self._drain_fulfiller,
                                        ctx.on_abort())
                end = ("drain_done", "drain_shutdown", "drain_superseded", "drain_aborted")[which]
                if self.handed_over:  # a newer delivery took the drain over, whatever else settled too
                    end = "drain_superseded"
        finally:
            self._drain_fulfiller = None
            # The runtime shutting down cancels what a drain waits for: the process ends, which no model
            # step describes, so nothing is recorded (the trace ends with the request draining).
            if not self.destroyed and not rt.closing:
                with rec.atomic():
                    self._destroy_locked(end, final=_DRAIN_END_PHASE[end], outputs=outputs)
                self._after_destroy()

    async def finish_scheduled(self) -> ScheduledResult:
        """``finishScheduled()``: after every waitUntil task (or the limit, or an abort): outcome and retry."""
        ctx = self.context
        rt = ctx.runtime
        rec = rt.recorder
        if ctx.actor is not None:
            raise AssertionError("this code isn't designed to allow scheduled events to be delivered to actors")
        with rec.atomic():
            self.waited = True
            self.state = "FINISHING_SCHEDULED"
            rec.emit("finish_scheduled", {"r": self.name})
        end = "finish_scheduled_aborted"
        result = ScheduledResult(outcome="canceled", no_retry=False)
        try:
            if rt.fault("finish_scheduled_ignores_wait_until"):
                await asyncio.sleep(0)
                which, err = 0, None
            else:
                which, err = await _first(ctx.wait_until_empty(), ctx.limits.limit_scheduled(), ctx.on_abort())
            if which == 0:
                end, outcome = "finish_scheduled_done", ctx.wait_until_status
            elif which == 1:
                end, outcome = "finish_scheduled_timeout", "exceededWallTime"
            else:
                reason = ctx.abort_exception if ctx.abort_exception is not None else err
                ctx.log("info", f"execution context aborted: {reason}")
                end, outcome = "finish_scheduled_aborted", "internalError" if reason is None else (
                    outcome_from_exception(reason))
            result = ScheduledResult(outcome=outcome, no_retry=not ctx.retry_scheduled)
            return result
        finally:
            if not self.destroyed and not rt.closing:  # as in _wait_drain: the process ends, nothing is recorded
                with rec.atomic():
                    self._destroy_locked(end, final=_SCHEDULED_END_PHASE[end], outputs={
                        "outcome": _model_outcome(result.outcome), "no_retry": str(result.no_retry).lower()})
                self._after_destroy()

    def destroy(self) -> None:
        """``~IncomingRequest`` without drain: ``cancel_request`` (undelivered) or ``drop_request`` (undrained)."""
        if self.destroyed:
            return
        ctx = self.context
        rec = ctx.runtime.recorder
        with rec.atomic():
            if not self.was_delivered:
                self._destroy_locked("cancel_request", final="CANCELED")
            else:
                forgot = ctx.front is self and not self.waited and ctx.wait_until_count() > 0
                self._destroy_locked("drop_request", final="DROPPED",
                                     outputs={"warning": "DRAIN_FORGOTTEN" if forgot else "NO_WARNING"})
                if forgot:
                    ctx.log_warning("DRAIN_FORGOTTEN")
        self._after_destroy()

    def _destroy_locked(self, op: str, *, final: str, outputs: dict[str, Any] | None = None) -> None:
        """Under the recorder lock: unlink, clear a shared aborted context's tasks, record ``op``."""
        ctx = self.context
        self.destroyed = True
        shared = ctx.refs > 1 or ctx.actor is not None
        if self.was_delivered and shared and ctx.abort_exception is not None:
            ctx._cancel_all_tasks()
        if self in ctx.incoming:
            ctx.incoming.remove(self)
            if ctx.incoming and ctx.incoming[0].state == "SUPERSEDED":
                ctx.incoming[0].state = "CURRENT"
        self.state = final
        ctx.runtime.recorder.emit(op, {"r": self.name}, outputs=outputs)

    def _after_destroy(self) -> None:
        """The request's reference to its context goes (a stateless context dies here)."""
        self.context.release_ref()

    def statistics(self) -> RequestStatistics:
        return RequestStatistics(self.name, self.context.name, self.state, self.was_delivered, self.waited)

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.name} {self.state} in {self.context.name}>"


#: the lifecycle model's Phase after each end of a drain / of finishScheduled (`RequestStatistics.state`)
_DRAIN_END_PHASE = {"drain_done": "DONE", "drain_timeout": "TIMED_OUT", "drain_aborted": "ABORTED",
                    "drain_superseded": "DRAIN_SUPERSEDED", "drain_shutdown": "SHUT_DOWN"}
_SCHEDULED_END_PHASE = {"finish_scheduled_done": "DONE", "finish_scheduled_timeout": "TIMED_OUT",
                        "finish_scheduled_aborted": "ABORTED"}


async def _done() -> None:
    return None


def _model_outcome(outcome: str) -> str:
    """The lifecycle model's coarser Outcome for a workerd EventOutcome."""
    return {"ok": "OK", "exceededWallTime": "EXCEEDED_WALL_TIME"}.get(outcome, "EXCEPTION")


# ---- loop hooks: tasks and timers created while a context is current belong to it -----------------

def _on_create_task(loop: _loop.RuntimeLoop, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
    ctx = IoContext.try_current()
    if ctx is None or ctx.loop is not loop:
        return None
    return ctx.spawn(coro)


def _on_timer(schedule: Callable[[Callable[..., object]], asyncio.TimerHandle],
              callback: Callable[..., object]) -> asyncio.TimerHandle:
    ctx = IoContext.try_current()
    if ctx is None or not ctx.thread.is_current():
        return schedule(callback)
    return ctx._on_timer(schedule, callback)


_loop.on_create_task = _on_create_task
_loop.on_timer = _on_timer
