"""The trace recorder: every state change the models care about, as iospec trace v1 events.

An event is recorded *atomically with the state change it describes*: the runtime makes the
change and calls `Recorder.emit` while holding the recorder's single lock (`Recorder.atomic`).
The recorder lock is always the innermost lock the runtime takes (after a DeleteQueue's mutex,
after a Worker::Lock), so ``seq`` order is a real interleaving of the threads' steps.

The format is docs/trace-format.md: a header line, then ``{"seq", "op", "args", "result"?,
"outputs"?, "thread", "task"?, "ts"}`` per event (``task``: the event-loop step's task or callback,
when synchronisation is recorded; `reference_impl.loop.LoopStep`).  ``op`` is a model action name (``model.context``,
``model.ownership``, and the lifecycle/entrypoint/actor/locks models); ``args`` are the
action's parameter names.  Sinks are pluggable: in memory, an NDJSON file, or a callback
(the live monitor is a callback sink).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from reference_impl.loop import LoopStep, current_step

__all__ = [
    "SYNC_VERSION",
    "TRACE_VERSION",
    "CallbackSink",
    "Event",
    "MemorySink",
    "NdjsonSink",
    "Recorder",
    "Sink",
]

TRACE_VERSION = 1
#: what a trace with ``"sync": true`` records (docs/trace-format.md): 1 lock sections and the hand-offs the
#: program records itself; 2 also every hand-off to a runtime thread's event loop from another thread;
#: 3 also the steps inside each event loop: every event on a loop names its ``task`` (its unit of program
#: order), each step is a section of the loop's lock ``loop:<thread>`` whose ``after`` names the steps that
#: scheduled it, and branches on state the models see are recorded as ``note.read``
SYNC_VERSION = 3

Event = dict[str, Any]


class Sink:
    """Where events go.  ``header`` is called once, then ``event`` once per event, in ``seq`` order."""

    def header(self, header: Mapping[str, Any]) -> None:  # pragma: no cover - default is a no-op
        pass

    def event(self, event: Event) -> None:  # pragma: no cover - default is a no-op
        pass

    def close(self) -> None:
        pass


class MemorySink(Sink):
    """Keeps the header and every event in lists (tests read ``events``)."""

    def __init__(self) -> None:
        self.head: dict[str, Any] | None = None
        self.events: list[Event] = []

    def header(self, header: Mapping[str, Any]) -> None:
        self.head = dict(header)

    def event(self, event: Event) -> None:
        self.events.append(event)

    def ops(self) -> list[str]:
        return [e["op"] for e in self.events]

    def lines(self) -> list[str]:
        """The trace as NDJSON lines, header first."""
        out = [json.dumps(self.head)] if self.head is not None else []
        return out + [json.dumps(e, sort_keys=True) for e in self.events]


class NdjsonSink(Sink):
    """Writes NDJSON to a path or an open text file (flushed per line so a crash keeps the prefix)."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        if isinstance(target, (str, Path)):
            self._file: IO[str] = open(target, "w", encoding="utf-8")
            self._owned = True
        else:
            self._file = target
            self._owned = False

    def header(self, header: Mapping[str, Any]) -> None:
        self._write(dict(header))

    def event(self, event: Event) -> None:
        self._write(event)

    def _write(self, obj: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(obj, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._owned:
            self._file.close()


class CallbackSink(Sink):
    """Calls ``on_event(event)`` for each event (inside the recorder lock: keep it short, never block)."""

    def __init__(self, on_event: Callable[[Event], None], on_header: Callable[[Mapping[str, Any]], None] | None = None):
        self._on_event = on_event
        self._on_header = on_header

    def header(self, header: Mapping[str, Any]) -> None:
        if self._on_header is not None:
            self._on_header(header)

    def event(self, event: Event) -> None:
        self._on_event(event)


class Recorder:
    """Records events with strictly increasing ``seq`` under one lock.

    Use ``with recorder.atomic(): <change state>; recorder.emit(...)``.  The lock is re-entrant
    so a step that emits several events (``enter`` plus the deletions it processes) stays one
    critical section.  A recorder with no sinks still serialises steps (it costs one lock).
    """

    def __init__(self, sinks: list[Sink] | None = None, *, models: list[str] | None = None,
                 implementation: str = "reference", version: str = "0.1.0",
                 known_ops: set[str] | frozenset[str] | None = None, sync: bool = False) -> None:
        #: Operations of the listed models; any other op is recorded as ``note.<op>`` (skipped by checkers),
        #: so a trace stays checkable while the model of some event is not written yet.  None: keep every op.
        self.known_ops = known_ops
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._t0 = time.monotonic_ns()
        self.sinks: list[Sink] = list(sinks or [])
        self.header: dict[str, Any] = {
            "iospec_trace": TRACE_VERSION,
            "implementation": implementation,
            "version": version,
            "models": list(models or []),
        }
        if sync:
            self.header["sync"] = True
            self.header["sync_version"] = SYNC_VERSION
        for s in self.sinks:
            s.header(self.header)
        #: record synchronisation (``note.lock_acquire`` / ``note.lock_release`` / ``note.post`` / ``note.wait``)
        #: for predictive checking (docs/predictive-checking.md); off by default
        self.sync = sync
        #: a `reference_impl.scheduler.ControlledScheduler`: every outermost `atomic` section is a yield point
        self.scheduler: Any = None
        self._ids: dict[str, itertools.count[int]] = {}
        self.closed = False

    def add_sink(self, sink: Sink) -> None:
        with self._lock:
            sink.header(self.header)
            self.sinks.append(sink)

    def new_id(self, prefix: str) -> str:
        """A fresh identity like ``ctx-3`` (never reused within this recorder)."""
        with self._lock:
            counter = self._ids.setdefault(prefix, itertools.count(1))
            return f"{prefix}-{next(counter)}"

    @contextmanager
    def atomic(self) -> Iterator[None]:
        sched = self.scheduler
        outermost = sched is not None and not self.held()
        if outermost:
            sched.yield_point()
        try:
            with self._lock:
                yield
        finally:
            if outermost:
                sched.section_done()

    def yield_point(self) -> None:
        """A point where the controlled scheduler (if any) may switch threads (e.g. before taking a lock)."""
        sched = self.scheduler
        if sched is not None and not self.held():
            sched.yield_point()

    def sync_event(self, kind: str, **args: Any) -> None:
        """Record a synchronisation step (``note.<kind>``) if this recorder records synchronisation.

        Like every recorded step it is a yield point of the controlled scheduler.
        """
        if self.sync and not self.closed:
            with self.atomic():
                if not self.closed:  # a hand-off queued before the runtime closed may run after it
                    self.emit("note." + kind, args)

    def read(self, op: str, guard: str, args: Mapping[str, Any]) -> None:
        """Record that the calling step branched on guard ``guard`` of model action ``op`` (with ``args``) holding:
        the step went on to do what it did only because it held (``note.read``; predictive checking keeps
        every schedule in which it holds, docs/predictive-checking.md).  Call it inside `atomic` with the check."""
        if self.sync and not self.closed:
            self.emit("note.read", {"op": op, "guard": guard, "args": dict(args)})

    def close_step(self, step: LoopStep) -> None:
        """The callback of a loop step that recorded something returned: close its loop-lock section."""
        if self.closed:
            return
        sched = self.scheduler
        # a yield point only for a replay (which follows the release as a step); exploring, the step's last
        # recorded event was the yield point, and one more per step would only add decisions
        with self.atomic() if sched is not None and sched.replaying else self._lock:
            if not self.closed:
                self._write("note.lock_release", {"lock": step.lock, "edge": step.edge},
                            threading.current_thread().name, step.unit)

    def _open_step(self, step: LoopStep, thread: str) -> None:
        """The first event of a loop step: open its section of the loop's lock (after the steps that caused it)."""
        step.opened = True
        if step.unit is None:
            step.unit = self.new_id("cb")
        step.edge = self.new_id("step")
        args: dict[str, Any] = {"lock": step.lock}
        after: Sequence[str] = step.after()
        if after:
            args["after"] = list(after)
        self._write("note.lock_acquire", args, thread, step.unit)

    def post_handoff(self, **args: Any) -> str | None:
        """Record ``note.post`` of a fresh hand-off edge, ``handoff-<thread>-N`` (numbered per posting thread, in
        its program order: a replayed schedule that reorders threads names the same edges); None when nothing
        is recorded."""
        if not self.sync or self.closed:
            return None
        with self.atomic():
            if self.closed:
                return None
            edge = self.new_id(f"handoff-{threading.current_thread().name}")
            self.emit("note.post", {"edge": edge, **args})
            return edge

    def held(self) -> bool:
        """True if the calling thread holds the recorder lock (used by assertions)."""
        return self._lock._is_owned()  # type: ignore[attr-defined]

    def emit(self, op: str, args: Mapping[str, Any], *, result: str | None = None,
             outputs: Mapping[str, Any] | None = None, note: str | None = None, model: str | None = None) -> Event:
        """Record one event.  Call it inside `atomic` together with the change it describes.

        ``model`` names the model the op belongs to when another model has an op of the same
        name (the locks model's ``release`` is not ownership's): the event is a note unless
        that model is listed in the header.
        """
        if not op.startswith("note."):
            if (model is not None and model not in self.header["models"]) or (
                    self.known_ops is not None and op not in self.known_ops):
                op = "note." + op
        with self._lock:
            thread = threading.current_thread().name
            step = current_step() if self.sync else None
            if step is not None and not step.opened:
                self._open_step(step, thread)
            return self._write(op, args, thread, step.unit if step is not None else None, result=result,
                               outputs=outputs, note=note)

    def _write(self, op: str, args: Mapping[str, Any], thread: str, task: str | None, *, result: str | None = None,
               outputs: Mapping[str, Any] | None = None, note: str | None = None) -> Event:
        ev: Event = {"seq": next(self._seq), "op": op, "args": dict(args)}
        if result is not None:
            ev["result"] = result
        if outputs:
            ev["outputs"] = dict(outputs)
        if note:
            ev["note"] = note
        ev["thread"] = thread
        if task is not None:
            ev["task"] = task
        ev["ts"] = time.monotonic_ns() - self._t0
        for s in self.sinks:
            s.event(ev)
        return ev

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                for s in self.sinks:
                    s.close()
