"""A controlled scheduler for the reference implementation: who runs next is chosen, not raced.

Off by default.  ``Runtime(scheduler=ControlledScheduler(strategy))`` makes every point where
the runtime's threads can interleave a *yield point*: every recorded step (the outermost
``Recorder.atomic`` section: an enter, a queue push, a GC drop, a lock hand-over recorded as
``note.lock_acquire`` / ``note.lock_release``, a hand-off ``note.post`` / ``note.wait``) and the
moment before a `RecordedLock` (the DeleteQueue mutex) is taken.  A thread at a yield point
waits until the scheduler grants it; one granted thread runs at a time, up to its next yield
point (or until it blocks or goes idle, which the scheduler notices after ``quiet`` seconds).

Strategies (which waiting thread goes next):

* `RandomStrategy(seed)`: uniformly at random;
* `PCTStrategy(seed, depth, steps)`: probabilistic concurrency testing (Burckhardt et al. 2010):
  random distinct thread priorities, ``depth - 1`` priority-change points among the first
  ``steps`` decisions; the highest-priority waiting thread runs;
* `PriorityStrategy(order)`: fixed priorities (PCT with depth 1), used to force one schedule;
* `DFSStrategy` with `explore_dfs`: bounded depth-first search over the decisions (stateless:
  the scenario is re-run for every schedule);
* `ReplayStrategy(events)`: replay a schedule: the recorded steps happen exactly in the given
  order of ``(thread, op)``; a step that cannot happen in that order (a thread never reaches
  it) is reported as infeasible, naming the thread and the step it waited for.

Inside one event loop (a trace with ``"sync_version": 3``: a step on a loop is ``[thread, op,
task]``) the order of *loop steps* is chosen too: when a replay expects the next step of a loop
thread from task A, a ready step of another task B that the schedule runs later on that loop
is deferred (re-queued; `RuntimeLoop._track`), so the loop runs A's step first.  Only tasks
are deferred, by name: the tasks a scenario names (``signal:ctx-1``, ``job-3``) and others by
their order of first step on their loop (``task-N``).  A schedule that ends before the run does
(a witness ends at its violation) lists in ``later`` the tasks with a step after its end; their
steps are held back until the schedule's steps on that thread are done.

A *schedule file* is small JSON (`Schedule`): the scenario, the faults, the strategy and seed
that produced it, and the order of recorded steps.  Replaying it reproduces the run's order of
steps exactly.  This follows no workerd source: it is test machinery around the threads that
stand for workerd's (io/worker.c++ ``Worker::Lock``, io/io-own.c++ ``DeleteQueue``).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_impl.trace import CallbackSink

__all__ = [
    "ControlledScheduler",
    "DFSStrategy",
    "PCTStrategy",
    "PriorityStrategy",
    "RandomStrategy",
    "ReplayStrategy",
    "Schedule",
    "Strategy",
]

SCHEDULE_VERSION = 1


class Strategy:
    """Chooses the next thread among those waiting at a yield point."""

    name = "strategy"

    def choose(self, waiting: Sequence[str], step: int) -> str:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class RandomStrategy(Strategy):
    name = "random"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def choose(self, waiting: Sequence[str], step: int) -> str:
        return self.rng.choice(sorted(waiting))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed}


class PCTStrategy(Strategy):
    """PCT: random priorities, ``depth - 1`` change points; the highest priority waiting thread runs."""

    name = "pct"

    def __init__(self, seed: int, depth: int = 2, steps: int = 60) -> None:
        self.seed = seed
        self.depth = depth
        self.steps = steps
        self.rng = random.Random(seed)
        self.priority: dict[str, int] = {}
        self.changes = sorted(self.rng.sample(range(1, max(steps, depth) + 1), max(depth - 1, 0)))

    def _prio(self, thread: str) -> int:
        p = self.priority.get(thread)
        if p is None:
            # initial priorities are above every change-point priority (1 .. depth-1)
            p = self.priority[thread] = self.depth + self.rng.randrange(1_000_000)
        return p

    def choose(self, waiting: Sequence[str], step: int) -> str:
        best = max(sorted(waiting), key=self._prio)
        if step in self.changes:
            self.priority[best] = self.depth - 1 - self.changes.index(step)
            best = max(sorted(waiting), key=self._prio)
        return best

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "depth": self.depth, "steps": self.steps}


class PriorityStrategy(Strategy):
    """Fixed priorities: the first thread of ``order`` that is waiting runs (others: by name)."""

    name = "priority"

    def __init__(self, order: Sequence[str]) -> None:
        self.order = list(order)

    def choose(self, waiting: Sequence[str], step: int) -> str:
        for t in self.order:
            if t in waiting:
                return t
        return sorted(waiting)[0]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "order": self.order}


class DFSStrategy(Strategy):
    """Follow a forced prefix of choice indices, then the default: keep the thread that ran last if it is
    waiting, else the first by name.  Records the number of alternatives at each decision so
    `next_dfs_prefix` can backtrack (``depth`` bounds the preemptions per schedule)."""

    name = "dfs"

    def __init__(self, prefix: Sequence[int] = ()) -> None:
        self.prefix = list(prefix)
        self.taken: list[tuple[int, int]] = []  # (choice index, number of alternatives)
        self.last = ""

    def choose(self, waiting: Sequence[str], step: int) -> str:
        options = sorted(waiting)
        if self.last in options:  # the default keeps the running thread: a non-default choice is a preemption
            options.remove(self.last)
            options.insert(0, self.last)
        i = self.prefix[len(self.taken)] if len(self.taken) < len(self.prefix) else 0
        i = min(i, len(options) - 1)
        self.taken.append((i, len(options)))
        self.last = options[i]
        return options[i]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "prefix": [i for i, _ in self.taken]}


def next_dfs_prefix(taken: Sequence[tuple[int, int]], depth: int) -> list[int] | None:
    """The next schedule of a bounded DFS: backtrack to the latest decision with an untried alternative,
    allowing at most ``depth`` non-default choices per schedule (a delay bound); None: explored."""
    choices = list(taken)
    while choices:
        i, n = choices.pop()
        if i + 1 < n and sum(1 for c, _ in choices if c > 0) + 1 <= depth:
            return [c for c, _ in choices] + [i + 1]
    return None


class ReplayStrategy(Strategy):
    """Replay: the steps happen in the order of ``events`` (``[thread, op]`` pairs)."""

    name = "replay"

    def __init__(self, events: Sequence[Sequence[str | None]],
                 later: Mapping[str, Sequence[str]] | None = None) -> None:
        self.events = [_step_tuple(e) for e in events]
        #: per thread, tasks whose steps come after the schedule's end (a witness's steps past its violation)
        self.later = {t: frozenset(units) for t, units in (later or {}).items()}

    def choose(self, waiting: Sequence[str], step: int) -> str:  # pragma: no cover - replay is driven by events
        raise AssertionError("the replay strategy is driven by the expected events")


@dataclass
class Schedule:
    """A committable schedule: replaying ``events`` reproduces the order of recorded steps."""

    scenario: str
    faults: list[str]
    strategy: dict[str, Any]
    events: list[list[str | None]]
    note: str = ""
    #: per thread, tasks with a step after the last of ``events`` (ReplayStrategy.later); empty for a whole run
    later: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {"iospec_schedule": SCHEDULE_VERSION, "scenario": self.scenario, "faults": self.faults,
               "strategy": self.strategy, "note": self.note, "events": self.events}
        if self.later:
            out["later"] = self.later
        return out

    def replay_strategy(self) -> ReplayStrategy:
        return ReplayStrategy(self.events, self.later)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @staticmethod
    def load(path: str | Path) -> Schedule:
        p = Path(path)
        try:
            obj = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{p}: not a schedule file ({e})") from None
        if not isinstance(obj, dict) or obj.get("iospec_schedule") != SCHEDULE_VERSION:
            raise ValueError(f"{p}: not a schedule file (needs \"iospec_schedule\": {SCHEDULE_VERSION})")
        events = obj.get("events")
        if not isinstance(events, list) or not all(
                isinstance(e, list) and 2 <= len(e) <= 4 and all(x is None or isinstance(x, str) for x in e)
                for e in events):
            raise ValueError(f"{p}: 'events' must be a list of [thread, op] or [thread, op, task, lock] lists")
        return Schedule(str(obj.get("scenario", "")), list(obj.get("faults", [])), dict(obj.get("strategy", {})),
                        [list(e) for e in events], str(obj.get("note", "")), later_units(obj, p))


def later_units(obj: dict[str, Any], path: Path) -> dict[str, list[str]]:
    """A schedule's or a witness's ``later`` (thread -> task names), checked."""
    later = obj.get("later", {})
    if not isinstance(later, dict) or not all(
            isinstance(units, list) and all(isinstance(u, str) for u in units) for units in later.values()):
        raise ValueError(f"{path}: 'later' must map each thread to a list of task names")
    return {str(t): list(units) for t, units in later.items()}


@dataclass
class ReplayOutcome:
    """How a replay went: followed to the end, or stuck (infeasible) or diverged at step ``position``."""

    followed: int
    total: int
    stuck: str = ""
    diverged: str = ""

    @property
    def complete(self) -> bool:
        return not self.stuck and not self.diverged and self.followed == self.total


@dataclass
class _ThreadState:
    granted: bool = False
    arrived_at: float = 0.0


class ControlledScheduler:
    """See the module docstring.  ``quiet``: how long a granted thread may run before the scheduler
    treats it as blocked or idle and decides again; ``stuck``: how long a replay waits for a thread."""

    def __init__(self, strategy: Strategy, *, quiet: float = 0.004, stuck: float = 2.0,
                 max_steps: int = 20_000) -> None:
        self.strategy = strategy
        self.quiet = quiet
        self.stuck = stuck
        self.max_steps = max_steps
        self._cond = threading.Condition()
        self._waiting: dict[str, float] = {}
        self._known: set[str] = set()
        self._granted: set[str] = set()
        self._running: str | None = None
        self._running_since = 0.0
        self._last_arrival = 0.0
        self.active = False
        self.steps = 0
        self.decisions: list[str] = []
        self.events: list[list[str | None]] = []
        self._replay: list[tuple[str, str, str | None, str | None]] | None = (
            list(strategy.events) if isinstance(strategy, ReplayStrategy) else None)
        self._later = strategy.later if isinstance(strategy, ReplayStrategy) else {}
        self.deferred = 0  # loop steps run later than the loop would have run them (replay)
        #: a schedule recorded before loop steps were (sync_version 2: no step names a task): the events only
        #: sync_version 3 records (loop-step sections, branch reads, cancellation edges) are not part of it
        self._legacy = self._replay is not None and all(r[2] is None for r in self._replay)
        self._pos = 0
        self.outcome = ReplayOutcome(0, len(self._replay or []))
        self.last_event: dict[str, str] = {}
        self.blocked: dict[str, str] = {}
        self.unrecorded_sync: list[str] = []
        self._decider: threading.Thread | None = None

    @property
    def replaying(self) -> bool:
        return self._replay is not None

    # -- wiring ------------------------------------------------------------------------------------
    def attach(self, runtime: Any) -> None:
        rec = runtime.recorder
        rec.add_sink(CallbackSink(self._on_event))
        rec.scheduler = self
        self.active = True
        self._last_arrival = self._running_since = time.monotonic()
        self._decider = threading.Thread(target=self._decide_loop, name="scheduler", daemon=True)
        self._decider.start()

    def stop(self) -> None:
        """Release every waiting thread; from now on yield points return at once."""
        with self._cond:
            self.active = False
            self._cond.notify_all()

    # -- called by the runtime's threads ---------------------------------------------------------------
    def yield_point(self) -> None:
        me = threading.current_thread().name
        with self._cond:
            if not self.active:
                return
            self._known.add(me)
            now = time.monotonic()
            self._waiting[me] = now
            self._last_arrival = now
            if self._running == me:
                self._running = None
            self._cond.notify_all()
            while self.active and me not in self._granted:
                self._cond.wait(0.5)
            self._granted.discard(me)
            self._waiting.pop(me, None)

    def section_done(self) -> None:
        me = threading.current_thread().name
        with self._cond:
            if self._running == me and self._replay is not None:
                self._running = None
                self._cond.notify_all()

    def note_blocked(self, what: str | None) -> None:
        """A thread is about to block outside a yield point (on ``what``, e.g. a lock and its holder)."""
        me = threading.current_thread().name
        with self._cond:
            if what is None:
                self.blocked.pop(me, None)
            else:
                self.blocked[me] = what

    def defer_step(self, thread: str, unit: str | None) -> bool:
        """Replay: should the loop of ``thread`` run this step of task ``unit`` later?  Yes if the schedule's next
        step on that thread belongs to another task or callback and ``unit`` has a later step there, in the
        schedule or after its end (``ReplayStrategy.later``)."""
        if unit is None or self._replay is None:
            return False
        with self._cond:
            if not self.active:
                return False
            rest = [r[2] for r in self._replay[self._pos:] if r[0] == thread]
            if not rest or rest[0] == unit or rest[0] is None:
                return False
            if unit not in rest and unit not in self._later.get(thread, ()):
                return False
            self.deferred += 1
            return True

    def _on_event(self, event: dict[str, Any]) -> None:
        step = schedule_step(event)
        thread, op = str(step[0]), str(step[1])
        got = _step_tuple(step)
        with self._cond:
            if not self.active:
                return  # after `stop` (e.g. the runtime shutting down) threads run freely: not part of the schedule
            self.events.append(step)
            self.last_event[thread] = op
            if self._replay is None or (self._legacy and _loop_step_only(event)):
                return
            if self._pos < len(self._replay):
                want = self._replay[self._pos]
                matches = _same_step(want, got)
                if not matches and op.startswith("note.") and not any(
                        _same_step(r, got) for r in self._replay[self._pos:]):
                    # synchronisation the schedule does not have: the trace it came from did not record it (or,
                    # in a witness, a step the violation does not need)
                    self.unrecorded_sync.append(f"{thread} {op} {json.dumps(event.get('args', {}))}")
                    return
                if not matches:
                    self.outcome.diverged = (f"step {self._pos + 1}: expected {_step_name(want)}, "
                                             f"but {_step_name(got)} was recorded")
                    self.active = False
                else:
                    self._pos += 1
                    self.outcome.followed = self._pos
                    self._last_arrival = time.monotonic()
            if self._pos >= len(self._replay):
                self.active = False  # the schedule is followed; the rest runs freely
            self._cond.notify_all()

    # -- the decider -----------------------------------------------------------------------------------
    def _grant(self, thread: str) -> None:
        self._granted.add(thread)
        self._waiting.pop(thread, None)
        self._running = thread
        self._running_since = time.monotonic()
        self.decisions.append(thread)
        self.steps += 1
        self._cond.notify_all()

    def _decide_loop(self) -> None:
        with self._cond:
            while self.active:
                if self._replay is not None:
                    self._decide_replay()
                else:
                    self._decide_explore()

    def _decide_replay(self) -> None:
        assert self._replay is not None
        if self._pos >= len(self._replay):
            self.active = False
            self._cond.notify_all()
            return
        thread, op = self._replay[self._pos][:2]
        now = time.monotonic()
        if self._running is None and thread in self._waiting:
            self._grant(thread)
            return
        if self._running is not None and now - self._running_since < self.stuck:
            self._cond.wait(self.quiet)
            return
        if self._running is not None:
            self._running = None
        waited_since = max(self._last_arrival, self._running_since)
        if now - waited_since >= self.stuck:
            others = ", ".join(sorted(self._waiting)) or "nobody"
            prev = self.last_event.get(thread, "its first step")
            why = self.blocked.get(thread)
            if why is not None:
                edge = (f"missing synchronisation edge: {thread} is blocked on {why}, so {thread}'s {op} must "
                        f"follow that release; the trace does not record it")
            else:
                edge = (f"missing synchronisation edge: {thread}'s {op} waits for something another thread does "
                        f"later in this schedule, which the trace does not record")
            if self.unrecorded_sync:
                edge += f" (the replay recorded synchronisation absent from the schedule: {self.unrecorded_sync[-1]})"
            self.outcome.stuck = (
                f"infeasible at step {self._pos + 1}: {thread} never reached {op} (its last step: {prev}; "
                f"waiting at yield points: {others}); {edge}")
            self.active = False
            self._cond.notify_all()
            return
        self._cond.wait(self.quiet)

    def _decide_explore(self) -> None:
        now = time.monotonic()
        if self._running is not None:
            if now - max(self._running_since, self._last_arrival) < self.quiet:
                self._cond.wait(self.quiet)
                return
            self._running = None  # blocked or idle: decide again
        if not self._waiting:
            self._cond.wait(self.quiet)
            return
        all_here = self._known <= set(self._waiting)
        if not all_here and now - self._last_arrival < self.quiet:
            self._cond.wait(self.quiet)
            return
        if self.steps >= self.max_steps:
            self.active = False
            self._cond.notify_all()
            return
        self._grant(self.strategy.choose(sorted(self._waiting), self.steps + 1))


def _loop_step_only(event: dict[str, Any]) -> bool:
    """An event that only a sync_version 3 trace records."""
    op, args = event.get("op"), event.get("args", {})
    return (op == "note.read" or (op in ("note.lock_acquire", "note.lock_release")
                                  and str(args.get("lock", "")).startswith("loop:"))
            or (op == "note.wait" and args.get("via") == "cancel"))


def schedule_step(event: dict[str, Any]) -> list[str | None]:
    """A trace event as a schedule step: ``[thread, op]``, then its ``task`` (on an event loop) and, for a lock
    note, the lock (``[thread, op, task-or-null, lock]``), so that a loop step's section and a DeleteQueue
    mutex's section of one task are told apart."""
    step: list[str | None] = [str(event.get("thread")), str(event.get("op"))]
    task = event.get("task")
    lock = event.get("args", {}).get("lock") if step[1] in ("note.lock_acquire", "note.lock_release") else None
    if task is not None or lock is not None:
        step.append(None if task is None else str(task))
    if lock is not None:
        step.append(str(lock))
    return step


def _step_tuple(e: Sequence[Any]) -> tuple[str, str, str | None, str | None]:
    return (str(e[0]), str(e[1]), None if len(e) < 3 or e[2] is None else str(e[2]),
            None if len(e) < 4 or e[3] is None else str(e[3]))


def _same_step(want: tuple[str, str, str | None, str | None], got: tuple[str, str, str | None, str | None]) -> bool:
    """The recorded step is the schedule's (a task or lock the schedule does not name matches any)."""
    return want[:2] == got[:2] and all(w is None or g is None or w == g for w, g in zip(want[2:], got[2:]))


def _step_name(step: Sequence[Any]) -> str:
    return (f"{step[0]} {step[1]}" + (f" (task {step[2]})" if len(step) > 2 and step[2] is not None else "")
            + (f" ({step[3]})" if len(step) > 3 and step[3] is not None else ""))


@dataclass
class RunResult:
    """One controlled run of a scenario."""

    schedule: Schedule
    trace: list[dict[str, Any]]
    header: dict[str, Any]
    violation: Any
    replay: ReplayOutcome | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def caught(self) -> bool:
        return self.violation is not None

    def trace_lines(self) -> list[str]:
        return [json.dumps(self.header)] + [json.dumps(e, sort_keys=True) for e in self.trace]
