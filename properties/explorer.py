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
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import networkx as nx

from model.core import Config, DenseModel, Instance, compile_dense
from model.core.errors import ConfigError
from properties.fingerprints import FingerprintSet, fingerprint
from properties.symmetry import compile_canonicalizer, symmetric_sorts

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
    graph: nx.DiGraph | None = None
    symmetric_sorts: list[str] = field(default_factory=list)
    #: successors skipped because the exact same raw state was generated before (symmetry runs)
    raw_cache_hits: int = 0

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

#: slots of the direct-mapped cache of raw (not yet canonical) successors, per process
RAW_CACHE_SLOTS = 1 << 20
#: frontiers smaller than this are expanded in this process even when workers are available
PARALLEL_MIN_FRONTIER = 2_000


@dataclass
class Batch:
    """What expanding a slice of the frontier produced (in this process or in a worker).

    ``found`` holds, per successor, its 64-bit fingerprint, the (canonical) state and the index
    of a state invariant it violates (-1: none); the merge keeps those not seen before.
    """

    found: list[tuple[int, State, int]]
    counts: list[int]
    transitions: int
    #: (transition invariant index, pre, post)
    tviolations: list[tuple[int, State, State]]
    deadlocks: int
    deadlock: State | None
    raw_hits: int
    #: every (pre, post, instance) edge, when building the graph
    edges: list[tuple[State, State, int]] | None = None


_WORKER_EXPLORER: Explorer | None = None


def _expand_in_worker(states: list[State]) -> Batch:
    assert _WORKER_EXPLORER is not None
    return _WORKER_EXPLORER.expand(states, dedup=True)


class _WorkerPool:
    """Forked processes that inherit the compiled model (generated code cannot be pickled)."""

    def __init__(self, explorer: Explorer, workers: int) -> None:
        global _WORKER_EXPLORER
        self.explorer = explorer
        self.workers = workers
        _WORKER_EXPLORER = explorer
        self.pool = multiprocessing.get_context("fork").Pool(workers)

    def expand(self, frontier: list[State]) -> Iterable[Batch]:
        if len(frontier) < PARALLEL_MIN_FRONTIER:
            return [self.explorer.expand(frontier)]
        n = self.workers * 4
        size = -(-len(frontier) // n)
        slices = [frontier[k : k + size] for k in range(0, len(frontier), size)]
        return self.pool.imap(_expand_in_worker, slices)  # in order: deterministic merge

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


class Explorer:
    """Compiled machinery for one configuration (shared by `explore` and `replay`)."""

    def __init__(self, config: Config, *, symmetry: bool = False, checked: bool = False, compact: bool = True) -> None:
        self.config = config
        self.dm: DenseModel = compile_dense(config, checked=checked, compact=compact)
        self.canon: Callable[[State], State] | None = None
        self.symmetric: list[str] = []
        self._raw_cache: array | None = None  # see expand(); one per process
        if symmetry:
            self.canon, _ = compile_canonicalizer(self.dm)
            sizes = dict(config.sizes)
            self.symmetric = [s.name for s in symmetric_sorts(config.model) if s.size(sizes) > 1]

    # -- the fast search ---------------------------------------------------------------------
    def expand(self, states: Sequence[State], *, graph: bool = False, dedup: bool = False) -> Batch:
        """Successors of ``states``: each canonicalised, fingerprinted and checked (see `Batch`).

        This is the half of a BFS level that needs no global knowledge, so worker processes
        run it on slices of the frontier.  ``dedup`` drops successors already produced by this
        call (it shrinks what a worker sends back).
        """
        dm = self.dm
        canon = self.canon
        successors = dm.successors
        inst_check = dm.inst_check
        inst_tcheck = dm.inst_tcheck
        terminal = dm.terminal
        counts = [0] * len(dm.instances)
        found: list[tuple[int, State, int]] = []
        add_found = found.append
        edges: list[tuple[State, State, int]] | None = [] if graph else None
        tviolations: list[tuple[int, State, State]] = []
        sent: set[int] = set()
        transitions = deadlocks = raw_hits = 0
        deadlock: State | None = None
        mask = (1 << 64) - 1
        use_raw_cache = canon is not None and not graph
        if use_raw_cache and self._raw_cache is None:
            self._raw_cache = array("Q", bytes(8 * RAW_CACHE_SLOTS))
        raw_cache = self._raw_cache if use_raw_cache else None
        raw_mask = RAW_CACHE_SLOTS - 1
        for s in states:
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
                        tviolations.append((v, s, t))
                if raw_cache is not None:
                    # An exact raw duplicate of a successor seen before (by this process) was already
                    # checked and sent as its representative: skip canonicalising it again.  The cache
                    # is direct-mapped and lossy: a miss only costs a canonicalisation.
                    hr = (hash(t) & mask) or 1
                    k = hr & raw_mask
                    if raw_cache[k] == hr:
                        raw_hits += 1
                        continue
                    raw_cache[k] = hr
                # invariants the step could break, judged on the successor before canonicalising
                chk = inst_check[i]
                v = chk(t) if chk is not None else -1
                if canon is not None:
                    t = canon(t)
                h = (hash(t) & mask) or 1  # fingerprint(t), inlined: this is the hot loop
                if edges is not None:
                    edges.append((s, t, i))
                if dedup:
                    if h in sent:
                        continue
                    sent.add(h)
                add_found((h, t, v))
            if not progressed and not terminal(s):
                deadlocks += 1
                if deadlock is None:
                    deadlock = s
        return Batch(found, counts, transitions, tviolations, deadlocks, deadlock, raw_hits, edges)

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
        """Breadth-first search; ``workers`` > 1 expands each level in that many forked processes.

        The merge (deduplication against the fingerprint store) stays in this process and takes
        the slices in order, so the result, counterexamples included, does not depend on
        ``workers``.
        """
        dm = self.dm
        canon = self.canon
        check_state = dm.check_state
        counts = [0] * len(dm.instances)
        res = ExploreResult(config=self.config, symmetry=canon is not None, symmetric_sorts=self.symmetric)
        g: nx.DiGraph | None = nx.DiGraph() if graph else None
        pool = _WorkerPool(self, workers) if workers > 1 and g is None else None

        start = time.perf_counter()
        dm.pruned[0] = 0
        init = canon(dm.initial) if canon else dm.initial
        seen = FingerprintSet(store_capacity)
        seen.add(fingerprint(init))
        if g is not None:
            g.add_node(init, depth=0, initial=True)
        violated: dict[int, tuple[str, int, State | tuple[State, State]]] = {}
        deadlock_example: State | None = None
        frontier: list[State] = [init]
        depth = 0
        generated = 0
        transitions = 0
        deadlocks = 0
        add = seen.add
        table, cap = seen.table, seen.capacity
        raw_hits = 0
        stop = False

        def note_violation(v: int, s: State, d: int) -> None:
            nonlocal stop
            if v >= 0:
                key = v
                if key not in violated:
                    violated[key] = ("state", d, s)
                    if stop_on_violation:
                        stop = True

        note_violation(check_state(init), init, 0)
        # States are acyclic tuples of ints: the cyclic garbage collector has nothing to find
        # among them, but the millions it would scan cost a third of the run.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            while frontier and not stop:
                if max_depth is not None and depth >= max_depth:
                    res.complete = False
                    break
                nxt: list[State] = []
                append = nxt.append
                if pool is not None:
                    batches: Iterable[Batch] = pool.expand(frontier)
                else:  # small slices keep the batch in the CPU cache
                    batches = (self.expand(frontier[k : k + 256], graph=g is not None)
                               for k in range(0, len(frontier), 256))
                for batch in batches:
                    for i, n in enumerate(batch.counts):
                        counts[i] += n
                    transitions += batch.transitions
                    raw_hits += batch.raw_hits
                    for v, pre, post in batch.tviolations:
                        if (1000 + v) not in violated:
                            violated[1000 + v] = ("transition", depth + 1, (pre, post))
                            if stop_on_violation:
                                stop = True
                    if check_deadlocks and batch.deadlocks:
                        deadlocks += batch.deadlocks
                        if deadlock_example is None:
                            deadlock_example = batch.deadlock
                    generated += len(batch.found)
                    for h, t, v in batch.found:
                        # inlined FingerprintSet.add: first probe here, collisions in the method
                        j = h % cap
                        slot = table[j]
                        if slot == h:
                            continue
                        if slot == 0:
                            table[j] = h
                            seen.count += 1
                            if seen.count > seen.limit:
                                seen._grow()
                                table, cap = seen.table, seen.capacity
                        elif not add(h):
                            continue
                        else:
                            table, cap = seen.table, seen.capacity  # add() may have grown it
                        append(t)
                        if v >= 0:
                            note_violation(v, t, depth + 1)
                            if not stop_on_violation:
                                for inv in dm.violated(t):
                                    note_violation(dm.state_invariants.index(inv), t, depth + 1)
                        if g is not None:
                            g.add_node(t, depth=depth + 1)
                    if g is not None and batch.edges is not None:
                        for pre, post, i in batch.edges:
                            g.add_edge(pre, post, action=dm.instances[i].render(), name=dm.instances[i].action.name)
                    if stop:
                        break
                depth += 1 if nxt else 0
                frontier = nxt
                if progress is not None:
                    progress(depth, generated, len(seen), len(frontier))
                if max_states is not None and len(seen) >= max_states and frontier:
                    res.complete = False
                    break
        finally:
            if gc_was_enabled:
                gc.enable()
            if pool is not None:
                pool.close()
        if progress is not None:
            progress(depth, generated, len(seen), len(frontier), final=True)
        if stop:
            res.complete = False

        res.elapsed = time.perf_counter() - start
        res.distinct = len(seen)
        res.transitions = transitions
        res.depth = depth
        res.pruned = dm.pruned[0]
        res.store_bytes = seen.nbytes
        res.raw_cache_hits = raw_hits
        per: dict[str, int] = {}
        for inst, n in zip(dm.instances, counts):
            per[inst.action.name] = per.get(inst.action.name, 0) + n
        res.per_action = per
        res.never_enabled = [name for name, n in per.items() if n == 0]
        res.deadlocks = deadlocks
        res.graph = g

        # recover shortest traces (second, bounded search)
        for key in sorted(violated):
            kind, d, where = violated[key]
            if kind == "state":
                inv = dm.state_invariants[key]
                reason = f"invariant {inv.name} violated"
                res.violations.append(self.trace_to(_equals(where), d, reason))  # type: ignore[arg-type]
            else:
                inv = dm.transition_invariants[key - 1000]
                before, after = where  # type: ignore[misc]  # a (pre, post) pair for transition invariants
                reason = f"transition invariant {inv.name} violated"
                tr = self.trace_to(_equals(before), d - 1, reason)  # type: ignore[arg-type]
                res.violations.append(self._extend(tr, after, reason))  # type: ignore[arg-type]
        if deadlock_example is not None:
            tgt = deadlock_example
            res.deadlock_trace = self.trace_to(lambda s: s == tgt, None, "deadlock: no action can make progress")
        return res

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

    def _extend(self, tr: Trace, post_rep: State, reason: str) -> Trace:
        dm = self.dm
        canon = self.canon
        cur = dm.compact(tr.states[-1])
        for i, t in dm.successors(cur):
            c = canon(t) if canon else t
            if c == post_rep or t == post_rep:
                if dm.check_transition(cur, t) >= 0:
                    inst = dm.instances[i]
                    st = TraceStep(inst, tuple(dm.diff(cur, t)), dm.outputs(cur, inst))
                    return Trace(tr.config, tr.states + (dm.expand(t),), tr.steps + (st,), reason)
        for i, t in dm.successors(cur):
            if dm.check_transition(cur, t) >= 0:
                inst = dm.instances[i]
                st = TraceStep(inst, tuple(dm.diff(cur, t)), dm.outputs(cur, inst))
                return Trace(tr.config, tr.states + (dm.expand(t),), tr.steps + (st,), reason)
        raise RuntimeError("could not recover the violating transition")


def _equals(target: State) -> Callable[[State], bool]:
    return lambda s: s == target


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
