"""Bounded model checking with z3, and z3's view of the reachable states (for the agreement checks).

`bmc` unrolls the transition relation of a bounded configuration one step at a time (one
incremental solver) and, at each depth, asks for a state (or transition) violating any
invariant not yet violated; each violation comes back as the *shortest* counterexample, as a
`properties.explorer.Trace` whose JSON steps replay through `properties.explorer.replay`.

With ``shortcut=True`` (the default) BMC also asks, whenever the set of invariants not yet
violated changes, whether that set is inductive (``R(s) ∧ T(s, s') ⇒ R(s')`` for any state
``s``, a 50 ms query where a deep unrolling takes seconds), or 2-inductive once depth 1 is
checked (a transition invariant that keeps a ghost flag false needs its previous step).  If it is, no deeper path can
violate it: the unrolling stops and the result says at which depth every deeper depth was
covered (`BmcResult.inductive_at`).  ``shortcut=False`` is plain BMC (the benchmark reports both).

`reachable_by_depth` and `successors` enumerate (all-SAT) what the symbolic relation admits,
so the tests can compare it with the explorer state for state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

from model.core import Config, Instance
from model.core.model import Invariant

from .encoding import BoundedEncoding

__all__ = ["BmcResult", "bmc", "reachable_by_depth", "successors"]


@dataclass
class BmcResult:
    """Per invariant: the shortest counterexample found (or none up to ``depth``) and when."""

    config: Config
    depth: int
    traces: dict[str, Any] = field(default_factory=dict)  # invariant -> Trace
    found_at: dict[str, float] = field(default_factory=dict)  # invariant -> seconds when found
    elapsed: float = 0.0
    per_depth: list[float] = field(default_factory=list)  # cumulative seconds after each depth
    #: the depth at which the invariants not violated were found inductive (then every depth
    #: up to ``depth``, and beyond, is covered without unrolling further); None: plain BMC
    inductive_at: int | None = None

    @property
    def ok(self) -> bool:
        return not self.traces


def _violations(enc: BoundedEncoding, invs: Sequence[Invariant], d: int) -> list[tuple[Invariant, Any]]:
    out = []
    for inv in invs:
        if inv.transition:
            if d > 0:
                out.append((inv, enc.invariant(inv, d - 1)))
        else:
            out.append((inv, enc.invariant(inv, d)))
    return out


def bmc(
    config: Config,
    depth: int,
    *,
    invariants: Iterable[str] | None = None,
    timeout_ms: int | None = None,
    shortcut: bool = True,
    stop_at_first: bool = False,
) -> BmcResult:
    """Check every invariant (or those named) on every path of at most ``depth`` steps.

    ``stop_at_first``: return after the first depth with a violation (its shortest traces)."""
    start = time.perf_counter()
    enc = BoundedEncoding(config)
    model = config.model
    names = set(invariants) if invariants is not None else None
    remaining = [i for i in model.invariants if names is None or i.name in names]
    res = BmcResult(config, depth)
    s = z3.SolverFor("QF_FD")
    if timeout_ms:
        s.set("timeout", timeout_ms)
    s.add(enc.init(0))
    tried: set[tuple[tuple[str, ...], int]] = set()
    for d in range(depth + 1):
        # depths 0..d-1 are checked: k-induction with k <= d covers every deeper depth
        ks = [k for k in (1, 2) if shortcut and d >= k and (tuple(i.name for i in remaining), k) not in tried]
        covered = False
        for k in ks:
            tried.add((tuple(i.name for i in remaining), k))
            if _inductive(config, remaining, timeout_ms, k):
                covered = True
                break
        if covered:
            res.inductive_at = d - 1
            res.per_depth.append(time.perf_counter() - start)
            break
        if d > 0:
            s.add(enc.transition(d - 1))
        while remaining:
            checks = _violations(enc, remaining, d)
            if not checks:
                break
            s.push()
            s.add(z3.Or(*[z3.Not(f) for _, f in checks]))
            r = s.check()
            if r != z3.sat:
                s.pop()
                if r == z3.unknown:
                    raise TimeoutError(f"BMC of {config.describe()} at depth {d}: z3 returned unknown")
                break
            m = s.model()
            broken = [inv for inv, f in checks if z3.is_false(m.eval(f, model_completion=True))]
            s.pop()
            trace = enc.decode_trace(m, d, f"invariant {broken[0].name} violated")
            for inv in broken:
                kind = "transition invariant" if inv.transition else "invariant"
                res.traces[inv.name] = _retitle(trace, f"{kind} {inv.name} violated")
                res.found_at[inv.name] = time.perf_counter() - start
            remaining = [i for i in remaining if i not in broken]
        res.per_depth.append(time.perf_counter() - start)
        if stop_at_first and res.traces:
            break
        # every path of d steps satisfies what is left: a fact that helps the deeper queries
        s.add(*[f for _, f in _violations(enc, remaining, d)])
    res.elapsed = time.perf_counter() - start
    return res


def _inductive(config: Config, invs: Sequence[Invariant], timeout_ms: int | None, k: int = 1) -> bool:
    """Whether ``invs`` (together) are k-inductive: on every path of k steps whose first k-1
    steps (and states) satisfy them, the last step does too.  k = 2 is for a transition
    invariant with a state part (a ghost flag that must stay false needs its previous step)."""
    if not invs:
        return True
    enc = BoundedEncoding(config, tag="#ind")
    s = z3.SolverFor("QF_FD")
    if timeout_ms:
        s.set("timeout", timeout_ms)
    for j in range(k + 1):
        s.add(enc.types(j))
    for j in range(k):
        s.add(enc.transition(j))
        s.add(*[enc.invariant(i, j) for i in invs if not i.transition])
        if j < k - 1:
            s.add(*[enc.invariant(i, j) for i in invs if i.transition])
    s.add(z3.Or(*[z3.Not(enc.invariant(i, k - 1 if i.transition else k)) for i in invs]))
    return bool(s.check() == z3.unsat)


def _retitle(trace: Any, reason: str) -> Any:
    from dataclasses import replace

    return replace(trace, reason=reason)


def reachable_by_depth(config: Config, k: int) -> list[set[tuple[int, ...]]]:
    """``out[d]``: the states whose shortest path from the initial state has ``d`` steps (d <= k),
    enumerated by z3 (all-SAT over paths of length d with stutter steps allowed)."""
    enc = BoundedEncoding(config)
    s = z3.Solver()
    s.add(enc.init(0))
    seen: list[tuple[int, ...]] = []
    out: list[set[tuple[int, ...]]] = []
    for d in range(k + 1):
        if d > 0:
            s.add(enc.transition(d - 1, stutter=True))
        s.push()
        for st in seen:
            s.add(z3.Not(enc.equals(d, st)))
        level: set[tuple[int, ...]] = set()
        while s.check() == z3.sat:
            st = enc.decode_state(s.model(), d)
            level.add(st)
            s.add(z3.Not(enc.equals(d, st)))
        s.pop()
        seen.extend(sorted(level))
        out.append(level)
    return out


def successors(enc: BoundedEncoding, state: Sequence[int]) -> set[tuple[int, tuple[int, ...]]]:
    """Every ``(instance index, successor)`` the symbolic relation admits from ``state`` (all-SAT)."""
    s = z3.Solver()
    s.add(enc.equals(0, state))
    s.add(enc.transition(0))
    act = enc.selector(0)
    out: set[tuple[int, tuple[int, ...]]] = set()
    while s.check() == z3.sat:
        m = s.model()
        inst: Instance | None = enc.decode_instance(m, 0)
        assert inst is not None
        nxt = enc.decode_state(m, 1)
        out.add((inst.index, nxt))
        s.add(z3.Or(act != inst.index, z3.Not(enc.equals(1, nxt))))
    return out
