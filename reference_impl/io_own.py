"""I/O ownership: ``IoOwn`` / ``IoPtr`` / ``ReverseIoOwn``, the owned-object list and the ``DeleteQueue``.

Follows io/io-own.{h,c++} and io/io-context.{h,c++} at workerd commit 6552d999 (the executable
counterpart of `model.ownership`; trace events are that model's action names):

* `OwnedObjectList` (io-own.h:64-86, c++:81-107): the context's owning list; ``unlink``
  destroys the object at once; the list's destructor frees what is left, newest first
  (``teardown_free``).
* `DeleteQueue` (io-own.h:88-210): ``crossThreadDeleteQueue`` is a mutex (`threading.Lock`)
  guarding a `_QueueState` (pointers to delete, actions to run, the signal) that becomes
  ``None`` when the context dies.
* `IoOwn` / `IoPtr` access (``operator->``, release) calls ``checkFarGet`` (io-own.c++:57-59,
  io-context.c++:1279-1287): some context must be current on this thread and its queue must
  be the object's queue, else workerd's "different request" / "different Durable Object"
  error, chosen by the *accessing* context's kind, plus " (I/O type: X)".
* Dropping an `IoOwn` (``scheduleDeletion``, io-own.c++:9-20): if the owner is current, unlink
  now (``drop_in_owner``); else take the mutex (``drop_elsewhere``) and push the pointer if the
  queue is still open (``push_deletion``).  Nothing wakes the context: the queue is processed
  at its next entry (a refinement of ``enter``) or never (teardown frees everything).
* `ReverseIoOwn` (io-own.h:407-449) needs only the context's thread; it is invalid once the
  context's destructor has begun ("Couldn't complete operation because the execution
  context has ended.").
* ``scheduleAction`` (io-own.c++:22-55) appends an action and signals the context's signal
  task if the queue is open; otherwise the action is dropped, with workerd's cross-request
  promise warning if some context is current.

The garbage collector is `GcThread`: an explicit OS thread that finalises wrappers (drops
their handles) on request, never CPython's refcounting, so a test decides when and where a
handle dies.
"""

from __future__ import annotations

import queue as _queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from reference_impl.errors import WorkerdError

if TYPE_CHECKING:
    from reference_impl.io_context import IoContext
    from reference_impl.runtime import Runtime

__all__ = [
    "DeleteQueue",
    "DeleteQueueStatistics",
    "GcThread",
    "IoOwn",
    "IoPtr",
    "OwnedObject",
    "OwnedObjectList",
    "ReverseIoOwn",
]

T = TypeVar("T")


def _thread() -> str:
    return threading.current_thread().name


class OwnedObject:
    """A node in a context's owned-object list: the object behind an IoOwn or ReverseIoOwn."""

    __slots__ = ("frees", "io_type", "name", "state", "value")

    def __init__(self, name: str, value: Any, io_type: str) -> None:
        self.name = name
        self.value = value
        self.io_type = io_type
        self.state = "LINKED"  # LINKED | FREED | RELEASED | UNTRACKED (IoPtr)
        self.frees = 0  # how often the object was destroyed (must end at most 1)

    def destroy(self) -> None:
        """Destroy the object (``~T``): call its ``close()`` if it has one."""
        self.frees += 1
        self.state = "FREED"
        close = getattr(self.value, "close", None)
        if callable(close):
            close()


class OwnedObjectList:
    """``OwnedObjectList``: owns its nodes; unlinking destroys (io-own.c++:81-107)."""

    def __init__(self) -> None:
        self._nodes: dict[str, OwnedObject] = {}

    def link(self, node: OwnedObject) -> None:
        self._nodes[node.name] = node

    def unlink(self, node: OwnedObject, *, destroy: bool = True) -> None:
        self._nodes.pop(node.name, None)
        if destroy:
            node.destroy()

    def newest_first(self) -> list[OwnedObject]:
        return list(reversed(self._nodes.values()))

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: OwnedObject) -> bool:
        return node.name in self._nodes


class _QueueState:
    __slots__ = ("actions", "deletions", "signal")

    def __init__(self, signal: Callable[[], None]) -> None:
        self.deletions: list[OwnedObject] = []
        self.actions: list[Callable[[], None]] = []
        self.signal: Callable[[], None] | None = signal


@dataclass(frozen=True)
class DeleteQueueStatistics:
    """A read-only view of one context's DeleteQueue."""

    context: str
    open: bool
    queued_deletions: tuple[str, ...]
    queued_actions: int
    signaled: bool
    mutex_held: bool


class RecordedLock:
    """A `threading.Lock` whose acquisitions and releases are recorded (when the recorder records
    synchronisation) and whose acquisition is a yield point of the controlled scheduler.

    Predictive checking (properties/predict.py) keeps two sections of the same lock on different
    threads apart; that is the only place the trace says what the mutex excludes.
    """

    def __init__(self, recorder: Any, name: str) -> None:
        self._lock = threading.Lock()
        self._recorder = recorder
        self.name = name
        self.holder = ""

    def __enter__(self) -> RecordedLock:
        rec = self._recorder
        rec.yield_point()
        if not self._lock.acquire(blocking=False):
            sched = rec.scheduler
            if sched is not None:
                sched.note_blocked(f"lock {self.name} held by {self.holder}")
            self._lock.acquire()
            if sched is not None:
                sched.note_blocked(None)
        self.holder = threading.current_thread().name
        rec.sync_event("lock_acquire", lock=self.name)
        return self

    def __exit__(self, *exc: object) -> None:
        self._recorder.sync_event("lock_release", lock=self.name)
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


class _Unlocked:
    """What a faulty variant uses instead of the mutex: records nothing, excludes nothing."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class DeleteQueue:
    """``DeleteQueue``: the mutex-guarded cross-thread queue of one IoContext."""

    def __init__(self, ctx: IoContext, signal: Callable[[], None]) -> None:
        self.ctx = ctx
        self.mutex = RecordedLock(ctx.runtime.recorder, f"queue:{ctx.name}")
        self.state: _QueueState | None = _QueueState(signal)
        self.signaled = False

    @property
    def _rt(self) -> Runtime:
        return self.ctx.runtime

    # -- the access check ----------------------------------------------------------------------
    def check_far_get(self, op: str, obj_name: str, io_type: str) -> None:
        """``checkFarGet``: record ``op`` with its result; raise workerd's error unless it is OK."""
        from reference_impl.io_context import IoContext

        rt = self._rt
        t = _thread()
        with rt.recorder.atomic():
            cur = IoContext.try_current()
            if cur is None:
                result = "ERR_NO_CURRENT"
            elif rt.fault("access_check_missing"):
                result = "OK"
            elif rt.fault("access_check_compares_threads"):
                result = "OK" if cur.thread is self.ctx.thread else _different(cur)
            else:
                result = "OK" if cur.delete_queue is self else _different(cur)
            rt.recorder.emit(op, {"o": obj_name, "t": t}, result=result)
        if result != "OK":
            raise WorkerdError(result, io_type=io_type) if result != "ERR_NO_CURRENT" else WorkerdError(result)

    # -- deletion ------------------------------------------------------------------------------
    def schedule_deletion(self, handle: IoOwn[Any]) -> None:
        """``scheduleDeletion``: the IoOwn ``handle`` was dropped on the calling thread."""
        from reference_impl.io_context import IoContext

        rt = self._rt
        rec = rt.recorder
        node = handle._node
        assert node is not None
        t = _thread()
        cur = IoContext.try_current()
        owner_current = cur is not None and cur.delete_queue is self
        if owner_current or rt.fault("delete_on_wrong_thread"):
            with rec.atomic():
                handle._node = None
                self.ctx.owned.unlink(node)
                rec.emit("drop_in_owner", {"o": node.name, "t": t})
            if not rt.fault("double_deletion"):
                return
        if rt.fault("deletion_without_queue_lock"):
            # Pushes without taking the mutex: no drop_elsewhere (the step that takes it) happens.
            with rec.atomic():
                handle._node = None
                if self.state is not None:
                    self.state.deletions.append(node)
                rec.emit("push_deletion", {"t": t})
            return
        if self.state is None and rt.fault("deletion_after_death"):
            with rec.atomic():
                handle._node = None
                node.destroy()
                rec.emit("drop_in_owner", {"o": node.name, "t": t})
            return
        with _Unlocked() if rt.fault("queue_lock_skipped") else self.mutex:
            with rec.atomic():
                handle._node = None
                rec.emit("drop_elsewhere", {"o": node.name, "t": t})
            with rec.atomic():
                if self.state is not None:
                    self.state.deletions.append(node)
                rec.emit("push_deletion", {"t": t})

    def process_deletions_locked(self) -> int:
        """At entry (under the mutex): unlink every queued node; the caller records ``enter``."""
        if self.state is None:
            return 0
        nodes, self.state.deletions = self.state.deletions, []
        for node in nodes:
            self.ctx.owned.unlink(node)
        return len(nodes)

    # -- actions ---------------------------------------------------------------------------------
    def schedule_action(self, action: Callable[[], None]) -> bool:
        """``scheduleAction`` from any thread: queue and signal, or drop (warning if a context is current)."""
        from reference_impl.io_context import IoContext

        rt = self._rt
        rec = rt.recorder
        t = _thread()
        cur = IoContext.try_current()
        with self.mutex, rec.atomic():
            if self.state is not None:
                self.state.actions.append(action)
                signal = self.state.signal
                self.signaled = True
                rec.emit("schedule_action", {"c": self.ctx.name, "t": t}, outputs={"warning": "NO_WARNING"})
            else:
                signal = None
                warn = "CROSS_REQUEST_PROMISE" if cur is not None else "NO_WARNING"
                rec.emit("schedule_action", {"c": self.ctx.name, "t": t}, outputs={"warning": warn})
        if signal is not None:
            signal()
            return True
        if cur is not None:
            cur.log_warning("WARN_CROSS_REQUEST_PROMISE")
        return False

    def take_actions_locked(self) -> list[Callable[[], None]]:
        self.signaled = False
        if self.state is None:
            return []
        actions, self.state.actions = self.state.actions, []
        return actions

    def close_locked(self) -> None:
        """``~DeleteQueuePtr``: drop the signal, then the state: later deletions and actions are ignored."""
        if self.state is not None:
            self.state.signal = None
        self.state = None
        self.signaled = False

    def statistics(self) -> DeleteQueueStatistics:
        held = self.mutex.locked()
        st = self.state
        return DeleteQueueStatistics(
            context=self.ctx.name,
            open=st is not None,
            queued_deletions=tuple(n.name for n in st.deletions) if st else (),
            queued_actions=len(st.actions) if st else 0,
            signaled=self.signaled,
            mutex_held=held,
        )


def _different(cur: IoContext) -> str:
    return "ERR_DIFFERENT_DO" if cur.actor is not None else "ERR_DIFFERENT_REQUEST"


class IoOwn(Generic[T]):
    """An owning handle to an object of one context (``IoOwn<T>``); held by a JS wrapper."""

    def __init__(self, queue: DeleteQueue, node: OwnedObject) -> None:
        self._queue = queue
        self._node: OwnedObject | None = node
        self.name = node.name
        self.io_type = node.io_type

    def get(self) -> T:
        """``operator->``: the object, if the current context owns it (else workerd's error)."""
        node = self._require()
        self._queue.check_far_get("access", self.name, self.io_type)
        return node.value  # type: ignore[no-any-return]

    def release(self) -> T:
        """``operator Own<T>()``: checked like an access; unlink without destroying; the handle empties."""
        node = self._require()
        rec = self._queue._rt.recorder
        with rec.atomic():
            self._queue.check_far_get("release", self.name, self.io_type)
            self._node = None
            self._queue.ctx.owned.unlink(node, destroy=False)
            node.state = "RELEASED"
        return node.value  # type: ignore[no-any-return]

    def drop(self) -> None:
        """Destroy the handle on the calling thread (the GC, or the owner): ``scheduleDeletion``."""
        if self._node is None:
            return
        self._queue.schedule_deletion(self)

    def defer_gc(self) -> None:
        """``deferGcToContext``: null the handle; the object lives until its context dies."""
        rec = self._queue._rt.recorder
        with rec.atomic():
            if self._node is None:
                return
            self._node = None
            rec.emit("defer_gc", {"o": self.name, "t": _thread()})

    @property
    def alive(self) -> bool:
        return self._node is not None

    def _require(self) -> OwnedObject:
        if self._node is None:
            raise RuntimeError("IoOwn used after it was dropped or released")
        return self._node

    def __repr__(self) -> str:
        return f"<IoOwn {self.name} {self.io_type} of {self._queue.ctx.name}>"


class IoPtr(Generic[T]):
    """A non-owning checked pointer (``IoPtr<T>``): access is checked; dropping it frees nothing."""

    def __init__(self, queue: DeleteQueue, name: str, value: T, io_type: str) -> None:
        self._queue = queue
        self._value: T | None = value
        self.name = name
        self.io_type = io_type

    def get(self) -> T:
        if self._value is None:
            raise RuntimeError("IoPtr used after it was dropped")
        self._queue.check_far_get("access", self.name, self.io_type)
        return self._value

    def drop(self) -> None:
        rec = self._queue._rt.recorder
        with rec.atomic():
            if self._value is None:
                return
            self._value = None
            rec.emit("drop_ptr", {"o": self.name, "t": _thread()})


class ReverseIoOwn(Generic[T]):
    """A KJ-side owner of a context's object (``ReverseIoOwn<T>``): same thread, valid until teardown."""

    def __init__(self, ctx: IoContext, node: OwnedObject) -> None:
        self._ctx = ctx
        self._node: OwnedObject | None = node
        self.name = node.name

    def _same_thread(self) -> None:
        if not self._ctx.thread.is_current():
            raise RuntimeError("ReverseIoOwn must be used on its context's thread")

    def get(self) -> T:
        self._same_thread()
        if self._node is None:
            raise RuntimeError("ReverseIoOwn used after it was dropped")
        rec = self._ctx.runtime.recorder
        with rec.atomic():
            valid = self._ctx.reverse_valid
            result = "OK" if valid else "ERR_CONTEXT_ENDED"
            rec.emit("access_reverse", {"o": self.name, "t": _thread()}, result=result)
        if not valid:
            raise WorkerdError("ERR_CONTEXT_ENDED")
        return self._node.value  # type: ignore[no-any-return]

    def drop(self) -> None:
        self._same_thread()
        rec = self._ctx.runtime.recorder
        with rec.atomic():
            node, self._node = self._node, None
            if node is None:
                return
            if self._ctx.reverse_valid:
                self._ctx.owned.unlink(node)
            rec.emit("drop_reverse", {"o": self.name, "t": _thread()})


class GcThread:
    """The garbage collector: an OS thread named ``gc`` that finalises wrappers when asked.

    `collect(fn)` runs ``fn`` (typically ``handle.drop``) on the GC thread and waits for it,
    like V8 finalising a JS wrapper whose destructor destroys an IoOwn on whatever thread the
    GC runs on.
    """

    def __init__(self, name: str = "gc", recorder: Any = None) -> None:
        self.name = name
        #: the runtime's recorder (a pooled GC thread gets the borrowing runtime's)
        self.recorder = recorder
        self._jobs: _queue.Queue[tuple[Callable[[], Any], threading.Event, list[BaseException]] | None] = (
            _queue.Queue()
        )
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, done, errors = job
            edge = getattr(done, "edge", None)
            try:
                if edge is not None:
                    self.recorder.sync_event("wait", edge=edge)
                fn()
            except BaseException as e:  # reported to the caller of collect()
                errors.append(e)
            finally:
                if edge is not None:
                    self.recorder.sync_event("post", edge=edge + ":done")
                self._jobs.task_done()
                done.set()

    def collect(self, *finalizers: Callable[[], Any], timeout: float = 10.0) -> None:
        """Run each finaliser on the GC thread, in order; re-raise the first error."""
        for fn in finalizers:
            done, errors = self.submit(fn)
            if not done.wait(timeout):
                raise TimeoutError("GC thread did not finish a finaliser")
            if getattr(done, "edge", None) is not None:
                self.recorder.sync_event("wait", edge=done.edge + ":done")  # type: ignore[attr-defined]
            if errors:
                raise errors[0]

    def submit(self, fn: Callable[[], Any]) -> tuple[threading.Event, list[BaseException]]:
        """Queue one finaliser without waiting: (done event, errors).  The hand-off is recorded
        (``note.post`` here, ``note.wait`` on the GC thread) when the recorder records synchronisation."""
        done = threading.Event()
        errors: list[BaseException] = []
        rec = self.recorder
        if rec is not None and rec.sync:
            edge = rec.new_id("gc-job")
            done.edge = edge  # type: ignore[attr-defined]
            rec.yield_point()
            rec.sync_event("post", edge=edge)
        self._jobs.put((fn, done, errors))
        return done, errors

    def idle(self) -> bool:
        """No finaliser queued or running (the thread waits for the next job)."""
        return self._jobs.unfinished_tasks == 0

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(5)
