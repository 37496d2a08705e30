"""Exhaustive breadth-first exploration of a model configuration.

Given a `Config`, `explore` visits every reachable state (optionally one per symmetry orbit,
see `properties.symmetry`), checks every invariant on every state and every transition
invariant on every transition, and reports:

* distinct states, transitions, depth, and transitions per action (which actions were never
  enabled); transitions pruned because a counter would leave its bound;
* invariant violations, each with the *shortest* path from the initial state, printed as a
  readable step list (`Trace`), replayable with `replay`;
* deadlocks: non-terminal states where every enabled action leaves the state unchanged;
* optionally the reachable state graph as a networkx ``DiGraph`` (small configurations).

The fast path keeps only 64-bit fingerprints of visited states (`FingerprintSet`); when a
violation or deadlock is found, the path to it is recovered by a second, bounded BFS that
records parents (TLC recovers traces from disk; a second search is simpler and cheap, since
it stops at the violation's depth).  Long runs print progress lines like TLC's and
Stateright's.

Parallel search (``workers`` > 1) partitions the fingerprints by range: each forked worker owns
one range, keeps the frontier states in it, deduplicates the successors it owns against its own
store at once, and sends only the others, in one batch per level, straight to their owner
(`_Partition`, `_WorkerGroup`).  The parent sends "next level" and sums small reports, so it is
no bottleneck (a parent that merged every successor capped two workers at about 1.35x).  To keep
every result independent of the number of workers, nothing depends on the order in which a
level is expanded: the search establishes which invariants fail and at which depth, and the
trace recovery, in one process, finds the first example in the usual successor order, the one
a search in one process meets first.
"""

from __future__ import annotations

import gc
import json
import mmap
import multiprocessing
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TextIO

import networkx as nx

from model.core import Config, DenseModel, Instance, compile_dense
from model.core.errors import ConfigError
from properties.fingerprints import FingerprintSet, fingerprint
from properties.symmetry import compile_canonicalizers, symmetric_sorts

__all__ = ["explore", "ExploreResult", "Trace", "TraceStep", "replay", "Explorer", "ProgressPrinter"]

State = tuple[int, ...]


@dataclass(frozen=True)
class TraceStep:
    """One step of a trace: the action instance and what it changed."""

    instance: Instance
    changes: tuple[str, ...]
    outputs: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        inst = self.instance
        return {
            "action": inst.action.name,
            "args": {p.name: p.sort.render(v) for p, v in zip(inst.action.params, inst.args)},
        }


@dataclass(frozen=True)
class Trace:
    """A path from the initial state; ``states[i+1]`` is reached from ``states[i]`` by ``steps[i]``."""

    config: Config
    states: tuple[State, ...]
    steps: tuple[TraceStep, ...]
    reason: str

    def format(self, dm: DenseModel | None = None, *, full_last_state: bool = True) -> str:
        lines = [f"{self.reason}", f"  in {self.config.describe()}, after {len(self.steps)} step(s):"]
        for k, st in enumerate(self.steps, 1):
            outs = ", ".join(f"{key}={val}" for key, val in st.outputs.items())
            lines.append(f"  {k:3d}. {st.instance.render()}" + (f"  -> {outs}" if outs else ""))
            for ch in st.changes:
                lines.append(f"         {ch}")
        if full_last_state and dm is not None:
            lines.append("  final state:")
            for ln in dm.format_state(dm.compact(self.states[-1])).splitlines():
                lines.append(f"    {ln}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.config.model.name,
            "config": {**self.config.sizes, **self.config.consts},
            "reason": self.reason,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass
class ExploreResult:
    config: Config
    symmetry: bool
    distinct: int = 0
    transitions: int = 0
    depth: int = 0
    per_action: dict[str, int] = field(default_factory=dict)
    never_enabled: list[str] = field(default_factory=list)
    violations: list[Trace] = field(default_factory=list)
    deadlocks: int = 0
    deadlock_trace: Trace | None = None
    pruned: int = 0
    elapsed: float = 0.0
    complete: bool = True
    store_bytes: int = 0
    #: CPU seconds this partition's process has used so far
    cpu: float = 0.0
    graph: nx.DiGraph | None = None
    symmetric_sorts: list[str] = field(default_factory=list)
    #: successors skipped because the exact same raw state was generated before (symmetry runs)
    raw_cache_hits: int = 0
    #: CPU seconds used by each worker process (empty when the search ran in this process); on a
    #: busy machine the largest is what the wall time would be on an idle one
    worker_cpu: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and self.deadlocks == 0

    @property
    def states_per_second(self) -> float:
        return self.distinct / self.elapsed if self.elapsed else float("inf")

    @property
    def bytes_per_state(self) -> float:
        return self.store_bytes / max(1, self.distinct)

    @property
    def collision_probability(self) -> float:
        return min(1.0, self.distinct * self.distinct / 2.0**65)

    def summary(self) -> str:
        status = "complete" if self.complete else "INCOMPLETE (stopped at a limit)"
        lines = [
            f"{self.config.describe()}: {status}",
            f"  distinct states: {self.distinct:,}   transitions: {self.transitions:,}   depth: {self.depth}",
            f"  time: {self.elapsed:.2f}s   ({self.states_per_second:,.0f} distinct states/s)",
            f"  symmetry: {', '.join(self.symmetric_sorts) if self.symmetry and self.symmetric_sorts else 'off'}",
            f"  fingerprint store: {self.store_bytes:,} bytes ({self.bytes_per_state:.1f} B/state); "
            f"collision probability <= {self.collision_probability:.1e}",
        ]
        if self.pruned:
            lines.append(f"  transitions pruned at counter bounds: {self.pruned:,}")
        lines.append("  transitions per action:")
        for name, n in self.per_action.items():
            lines.append(f"    {name:32s} {n:>12,}")
        if self.never_enabled:
            lines.append(f"  never enabled: {', '.join(self.never_enabled)}")
        if self.deadlocks:
            lines.append(f"  deadlocks: {self.deadlocks:,}")
        lines.append(
            f"  invariants: {'all hold' if not self.violations else f'{len(self.violations)} violated'}"
        )
        return "\n".join(lines)


class ProgressPrinter:
    """Prints a TLC-style progress line at most every ``interval`` seconds."""

    def __init__(self, out: TextIO = sys.stderr, interval: float = 5.0) -> None:
        self.out = out
        self.interval = interval
        self.start = time.perf_counter()
        self.last = self.start

    def __call__(self, depth: int, generated: int, distinct: int, queue: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        el = max(1e-9, now - self.start)
        print(
            f"progress: depth {depth}, {generated:,} states generated ({generated / el:,.0f}/s), "
            f"{distinct:,} distinct ({distinct / el:,.0f}/s), {queue:,} on queue, {el:.1f}s",
            file=self.out,
            flush=True,
        )


Progress = Callable[..., None]

#: slots of the direct-mapped cache of raw (not yet canonical) successors, shared by all partitions
RAW_CACHE_SLOTS = 1 << 20
#: slots of the direct-mapped cache of fingerprints a partition has sent to their owners
SENT_CACHE_SLOTS = 1 << 20
_MASK = (1 << 64) - 1
_PICKLE = pickle.HIGHEST_PROTOCOL


def owner(fp: int, parts: int) -> int:
    """The partition that stores fingerprint ``fp``: partitions own equal ranges of fingerprints,
    so the low bits, which pick the slot in a partition's table, stay uniform."""
    return fp // _span(parts)


def _span(parts: int) -> int:
    return -(-(1 << 64) // parts)


@dataclass
class LevelReport:
    """What one partition found while expanding its share of a BFS level (small: workers send it
    to the parent).  What it says does not depend on the order in which states were expanded,
    hence not on the number of workers: the parent needs to know which invariants fail, and whether
    states deadlock, at this depth; `Explorer.run` then finds the examples again in one process."""

    counts: list[int]
    #: states new at the next level stored in this partition
    new: int = 0
    transitions: int = 0
    deadlocks: int = 0
    #: indices of the state invariants a new state violates
    violations: set[int] = field(default_factory=set)
    #: indices of the transition invariants a step violates
    tviolations: set[int] = field(default_factory=set)
    raw_hits: int = 0
    #: transitions pruned because a counter would leave its bound
    pruned: int = 0
    stored: int = 0
    store_bytes: int = 0
    #: CPU seconds this partition's process has used so far
    cpu: float = 0.0


def shared_cache(slots: int) -> memoryview:
    """A direct-mapped cache of fingerprints in memory that forked workers share (lossy: a miss costs
    a little work, and a hit is only trusted when the whole 64-bit fingerprint matches).  Pages are
    zero-filled on first touch, so a small run pays for the few it touches."""
    return memoryview(mmap.mmap(-1, 8 * slots)).cast("Q")


class _Partition:
    """One share of the search: the fingerprints whose `owner` is ``index``, and the frontier
    states among them.

    Expanding its frontier, a partition deduplicates the successors it owns against its own
    store right away and sets the others aside, one outbox per owner; `absorb` takes in what
    the other partitions set aside for it.  With one partition there are no outboxes and this
    is the whole search.
    """

    def __init__(self, explorer: Explorer, index: int, parts: int, capacity: int, *, raw_cache: memoryview | None,
                 graph: bool, stop_on_violation: bool, check_deadlocks: bool) -> None:
        self.explorer = explorer
        self.index = index
        self.parts = parts
        self.seen = FingerprintSet(capacity)
        self.frontier: list[State] = []
        self.stop_on_violation = stop_on_violation
        self.check_deadlocks = check_deadlocks
        #: every (pre, post, instance) edge of the last level (graph mode)
        self.edges: list[tuple[State, State, int]] | None = [] if graph else None
        # An exact raw duplicate of a successor seen before, by any partition (see `shared_cache`),
        # was already checked and stored or sent as its representative: skip it.
        self.raw_cache = raw_cache if not graph else None
        # A fingerprint sent to its owner before (this level or an earlier one) is stored there
        # by the time anyone looks: no need to send it again.  Lossy too.
        self.sent_cache = shared_cache(SENT_CACHE_SLOTS) if parts > 1 else None  # (only one process uses it)

    def start(self, init: State) -> None:
        fp = fingerprint(init)
        if owner(fp, self.parts) == self.index:
            self.seen.add(fp)
            self.frontier = [init]

    def expand(self) -> tuple[list[list[tuple[int, State, int]]], LevelReport]:
        """Expand the frontier: successors checked, canonicalised, fingerprinted; those this
        partition owns are stored (the new ones become the next frontier), the others go to the
        outbox of their owner as (fingerprint, state, index of a state invariant it violates or -1)."""
        dm = self.explorer.dm
        successors = dm.successors
        inst_check = dm.inst_check
        inst_tcheck = dm.inst_tcheck
        terminal = dm.terminal
        canon_for = self.explorer.canon_for
        report = LevelReport(counts=[0] * len(dm.instances))
        counts = report.counts
        me, parts = self.index, self.parts
        span = _span(parts)
        outboxes: list[list[tuple[int, State, int]]] = [[] for _ in range(parts)]
        seen = self.seen
        table, cap = seen.table, seen.capacity
        nxt: list[State] = []
        append = nxt.append
        raw_cache, sent_cache = self.raw_cache, self.sent_cache
        raw_mask, sent_mask = RAW_CACHE_SLOTS - 1, SENT_CACHE_SLOTS - 1
        edges = self.edges
        check_deadlocks = self.check_deadlocks
        mask = _MASK
        transitions = raw_hits = 0
        pruned_before = dm.pruned[0]
        for s in self.frontier:
            progressed = False
            for i, t in successors(s):
                counts[i] += 1
                if t is s:
                    continue
                if not progressed:
                    if t == s:
                        continue
                    progressed = True
                transitions += 1
                tc = inst_tcheck[i]
                if tc is not None:
                    v = tc(s, t)
                    if v >= 0:
                        report.tviolations.add(v)
                hr = 0
                if raw_cache is not None:
                    hr = (hash(t) & mask) or 1
                    k = hr & raw_mask
                    if raw_cache[k] == hr:
                        raw_hits += 1
                        continue
                    raw_cache[k] = hr
                u = t  # the successor itself: invariants are judged on it, before canonicalising
                if canon_for is not None:
                    c = canon_for[i]
                    if c is not None:
                        t = c(u)
                        if t is not u:
                            hr = 0
                h = hr or (hash(t) & mask) or 1  # fingerprint(t), inlined: this is the hot loop
                if edges is not None:
                    edges.append((s, t, i))
                if parts > 1:
                    q = h // span  # owner(h, parts), inlined
                    if q != me:
                        k = h & sent_mask
                        if sent_cache[k] != h:  # type: ignore[index]
                            sent_cache[k] = h  # type: ignore[index]
                            chk = inst_check[i]
                            outboxes[q].append((h, t, chk(u) if chk is not None else -1))
                        continue
                # FingerprintSet.add, inlined (linear probing): this is the hot loop
                j = h % cap
                slot = table[j]
                while slot and slot != h:
                    j += 1
                    if j == cap:
                        j = 0
                    slot = table[j]
                if slot:
                    continue
                table[j] = h
                seen.count += 1
                if seen.count > seen.limit:
                    seen._grow()
                    table, cap = seen.table, seen.capacity
                append(t)
                # the invariants the step could break, checked once per new state (any path to a
                # state checks all of them: those the step cannot break held before it)
                chk = inst_check[i]
                if chk is not None and chk(u) >= 0:
                    self._note(report, chk(u), t)
            if not progressed and check_deadlocks and not terminal(s):
                report.deadlocks += 1
        report.transitions = transitions
        report.raw_hits = raw_hits
        report.pruned = dm.pruned[0] - pruned_before
        self.frontier = nxt
        return outboxes, report

    def absorb(self, inbox: Iterable[tuple[int, State, int]], report: LevelReport) -> None:
        """Store the states another partition found for this one; the new ones join the frontier."""
        seen = self.seen
        add = seen.add
        append = self.frontier.append
        for h, t, v in inbox:
            if not add(h):
                continue
            append(t)
            if v >= 0:
                self._note(report, v, t)

    def finish_level(self, report: LevelReport) -> LevelReport:
        report.new = len(self.frontier)
        report.stored = len(self.seen)
        report.store_bytes = self.seen.nbytes
        report.cpu = time.process_time()
        return report

    def _note(self, report: LevelReport, v: int, t: State) -> None:
        dm = self.explorer.dm
        broken = {v}
        if not self.stop_on_violation:  # report every invariant t breaks, not only the first
            broken.update(dm.state_invariants.index(inv) for inv in dm.violated(t))
        report.violations |= broken

    def level(self) -> LevelReport:
        """One level with no other partitions (in this process)."""
        _, report = self.expand()
        return self.finish_level(report)


def _worker_main(part: _Partition, control: Connection, inboxes: list[Connection | None],
                 outboxes: list[Connection | None]) -> None:
    """A worker process: on each "level" command, expand its partition, trade outboxes with the
    other workers directly (the parent never sees a state), and report to the parent."""
    gc.disable()  # see Explorer.run
    try:
        while control.recv() == "level":
            outgoing, report = part.expand()
            # send on threads while receiving here: a pipe holds only a little, so two workers
            # that both wrote first would wait for each other forever
            senders = [threading.Thread(target=conn.send_bytes, args=(pickle.dumps(outgoing[q], _PICKLE),))
                       for q, conn in enumerate(outboxes) if conn is not None]
            for th in senders:
                th.start()
            for conn in inboxes:
                if conn is not None:
                    part.absorb(pickle.loads(conn.recv_bytes()), report)
            for th in senders:
                th.join()
            control.send(part.finish_level(report))
    except BaseException:  # the parent re-raises it
        control.send(traceback.format_exc())


class _WorkerGroup:
    """Forked processes, one per partition (they inherit the compiled model: generated code
    cannot be pickled), connected to each other by pipes."""

    def __init__(self, parts: list[_Partition]) -> None:
        ctx = multiprocessing.get_context("fork")
        n = len(parts)
        # pipe[p][q]: p writes, q reads
        pipes = [[ctx.Pipe(duplex=False) if p != q else None for q in range(n)] for p in range(n)]
        self.controls: list[Connection] = []
        self.processes = []
        for p, part in enumerate(parts):
            mine, theirs = ctx.Pipe()
            inboxes = [pipes[q][p][0] if q != p else None for q in range(n)]  # type: ignore[index]
            outboxes = [pipes[p][q][1] if q != p else None for q in range(n)]  # type: ignore[index]
            proc = ctx.Process(target=_worker_main, args=(part, theirs, inboxes, outboxes), daemon=True)
            proc.start()
            theirs.close()
            self.controls.append(mine)
            self.processes.append(proc)
        for row in pipes:
            for pipe in row:
                if pipe is not None:
                    pipe[0].close()
                    pipe[1].close()

    def level(self) -> list[LevelReport]:
        for c in self.controls:
            c.send("level")
        reports = [c.recv() for c in self.controls]
        for r in reports:
            if isinstance(r, str):
                raise RuntimeError(f"explorer worker failed:\n{r}")
        return reports

    def close(self) -> None:
        for c in self.controls:
            try:
                c.send("stop")
            except OSError:
                pass
        for proc in self.processes:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()


class Explorer:
    """Compiled machinery for one configuration (shared by `explore` and `replay`)."""

    def __init__(self, config: Config, *, symmetry: bool = False, checked: bool = False, compact: bool = True) -> None:
        self.config = config
        self.dm: DenseModel = compile_dense(config, checked=checked, compact=compact)
        self.canon: Callable[[State], State] | None = None
        #: per instance, the representative of a successor of a representative (see `Canonicalizer`)
        self.canon_for: list[Callable[[State], State] | None] | None = None
        self.symmetric: list[str] = []
        if symmetry:
            canonicalizer = compile_canonicalizers(self.dm)
            if canonicalizer is not None:
                self.canon, self.canon_for = canonicalizer.canon, canonicalizer.for_instance
            sizes = dict(config.sizes)
            self.symmetric = [s.name for s in symmetric_sorts(config.model) if s.size(sizes) > 1]

    # -- the fast search ---------------------------------------------------------------------
    def run(
        self,
        *,
        graph: bool = False,
        max_depth: int | None = None,
        max_states: int | None = None,
        stop_on_violation: bool = True,
        progress: Progress | None = None,
        check_deadlocks: bool = True,
        store_capacity: int = 1 << 10,
        workers: int = 1,
    ) -> ExploreResult:
        """Breadth-first search, level by level; ``workers`` > 1 splits it over that many forked
        processes, each owning a partition of the fingerprints (see `_Partition`).

        Nothing reported depends on the order in which a level's states are expanded (examples
        are found again afterwards, in one process), so the result, counterexamples included,
        does not depend on ``workers``.  ``stop_on_violation`` stops at the end of the
        first level where an invariant fails.
        """
        dm = self.dm
        canon = self.canon
        res = ExploreResult(config=self.config, symmetry=canon is not None, symmetric_sorts=self.symmetric)
        g: nx.DiGraph | None = nx.DiGraph() if graph else None
        n_parts = max(1, workers) if g is None else 1

        start = time.perf_counter()
        init = canon(dm.initial) if canon else dm.initial
        raw_cache = shared_cache(RAW_CACHE_SLOTS)
        parts = [_Partition(self, p, n_parts, max(16, store_capacity // n_parts), raw_cache=raw_cache,
                            graph=g is not None, stop_on_violation=stop_on_violation, check_deadlocks=check_deadlocks)
                 for p in range(n_parts)]
        for part in parts:
            part.start(init)
        if g is not None:
            g.add_node(init, depth=0, initial=True)
        #: invariant index (transition invariants: 1000 + index) -> depth of the first violation
        violated: dict[int, int] = {}
        broken = {dm.check_state(init)} - {-1}
        if broken and not stop_on_violation:
            broken.update(dm.state_invariants.index(inv) for inv in dm.violated(init))
        for k in broken:
            violated[k] = 0
        stop = bool(broken) and stop_on_violation
        deadlocked = False
        counts = [0] * len(dm.instances)
        depth = 0
        frontier_size = distinct = 1
        store_bytes = sum(p.seen.nbytes for p in parts)
        transitions = deadlocks = raw_hits = pruned = 0
        # States are acyclic tuples of ints: the cyclic garbage collector has nothing to find
        # among them, but the millions it would scan cost a third of the run.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        group = _WorkerGroup(parts) if n_parts > 1 else None
        try:
            while frontier_size and not stop:
                if max_depth is not None and depth >= max_depth:
                    res.complete = False
                    break
                if g is not None:
                    parts[0].edges = []
                reports = group.level() if group is not None else [parts[0].level()]
                found: set[int] = set()
                for r in reports:
                    for i, n in enumerate(r.counts):
                        counts[i] += n
                    transitions += r.transitions
                    raw_hits += r.raw_hits
                    pruned += r.pruned
                    deadlocks += r.deadlocks
                    found |= r.violations | {1000 + k for k in r.tviolations}
                deadlocked = deadlocked or deadlocks > 0
                for k in found:
                    if k not in violated:
                        violated[k] = depth + 1
                        stop = stop or stop_on_violation
                frontier_size = sum(r.new for r in reports)
                distinct = sum(r.stored for r in reports)
                store_bytes = sum(r.store_bytes for r in reports)
                if group is not None:
                    res.worker_cpu = [r.cpu for r in reports]  # a forked process starts at 0
                if g is not None:
                    for t in parts[0].frontier:
                        g.add_node(t, depth=depth + 1)
                    for pre, post, i in parts[0].edges or ():
                        g.add_edge(pre, post, action=dm.instances[i].render(), name=dm.instances[i].action.name)
                depth += 1 if frontier_size else 0
                if progress is not None:
                    progress(depth, transitions, distinct, frontier_size)
                if max_states is not None and distinct >= max_states and frontier_size:
                    res.complete = False
                    break
        finally:
            if gc_was_enabled:
                gc.enable()
            if group is not None:
                group.close()
        if progress is not None:
            progress(depth, transitions, distinct, frontier_size, final=True)
        if stop:
            res.complete = False

        res.elapsed = time.perf_counter() - start
        res.distinct = distinct
        res.transitions = transitions
        res.depth = depth
        res.pruned = pruned
        res.store_bytes = store_bytes
        res.raw_cache_hits = raw_hits
        per: dict[str, int] = {}
        for inst, n in zip(dm.instances, counts):
            per[inst.action.name] = per.get(inst.action.name, 0) + n
        res.per_action = per
        res.never_enabled = [name for name, n in per.items() if n == 0]
        res.deadlocks = deadlocks
        res.graph = g

        # Recover shortest traces by a second, bounded search.  It runs in this process, in the
        # usual successor order, so the example for a state invariant or a deadlock is the first
        # one that order meets, the one a one-process search meets first, whatever ``workers`` was.
        for key, d in sorted(violated.items()):
            if key < 1000:
                inv = dm.state_invariants[key]
                reason = f"invariant {inv.name} violated"
                res.violations.append(self.trace_to(self._violates(key, stop_on_violation), d, reason))
            else:
                inv = dm.transition_invariants[key - 1000]
                reason = f"transition invariant {inv.name} violated"
                tr = self.trace_to(self._breaks_transition(key - 1000), d - 1, reason)
                res.violations.append(self._extend(tr, key - 1000, reason))
        if deadlocked:
            res.deadlock_trace = self.trace_to(self._deadlocked, None, "deadlock: no action can make progress")
        return res

    def _violates(self, k: int, first_only: bool) -> Callable[[State], bool]:
        """Whether a state violates state invariant ``k`` (``first_only``: as the first one it violates,
        which is what a search that stops at the first violation reports)."""
        dm = self.dm
        check = dm.check_state
        if first_only:
            return lambda s: check(s) == k
        inv = dm.state_invariants[k]
        return lambda s: check(s) >= 0 and inv in dm.violated(s)

    def _breaks_transition(self, k: int) -> Callable[[State], bool]:
        """Whether some step from a state violates transition invariant ``k`` first."""
        dm = self.dm
        check = dm.check_transition
        return lambda s: any(t != s and check(s, t) == k for _, t in dm.successors(s))

    def _deadlocked(self, s: State) -> bool:
        """Not terminal, and no action changes it (as `run` counts deadlocks)."""
        dm = self.dm
        return not dm.terminal(s) and all(t == s for _, t in dm.successors(s))

    # -- traces -------------------------------------------------------------------------------
    def trace_to(self, is_target: Callable[[State], bool], depth: int | None, reason: str) -> Trace:
        """Shortest trace from the initial state to a (representative) state satisfying ``is_target``."""
        dm = self.dm
        canon = self.canon or (lambda x: x)
        init = canon(dm.initial)
        parent: dict[State, tuple[State, int] | None] = {init: None}
        frontier = [init]
        found: State | None = init if is_target(init) else None
        d = 0
        while found is None and frontier and (depth is None or d < depth + 1):
            nxt = []
            for s in frontier:
                for i, t in dm.successors(s):
                    t = canon(t)
                    if t not in parent:
                        parent[t] = (s, i)
                        if is_target(t):
                            found = t
                            break
                        nxt.append(t)
                if found is not None:
                    break
            frontier = nxt
            d += 1
        if found is None:
            raise RuntimeError(f"could not recover a trace ({reason})")
        path: list[tuple[State, int]] = []
        cur = found
        while parent[cur] is not None:
            prev, i = parent[cur]  # type: ignore[misc]
            path.append((prev, i))
            cur = prev
        path.reverse()
        return self._concretise(path, reason)

    def _concretise(self, path: Sequence[tuple[State, int]], reason: str) -> Trace:
        """Turn a path of orbit representatives into a real path from the initial state.

        ``path`` holds (representative, instance) pairs: the instance taken in that
        representative.  With symmetry, the concrete state x_i is a permutation of the
        representative (rep_i = tau_i(x_i)); the instance is mapped back through tau_i^-1 and
        tau is composed with the permutation the canonicaliser applies at each step.
        """
        dm = self.dm
        states = [dm.initial]
        steps: list[TraceStep] = []
        perm_of = getattr(dm, "canon_perm", None) if self.canon is not None else None
        tau: dict[str, list[int]] = {}
        if perm_of is not None:
            _, tau = perm_of(dm.initial)
        for rep, i in path:
            x = states[-1]
            inst = dm.instances[i]
            if perm_of is not None:
                inv = {name: _inverse(p) for name, p in tau.items()}
                args = tuple(
                    inv[p.sort.id_sort().name][v]  # type: ignore[union-attr]
                    if p.sort.id_sort() is not None and p.sort.id_sort().name in inv and v >= 0  # type: ignore[union-attr]
                    else v
                    for p, v in zip(inst.action.params, inst.args)
                )
                inst = dm.instance(inst.action.name, args)
                t_rep = dm.apply(rep, dm.instances[i])
                assert t_rep is not None
                _, sigma = perm_of(t_rep)
                tau = {name: [sigma[name][tau[name][v]] for v in range(len(tau[name]))] for name in tau}
            t = dm.apply(x, inst)
            if t is None:  # pragma: no cover - would mean the model is not symmetric
                raise RuntimeError(f"{inst.render()} is not enabled on the concrete path")
            steps.append(TraceStep(inst, tuple(dm.diff(x, t)), dm.outputs(x, inst)))
            states.append(t)
        # traces carry full states (every variable), whatever layout the search used
        return Trace(self.config, tuple(dm.expand(x) for x in states), tuple(steps), reason)

    def _extend(self, tr: Trace, k: int, reason: str) -> Trace:
        """``tr`` and the first step from its last state that violates transition invariant ``k``."""
        dm = self.dm
        cur = dm.compact(tr.states[-1])
        for i, t in dm.successors(cur):
            if t != cur and dm.check_transition(cur, t) == k:
                inst = dm.instances[i]
                st = TraceStep(inst, tuple(dm.diff(cur, t)), dm.outputs(cur, inst))
                return Trace(tr.config, tr.states + (dm.expand(t),), tr.steps + (st,), reason)
        raise RuntimeError("could not recover the violating transition")


def _inverse(p: Sequence[int]) -> list[int]:
    inv = [0] * len(p)
    for old, new in enumerate(p):
        inv[new] = old
    return inv


def explore(
    config: Config,
    *,
    symmetry: bool = False,
    graph: bool = False,
    max_depth: int | None = None,
    max_states: int | None = None,
    stop_on_violation: bool = True,
    progress: Progress | None = None,
    checked: bool = False,
    compact: bool | None = None,
    workers: int = 1,
) -> ExploreResult:
    """Explore ``config`` exhaustively (see the module docstring).

    ``compact`` (default: on, except with ``graph``) leaves variables no action ever writes out
    of the stored states; graph nodes are then full states, as callers of the graph expect.
    """
    if compact is None:
        compact = not graph
    return Explorer(config, symmetry=symmetry, checked=checked, compact=compact).run(
        graph=graph,
        max_depth=max_depth,
        max_states=max_states,
        stop_on_violation=stop_on_violation,
        progress=progress,
        workers=workers,
    )


def parse_steps(config: Config, steps: Iterable[dict[str, Any]], dm: DenseModel) -> list[Instance]:
    """Resolve ``[{"action": ..., "args": {"c": "c0"}}]`` into instances of ``dm``."""
    out = []
    for k, st in enumerate(steps, 1):
        if not isinstance(st, dict) or "action" not in st:
            raise ConfigError(f"step {k}: expected an object with 'action' and 'args'")
        try:
            action = config.model.action(str(st["action"]))
        except KeyError as e:
            raise ConfigError(f"step {k}: {e.args[0]}") from None
        args = st.get("args", {})
        vals = []
        for p in action.params:
            if p.name not in args:
                raise ConfigError(f"step {k}: {action.name} needs argument {p.name!r}")
            vals.append(_parse_value(p.sort, args[p.name], f"step {k}: {action.name}.{p.name}", config))
        out.append(dm.instance(action.name, vals))
    return out


def _parse_value(sort: Any, text: object, where: str, config: Config) -> int:
    sizes = dict(config.sizes)
    for v in sort.values(sizes):
        if sort.render(v) == str(text).lower() or sort.render(v) == str(text):
            return int(v)
    raise ConfigError(f"{where}: {text!r} is not a value of {sort.name} in this configuration")


def replay(
    config: Config, steps: Iterable[dict[str, Any]], *, reason: str = "replayed trace"
) -> tuple[Trace, list[str]]:
    """Replay a JSON step list through the model; returns the trace and the invariants it violates.

    Raises `ConfigError` naming the first step that is not enabled.
    """
    ex = Explorer(config, compact=False)
    dm = ex.dm
    insts = parse_steps(config, steps, dm)
    states = [dm.initial]
    tsteps: list[TraceStep] = []
    broken: list[str] = []
    for k, inst in enumerate(insts, 1):
        cur = states[-1]
        nxt = dm.apply(cur, inst)
        if nxt is None:
            failing = dm.failing_guards(cur, inst)
            raise ConfigError(f"step {k}: {inst.render()} is not enabled (guard {', '.join(failing) or '?'} is false)")
        tsteps.append(TraceStep(inst, tuple(dm.diff(cur, nxt)), dm.outputs(cur, inst)))
        states.append(nxt)
        v = dm.check_transition(cur, nxt)
        if v >= 0:
            broken.append(dm.transition_invariants[v].name)
    broken += [i.name for i in dm.violated(states[-1])]
    return Trace(config, tuple(states), tuple(tsteps), reason), broken


def trace_to_json_text(trace: Trace) -> str:
    return json.dumps(trace.to_json(), indent=2)
