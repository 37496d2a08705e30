"""Predictive checking: does any schedule consistent with a recorded run break an ownership rule?

One run of the reference implementation (or any implementation writing iospec traces) shows
one interleaving of its threads.  This module asks z3 whether another interleaving of *the
same steps*, one the run's synchronisation allows, reaches a step the model forbids or a
state that breaks one of its invariants (the ownership rules of io/io-own.{h,c++} and
io/io-context.{h,c++}: I/O outside the owner, deletion on a foreign thread, the DeleteQueue
written or closed without its mutex, double or missing destruction, JS after abort).

The encoding (an order variable per event; "maximal causal model" style, windowed as in
RV-Predict):

* **Program order**: the events of one unit keep their order: an OS thread (the trace's ``thread``), or
  on an event loop (``"sync_version": 3``: events name their ``task``) one asyncio task or loop callback.
* **Synchronisation** recorded in the trace (header ``"sync": true``): two sections of the same
  lock (``note.lock_acquire`` .. ``note.lock_release``, e.g. a DeleteQueue mutex; and the locks
  model's ``take_sync_lock`` .. ``release_sync_lock``, ``Worker::Lock`` per isolate) on different
  threads do not overlap; a hand-off ``note.post`` {edge} happens before ``note.wait`` {edge}
  (``"sync_version": 2`` traces have one for every hand-off to an event loop from another thread; version 3
  records each loop step as a section of the loop's lock ``loop:<thread>`` whose release posts an ``edge``
  and whose acquire waits for the steps that scheduled it, ``after``).
* **Branches** (``note.read``): a step that went on only because a model guard held (the signal task's "is
  the context alive?") keeps it holding: the guard is the model's, named by action and label.
* **Identity flow**: the event that first names an identity (the one that creates a context
  or object) precedes every other event naming it (a thread cannot hold a handle before it exists).
* **Reads-from**: every model state cell an event reads has the value written by the last
  writer of that cell *in the reordered run* (writers: the events whose recorded step changed
  the cell, from the model's own state changes); every event before the violation must behave
  as it did in the run: its guard and checks hold (so it reports the same result) and it writes
  what it wrote (so the implementation took the same branch).
* **The violation** at a cut ``C``: the event ``k`` placed at ``C`` is not allowed by the model
  (a declared guard conjunct is false), or ``k``'s guard and checks hold (it reports what it
  reported) but it leaves a state breaking a (non-lemma) invariant that reads what ``k`` writes.
  (A state breaking an invariant is first reached by such a step, so this covers every cut.)

No rule is written here: guards, checks, updates and invariants are the model's expressions
translated by `properties.z3.encoding.Translator` over a *reads-from* view of the state; the
mapping of trace events to model actions is the monitor's (`properties.monitor.Monitor`).
A witness found by z3 is re-checked by running the monitor over the reordered events.

What happens-before (program order and hand-offs, as vector clocks) settles is not encoded:
writes a reader cannot see, comparisons whose outcome is fixed, events whose every readable
cell has one value in every schedule, constraints it implies.  This changes no answer.

Windows: the trace is checked in overlapping windows of ``window`` events (stride half a
window); events before a window keep their recorded order and its state is the recorded
state at its start.  So a violation needs its reordered events within one window.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import z3

from model.core import Model
from model.core.expr import Select
from model.core.model import Action, Func, FuncAssign, Invariant, StateVar
from model.core.sorts import BoolSort, OptSort, Sort
from model.core.sparse import Operation
from properties.monitor import Monitor, MonitorViolation
from properties.tracecheck import TraceFormatError, _check_event, _header, read_trace
from properties.z3.encoding import (
    Encoding,
    PostState,
    SymState,
    Translator,
    Value,
    _and,
    _concrete,
    _not,
    _or,
    decls_read,
    mk_and,
    mk_distinct,
    mk_eq,
    mk_implies,
    mk_ite,
    mk_le,
    mk_lt,
    mk_or,
)

__all__ = ["PredictReport", "Witness", "predict_trace", "predict_events"]

CellKey = tuple[object, tuple[int, ...]]  # (StateVar | Func, index values)


class _BadEvent(Exception):
    """A malformed synchronisation event (reported as a one-line TraceFormatError naming file and line)."""


# ---------------------------------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Event:
    index: int  # position in the recorded run (0-based, header excluded)
    line: int
    raw: dict[str, Any]
    thread: str
    op: str
    operation: Operation | None = None
    twin: Action | None = None  # the action the monitor applied (the operation or its rejected twin)
    env: dict[object, int] = field(default_factory=dict)
    ids: set[tuple[str, int]] = field(default_factory=set)
    changes: dict[CellKey, int] = field(default_factory=dict)
    #: a ``note.read``: ``twin`` is the one guard conjunct the step branched on; never itself a violation
    read: bool = False

    @property
    def model(self) -> bool:
        return self.twin is not None

    def bind(self, twin: Action, vals: Sequence[int]) -> None:
        """The action this event is (or reads the guard of) and its decoded arguments; the identities it names."""
        self.twin = twin
        self.env = dict(zip(twin.params, vals))
        for p, v in zip(twin.params, vals):
            ids = p.sort.id_sort()
            if ids is not None and v >= 0:
                self.ids.add((ids.name, v))


@dataclass
class Witness:
    """A feasible reordering ending in a violation."""

    order: list[int]  # recorded-run indices of the events, in the witness order
    violation: MonitorViolation
    window: tuple[int, int]
    events: list[dict[str, Any]]

    def schedule(self) -> list[list[str | None]]:
        """``[thread, op]`` per step; then the ``task`` of a step on an event loop (sync_version 3) and the lock
        of a lock note: ``[thread, op, task-or-null, lock]`` (reference_impl.scheduler.schedule_step)."""
        out: list[list[str | None]] = []
        for i in self.order:
            e = self.events[i]
            step: list[str | None] = [str(e.get("thread")), str(e["op"])]
            lock = e.get("args", {}).get("lock") if step[1] in ("note.lock_acquire", "note.lock_release") else None
            if e.get("task") is not None or lock is not None:
                step.append(None if e.get("task") is None else str(e["task"]))
            if lock is not None:
                step.append(str(lock))
            out.append(step)
        return out

    def later_units(self) -> dict[str, list[str]]:
        """Per thread, the tasks and hand-offs with a recorded step after the violation: a replay holds their
        steps back until the witness's steps on that thread are done (without that a step the loop happens to
        run first, say the shutdown's cancelling task, could cancel the task the witness runs next)."""
        before = set(self.order)
        later: dict[str, set[str]] = {}
        for i, e in enumerate(self.events):
            if i not in before and e.get("task") is not None:
                later.setdefault(str(e.get("thread")), set()).add(str(e["task"]))
        return {t: sorted(units) for t, units in sorted(later.items())}

    def to_json(self, header: Mapping[str, Any], source: str) -> dict[str, Any]:
        v = self.violation
        return {
            "iospec_witness": 1,
            "trace": source,
            "scenario": header.get("scenario", ""),
            "faults": header.get("faults", []),
            "window": list(self.window),
            "violation": {"kind": v.kind, "message": v.message, "rules": list(v.rules),
                          "event": dict(v.event) if v.event is not None else None},
            "order": [self.events[i]["seq"] for i in self.order],
            "events": self.schedule(),
            "later": self.later_units(),
            "reordered": [self.events[i] for i in self.order[self._first_moved():]],
        }

    def _first_moved(self) -> int:
        for pos, i in enumerate(self.order):
            if i != pos:
                return max(0, pos - 3)
        return max(0, len(self.order) - 5)


@dataclass
class PredictReport:
    path: str
    model: str
    events: int
    windows: int
    window: int
    seconds: float
    witness: Witness | None = None
    recorded_violation: MonitorViolation | None = None
    header: dict[str, Any] = field(default_factory=dict)
    solver_seconds: float = 0.0  # building and solving the windows' problems
    z3_seconds: float = 0.0  # of which z3 solving (Solver.check)

    @property
    def ok(self) -> bool:
        return self.witness is None and self.recorded_violation is None

    def _per_thread(self) -> bool:
        version = self.header.get("sync_version", 1)
        return isinstance(version, int) and version < 3

    def summary(self) -> str:
        if self.recorded_violation is not None:
            return (f"{self.path}: the recorded run itself violates the model (iospec check-trace shows it):\n"
                    f"{self.recorded_violation.report()}")
        if self.witness is None:
            return (f"{self.path}: no feasible violation among all schedules consistent with this run "
                    f"({self.events:,} events, {self.seconds:.2f} s; model {self.model}, "
                    f"windows of {self.window} events"
                    + ("; the tasks of one event loop keep their recorded order: the trace does not say which "
                       "task recorded what (sync_version < 3)" if self._per_thread() else "") + ")")
        w = self.witness
        lines = [f"{self.path}: FEASIBLE VIOLATION in a schedule consistent with this run "
                 f"({self.events:,} events, {self.seconds:.2f} s)",
                 f"  {w.violation}", "  the reordered steps (recorded seq, thread, op, args):"]
        for e in w.to_json(self.header, self.path)["reordered"]:
            lines.append(f"    seq {e['seq']:>6} {e.get('thread')!s:<10} {e['op']} {json.dumps(e['args'])}")
        if int(self.header.get("sync_version", 1)) < 2:
            lines.append("  (the trace records hand-offs only where the program recorded them (sync_version 1): the "
                         "witness may need an edge the trace lacks; replay it to confirm)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# the z3 universe of a window
# ---------------------------------------------------------------------------------------------------


_TRUE, _FALSE = z3.BoolVal(True), z3.BoolVal(False)
_SYNC_VERSIONS = 3  # the newest "sync_version" this reads (docs/trace-format.md)
_PROBE_MS = 500  # a witness-shortening probe (z3 proving no shorter witness exists can take minutes)
_WORKER_LOCK = {"take_sync_lock": "lock_acquire", "release_sync_lock": "lock_release"}
_INTS: dict[int, Any] = {}


class _WindowEncoding(Encoding):
    """Model values as z3 Bool / Int; quantifiers range over the identities of the window."""

    parametric = False

    def __init__(self, model: Model, consts: Mapping[str, int], domain: Mapping[str, list[int]]) -> None:
        super().__init__(model)
        self.consts = dict(consts)
        self.domain = domain

    def z3sort(self, sort: Sort) -> Any:
        return z3.BoolSort() if isinstance(sort, BoolSort) else z3.IntSort()

    def value_of(self, sort: Sort, value: int) -> Value:
        return bool(value) if isinstance(sort, BoolSort) else int(value)

    def lit(self, sort: Sort, value: Value) -> Any:
        if isinstance(sort, BoolSort):
            return _TRUE if value else _FALSE
        return _int(int(value))

    def const(self, c: Any) -> Value:
        return self.value_of(c.sort, self.consts[c.name])

    def upper(self, sort: Any) -> Value:
        return 1 << 30

    def values(self, sort: Sort) -> list[int]:
        ids = sort.id_sort()
        if ids is not None:
            vals = list(self.domain.get(ids.name, []))
            return ([-1] + vals) if isinstance(sort, OptSort) else vals
        return list(sort.values({}))

    def quantify(self, kind: str, sort: Sort, body: Callable[[Value], Value], name: str) -> Value:
        parts = (body(self.value_of(sort, v)) for v in self.values(sort))
        return _and(parts) if kind == "forall" else _or(parts)

    def in_domain(self, sort: Sort, v: Value) -> Value:
        return True


class _CutState(SymState):
    """The state just before the cut ``cut`` (an order term): each cell holds what its last writer
    before the cut wrote, or its value at the start of the window."""

    def __init__(self, win: _Window, cut: Any, reader: _Event | None) -> None:
        self.win = win
        self.cut = cut
        self.reader = reader
        self._memo: dict[object, Value] = {}

    def var(self, decl: StateVar) -> Value:
        return self.win.read((decl, ()), self)

    def cell(self, func: Func, args: Sequence[Value]) -> Value:
        if all(_concrete(a) for a in args):
            return self.win.read((func, tuple(int(a) for a in args)), self)
        key = (func, tuple(int(a) if _concrete(a) else ("z", a.get_id()) for a in args))
        hit = self._memo.get(key)
        if hit is None:
            enc = self.win.enc
            choices = [[int(a)] if _concrete(a) else enc.values(s) for a, s in zip(args, func.index_sorts)]
            combos = _product(choices)
            out: Value = self.cell(func, combos[-1])
            for idx in reversed(combos[:-1]):
                cond = _and(enc.eq(a, x, s) for a, x, s in zip(args, idx, func.index_sorts))
                out = enc.ite(cond, self.cell(func, idx), out, func.value_sort)
            hit = self._memo[key] = out
        return hit


def _id_name(sort: Sort) -> str | None:
    ids = sort.id_sort()
    return None if ids is None else ids.name


def _int(v: int) -> Any:
    """An integer literal (cached: z3.IntVal is comparatively costly)."""
    hit = _INTS.get(v)
    if hit is None:
        hit = _INTS[v] = z3.IntVal(v)
    return hit


def _product(choices: list[list[int]]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for c in choices:
        out = [o + (x,) for o in out for x in c]
    return out


class _Window:
    """The z3 problem of one window of events."""

    def __init__(self, pred: _Predictor, lo: int, hi: int) -> None:
        self.pred = pred
        self.lo, self.hi = lo, hi
        self.events = pred.events[lo:hi]
        domain: dict[str, set[int]] = defaultdict(set)
        for e in self.events:
            for s, v in e.ids:
                domain[s].add(v)
            for key, val in e.changes.items():
                decl, idx = key
                sorts = decl.index_sorts if isinstance(decl, Func) else ()
                for srt, x in zip(sorts, idx):
                    ids = srt.id_sort()
                    if ids is not None:
                        domain[ids.name].add(x)
                target = _sort_of(key).id_sort()
                if target is not None and val >= 0:
                    domain[target.name].add(val)
        self.enc = _WindowEncoding(pred.model, pred.consts, {k: sorted(v) for k, v in domain.items()})
        self.order = {e.index: z3.Int(f"o{e.index}") for e in self.events}
        self.cut = z3.Int("cut")
        # writers of each cell in this window, in recorded order: (event, value written)
        self.writers: dict[CellKey, list[tuple[_Event, int]]] = defaultdict(list)
        for e in self.events:
            for key, val in e.changes.items():
                self.writers[key].append((e, val))
        self._cross: dict[str, list[CellKey]] = {}
        self._interacts: dict[int, bool] = {}
        self._states: dict[int, tuple[_CutState, Translator]] = {}
        self._guards: dict[tuple[int, int], Value] = {}
        self._at_reader: dict[tuple[CellKey, int], tuple[list[tuple[_Event, int]],
                                                         dict[str, list[tuple[_Event, int]]]]] = {}

    # -- reads-from ---------------------------------------------------------------------------------------
    def start_value(self, key: CellKey) -> int:
        return self.pred.value_before(key, self.lo)

    def read(self, key: CellKey, st: _CutState) -> Value:
        """The cell's value just before ``st.cut``: what its last writer before the cut wrote.

        Happens-before (program order and hand-offs) settles most of it: the reader's own earlier writes
        and the writes that happen before it precede the cut in every schedule, so of each thread only the
        last counts, and one that happens before another never does; writes that happen after the reader
        never precede it.  Only the remaining (concurrent) writers are compared with the cut, each thread's
        as an if-then-else chain along its program order: linear in the number of writers.  A cell whose
        candidates all wrote one value reads that value.
        """
        memo_key = ("read", key)
        hit = st._memo.get(memo_key)
        if hit is not None:
            return hit
        hit = st._memo[memo_key] = self._read(key, st)
        return hit

    def _writers_at(self, key: CellKey, reader: _Event | None) -> tuple[list[tuple[_Event, int]],
                                                                         dict[str, list[tuple[_Event, int]]]]:
        """The writers of ``key`` that can be the last one before ``reader``: (those that precede it in every
        schedule and are not overwritten by another of them, per thread those that may precede it or not)."""
        memo_key = (key, -1 if reader is None else reader.index)
        hit = self._at_reader.get(memo_key)
        if hit is None:
            hit = self._at_reader[memo_key] = self._classify(key, reader)
        return hit

    def _classify(self, key: CellKey, reader: _Event | None) -> tuple[list[tuple[_Event, int]],
                                                                       dict[str, list[tuple[_Event, int]]]]:
        hb = self.pred.happens_before
        last_fixed: dict[str, tuple[_Event, int]] = {}  # per thread, its last write that precedes the reader
        concurrent: dict[str, list[tuple[_Event, int]]] = {}
        for w, v in self.writers.get(key, ()):
            if reader is None:
                concurrent.setdefault(w.thread, []).append((w, v))
            elif w.thread != reader.thread and self.pred.hidden_in_step(w, key, reader):
                continue
            elif w.thread == reader.thread:
                if w.index < reader.index:
                    last_fixed[w.thread] = (w, v)
            elif hb(w, reader):  # a prefix of w's thread (program order), so the last one seen is its last
                last_fixed[w.thread] = (w, v)
            elif not hb(reader, w):
                concurrent.setdefault(w.thread, []).append((w, v))
        if len(last_fixed) < 2:
            return list(last_fixed.values()), concurrent
        fixed = [(w, v) for w, v in last_fixed.values()
                 if not any(x is not w and hb(w, x) for x, _ in last_fixed.values())]
        return fixed, concurrent

    def _settled_value(self, key: CellKey, fixed: list[tuple[_Event, int]],
                       concurrent: dict[str, list[tuple[_Event, int]]]) -> int | None:
        """The value the cell holds in every schedule, if its candidate writers (or the start) agree."""
        values = {v for _, v in fixed}
        for ws in concurrent.values():
            values.update(v for _, v in ws)
        if not fixed:
            values.add(self.start_value(key))
        return values.pop() if len(values) == 1 else None

    def _read(self, key: CellKey, st: _CutState) -> Value:
        sort = _sort_of(key)
        enc = self.enc
        fixed, concurrent = self._writers_at(key, st.reader)
        settled = self._settled_value(key, fixed, concurrent)
        if settled is not None:
            return enc.value_of(sort, settled)
        o = self.order
        best_o: Any = _int(-1)
        best_v: Any = enc.lit(sort, enc.value_of(sort, self.start_value(key)))
        for k, (w, v) in enumerate(fixed):  # mutually concurrent: the one placed last counts
            ow = o[w.index]
            if k == 0:
                best_o, best_v = ow, enc.lit(sort, v)
                continue
            later = mk_lt(best_o, ow)
            best_v = mk_ite(later, enc.lit(sort, v), best_v)
            best_o = mk_ite(later, ow, best_o)
        for ws in concurrent.values():
            last_o: Any = _int(-1)
            last_v: Any = best_v
            for w, v in ws:
                ow = o[w.index]
                before = mk_lt(ow, st.cut)
                last_o = mk_ite(before, ow, last_o)
                last_v = mk_ite(before, enc.lit(sort, v), last_v)
            later = mk_lt(best_o, last_o)
            best_v = mk_ite(later, last_v, best_v)
            best_o = mk_ite(later, last_o, best_o)
        return best_v

    # -- constraints ------------------------------------------------------------------------------------
    def constraints(self) -> list[Any]:
        """Program order, lock exclusion, hand-offs and identity flow.  A constraint that happens-before
        (program order and hand-offs) already implies is left out."""
        pred = self.pred
        hb = pred.happens_before
        o = self.order
        cons: list[Any] = [mk_distinct(list(o.values()))] if len(o) > 1 else []
        last: dict[str, _Event] = {}
        for e in self.events:
            p = last.get(e.thread)
            if p is not None and p.read:
                # a read is recorded atomically with the event it guards (the next of its unit): adjacent
                cons.append(mk_eq(o[e.index], o[p.index] + 1))
            else:
                cons.append(mk_le(_int(0), o[e.index]) if p is None else mk_lt(o[p.index], o[e.index]))
            last[e.thread] = e
        cons.extend(self._lock_constraints())
        for e in self.events:
            for wait in pred.handoff_of.get(e.index, ()):
                if wait in o:
                    cons.append(mk_lt(o[e.index], o[wait]))
        events = pred.events
        for e in self.events:
            for ident in e.ids:
                first = pred.first_mention[ident]
                if first != e.index and first in o and not hb(events[first], e):
                    cons.append(mk_lt(o[first], o[e.index]))
        return cons

    def _lock_constraints(self) -> list[Any]:
        o = self.order
        events = self.pred.events
        hb = self.pred.happens_before
        cons: list[Any] = []
        by_lock: dict[str, list[tuple[str, int | None, int | None]]] = defaultdict(list)
        for lock, thread, acq, rel in self.pred.sections_overlapping(self.lo, self.hi):
            a = acq if acq is not None and acq in o else None
            r = rel if rel is not None and rel in o else None
            inside = (acq is not None and acq in o) or (rel is not None and rel in o) or (
                (acq is None or acq < self.lo) and (rel is None or rel >= self.hi))
            if not inside:
                continue
            by_lock[lock].append((thread, a, r))
        for secs in by_lock.values():
            for i, (t1, a1, r1) in enumerate(secs):
                for t2, a2, r2 in secs[i + 1:]:
                    if t1 == t2:
                        continue
                    if (r1 is not None and a2 is not None and hb(events[r1], events[a2])) or (
                            r2 is not None and a1 is not None and hb(events[r2], events[a1])):
                        continue  # the sections are ordered in every schedule
                    first = self._before(r1, a2)
                    second = self._before(r2, a1)
                    cons.append(_z3bool(_or([first, second])))
        return cons

    def _before(self, rel: int | None, acq: int | None) -> Value:
        if rel is None or acq is None:
            return False  # a section open at the window's end cannot precede; one open at its start cannot follow
        return mk_lt(self.order[rel], self.order[acq])

    # -- the event's behaviour -----------------------------------------------------------------------------
    def behaves_as_recorded(self, e: _Event) -> Value:
        """``e`` placed here does what it did in the run: its guard and checks hold; it writes what it wrote."""
        assert e.twin is not None
        if not self.interacts(e):
            return True  # it reads nothing another thread writes here: it behaves as recorded in every schedule
        st, tr = self._at(e)
        parts: list[Value] = [self._guard(e, tr, g) for _, g in e.twin.guard]
        post = PostState(self.enc, st, e.twin, e.env)
        for key, val in e.changes.items():
            parts.append(self.enc.eq(_read(post, key), self.enc.value_of(_sort_of(key), val), _sort_of(key)))
        # cells other threads change in this window, which this action could change too: it must not, or leave
        # the value it left in the run (destroy_end clears a flag the run had cleared already: the same step)
        written = self.pred.written_decls[e.twin.name]
        for key in self._cross_written(e.thread):
            if key[0] in written and key not in e.changes:
                s = _sort_of(key)
                after = _read(post, key)
                recorded = self.enc.value_of(s, self.pred.value_before(key, e.index))
                parts.append(_or([self.enc.eq(after, _read(st, key), s), self.enc.eq(after, recorded, s)]))
        return _and(parts)

    def _at(self, e: _Event) -> tuple[_CutState, Translator]:
        """The state just before ``e`` (shared by the consistency and the violation formulas of ``e``)."""
        hit = self._states.get(e.index)
        if hit is None:
            st = _CutState(self, self.order[e.index], e)
            hit = self._states[e.index] = (st, Translator(self.enc, st))
        return hit

    def _guard(self, e: _Event, tr: Translator, g: Any) -> Value:
        key = (e.index, id(g))
        hit = self._guards.get(key)
        if hit is None:
            hit = self._guards[key] = tr(g, e.env)
        return hit

    def _cross_written(self, thread: str) -> list[CellKey]:
        """Cells some other thread writes in this window: the only cells whose value at an event of
        ``thread`` can differ from the recorded run."""
        hit = self._cross.get(thread)
        if hit is None:
            hit = self._cross[thread] = [k for k, ws in self.writers.items() if any(w.thread != thread for w, _ in ws)]
        return hit

    def neighbourhood(self, e: _Event) -> set[tuple[str, int]]:
        return self.pred.neighbourhood(e)

    def interacts(self, e: _Event) -> bool:
        """Can ``e`` read anything another thread of this window wrote (so that a reordering changes it)?

        No, also, when every cell it or the invariants checked after it can read, and another thread
        writes here, holds one value in every schedule (happens-before fixes its last writer, or the
        candidates agree): then ``e`` sees the recorded state, behaves as recorded and breaks nothing
        (the monitor checked the recorded run), so its formulas would fold to constants anyway.
        """
        assert e.twin is not None
        hit = self._interacts.get(e.index)
        if hit is not None:
            return hit
        near = self.neighbourhood(e)
        reads = self.pred.read_decls[e.twin.name]
        out = False
        for decl, idx in self._cross_written(e.thread):
            if decl not in reads:
                continue
            if isinstance(decl, Func) and not any(_id_name(srt) is not None and (_id_name(srt), x) in near
                                                  for srt, x in zip(decl.index_sorts, idx)):
                continue
            if self._settled_value((decl, idx), *self._writers_at((decl, idx), e)) is None:
                out = True
                break
        if out:
            relevant = self.pred.relevant_decls[e.twin.name]
            out = any(key[0] in relevant and self._settled_value(key, *self._writers_at(key, e)) is None
                      for key in self._cross_written(e.thread))
        self._interacts[e.index] = out
        return out

    def relevant_domain(self, e: _Event) -> dict[str, list[int]]:
        ids: dict[str, set[int]] = defaultdict(set)
        for s, v in self.neighbourhood(e):
            ids[s].add(v)
        for decl, idx in list(e.changes) + self._cross_written(e.thread):
            sorts = decl.index_sorts if isinstance(decl, Func) else ()  # type: ignore[attr-defined]
            for srt, x in zip(sorts, idx):
                ids_sort = srt.id_sort()
                if ids_sort is not None and (ids_sort.name != "Obj" or (decl, idx) in e.changes
                                             or any((ids_sort.name, x) == i for i in e.ids)):
                    ids[ids_sort.name].add(x)
        return {k: sorted(v) for k, v in ids.items()}

    def violation_at(self, e: _Event) -> tuple[Value, Value]:
        """(``e`` at the cut is not allowed, ``e`` at the cut behaves as recorded but breaks an invariant)."""
        assert e.twin is not None and e.operation is not None
        st, tr = self._at(e)  # the cut is at e: its own thread's writes are exact
        check_labels = {c[0] for c in e.operation.action.checks}
        declared = [g for name, g in e.operation.action.guard if name not in check_labels]
        forbidden = _not(_and(self._guard(e, tr, g) for g in declared))
        invs = self.pred.invariants_after.get(e.twin.name, [])
        if not invs:
            return forbidden, False
        behaves = _and(self._guard(e, tr, g) for _, g in e.twin.guard)
        # the invariants are checked for the identities whose cells can differ from the recorded run here:
        # those other threads write in this window, and those the event names or changes
        enc = _WindowEncoding(self.pred.model, self.pred.consts, self.relevant_domain(e))
        st2 = _CutState(self, self.order[e.index], e)
        st2._memo = st._memo
        post = PostState(enc, st2, e.twin, e.env)
        ptr = Translator(enc, post)
        broken = _or(_not(ptr(inv.expr, {})) for inv in invs)
        return forbidden, _and([behaves, broken])


def _action_reads(a: Action) -> set[object]:
    """The state declarations an action's guard, checks, updates and outputs read."""
    out: set[object] = set()
    exprs: list[Any] = [g for _, g in a.guard] + [c for _, c, _ in a.checks] + [o for _, o in a.outputs]
    for u in a.updates:
        if isinstance(u, FuncAssign):
            exprs.append(u.body)
        else:
            exprs.append(u.value)
            if isinstance(u.target, Select):
                exprs.extend(u.target.args)
    for x in exprs:
        out |= decls_read(x)
    return out


def _z3bool(v: Value) -> Any:
    return z3.BoolVal(bool(v)) if _concrete(v) else v


def _sort_of(key: CellKey) -> Sort:
    decl = key[0]
    return decl.value_sort if isinstance(decl, Func) else decl.sort  # type: ignore[attr-defined,no-any-return]


def _read(st: SymState, key: CellKey) -> Value:
    """One cell (or scalar) of a state view."""
    decl, idx = key
    return st.var(decl) if isinstance(decl, StateVar) else st.cell(decl, idx)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# the recorded run
# ---------------------------------------------------------------------------------------------------


class _Predictor:
    def __init__(self, model_name: str, consts: Mapping[str, int], window: int = 200) -> None:
        #: happens-before is asked only between events of one window: a clock forgets units not seen for longer
        #: (a trace with tasks has a unit per task and callback, so unpruned clocks grow with the trace)
        self.horizon = max(1, window)
        self.monitor = Monitor([model_name], consts=consts, check_invariants=True)
        self.watched = self.monitor.watched[0]
        self.model = self.watched.model
        self.sm = self.watched.sm
        self.consts = dict(self.sm.consts)
        self.events: list[_Event] = []
        self.history: dict[CellKey, list[tuple[int, int]]] = defaultdict(list)
        self.first_mention: dict[tuple[str, int], int] = {}
        self.sections: list[tuple[str, str, int | None, int | None]] = []
        self._open: dict[tuple[str, str], list[int]] = defaultdict(list)
        self._posts: dict[str, int] = {}
        self.handoffs: list[tuple[int, int]] = []
        self._read_twins: dict[tuple[str, str], Action] = {}
        #: the note.lock_acquire opening each loop step: recorded atomically with the step's first event
        self.step_opens: set[int] = set()
        #: vector clocks over program order and hand-offs (thread -> index of its last event before)
        self.clocks: list[dict[str, int]] = []
        self._thread_clock: dict[str, dict[str, int]] = {}
        self.invariants: list[Invariant] = [i for i in self.model.invariants if not i.lemma and not i.transition]
        self.written_decls: dict[str, set[object]] = {a.name: {u.decl for u in a.updates} for a in self.model.actions}
        self.read_decls: dict[str, set[object]] = {a.name: _action_reads(a) for a in self.model.actions}
        self.invariants_after: dict[str, list[Invariant]] = {
            a.name: [i for i in self.invariants if decls_read(i.expr) & self.written_decls[a.name]]
            for a in self.model.actions}
        #: everything an action's step can read: its own expressions and the invariants checked after it
        self.relevant_decls: dict[str, set[object]] = {
            a.name: self.read_decls[a.name].union(*(decls_read(i.expr) for i in self.invariants_after[a.name]))
            for a in self.model.actions}
        #: one-argument functions from an identity to an identity (a handle's context, a context's queue, ...)
        self._pointers: list[tuple[Func, str, str]] = []
        for decl in self.model.state:
            if isinstance(decl, Func) and len(decl.index_sorts) == 1:
                src, target = _id_name(decl.index_sorts[0]), _id_name(decl.value_sort)
                if src is not None and target is not None:
                    self._pointers.append((decl, src, target))
        self._near: dict[int, set[tuple[str, int]]] = {}
        self._captured: list[tuple[list[set[Any]], set[int]]] = []
        original = self.sm.clear_changes

        def capture() -> None:
            ns = self.sm.ns
            self._captured.append(([set(s) for s in ns["CH"]], set(ns["CV"])))
            original()

        self.sm.clear_changes = capture  # type: ignore[method-assign]

    def neighbourhood(self, e: _Event) -> set[tuple[str, int]]:
        """The identities ``e`` names, plus those its parameters' cells point to in the recorded run."""
        hit = self._near.get(e.index)
        if hit is not None:
            return hit
        ids = set(e.ids)
        for decl, src, target in self._pointers:
            for s, v in e.ids:
                if s == src:
                    val = self.value_before((decl, (v,)), e.index)
                    if val >= 0:
                        ids.add((target, val))
        self._near[e.index] = ids
        return ids

    def happens_before(self, a: _Event, b: _Event) -> bool:
        """``a`` precedes ``b`` in every schedule consistent with program order and the recorded hand-offs."""
        return a.index < b.index and self.clocks[b.index].get(a.thread, -1) >= a.index

    def value_before(self, key: CellKey, index: int) -> int:
        hist = self.history.get(key)
        if hist:
            lo, hi = 0, len(hist)
            while lo < hi:  # last change before ``index``
                mid = (lo + hi) // 2
                if hist[mid][0] < index:
                    lo = mid + 1
                else:
                    hi = mid
            if lo > 0:
                return hist[lo - 1][1]
        decl = key[0]
        return int(decl.init)  # type: ignore[attr-defined]

    def add(self, line: int, raw: dict[str, Any]) -> None:
        """Record one event of the run (the monitor checks it: the run itself must be allowed)."""
        thread = str(raw.get("thread", "?"))
        task = raw.get("task")
        e = _Event(len(self.events), line, raw, thread if task is None else f"{thread}/{task}", str(raw["op"]))
        self.events.append(e)
        args = raw.get("args", {})
        waits = _waits_for(e.op, args, line)
        self._clock(e, [self._posts[w] for w in waits if w in self._posts])
        if e.op.startswith("note."):
            self._sync(e, args, waits=waits)
        if e.op == "note.read":
            self._read(e, args, raw, line)
            return
        base = e.op[len("note."):] if e.op.startswith("note.") else e.op
        if base in _WORKER_LOCK and raw.get("result", "OK") == "OK":
            # Worker::Lock (the locks model's take_sync_lock / release_sync_lock): a lock section per isolate
            self._sync(e, {"lock": f"worker-lock:{args.get('i')}"}, _WORKER_LOCK[base])
        ops = self.watched.ops
        if e.op not in ops:
            return
        operation = ops[e.op]
        twin = operation.action
        if twin.checks and raw.get("result", "OK") != "OK" and operation.rejected is not None:
            twin = operation.rejected
        self._captured.clear()
        self.monitor.step(raw, line=line)  # raises MonitorViolation: the run itself breaks a rule
        vals = self.monitor._decode_args(self.watched, twin, args, raw)
        e.operation = operation
        e.bind(twin, vals)
        for ident in e.ids:
            self.first_mention.setdefault(ident, e.index)
        sm = self.sm
        for ch, cv in self._captured:
            for j in cv:
                var = sm.vars[j]
                self._change(e, (var, ()), sm.read_var(var))
            for k, keys in enumerate(ch):
                func = sm.funcs[k]
                for key in keys:
                    idx = key if isinstance(key, tuple) else (key,)
                    self._change(e, (func, idx), sm.read_cell(func, idx))

    def _change(self, e: _Event, key: CellKey, value: int) -> None:
        e.changes[key] = value
        self.history[key].append((e.index, value))

    def _sync(self, e: _Event, args: Mapping[str, Any], kind: str = "", waits: Sequence[str] = ()) -> None:
        kind = kind or e.op[len("note."):]
        if kind == "lock_acquire":
            self._open[(str(args.get("lock")), e.thread)].append(e.index)
        elif kind == "lock_release":
            stack = self._open[(str(args.get("lock")), e.thread)]
            acq = stack.pop() if stack else None
            self.sections.append((str(args.get("lock")), e.thread, acq, e.index))
            if "edge" in args:  # a loop step's end: the steps it scheduled follow it (sync_version 3)
                self._posts[str(args["edge"])] = e.index
                if acq is not None:
                    self.step_opens.add(acq)
        elif kind == "post":
            self._posts[str(args.get("edge"))] = e.index
        for edge in waits:
            post = self._posts.get(edge)
            if post is not None:
                self.handoffs.append((post, e.index))

    def _read(self, e: _Event, args: Mapping[str, Any], raw: dict[str, Any], line: int) -> None:
        """A ``note.read``: the step branched on the model's guard ``guard`` of ``op`` holding."""
        op, label = str(args.get("op")), str(args.get("guard"))
        operation = self.watched.ops.get(op)
        if operation is None:
            return  # a guard of a model this check does not watch
        twin = self._read_twins.get((op, label))
        if twin is None:
            action = operation.action
            guard = [(name, g) for name, g in action.guard if name == label]
            if not guard:
                raise _BadEvent(f"note.read names guard {label!r}, which {op} does not have "
                                       f"(its guards: {', '.join(n for n, _ in action.guard)})")
            twin = dataclasses.replace(action, name=f"{action.name}?{label}", guard=tuple(guard), updates=(),
                                       outputs=(), checks=())
            self._read_twins[(op, label)] = twin
            self.written_decls[twin.name] = set()
            self.read_decls[twin.name] = self.relevant_decls[twin.name] = _action_reads(twin)
            self.invariants_after[twin.name] = []
        inner = args.get("args")
        if not isinstance(inner, dict):
            raise _BadEvent("note.read needs 'args', the action's arguments (an object)")
        try:
            vals = self.monitor._decode_args(self.watched, twin, inner, raw)
        except MonitorViolation as bad:
            raise _BadEvent(f"note.read: {bad.message}") from None
        e.read = True
        e.bind(twin, vals)

    def _clock(self, e: _Event, posts: Sequence[int]) -> None:
        vc = dict(self._thread_clock.get(e.thread, {}))
        for post in posts:
            for t, i in self.clocks[post].items():
                if vc.get(t, -1) < i:
                    vc[t] = i
        vc[e.thread] = e.index
        if len(vc) > 32:
            oldest = e.index - self.horizon
            vc = {t: i for t, i in vc.items() if i >= oldest}
        self._thread_clock[e.thread] = vc
        self.clocks.append(vc)

    def finish(self) -> None:
        for (lock, thread), stack in self._open.items():
            for opened in stack:
                self.sections.append((lock, thread, opened, None))
        self._open.clear()
        n = len(self.events)
        self.sections.sort(key=lambda x: -1 if x[2] is None else x[2])
        self.handoff_of: dict[int, list[int]] = defaultdict(list)
        for post, wait in self.handoffs:
            self.handoff_of[post].append(wait)
        self._sweep = 0
        self._active: list[tuple[str, str, int | None, int | None]] = []
        self._n = n
        # loop steps (sync_version 3): which step each event is in, and the last write of each cell in a step
        self.step_of: dict[int, int] = {}
        self.last_write_in_step: dict[tuple[int, CellKey], int] = {}
        self.first_write_in_step: dict[tuple[int, CellKey], int] = {}
        for _lock, unit, start, rel in self.sections:
            if start is None or rel is None or start not in self.step_opens:
                continue
            acq = start
            for i in range(acq, rel + 1):
                e = self.events[i]
                if e.thread == unit:
                    self.step_of[i] = acq
                    for key in e.changes:
                        self.last_write_in_step[(acq, key)] = i
                        self.first_write_in_step.setdefault((acq, key), i)

    def hidden_in_step(self, w: _Event, key: CellKey, reader: _Event) -> bool:
        """Steps of one event loop do not interleave: a step on ``reader``'s loop other than ``reader``'s own shows
        ``reader`` only the last value it writes to ``key``, never one it overwrites later in the step; and none
        at all once ``reader``'s own step wrote ``key`` before it."""
        step = self.step_of.get(w.index)
        if step is None or w.raw.get("thread") != reader.raw.get("thread"):
            return False
        own = self.step_of.get(reader.index, -1)
        if own == step:
            return False
        first = self.first_write_in_step.get((own, key))
        return self.last_write_in_step[(step, key)] != w.index or (first is not None and first < reader.index)

    def sections_overlapping(self, lo: int, hi: int) -> list[tuple[str, str, int | None, int | None]]:
        """Lock sections overlapping events ``lo .. hi-1`` (windows are asked for in increasing order)."""
        while self._sweep < len(self.sections):
            sec = self.sections[self._sweep]
            if (sec[2] if sec[2] is not None else -1) >= hi:
                break
            self._active.append(sec)
            self._sweep += 1
        self._active = [sec for sec in self._active if sec[3] is None or sec[3] >= lo]
        return self._active


def predict_events(
    header: Mapping[str, Any], events: Sequence[tuple[int, dict[str, Any]]], *, model: str = "ownership",
    window: int = 200, path: str = "<events>", timeout_ms: int = 60_000, shorten: bool = True,
) -> PredictReport:
    """Predictive checking of a run given as (line, event) pairs; see the module docstring.  ``shorten``:
    look for a witness with fewer events before the violation (`_fewest_before_cut`); without it the
    witness is z3's first model."""
    start = time.perf_counter()
    consts = {k: int(v) for k, v in dict(header.get("consts", {})).items()}
    pred = _Predictor(model, consts, window)
    report = PredictReport(path, model, len(events), 0, window, 0.0, header=dict(header))
    try:
        for line, raw in events:
            try:
                pred.add(line, raw)
            except _BadEvent as b:
                raise TraceFormatError(f"{path}:{line}: {b}") from None
    except MonitorViolation as v:
        if v.kind in ("bad_event", "unknown_op"):
            raise TraceFormatError(f"{path}:{v.line}: {v.message}") from None
        report.recorded_violation = v
        report.seconds = time.perf_counter() - start
        return report
    pred.finish()
    n = len(pred.events)
    raw_events = [raw for _, raw in events]
    stride = max(1, window // 2)
    lo = 0
    while True:
        hi = min(n, lo + window)
        if any(e.model for e in pred.events[lo:hi]):
            report.windows += 1
            t0 = time.perf_counter()
            witness = _solve_window(pred, lo, hi, timeout_ms, raw_events, report, shorten)
            report.solver_seconds += time.perf_counter() - t0
            if witness is not None:
                report.witness = witness
                break
        if hi >= n:
            break
        lo += stride
    report.seconds = time.perf_counter() - start
    return report


def _solve_window(pred: _Predictor, lo: int, hi: int, timeout_ms: int,
                  raw_events: list[dict[str, Any]], report: PredictReport, shorten: bool = True) -> Witness | None:
    win = _Window(pred, lo, hi)
    cut = win.cut
    candidates: list[Any] = []
    for e in win.events:
        # an event nothing another thread writes here reaches behaves as recorded in every schedule
        if e.model and not e.read and win.interacts(e):
            viol = _or(list(win.violation_at(e)))
            if not (_concrete(viol) and not viol):
                candidates.append(mk_and([mk_eq(win.order[e.index], cut), _z3bool(viol)]))
    if not candidates:
        return None  # no step of this window can see another thread's writes differently: nothing to solve
    s = z3.SimpleSolver()
    s.set("timeout", timeout_ms)
    facts = win.constraints()
    for e in win.events:
        if e.model:
            rc = win.behaves_as_recorded(e)
            if not (_concrete(rc) and rc):
                facts.append(mk_implies(mk_lt(win.order[e.index], cut), _z3bool(rc)))
    facts.append(mk_or(candidates))
    s.add(mk_and(facts))
    while True:
        t0 = time.perf_counter()
        r = s.check()
        report.z3_seconds += time.perf_counter() - t0
        if r != z3.sat:
            if r == z3.unknown:
                raise RuntimeError(f"z3 gave up on events {lo}..{hi} ({s.reason_unknown()}); try a smaller --window")
            return None
        m = _fewest_before_cut(win, s, s.model(), report, timeout_ms) if shorten else s.model()
        c = m.eval(cut, model_completion=True).as_long()
        placed = sorted((m.eval(v, model_completion=True).as_long(), i) for i, v in win.order.items())
        order = _glue(pred, list(range(lo)) + [i for o, i in placed if o <= c])
        violation = _confirm(pred, raw_events, order)
        if violation is not None:
            return Witness(order[: _upto(order, violation, raw_events)], violation, (lo, hi), raw_events)
        # the monitor does not confirm this candidate (an approximation of the window's domain): exclude it
        s.add(z3.Or(*[win.order[i] != m.eval(win.order[i], model_completion=True) for i in order[lo:]], cut != c))


def _fewest_before_cut(win: _Window, solver: Any, model: Any, report: PredictReport, timeout_ms: int) -> Any:
    """A witness with few events before the violation (a binary search on the cut with the orders bounded to a
    permutation; each probe is one z3 check of at most ``_PROBE_MS``, one that times out counts as no): only
    what the violation needs is reordered, so the witness is short and a replay follows it from the start of
    the run up to the violation."""
    n = len(win.order)
    solver.set("timeout", _PROBE_MS)
    solver.push()
    try:
        for v in win.order.values():  # a permutation of 0..n-1: the cut's value counts the events before it
            solver.add(mk_le(_int(0), v), mk_lt(v, _int(n)))
        lo, hi, best = 0, n - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            solver.push()
            solver.add(mk_le(win.cut, _int(mid)))
            t0 = time.perf_counter()
            r = solver.check()
            report.z3_seconds += time.perf_counter() - t0
            if r == z3.sat:
                best, hi = solver.model(), mid - 1
            else:
                lo = mid + 1
            solver.pop()
        return best if best is not None else model
    finally:
        solver.pop()
        solver.set("timeout", timeout_ms)


def _glue(pred: _Predictor, order: list[int]) -> list[int]:
    """Put each loop step's opening ``note.lock_acquire`` just before the next event of its unit: the recorder
    writes the two in one atomic section (a replay can only follow them together).  Moving the acquire later
    within its unit keeps every constraint: the section only shrinks."""
    out: list[int] = []
    pending: dict[str, int] = {}
    for i in order:
        unit = pred.events[i].thread
        if i in pred.step_opens:
            pending[unit] = i
            continue
        opened = pending.pop(unit, None)
        if opened is not None:
            out.append(opened)
        out.append(i)
    return out + sorted(pending.values())


def _waits_for(op: str, args: Mapping[str, Any], line: int) -> list[str]:
    """The hand-off edges an event waits for: ``note.wait {edge}``, a loop step's ``note.lock_acquire {after}``."""
    if op == "note.wait":
        return [str(args.get("edge"))]
    if op == "note.lock_acquire" and "after" in args:
        after = args["after"]
        if not isinstance(after, list) or not all(isinstance(x, str) for x in after):
            raise _BadEvent("note.lock_acquire 'after' must be a list of edge names")
        return after
    return []


def _upto(order: list[int], v: MonitorViolation, raw_events: list[dict[str, Any]]) -> int:
    for pos, i in enumerate(order):
        if raw_events[i] is v.event:
            return pos + 1
    return len(order)


def _confirm(pred: _Predictor, raw_events: list[dict[str, Any]], order: list[int]) -> MonitorViolation | None:
    """Run the model's monitor over the reordered events: the violation it reports, if any."""
    mon = Monitor([pred.model], consts=pred.consts)
    for i in order:
        raw = raw_events[i]
        if raw["op"] not in mon.by_op:
            continue
        try:
            mon.step(raw, line=pred.events[i].line)
        except MonitorViolation as v:
            if v.kind == "wrong_result":
                return None  # the reordering changes a result: not the recorded branch
            v.event = raw
            return v
    return None


def predict_trace(path: Path | str, *, model: str = "ownership", window: int = 200,
                  timeout_ms: int = 60_000, require_sync: bool = True) -> PredictReport:
    """Predictive checking of one NDJSON trace file (raises `TraceFormatError` for a malformed file)."""
    path = Path(path)
    it = read_trace(path)
    n0, head = next(it)
    _header(path, n0, head, None)
    version = head.get("sync_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= _SYNC_VERSIONS:
        raise TraceFormatError(f"{path}:{n0}: \"sync_version\" {version!r} is not one this iospec reads "
                               f"(1 to {_SYNC_VERSIONS}; docs/trace-format.md)")
    if require_sync and not head.get("sync"):
        raise TraceFormatError(
            f"{path}:{n0}: the header does not say \"sync\": true: the trace records no synchronisation, so every "
            "reordering would look feasible (record with Runtime(record_sync=True); docs/predictive-checking.md)")
    events: list[tuple[int, dict[str, Any]]] = []
    last: int | None = None
    for n, obj in it:
        last = _check_event(path, n, obj, last)
        if not isinstance(obj.get("thread"), (str, int)) or isinstance(obj.get("thread"), bool):
            raise TraceFormatError(f"{path}:{n}: with \"sync\": true every event needs a 'thread' (its program order)")
        if "task" in obj and not isinstance(obj["task"], str):
            raise TraceFormatError(f"{path}:{n}: 'task' must be a string (the event loop task that recorded the event)")
        events.append((n, obj))
    if not events:
        raise TraceFormatError(f"{path}: the trace has a header but no events")
    return predict_events(head, events, model=model, window=window, path=str(path), timeout_ms=timeout_ms)
