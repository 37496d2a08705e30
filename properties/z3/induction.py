"""Proving invariants for every depth: induction with lemmas (Houdini), then k-induction.

The method, for one `Encoding` (a bounded configuration, or the parametric universe):

1. **Base case**: the initial state satisfies each state invariant.
2. **Houdini** (Flanagan & Leino): start with every state invariant as a candidate; for each
   action, check ``C(s) ∧ guard(s, p) ∧ ¬Q(post(s, p))`` for the candidates ``Q`` the action can
   affect, and drop every candidate a counterexample falsifies, until the remaining set ``C``
   is inductive (each member is preserved by every action from any state satisfying all of
   ``C``).  That set holds in every reachable state.
3. **Support**: for each proved invariant, the unsat cores of its queries (over assumption
   literals, one per other invariant), minimised by deletion, name the other invariants its
   proof used; an empty support means it is inductive on its own.
4. **k-induction** for what Houdini dropped: ``P(s0..s_{k-1}) ∧ T-path ∧ ¬P(s_k)`` over
   simple paths, with the proved invariants as facts at every step; a success is a new fact
   and Houdini runs again on the rest.
5. **Transition invariants** (``Post``): every action from a state satisfying the proved
   state invariants, into a state satisfying them, keeps the invariant; failing that,
   k-induction over steps (the invariant on the k-1 previous steps is a hypothesis).

One query per (action, invariant) keeps the post-state a substitution of the pre-state (no
frame axioms, no fresh state), which is what keeps the parametric queries in the decidable
fragment described in docs/verification.md.  Every query has a timeout; z3's ``unknown``
makes the invariant ``unknown``, never ``proved``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

from model.core.model import Action, Invariant
from model.core.sorts import BOOL

from .encoding import BoundedEncoding, Encoding, ParametricEncoding, decls_read, decls_written

__all__ = ["Proof", "ProofRun", "prove"]


@dataclass
class Proof:
    """The outcome for one invariant."""

    name: str
    status: str  # "proved" | "unknown" | "violated" (the initial state breaks it)
    method: str  # "induction" | "k-induction" | "base case" | "" (unknown)
    k: int = 0
    support: tuple[str, ...] = ()
    seconds: float = 0.0
    detail: str = ""
    #: False if a minimisation query timed out (the support is sufficient, maybe not minimal)
    support_minimal: bool = True

    @property
    def proved(self) -> bool:
        return self.status == "proved"


@dataclass
class ProofRun:
    proofs: dict[str, Proof]
    seconds: float
    queries: int
    houdini_rounds: int
    notes: list[str] = field(default_factory=list)


class _ActionContext:
    """One solver per action: pre-state, parameters, guard, post-state, tracked hypotheses."""

    def __init__(self, prover: "_Prover", action: Action) -> None:
        enc = prover.enc
        self.action = action
        self.pre = enc.state(0)
        env, dom = enc.params(action, "pre")
        self.env = env
        self.post = enc.post_state(self.pre, action, env)
        self.solver = prover.new_solver()
        self.solver.add(enc.types_on(self.pre))
        self.solver.add(enc.as_z3(BOOL, dom))
        self.solver.add(enc.as_z3(BOOL, enc.guard(self.pre, action, env)))
        if isinstance(enc, ParametricEncoding):
            self.solver.add(enc.background())
        self.written = decls_written(action)
        self._goal: dict[str, Any] = {}
        self._post_f: dict[str, Any] = {}
        self.prover = prover
        for inv in prover.state_invs:
            lit = prover.hyp[inv.name]
            self.solver.add(z3.Implies(lit, self.pre_formula(inv)))

    def pre_formula(self, inv: Invariant) -> Any:
        return self.prover.enc.invariant(inv, 0)  # the same pre-state for every action: cached

    def post_formula(self, inv: Invariant) -> Any:
        f = self._post_f.get(inv.name)
        if f is None:
            enc = self.prover.enc
            if inv.transition:
                f = enc.invariant_on(inv, self.pre, self.post)
            else:
                f = enc.invariant_on(inv, self.post)
            self._post_f[inv.name] = f
        return f

    def affects(self, inv: Invariant) -> bool:
        return inv.transition or bool(self.written & self.prover.reads(inv))

    def goal(self, key: str, formula: Any) -> Any:
        """An assumption literal that, when assumed, asserts ``formula``."""
        lit = self._goal.get(key)
        if lit is None:
            lit = self._goal[key] = z3.Bool(f"goal:{self.action.name}:{key}")
            self.solver.add(z3.Implies(lit, formula))
        return lit


class _Prover:
    def __init__(self, enc: Encoding, invariants: Sequence[Invariant], timeout_ms: int, max_k: int) -> None:
        self.enc = enc
        self.invs = list(invariants)
        self.state_invs = [i for i in self.invs if not i.transition]
        self.trans_invs = [i for i in self.invs if i.transition]
        self.timeout_ms = timeout_ms
        self.minimize_timeout_ms = min(timeout_ms, 1000)
        self.minimize = True
        self.max_k = max_k
        self.hyp = {i.name: z3.Bool(f"hyp:{i.name}") for i in self.state_invs}
        self.hyp_name = {lit.get_id(): name for name, lit in self.hyp.items()}
        self._reads: dict[str, set[object]] = {}
        self.queries = 0
        self.spent: dict[str, float] = {i.name: 0.0 for i in self.invs}
        self._contexts: dict[str, _ActionContext] = {}

    def reads(self, inv: Invariant) -> set[object]:
        """The state declarations ``inv`` reads (cached: asked once per action and round)."""
        r = self._reads.get(inv.name)
        if r is None:
            r = self._reads[inv.name] = decls_read(inv.expr)
        return r

    def new_solver(self) -> Any:
        s = z3.Solver()
        s.set("timeout", self.timeout_ms)
        return s

    def path_solver(self) -> Any:
        """A solver for paths of states: with the parametric encoding's background axioms."""
        s = self.new_solver()
        if isinstance(self.enc, ParametricEncoding):
            s.add(self.enc.background())
        return s

    def context(self, a: Action) -> _ActionContext:
        c = self._contexts.get(a.name)
        if c is None:
            c = self._contexts[a.name] = _ActionContext(self, a)
        return c

    def check(self, solver: Any, assumptions: Sequence[Any], charge: Iterable[str] = ()) -> Any:
        t = time.perf_counter()
        r = solver.check(*assumptions)
        dt = time.perf_counter() - t
        self.queries += 1
        names = list(charge)
        for n in names:
            self.spent[n] += dt / max(1, len(names))
        return r

    # -- base case -----------------------------------------------------------------------------
    def base(self, inv: Invariant) -> tuple[bool | None, str]:
        enc = self.enc
        s = self.path_solver()
        s.add(z3.Not(enc.invariant_on(inv, enc.init_state())))
        r = self.check(s, [], [inv.name])
        if r == z3.unsat:
            return True, ""
        if r == z3.sat:
            return False, "the initial state violates it"
        return None, f"z3 returned unknown on the base case ({s.reason_unknown()})"

    # -- Houdini ----------------------------------------------------------------------------------
    def houdini(
        self, candidates: list[Invariant], facts: Sequence[Invariant]
    ) -> tuple[list[Invariant], dict[str, str], int]:
        """The largest inductive subset of ``candidates`` (``facts`` are assumed, already proved)."""
        dropped: dict[str, str] = {}
        rounds = 0
        cand = list(candidates)
        changed = True
        while changed and cand:
            changed = False
            rounds += 1
            for a in self.enc.model.actions:
                ctx = self.context(a)
                targets = [q for q in cand if ctx.affects(q)]
                while targets:
                    hyps = [self.hyp[x.name] for x in list(facts) + cand]
                    key = "any:" + ",".join(sorted(q.name for q in targets))
                    lit = ctx.goal(key, z3.Or(*[z3.Not(ctx.post_formula(q)) for q in targets]))
                    r = self.check(ctx.solver, [lit, *hyps], [q.name for q in targets])
                    if r == z3.unsat:
                        break
                    if r == z3.sat:
                        m = ctx.solver.model()
                        broken = [q for q in targets if z3.is_false(m.eval(ctx.post_formula(q), model_completion=True))]
                        if not broken:  # pragma: no cover - the model must falsify one of the targets
                            broken = targets
                        cti = self.describe_cti(ctx, m, broken)
                        for q in broken:
                            dropped[q.name] = f"not inductive: {cti}"
                    else:
                        reason = ctx.solver.reason_unknown()
                        broken = targets
                        for q in broken:
                            dropped[q.name] = f"z3 returned unknown ({reason}) for action {a.name}"
                    cand = [q for q in cand if q not in broken]
                    targets = [q for q in targets if q not in broken]
                    changed = True
        return cand, dropped, rounds

    def support(self, inv: Invariant, proved: Sequence[Invariant]) -> tuple[tuple[str, ...], bool] | str:
        """The other invariants the proof of ``inv`` uses (minimal by deletion) and whether the
        minimisation completed; or why the proof fails (a counterexample, or z3's unknown)."""
        used: set[str] = set()
        minimal = True
        others = [x for x in proved if x.name != inv.name]
        for a in self.enc.model.actions:
            ctx = self.context(a)
            if not ctx.affects(inv):
                continue
            goal = ctx.goal(inv.name, z3.Not(ctx.post_formula(inv)))
            base = [goal] + ([self.hyp[inv.name]] if not inv.transition else [])
            hyps = [self.hyp[x.name] for x in others]
            r = self.check(ctx.solver, base + hyps, [inv.name])
            if r == z3.sat:
                return f"not inductive: {self.describe_cti(ctx, ctx.solver.model(), [inv])}"
            if r != z3.unsat:
                return f"z3 returned unknown ({ctx.solver.reason_unknown()}) for action {a.name}"
            core = {c.get_id() for c in ctx.solver.unsat_core()}  # ids: printing z3 terms is slow
            needed = [h for h in hyps if h.get_id() in core]
            # deletion-based minimisation of the core
            # (a short timeout: a query that is not quickly unsat keeps the hypothesis, which
            # leaves the support sufficient, if perhaps not minimal)
            ctx.solver.set("timeout", self.minimize_timeout_ms)
            k = 0
            minimal = minimal and self.minimize
            while self.minimize and k < len(needed):
                trial = needed[:k] + needed[k + 1:]
                r = self.check(ctx.solver, base + trial, [inv.name])
                if r == z3.unsat:
                    needed = trial
                else:
                    minimal = minimal and r == z3.sat
                    k += 1
            ctx.solver.set("timeout", self.timeout_ms)
            used.update(self.hyp_name[h.get_id()] for h in needed)
        return tuple(sorted(used)), minimal

    def describe_cti(self, ctx: _ActionContext, m: Any, invs: Sequence[Invariant] = ()) -> str:
        """A counterexample to induction: the action instance and the pre-state (bounded: the
        variables the invariants and the action read; parametric: the model's size)."""
        enc = self.enc
        if isinstance(enc, BoundedEncoding):
            dm = enc.dense()
            pre = enc.decode_state(m, 0)
            args = []
            for p in ctx.action.params:
                v = m.eval(enc.as_z3(p.sort, ctx.env[p]), model_completion=True)
                val = bool(z3.is_true(v)) if z3.is_bool(v) else enc.number(v)
                args.append(f"{p.name}={p.sort.render(int(val))}")
            relevant = set().union(*(decls_read(i.expr) for i in invs)) if invs else None
            if relevant is not None:
                for _, g in ctx.action.guard:
                    relevant |= decls_read(g)
                relevant |= ctx.written
            names = {d.name for d in relevant} if relevant is not None else None  # type: ignore[attr-defined]
            state = "; ".join(
                ln for ln in dm.format_state(pre).splitlines() if names is None or ln.split(":")[0] in names
            )
            return f"{ctx.action.name}({', '.join(args)}) from [{state}]"
        sizes = ", ".join(f"{s.name()}: {len(m.get_universe(s) or [])}" for s in m.sorts())
        return f"{ctx.action.name} from a state of a model with {sizes or 'no identity'} (elements incl. none)"

    # -- k-induction ----------------------------------------------------------------------------
    def _initial_path(self, steps: int) -> Any:
        """A solver over a path of ``steps`` steps from the initial state."""
        base = self.path_solver()
        base.add(self.enc.init(0))
        for i in range(steps):
            base.add(self.enc.transition(i))
        return base

    def _simple_path(self, steps: int, facts: Sequence[Invariant]) -> Any:
        """A solver over a simple path (no state repeated, in a bounded configuration) of ``steps``
        steps through well-typed states satisfying the ``facts``: the step case's hypotheses."""
        enc = self.enc
        s = self.path_solver()
        for i in range(steps + 1):
            s.add(enc.types(i))
            for f in facts:
                s.add(enc.invariant(f, i))
        for i in range(steps):
            s.add(enc.transition(i))
        if isinstance(enc, BoundedEncoding):
            for i in range(steps + 1):
                for j in range(i + 1, steps + 1):
                    s.add(z3.Or(*[a != b for a, b in zip(enc.state(i).slots, enc.state(j).slots)]))
        return s

    def k_induction(self, inv: Invariant, facts: Sequence[Invariant], k: int) -> Any:
        """``unsat`` if ``inv`` is k-inductive: it holds on every path of fewer than k steps from
        the initial state (the base case) and, on every simple path of k steps through states
        satisfying it and the ``facts``, at the end too (the step case)."""
        enc = self.enc
        base = self._initial_path(k - 1)
        base.add(z3.Or(*[z3.Not(enc.invariant(inv, j)) for j in range(1, k)]))
        r = self.check(base, [], [inv.name])
        if r != z3.unsat:
            return z3.sat if r == z3.sat else r
        s = self._simple_path(k, facts)
        for i in range(k):
            s.add(enc.invariant(inv, i))
        s.add(z3.Not(enc.invariant(inv, k)))
        return self.check(s, [], [inv.name])

    def k_induction_transition(self, inv: Invariant, facts: Sequence[Invariant], k: int) -> Any:
        """``unsat`` if the transition invariant ``inv`` is k-inductive: it holds on each of the
        first k steps from the initial state, and on every simple path of k steps through
        states satisfying the ``facts`` whose first k-1 steps satisfy it, on the last step too.
        (A transition invariant with a state part, e.g. a ghost flag that must stay false, needs
        its own previous step as a hypothesis: k = 2.)"""
        enc = self.enc
        base = self._initial_path(k)
        base.add(z3.Or(*[z3.Not(enc.invariant(inv, j)) for j in range(k)]))
        r = self.check(base, [], [inv.name])
        if r != z3.unsat:
            return z3.sat if r == z3.sat else r
        s = self._simple_path(k, facts)
        for j in range(k - 1):
            s.add(enc.invariant(inv, j))
        s.add(z3.Not(enc.invariant(inv, k - 1)))
        return self.check(s, [], [inv.name])

def prove(
    enc: Encoding,
    *,
    invariants: Iterable[str] | None = None,
    timeout_ms: int = 20000,
    max_k: int = 3,
    skip: Mapping[str, str] | None = None,
    minimize: bool = True,
) -> ProofRun:
    """Prove the model's invariants (or those named) for every depth; see the module docstring.

    ``skip``, if given, maps invariants *not* to try to the reason (e.g. "not
    inductive in the bounded configuration"): a counterexample to induction of a bounded
    configuration is one of the parametric universe too, so the parametric proof starts from
    what the bounded Houdini kept and spends no time on quantified satisfiable queries.
    ``minimize=False`` reports each support as z3's unsat core, unminimised (sufficient, not
    necessarily minimal): the proof alone, without the deletion queries that name the lemmas used.
    """
    start = time.perf_counter()
    model = enc.model
    names = set(invariants) if invariants is not None else None
    chosen = [i for i in model.invariants if names is None or i.name in names]
    p = _Prover(enc, chosen, timeout_ms, max_k)
    p.minimize = minimize
    proofs: dict[str, Proof] = {}
    notes: list[str] = []

    # 1. base case
    skip = dict(skip or {})
    for inv in chosen:
        if inv.name in skip:
            proofs[inv.name] = Proof(inv.name, "unknown", "", detail=skip[inv.name])
    p.state_invs = [i for i in p.state_invs if i.name not in skip]
    p.trans_invs = [i for i in p.trans_invs if i.name not in skip]
    candidates: list[Invariant] = []
    for inv in p.state_invs:
        ok, why = p.base(inv)
        if ok:
            candidates.append(inv)
        else:
            proofs[inv.name] = Proof(inv.name, "violated" if ok is False else "unknown", "base case", detail=why)

    # 2-4. Houdini, then k-induction on what it drops, until nothing changes
    facts: list[Invariant] = []
    methods: dict[str, tuple[str, int]] = {}
    rounds = 0
    why_not: dict[str, str] = {}
    pending = candidates
    while pending:
        proved, dropped, r = p.houdini(pending, facts)
        rounds += r
        why_not.update(dropped)
        for q in proved:
            methods[q.name] = ("induction", 1)
        facts += proved
        rest = [q for q in pending if q not in proved]
        progress = False
        for q in rest:
            for k in range(2, max_k + 1):
                r2 = p.k_induction(q, facts, k)
                if r2 == z3.unsat:
                    methods[q.name] = ("k-induction", k)
                    facts.append(q)
                    progress = True
                    break
                if r2 == z3.unknown:
                    why_not[q.name] += f"; {k}-induction: z3 returned unknown"
                    break
            else:
                if max_k >= 2:
                    why_not[q.name] += f"; not {max_k}-inductive either"
        pending = [q for q in rest if q not in facts] if progress else []
    for q in candidates:
        if q.name not in methods:
            proofs[q.name] = Proof(q.name, "unknown", "", detail=why_not.get(q.name, ""))

    # 3. supports of the induction proofs (over the final set of facts)
    for q in facts:
        method, k = methods[q.name]
        sup: tuple[tuple[str, ...], bool] | str
        if method == "induction":
            sup = p.support(q, facts)
        else:
            sup = tuple(sorted(f.name for f in facts if f is not q and methods[f.name][0] == "induction")), False
        if isinstance(sup, str):  # pragma: no cover - the joint query was unsat, so each part is
            proofs[q.name] = Proof(q.name, "unknown", "", detail=sup)
            continue
        proofs[q.name] = Proof(q.name, "proved", method, k, sup[0], support_minimal=sup[1])

    # 5. transition invariants, with the proved state invariants as facts
    for inv in p.trans_invs:
        tsup = p.support(inv, facts)
        if isinstance(tsup, str):
            kind = None
            for k in range(2, max_k + 1):
                r3 = p.k_induction_transition(inv, facts, k)
                if r3 == z3.unsat:
                    kind = k
                    break
                if r3 == z3.unknown:
                    tsup += f"; {k}-induction: z3 returned unknown"
                    break
            if kind is None:
                proofs[inv.name] = Proof(inv.name, "unknown", "", detail=tsup)
            else:
                support = tuple(sorted(f.name for f in facts if methods[f.name][0] == "induction"))
                proofs[inv.name] = Proof(inv.name, "proved", "k-induction", kind, support, support_minimal=False)
        else:
            proofs[inv.name] = Proof(inv.name, "proved", "induction", 1, tsup[0], support_minimal=tsup[1])

    for name, pr in proofs.items():
        pr.seconds = p.spent.get(name, 0.0)
    ordered = {i.name: proofs[i.name] for i in chosen if i.name in proofs}
    return ProofRun(ordered, time.perf_counter() - start, p.queries, rounds, notes)


def relative_ctis(enc: Encoding, *, timeout_ms: int = 20000) -> dict[str, list[str]]:
    """For each invariant, the actions that can break it from a state satisfying *all* state
    invariants (one counterexample to induction each): what a strengthening lemma must rule out."""
    p = _Prover(enc, list(enc.model.invariants), timeout_ms, 1)
    out: dict[str, list[str]] = {}
    hyps = [p.hyp[i.name] for i in p.state_invs]
    for inv in p.invs:
        for a in enc.model.actions:
            ctx = p.context(a)
            if not ctx.affects(inv):
                continue
            goal = ctx.goal(inv.name, z3.Not(ctx.post_formula(inv)))
            r = p.check(ctx.solver, [goal, *hyps])
            if r == z3.sat:
                out.setdefault(inv.name, []).append(p.describe_cti(ctx, ctx.solver.model(), [inv]))
            elif r == z3.unknown:
                out.setdefault(inv.name, []).append(f"{a.name}: z3 returned unknown")
    return out
