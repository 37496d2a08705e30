"""Compile a model for *unbounded* runs: the engine behind the monitors and trace checking.

The dense compiler fixes every bound; a monitor cannot, because a real run creates contexts,
objects and requests without limit.  Here

* identities are interned as they appear (``"ctx-17"`` becomes the next `Ctx`), so every `Id`
  sort is open-ended;
* a function-valued variable is a dict holding only its non-default cells, plus a *value
  index* (value -> keys holding it; for a binary function also per position: the other index
  and the value -> the keys at that position), so "the requests whose context is c", "the
  linked requests" or "the threads ahead of t" are one lookup, never a scan;
* quantifiers range over the identities seen so far plus *fresh* ones (all of whose cells hold
  defaults), which is exact because a model cannot tell two unseen identities apart
  (symmetry) and, per sort, the engine adds as many fresh identities as quantifiers nest over
  that sort;
* a quantifier whose body selects candidates (``forall o. owner[o] == c => ...``,
  ``exists r. phase[r] == DRAINING & ...``, ``forall z. ahead[t, z] => ...``) iterates the
  smallest candidate set its selectors give, through the value indexes.

**Invariants are checked incrementally, exactly.**  Every invariant is split into *parts*
``forall x1..xn. body`` (leading universal quantifiers over identities become the part's
*instance variables*; conjunctions and ``A => (B & forall y. C)`` are split).  After a step
only the instances that can have become false are evaluated.  Which ones is derived from the
expression, per *read site* (an occurrence ``F[args]`` in the body), by a flip analysis:

    An instance that held before the step (the invariant held) and fails after it has a
    *flipping path* from its root to a read of a changed cell: every node on it has a
    different value before and after.  Along that path the connectives fix facts that hold
    in one of the two states (``A => C`` failing after: ``A`` true and ``C`` false after;
    ``a & b`` failing after, having held: ``a`` and ``b`` true before; ``x == y`` flipping
    through ``x``: ``y`` equals ``x``'s old or new value; ...).

So for a changed cell ``F[k]`` and a site ``F[args]`` the engine enumerates the instance
variables that make ``args == k`` and satisfy those facts ("gates"), using the gates as
selectors over the value indexes (``owner[o] == c`` with ``o`` known gives ``c``; ``newer[b,
z]`` with ``b`` known gives the ``z`` through the positional index); a variable no gate
selects ranges over all identities (counted in `SparseModel.fallbacks`).  A *transition*
invariant (one using `Post`) is treated the same way between two evaluations: every read in
the post state (which must make it true: a transition invariant must hold on a stuttering
step, which `tests/test_monitor.py` checks for every model) and the real one (reads outside
`Post` see the pre state), so only reads outside `Post` of changed cells matter.

Every step's semantics is the reference semantics (`model.core.evaluate`); the tests compare
the engine with the dense compiler on random runs, and the incremental checks with full
evaluations after every step.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import EvaluationError, ModelDefinitionError
from .expr import App, BoundVar, Const, Expr, Quant, Ref, Select, _NoneConst, conjuncts, walk
from .model import Action, Assign, Func, FuncAssign, Invariant, Model, ModelConst, StateVar
from .sorts import NONE_VALUE, BoolSort, EnumSort, IdSort, IntSort, OptSort, Sort

__all__ = ["FRESH", "Operation", "SparseModel", "enum_value"]

#: the least number of never-seen identities a quantifier also ranges over; per sort the
#: engine uses the model's deepest nesting of quantifiers over that sort, if larger
FRESH = 2


@dataclass
class Operation:
    """What an implementation reports: an action and, if it has checks, its rejected twin."""

    name: str
    action: Action
    rejected: Action | None
    index: int
    rejected_index: int | None


# --------------------------------------------------------------------------------------
# Runtime helpers used by the generated code
# --------------------------------------------------------------------------------------


def _one(v: int) -> tuple[int, ...]:
    return (v,) if v >= 0 else ()


def _two(a: int, b: int) -> tuple[int, ...]:
    return tuple({x for x in (a, b) if x >= 0})


def _idx(index: dict[int, set[Any]], v: int, default: int, total: int) -> Iterable[Any]:
    """Keys whose cell holds ``v`` (all keys if ``v`` is the default)."""
    if v == default:
        return range(total)
    return index.get(v, ())


def _idx_pre(index: dict[int, set[Any]], changed: set[Any], v: int, default: int, total: int) -> Iterable[Any]:
    """Keys whose cell may have held ``v`` before the step: the index now, plus every changed key."""
    if v == default:
        return range(total)
    got = index.get(v)
    return (got | changed) if got else changed


def _pidx(index: dict[tuple[int, int], set[int]], rest: int, v: int, default: int, total: int) -> Iterable[int]:
    """Binary functions: the values at one position whose cell (with the other position ``rest``) holds ``v``."""
    if v == default:
        return range(total)
    return index.get((rest, v), ())


def _pidx_pre(index: dict[tuple[int, int], set[int]], changed: set[tuple[int, int]], pos: int, rest: int, v: int,
              default: int, total: int) -> Iterable[int]:
    if v == default:
        return range(total)
    got = index.get((rest, v), set())
    return got | {k[pos] for k in changed}


def _union(*sets: Iterable[Any]) -> Iterable[Any]:
    out: set[Any] = set()
    for s in sets:
        if isinstance(s, range):
            return s
        out.update(s)
    return out


def _smallest(*sets: Any) -> Any:
    return min(sets, key=len)


def _unwrap(v: int) -> int:
    if v == NONE_VALUE:
        raise EvaluationError(".some of none")
    return v


_MISSING = object()


# --------------------------------------------------------------------------------------
# Expression helpers
# --------------------------------------------------------------------------------------


def _strip(e: Expr) -> Expr:
    while isinstance(e, App) and e.op in ("some", "unwrap"):
        e = e.args[0]
    return e


def _is_var(e: Expr, var: BoundVar) -> bool:
    e = _strip(e)
    return isinstance(e, Ref) and e.decl is var


def _bound_vars(e: Expr) -> set[BoundVar]:
    """Bound variables referenced in ``e`` and not bound inside it."""
    inner = {n.var for n in walk(e) if isinstance(n, Quant)}
    return {n.decl for n in walk(e) if isinstance(n, Ref) and isinstance(n.decl, BoundVar)} - inner


def _mentions(e: Expr, decl: object) -> bool:
    return any(isinstance(n, Ref) and n.decl is decl for n in walk(e))


def _has_post(e: Expr) -> bool:
    return any(isinstance(n, App) and n.op == "post" for n in walk(e))


def _default_of(f: Func) -> int:
    return int(f.init)


def _is_default_const(e: Expr, f: Func) -> bool:
    if isinstance(e, _NoneConst):
        return _default_of(f) == NONE_VALUE
    return isinstance(e, Const) and int(e.value) == _default_of(f)


# --------------------------------------------------------------------------------------
# Candidate selection: which index answers which atom (rendered by each backend)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A value the generated code holds in a local: ``k0``/``k1`` (a component of the changed key), ``old`` /
    ``new`` (the changed cell's values).  Each backend names its locals."""

    name: str


#: what a selector compares with: an expression, a local of the generated code, or nothing (the cell is true)
SelValue = Expr | Slot | None


@dataclass(frozen=True)
class Selector:
    """A set of values of a quantified variable holding every value that makes an atom true.

    The choice of index is made here, once; the Python monitor (`_Code.render`) and the compiled checker
    (properties/compiled/cgen.py) only render it.  Kinds: ``one`` (the value ``value``), ``two`` (``value``
    and ``value2``), ``keys`` (the non-default cells of function ``func``), ``cell`` (``F[var] == value``),
    ``cell2`` (``F[.., var, ..] == value``, the variable at ``pos``, the other argument ``rest``), ``union``
    and ``smallest`` (of ``parts``).  ``pre``: read the pre state (and the keys changed since) outside `Post`.
    """

    kind: str
    pre: bool
    func: int = -1
    value: SelValue = None
    value2: SelValue = None
    pos: int = 0
    rest: Expr | None = None
    sort: Sort | None = None
    parts: tuple[Selector, ...] = ()


def render_value(v: SelValue, expr: Callable[[Expr], str], slots: Mapping[str, str] | None, true: str) -> str:
    """A selector's value in a backend's code: ``expr`` renders an expression, ``slots`` names the locals,
    ``true`` is the literal for a true cell."""
    if v is None:
        return true
    if isinstance(v, Slot):
        assert slots is not None, v
        return slots[v.name]
    return expr(v)


def selectors(sm: SparseModel, var: BoundVar, atom: Expr, bound: set[Any], pre: bool) -> list[Selector]:
    """Selectors of the values of ``var`` that can make ``atom`` true; ``bound``: the variables bound already
    (every other variable ``atom`` mentions must be among them); an empty list: no selector."""
    ok = lambda e: not _mentions(e, var) and _bound_vars(e) <= bound
    if isinstance(atom, App) and atom.op == "eq":
        out: list[Selector] = []
        x, y = atom.args
        for lhs, rhs in ((x, y), (y, x)):
            if not ok(rhs):
                continue
            s = _strip(lhs)
            if isinstance(s, Ref) and s.decl is var:
                out.append(Selector("one", pre, value=rhs))
            elif isinstance(s, Select):
                got = cell_selector(sm, var, s, rhs, bound, pre)
                if got:
                    out.append(got)
        return out
    if isinstance(atom, App) and atom.op == "ne":
        x, y = atom.args
        for lhs, rhs in ((x, y), (y, x)):
            s = _strip(lhs)
            if isinstance(s, Select) and len(s.args) == 1 and _is_var(s.args[0], var) \
                    and _is_default_const(rhs, s.func):
                return [Selector("keys", pre, func=sm.func_index[s.func])]
        return []
    if isinstance(atom, App) and atom.op in ("lt", "le"):
        # c < F[v] (or c <= F[v] with c > default) with a constant c >= the default: a non-default cell
        lo, hi = atom.args
        s = _strip(hi)
        if isinstance(lo, Const) and isinstance(s, Select) and len(s.args) == 1 and _is_var(s.args[0], var):
            d0 = _default_of(s.func)
            if int(lo.value) > d0 or (atom.op == "lt" and int(lo.value) >= d0):
                return [Selector("keys", pre, func=sm.func_index[s.func])]
        return []
    if isinstance(atom, Select) and isinstance(atom.sort, BoolSort):
        got = cell_selector(sm, var, atom, None, bound, pre)
        return [got] if got else []
    if isinstance(atom, App) and atom.op == "or":
        parts = []
        for x in atom.args:
            sel = selectors(sm, var, x, bound, pre)
            if not sel:
                return []
            parts.append(sel[0] if len(sel) == 1 else Selector("smallest", pre, parts=tuple(sel)))
        return [Selector("union", pre, parts=tuple(parts))]
    if isinstance(atom, App) and atom.op == "post":
        return selectors(sm, var, atom.args[0], bound, False)
    return []


def cell_selector(sm: SparseModel, var: BoundVar, s: Select, value: SelValue, bound: set[Any],
                  pre: bool) -> Selector | None:
    """``s == value`` where ``s`` is ``F[..var..]`` and the other indexes are bound: F's value index."""
    k = sm.func_index[s.func]
    positions = [i for i, a in enumerate(s.args) if _is_var(a, var)]
    if len(positions) != 1:
        return None
    pos = positions[0]
    others = [a for i, a in enumerate(s.args) if i != pos]
    if any(_mentions(a, var) or not _bound_vars(a) <= bound for a in others):
        return None
    if len(s.args) == 1:
        return Selector("cell", pre, func=k, value=value, sort=var.sort)
    if len(s.args) == 2:
        return Selector("cell2", pre, func=k, value=value, pos=pos, rest=others[0], sort=var.sort)
    return None


def pick(sels: Sequence[Selector], pre: bool) -> Selector:
    """One selector from several that all hold the wanted values: a single value if there is one, else the
    smallest of (at most three of) them at run time."""
    ones = [s for s in sels if s.kind in ("one", "two")]
    if ones:
        return ones[0]
    return sels[0] if len(sels) == 1 else Selector("smallest", pre, parts=tuple(sels[:3]))


def candidate_selector(sm: SparseModel, var: BoundVar, atoms: Sequence[Expr], bound: set[Any],
                       pre: bool) -> Selector | None:
    """A selector of the values of ``var`` for which every one of ``atoms`` can hold; None: every value."""
    sels = [sel for a in atoms for sel in selectors(sm, var, a, bound, pre)]
    return pick(sels, pre) if sels else None


def key_bindings(site: _Site) -> tuple[list[tuple[BoundVar, int]], list[tuple[Expr, Slot]]]:
    """What the changed key of ``site`` gives an enumerator: the variables its components bind (the variable,
    the component; a variable met twice is checked equal), and the index expressions it is compared with
    (``F[..] == component``, evaluated in W2)."""
    bindings: list[tuple[BoundVar, int]] = []
    arg_atoms: list[tuple[Expr, Slot]] = []
    for i, arg in enumerate(site.args):
        s = _strip(arg)
        if isinstance(s, Ref) and isinstance(s.decl, BoundVar):
            bindings.append((s.decl, i))
        else:
            arg_atoms.append((arg, Slot(f"k{i}")))
    return bindings, arg_atoms


def binding_order(sm: SparseModel, site: _Site, pending: Sequence[BoundVar], known: set[Any],
                  arg_atoms: Sequence[tuple[Expr, Slot]],
                  mode: Mapping[str, bool]) -> list[tuple[BoundVar, Selector | None]]:
    """The loops of an incremental check's enumerator: the part's variables not bound by the changed key, in
    an order in which each has a selector from the bound ones (the changed key's components ``arg_atoms``,
    the changed cell's old and new values for a partner, the gates' literals), None where none has one (a
    loop over the whole sort)."""
    atoms = _atoms(site.gates)
    env = set(known)
    left = list(pending)
    out: list[tuple[BoundVar, Selector | None]] = []
    while left:
        choice: tuple[BoundVar, Selector] | None = None
        for v in left:
            sels: list[Selector] = []
            for arg, comp in arg_atoms:
                s = _strip(arg)
                if isinstance(s, Select) and _bound_vars(s) <= env | {v}:
                    got = cell_selector(sm, v, s, comp, env, mode["W2"])
                    if got:
                        sels.append(got)
            if site.partner is not None and _bound_vars(site.partner) <= env | {v} and _mentions(site.partner, v):
                p = _strip(site.partner)
                if isinstance(p, Ref) and p.decl is v:
                    sels.append(Selector("two", False, value=Slot("old"), value2=Slot("new")))
                elif isinstance(p, Select):
                    # the pre-state index plus the changed keys covers both worlds
                    a_ = cell_selector(sm, v, p, Slot("old"), env, True)
                    b_ = cell_selector(sm, v, p, Slot("new"), env, True)
                    if a_ and b_:
                        sels.append(Selector("union", True, parts=(a_, b_)))
            for expr, world, truth in atoms:
                if not truth or not _mentions(expr, v) or not _bound_vars(expr) <= env | {v}:
                    continue
                sels.extend(selectors(sm, v, expr, env, mode[world]))
            if sels:
                choice = (v, pick(sels, False))
                break
        if choice is None:
            out.append((left[0], None))
            v = left[0]
        else:
            out.append(choice)
            v = choice[0]
        left.remove(v)
        env.add(v)
    return out


# --------------------------------------------------------------------------------------
# Code generation
# --------------------------------------------------------------------------------------


class _Code:
    """Python code generation for the sparse representation.

    ``pre``: reads outside `Post` see the values before the last step (transition invariants,
    and the pre state of a state invariant); ``lenient``: ``.some`` of none gives none
    instead of raising (only where a wrong value can only widen a candidate set).
    """

    def __init__(self, sm: SparseModel) -> None:
        self.sm = sm
        self.tmp = 0
        self.pre = False

    def fresh(self, base: str) -> str:
        self.tmp += 1
        return f"{base}{self.tmp}"

    def total(self, sort: Sort) -> str:
        return f"(N[{sort.name!r}] + {self.sm.fresh[sort.name]})"

    # -- expressions -------------------------------------------------------------------------
    def expr(self, e: Expr, env: Mapping[Any, str]) -> str:
        sm = self.sm
        if isinstance(e, Const):
            return repr(int(e.value))
        if isinstance(e, _NoneConst):
            return "-1"
        if isinstance(e, Ref):
            d = e.decl
            if isinstance(d, StateVar):
                j = sm.var_index[d]
                return f"OLDV.get({j}, V[{j}])" if self.pre else f"V[{j}]"
            if isinstance(d, ModelConst):
                return repr(int(sm.consts[d.name]))
            if d in env:
                return env[d]
            raise ModelDefinitionError(f"unbound {d.name} in sparse compilation")
        if isinstance(e, Select):
            k = sm.func_index[e.func]
            args = [self.expr(a, env) for a in e.args]
            key = args[0] if len(args) == 1 else "(" + ", ".join(args) + ",)"
            if self.pre:
                return f"pre{k}({key})"
            return f"D{k}.get({key}, d{k})"
        if isinstance(e, Quant):
            return self.quant(e, env)
        if isinstance(e, App):
            op = e.op
            a = e.args
            if op == "and":
                return "(" + " and ".join(self.expr(x, env) for x in a) + ")"
            if op == "or":
                return "(" + " or ".join(self.expr(x, env) for x in a) + ")"
            if op == "not":
                return f"(not {self.expr(a[0], env)})"
            if op == "implies":
                return f"((not {self.expr(a[0], env)}) or {self.expr(a[1], env)})"
            if op == "iff":
                return f"(bool({self.expr(a[0], env)}) == bool({self.expr(a[1], env)}))"
            if op == "ite":
                return f"({self.expr(a[1], env)} if {self.expr(a[0], env)} else {self.expr(a[2], env)})"
            sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "add": "+", "sub": "-"}.get(op)
            if sym:
                return f"({self.expr(a[0], env)} {sym} {self.expr(a[1], env)})"
            if op == "some":
                return self.expr(a[0], env)
            if op == "unwrap":
                return f"_unwrap({self.expr(a[0], env)})"
            if op == "post":
                saved, self.pre = self.pre, False
                try:
                    return self.expr(a[0], env)
                finally:
                    self.pre = saved
        raise ModelDefinitionError(f"cannot compile {type(e).__name__}")

    # -- candidate selection (the analysis: `selectors`, `candidate_selector`) --------------------
    def render(self, sel: Selector, env: Mapping[Any, str], slots: Mapping[str, str] | None = None) -> str:
        """A Python iterable for ``sel``; ``slots`` names the generated code's locals (`Slot`)."""
        def val(v: SelValue) -> str:
            return render_value(v, lambda e: self.expr(e, env), slots, "1")

        saved, self.pre = self.pre, sel.pre
        try:
            k = sel.func
            if sel.kind == "one":
                return f"_one({val(sel.value)})"
            if sel.kind == "two":
                return f"_two({val(sel.value)}, {val(sel.value2)})"
            if sel.kind == "keys":
                return f"(D{k}.keys() | CH{k})" if sel.pre else f"D{k}.keys()"
            if sel.kind in ("cell", "cell2"):
                assert sel.sort is not None
                total, d = self.total(sel.sort), f"d{k}"
                if sel.kind == "cell":
                    if sel.pre:
                        return f"_idx_pre(I{k}, CH{k}, {val(sel.value)}, {d}, {total})"
                    return f"_idx(I{k}, {val(sel.value)}, {d}, {total})"
                assert sel.rest is not None
                rest = self.expr(sel.rest, env)
                if sel.pre:
                    return f"_pidx_pre(P{k}_{sel.pos}, CH{k}, {sel.pos}, {rest}, {val(sel.value)}, {d}, {total})"
                return f"_pidx(P{k}_{sel.pos}, {rest}, {val(sel.value)}, {d}, {total})"
            parts = ", ".join(self.render(x, env, slots) for x in sel.parts)
            return f"_union({parts})" if sel.kind == "union" else f"_smallest({parts})"
        finally:
            self.pre = saved

    def candidates(self, var: BoundVar, atoms: Sequence[Expr], env: Mapping[Any, str]) -> str:
        """An iterable of ``var``'s values containing every value for which all ``atoms`` hold."""
        sort = var.sort
        if not isinstance(sort, IdSort):
            return f"range({sort.size({})})"
        sel = candidate_selector(self.sm, var, atoms, set(env), self.pre)
        return f"range{self.total(sort)}" if sel is None else self.render(sel, env)

    def quant(self, q: Quant, env: Mapping[Any, str]) -> str:
        name = self.fresh("q")
        local = {**env, q.var: name}
        body = q.body
        if q.kind == "forall":
            atoms = conjuncts(body.args[0]) if isinstance(body, App) and body.op == "implies" else []
            return f"all({self.expr(body, local)} for {name} in {self.candidates(q.var, atoms, env)})"
        return f"any({self.expr(body, local)} for {name} in {self.candidates(q.var, conjuncts(body), env)})"


# --------------------------------------------------------------------------------------
# Invariant parts and read sites
# --------------------------------------------------------------------------------------

#: a gate: (expression, world, truth): ``expression`` has value ``truth`` in world W1 or W2
Gate = tuple[Expr, str, bool]


@dataclass
class _Site:
    """A read whose value can differ between the two evaluations an instance is judged by."""

    func: Func | None  # None: the scalar ``var``
    var: StateVar | None
    args: tuple[Expr, ...]
    scope: tuple[BoundVar, ...]
    gates: list[Gate]
    #: the other operand of ``==`` / ``!=`` whose operand this read is
    partner: Expr | None = None


@dataclass
class _Part:
    """``forall vars. body``: one conjunct of an invariant, checked per instance."""

    invariant: Invariant
    index: int  # position of the invariant in SparseModel.invariants
    vars: tuple[BoundVar, ...]
    body: Expr
    transition: bool
    sites: list[_Site] = field(default_factory=list)


def _parts(inv: Invariant, index: int) -> list[_Part]:
    """Split an invariant into parts (see the module docstring)."""
    out: list[_Part] = []

    def split(e: Expr, vars: tuple[BoundVar, ...]) -> None:
        if isinstance(e, Quant) and e.kind == "forall" and isinstance(e.var.sort, IdSort):
            split(e.body, vars + (e.var,))
            return
        if isinstance(e, App) and e.op == "and":
            for x in e.args:
                split(x, vars)
            return
        if isinstance(e, App) and e.op == "implies":
            a, c = e.args
            if isinstance(c, App) and c.op == "and":
                for x in c.args:
                    split(App("implies", (a, x), e.sort), vars)
                return
            if isinstance(c, Quant) and c.kind == "forall" and isinstance(c.var.sort, IdSort) \
                    and not _mentions(a, c.var):
                split(App("implies", (a, c.body), e.sort), vars + (c.var,))
                return
        out.append(_Part(inv, index, vars, e, inv.transition))

    split(inv.expr, ())
    return out


_REV = {"TF": "FT", "FT": "TF", "ANY": "ANY"}


def _find_sites(part: _Part) -> list[_Site]:
    """Every read on a possible flipping path of ``part``, with the gates that path implies.

    Worlds: W1 is the evaluation known to be true (the pre state; for a transition invariant
    the stuttering evaluation in the post state), W2 the one checked (the post state; for a
    transition invariant the real one).  Directions: "TF" (true in W1, false in W2), "FT", "ANY".
    """
    sites: list[_Site] = []
    transition = part.transition

    def site(func: Func | None, var: StateVar | None, args: tuple[Expr, ...], scope: tuple[BoundVar, ...],
             gates: list[Gate], partner: Expr | None) -> None:
        sites.append(_Site(func, var, args, scope, list(gates), partner))

    def formula(e: Expr, d: str, gates: list[Gate], scope: tuple[BoundVar, ...]) -> None:
        if isinstance(e, (Const, _NoneConst)):
            return
        if isinstance(e, Ref):
            if isinstance(e.decl, StateVar):
                site(None, e.decl, (), scope, gates, None)
            return
        if isinstance(e, Select):
            value(e, gates, scope, None)
            return
        if isinstance(e, Quant):
            formula(e.body, d, gates, scope + (e.var,))
            return
        assert isinstance(e, App)
        op, a = e.op, e.args
        if op == "post":
            if not transition:
                formula(a[0], d, gates, scope)
            return
        if op == "and":
            g = gates + ([(x, "W1", True) for x in a] if d == "TF" else [(x, "W2", True) for x in a] if d == "FT"
                         else [])
            for x in a:
                formula(x, d, g, scope)
        elif op == "or":
            g = gates + ([(x, "W2", False) for x in a] if d == "TF" else [(x, "W1", False) for x in a] if d == "FT"
                         else [])
            for x in a:
                formula(x, d, g, scope)
        elif op == "not":
            formula(a[0], _REV[d], gates, scope)
        elif op == "implies":
            ante, cons = a
            if d == "TF":
                g = gates + [(ante, "W2", True), (cons, "W2", False)]
            elif d == "FT":
                g = gates + [(ante, "W1", True), (cons, "W1", False)]
            else:
                g = gates
            formula(ante, _REV[d], g, scope)
            formula(cons, d, g, scope)
        elif op == "iff":
            formula(a[0], "ANY", gates, scope)
            formula(a[1], "ANY", gates, scope)
        elif op == "ite":
            c, x, y = a
            formula(c, "ANY", gates, scope)
            formula(x, d, gates + [(c, "W1", True), (c, "W2", True)], scope)
            formula(y, d, gates + [(c, "W1", False), (c, "W2", False)], scope)
        elif op in ("eq", "ne"):
            value(a[0], gates, scope, a[1])
            value(a[1], gates, scope, a[0])
        elif op in ("lt", "le"):
            value(a[0], gates, scope, None)
            value(a[1], gates, scope, None)
        else:
            for x in a:
                value(x, gates, scope, None)

    def value(e: Expr, gates: list[Gate], scope: tuple[BoundVar, ...], partner: Expr | None) -> None:
        if isinstance(e, (Const, _NoneConst)):
            return
        if isinstance(e, Ref):
            if isinstance(e.decl, StateVar):
                site(None, e.decl, (), scope, gates, partner)
            return
        if isinstance(e, Select):
            site(e.func, None, e.args, scope, gates, partner)
            for x in e.args:
                value(x, gates, scope, None)
            return
        if isinstance(e, Quant):
            formula(e, "ANY", gates, scope)
            return
        assert isinstance(e, App)
        op, a = e.op, e.args
        if op == "post":
            if not transition:
                value(a[0], gates, scope, partner)
            return
        if op in ("some", "unwrap"):
            value(a[0], gates, scope, partner)
        elif op == "ite":
            c, x, y = a
            formula(c, "ANY", gates, scope)
            value(x, gates + [(c, "W1", True), (c, "W2", True)], scope, None)
            value(y, gates + [(c, "W1", False), (c, "W2", False)], scope, None)
        elif e.sort is not None and isinstance(e.sort, BoolSort):
            formula(e, "ANY", gates, scope)
        else:
            for x in a:
                value(x, gates, scope, None)

    formula(part.body, "TF", [], part.vars)
    return sites


def _atoms(gates: Sequence[Gate]) -> list[Gate]:
    """Gates as literals: conjunctions split, negations pushed into the truth value."""
    out: list[Gate] = []

    def add(e: Expr, world: str, truth: bool) -> None:
        if isinstance(e, App) and e.op == "not":
            add(e.args[0], world, not truth)
        elif isinstance(e, App) and e.op == "and" and truth:
            for x in e.args:
                add(x, world, True)
        elif isinstance(e, App) and e.op == "or" and not truth:
            for x in e.args:
                add(x, world, False)
        elif isinstance(e, App) and e.op == "implies" and not truth:
            add(e.args[0], world, True)
            add(e.args[1], world, False)
        elif isinstance(e, App) and e.op in ("eq", "ne") and not truth:
            out.append((App("ne" if e.op == "eq" else "eq", e.args, e.sort), world, True))
        else:
            out.append((e, world, truth))

    for e, w, t in gates:
        add(e, w, t)
    return out


# --------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------


class SparseModel:
    """A model compiled for unbounded runs; one instance holds one run's state."""

    def __init__(self, model: Model, consts: Mapping[str, int] | None = None) -> None:
        self.model = model
        self.consts = {c.name: c.default for c in model.consts}
        self.consts.update(consts or {})
        self.var_index: dict[StateVar, int] = {}
        self.func_index: dict[Func, int] = {}
        self.funcs: list[Func] = []
        self.vars: list[StateVar] = []
        for d in model.state:
            if isinstance(d, StateVar):
                self.var_index[d] = len(self.vars)
                self.vars.append(d)
            else:
                if len(d.index_sorts) > 2:
                    raise ModelDefinitionError(f"{d.name}: the sparse engine supports functions of one or two indexes")
                self.func_index[d] = len(self.funcs)
                self.funcs.append(d)
        self.id_sorts = {s.name: s for s in model.id_sorts}
        self._check_nesting()
        self.operations: dict[str, Operation] = {}
        for i, a in enumerate(model.actions):
            if a.rejected:
                continue
            op = a.operation or a.name
            twin = None
            twin_index = None
            for j, b in enumerate(model.actions):
                if b.rejected and (b.operation or b.name) == op:
                    twin, twin_index = b, j
            self.operations[a.name] = Operation(a.name, a, twin, i, twin_index)
        self.state_invariants = [inv for inv in model.invariants if not inv.transition]
        self.transition_invariants = [inv for inv in model.invariants if inv.transition]
        #: every invariant, state invariants first (the order violations are reported in)
        self.invariants = self.state_invariants + self.transition_invariants
        self.parts: list[_Part] = []
        for i, inv in enumerate(self.invariants):
            self.parts.extend(_parts(inv, i))
        for p in self.parts:
            p.sites = _find_sites(p)
        #: (part index, site description) of every site whose variables no gate selects: a
        #: change there re-checks that part's instances over all identities of some sort
        self.fallbacks: list[tuple[int, str]] = []
        self.source = self._generate()
        ns: dict[str, Any] = {
            "_one": _one, "_two": _two, "_idx": _idx, "_idx_pre": _idx_pre, "_pidx": _pidx, "_pidx_pre": _pidx_pre,
            "_union": _union, "_smallest": _smallest, "_unwrap": _unwrap, "_MISSING": _MISSING,
            "EvaluationError": EvaluationError, "_product": itertools.product,
        }
        exec(compile(self.source, f"<sparse:{model.name}>", "exec"), ns)
        self.ns = ns
        self._check_step: Callable[[], list[int]] = ns["check_step"]
        self._clear: Callable[[], None] = ns["clear_changes"]
        self.reset()

    # -- validation ------------------------------------------------------------------------
    def _check_nesting(self) -> None:
        """Per Id sort, how many fresh identities quantifiers need: the deepest nesting over it.

        A formula with k nested quantifiers over a sort can only distinguish k identities it has
        not seen; so ranging over the known identities plus k fresh ones decides it exactly.
        """
        from .model import _all_exprs

        self.fresh: dict[str, int] = {name: FRESH for name in self.id_sorts}

        def depth(e: Expr, seen: dict[str, int]) -> None:
            if isinstance(e, Quant) and isinstance(e.var.sort, IdSort):
                k = seen.get(e.var.sort.name, 0) + 1
                self.fresh[e.var.sort.name] = max(self.fresh.get(e.var.sort.name, FRESH), k)
                seen = {**seen, e.var.sort.name: k}
            for c in (e.body,) if isinstance(e, Quant) else getattr(e, "args", ()):
                depth(c, seen)

        for e in _all_exprs(self.model):
            depth(e, {})

    # -- code generation ---------------------------------------------------------------------
    def _generate(self) -> str:
        code = _Code(self)
        L: list[str] = []
        nf = len(self.funcs)
        L.append(f"V = [0] * {len(self.vars)}")
        L.append("OLDV = {}")
        L.append("CV = set()")
        L.append("N = {}")
        L.append("DF = []  # functions changed since the last clear_changes, in order")
        for k, f in enumerate(self.funcs):
            L.append(f"D{k} = {{}}")
            L.append(f"d{k} = {int(f.init)}")
            L.append(f"OLD{k} = {{}}")
            L.append(f"CH{k} = set()")
            L.append(f"I{k} = {{}}")
            if len(f.index_sorts) == 2:
                L.append(f"P{k}_0 = {{}}")
                L.append(f"P{k}_1 = {{}}")
        L.append(f"CH = [{', '.join(f'CH{k}' for k in range(nf))}]")
        L.append(f"OLD = [{', '.join(f'OLD{k}' for k in range(nf))}]")
        for k, f in enumerate(self.funcs):
            L.extend(self._gen_setter(k, f))
        for op in self.operations.values():
            for act, idx in ((op.action, op.index), (op.rejected, op.rejected_index)):
                if act is None:
                    continue
                L.extend(self._gen_action(code, act, idx))  # type: ignore[arg-type]
        # full evaluations (end of run, tests)
        for k, inv in enumerate(self.state_invariants):
            L.append(f"def inv{k}():")
            L.append(f"    return {code.expr(inv.expr, {})}")
        code.pre = True
        for k, inv in enumerate(self.transition_invariants):
            L.append(f"def tinv{k}():")
            L.append(f"    return {code.expr(inv.expr, {})}")
        code.pre = False
        L.extend(self._gen_incremental(code))
        L.append("def clear_changes():")
        L.append("    for k in DF:")
        L.append("        CH[k].clear()")
        L.append("        OLD[k].clear()")
        L.append("    DF.clear()")
        L.append("    CV.clear()")
        L.append("    OLDV.clear()")
        return "\n".join(L) + "\n"

    def _gen_setter(self, k: int, f: Func) -> list[str]:
        """``set{k}(key, v)``: write a cell, keeping the indexes, the old value and the change set."""
        L = [f"def set{k}(key, v):"]
        L.append(f"    old = D{k}.get(key, d{k})")
        L.append("    if old == v:")
        L.append("        return")
        L.append(f"    if key not in OLD{k}:")
        L.append(f"        if not CH{k}: DF.append({k})")
        L.append(f"        OLD{k}[key] = old")
        L.append(f"        CH{k}.add(key)")
        L.append(f"    if old != d{k}:")
        L.append(f"        s_ = I{k}[old]; s_.discard(key)")
        L.append(f"        if not s_: del I{k}[old]")
        if len(f.index_sorts) == 2:
            L.append(f"        s_ = P{k}_1[(key[0], old)]; s_.discard(key[1])")
            L.append(f"        if not s_: del P{k}_1[(key[0], old)]")
            L.append(f"        s_ = P{k}_0[(key[1], old)]; s_.discard(key[0])")
            L.append(f"        if not s_: del P{k}_0[(key[1], old)]")
        L.append(f"    if v == d{k}:")
        L.append(f"        del D{k}[key]")
        L.append("    else:")
        L.append(f"        D{k}[key] = v")
        L.append(f"        s_ = I{k}.get(v)")
        L.append(f"        if s_ is None: I{k}[v] = {{key}}")
        L.append("        else: s_.add(key)")
        if len(f.index_sorts) == 2:
            L.append(f"        P{k}_1.setdefault((key[0], v), set()).add(key[1])")
            L.append(f"        P{k}_0.setdefault((key[1], v), set()).add(key[0])")
        # the pre-state value of a cell (after a step, before clear_changes)
        L.append(f"def pre{k}(key):")
        L.append(f"    v = OLD{k}.get(key, _MISSING)")
        L.append(f"    return D{k}.get(key, d{k}) if v is _MISSING else v")
        return L

    def _gen_action(self, code: _Code, a: Action, idx: int) -> list[str]:
        params = [f"p_{p.name}" for p in a.params]
        env: dict[object, str] = dict(zip(a.params, params))
        sig = ", ".join(params)
        L = [f"def guard{idx}({sig}):"]
        check_labels = {lbl for lbl, _, _ in a.checks} if not a.rejected else set()
        for label, g in a.guard:
            if label in check_labels or label == "some_check_fails":
                continue
            L.append(f"    if not {code.expr(g, env)}: return {label!r}")
        L.append("    return None")
        # checks: index of the first failing check (-1: all pass)
        L.append(f"def checks{idx}({sig}):")
        for n, (_, cond, _) in enumerate(a.checks):
            L.append(f"    if not {code.expr(cond, env)}: return {n}")
        L.append("    return -1")
        L.append(f"def outputs{idx}({sig}):")
        L.append("    return {" + ", ".join(f"{k!r}: {code.expr(o, env)}" for k, o in a.outputs) + "}")
        L.append(f"def apply{idx}({sig}):")
        writes: list[str] = []
        n = 0
        for u in a.updates:
            if isinstance(u, Assign):
                n += 1
                L.append(f"    v{n} = {code.expr(u.value, env)}")
                t = u.target
                if isinstance(t, Ref):
                    j = self.var_index[t.decl]  # type: ignore[index]
                    writes.append(f"    if V[{j}] != v{n}:")
                    writes.append(f"        OLDV.setdefault({j}, V[{j}]); V[{j}] = v{n}; CV.add({j})")
                else:
                    k = self.func_index[t.func]
                    args = [code.expr(x, env) for x in t.args]
                    key = args[0] if len(args) == 1 else "(" + ", ".join(args) + ",)"
                    L.append(f"    k{n} = {key}")
                    writes.append(f"    set{k}(k{n}, v{n})")
            else:
                n += 1
                L_, W_ = self._gen_func_assign(code, u, env, n)
                L.extend(L_)
                writes.extend(W_)
        L.extend(writes)
        L.append("    return None")
        return L

    def _gen_func_assign(
        self, code: _Code, u: FuncAssign, env: Mapping[Any, str], n: int
    ) -> tuple[list[str], list[str]]:
        """A whole-function update, visiting only cells that can change.

        ``f[x] & X`` (Bool, default false) can only clear cells that are true now;
        ``f[x] | X`` can only set cells where ``X`` holds; ``Ite(c1, v1, Ite(c2, v2, f[x]))``
        changes only cells where some ``ci`` holds: the candidates are the union of the
        ``ci``'s selections.  Every never-seen cell must keep the default (else an error).
        """
        k = self.func_index[u.func]
        f = u.func
        body = u.body
        names = [code.fresh("x") for _ in u.vars]
        local: dict[object, str] = {**env, **dict(zip(u.vars, names))}
        key = names[0] if len(names) == 1 else "(" + ", ".join(names) + ",)"
        own = lambda e: (isinstance(e, Select) and e.func is f
                         and all(_is_var(a, v) for a, v in zip(e.args, u.vars)))
        L: list[str] = []
        W: list[str] = []
        loops: str
        bool_false_default = isinstance(f.value_sort, BoolSort) and int(f.init) == 0
        if bool_false_default and isinstance(body, App) and body.op == "and" and any(own(a) for a in body.args):
            loops = f"for {key} in list(D{k})"
        else:
            # conditions one of which holds wherever the cell can change (None: any cell)
            conds: list[Expr] | None
            if bool_false_default and isinstance(body, App) and body.op == "or" and any(own(a) for a in body.args):
                conds = [a for a in body.args if not own(a)]
            else:
                conds = []
                e = body
                while isinstance(e, App) and e.op == "ite":
                    conds.append(e.args[0])
                    e = e.args[2]
                if not own(e):
                    conds = None
            parts = []
            bound: dict[object, str] = dict(env)
            for var, name in zip(u.vars, names):
                if conds:
                    sels = [code.candidates(var, conjuncts(c), bound) for c in conds]
                    cands = sels[0] if len(sels) == 1 else f"_union({', '.join(sels)})"
                else:
                    cands = f"range(N[{var.sort.name!r}])"
                parts.append(f"for {name} in {cands}")
                bound[var] = name
            known = " and ".join(f"{name} < N[{v.sort.name!r}]" for v, name in zip(u.vars, names))
            loops = " ".join(parts) + f" if {known}"
        L.append(f"    w{n} = [({key}, {code.expr(body, local)}) {loops}]")
        # the value every never-seen cell takes must stay the default
        offsets: dict[str, int] = {}
        args = []
        for var in u.vars:
            sname = var.sort.name
            j = offsets.get(sname, 0)
            offsets[sname] = j + 1
            args.append(f"N[{sname!r}] + {j}")
        L.append(f"    fv{n} = (lambda {', '.join(names)}: {code.expr(body, local)})({', '.join(args)})")
        W.append(f"    if fv{n} != d{k}: raise EvaluationError('whole-function update of {f.name} changes "
                 f"every unseen cell; not supported by the sparse engine')")
        W.append(f"    for key_, val_ in w{n}:")
        W.append(f"        set{k}(key_, val_)")
        return L, W

    # -- incremental invariants ----------------------------------------------------------------
    def _gen_incremental(self, code: _Code) -> list[str]:
        L: list[str] = []
        #: func index -> [(part index, enumerator name or None for "the key itself")]
        by_func: dict[int, list[tuple[int, str | None]]] = {}
        by_var: dict[int, list[int]] = {}
        seen: dict[tuple[int, int, str], str] = {}
        for pi, part in enumerate(self.parts):
            names = [f"x{i}" for i in range(len(part.vars))]
            env = dict(zip(part.vars, names))
            code.pre = part.transition
            L.append(f"def body{pi}({', '.join(names)}):")
            L.append(f"    return {code.expr(part.body, env)}")
            code.pre = False
            if part.vars:
                ranges = ", ".join(f"range{code.total(v.sort)}" for v in part.vars)
                L.append(f"def all{pi}():")
                if len(part.vars) == 1:
                    L.append(f"    return {ranges}")
                else:
                    L.append(f"    return _product({ranges})")
            for site in part.sites:
                if site.func is None:
                    assert site.var is not None
                    by_var.setdefault(self.var_index[site.var], [])
                    if pi not in by_var[self.var_index[site.var]]:
                        by_var[self.var_index[site.var]].append(pi)
                    continue
                k = self.func_index[site.func]
                if not part.vars:
                    entry: tuple[int, str | None] = (pi, "")
                    if entry not in by_func.setdefault(k, []):
                        by_func[k].append(entry)
                    continue
                if self._direct(part, site):
                    entry = (pi, None)
                else:
                    src, name = self._gen_enumerator(code, pi, part, site, len(seen))
                    key3 = (pi, k, src)
                    if key3 not in seen:
                        seen[key3] = name
                        L.extend(src.replace("@NAME@", name).splitlines())
                    entry = (pi, seen[key3])
                if entry not in by_func.setdefault(k, []):
                    by_func[k].append(entry)
        # check_step(): indexes of the failed invariants, in order
        L.append("def check_step():")
        L.append("    dp = {}")
        L.append("    whole = set()")
        for k, entries in sorted(by_func.items()):
            L.append(f"    if CH{k}:")
            for pi, en in entries:
                part = self.parts[pi]
                if not part.vars:
                    L.append(f"        whole.add({pi})")
                elif en is None:
                    L.append(f"        dp.setdefault({pi}, set()).update(CH{k})")
                else:
                    L.append(f"        s_ = dp.setdefault({pi}, set())")
                    L.append(f"        for key in CH{k}: {en}(key, s_)")
        for j, pis in sorted(by_var.items()):
            L.append(f"    if {j} in CV:")
            L.append(f"        whole.update({tuple(pis)!r})")
        L.append("    failed = set()")
        L.append("    for pi in whole:")
        L.append("        part = PARTS[pi]")
        L.append("        if part[1] in failed: continue")
        L.append("        if part[2] == 0:")
        L.append("            if not part[0](): failed.add(part[1])")
        L.append("        elif part[2] == 1:")
        L.append("            fn = part[0]")
        L.append("            if not all(fn(x) for x in part[3]()): failed.add(part[1])")
        L.append("        else:")
        L.append("            fn = part[0]")
        L.append("            if not all(fn(*x) for x in part[3]()): failed.add(part[1])")
        L.append("    for pi, insts in dp.items():")
        L.append("        part = PARTS[pi]")
        L.append("        if part[1] in failed or pi in whole: continue")
        L.append("        fn = part[0]")
        L.append("        if part[2] == 1:")
        L.append("            for x in insts:")
        L.append("                if not fn(x):")
        L.append("                    failed.add(part[1]); break")
        L.append("        else:")
        L.append("            for x in insts:")
        L.append("                if not fn(*x):")
        L.append("                    failed.add(part[1]); break")
        L.append("    return sorted(failed)")
        entries_ = []
        for pi, part in enumerate(self.parts):
            allfn = f"all{pi}" if part.vars else "None"
            entries_.append(f"(body{pi}, {part.index}, {len(part.vars)}, {allfn})")
        L.append("PARTS = [" + ", ".join(entries_) + "]")
        return L

    @staticmethod
    def _direct(part: _Part, site: _Site) -> bool:
        """True if the changed key *is* the instance (the site reads ``F[x1..xn]`` with the part's variables)."""
        return len(site.args) == len(part.vars) and all(_is_var(a, v) for a, v in zip(site.args, part.vars))

    def _gen_enumerator(self, code: _Code, pi: int, part: _Part, site: _Site, serial: int) -> tuple[str, str]:
        """``@NAME@(key, out)``: add to ``out`` every instance of ``part`` whose flipping path may end at ``site``."""
        assert site.func is not None
        k = self.func_index[site.func]
        name = f"en{pi}_{serial}"
        w1_pre = not part.transition  # W1 reads the pre state for state invariants
        mode = {"W1": w1_pre, "W2": part.transition}
        L = ["def @NAME@(key, out):"]
        known: dict[BoundVar, str] = {}
        comps = ["key"] if len(site.args) == 1 else [f"key[{i}]" for i in range(len(site.args))]
        old, new = "o_", "n_"
        slots = {f"k{i}": c for i, c in enumerate(comps)} | {"old": old, "new": new}
        # 1. the site's indexes: variables bound directly by the changed key, or through an index
        bindings, arg_slots = key_bindings(site)
        for v, i in bindings:
            if v in known:
                L.append(f"    if {known[v]} != {comps[i]}: return")
            else:
                known[v] = code.fresh("b")
                L.append(f"    {known[v]} = {comps[i]}")
        arg_atoms = [(arg, slots[slot.name]) for arg, slot in arg_slots]  # expr == component, evaluated in W2
        # 2. literals from the gates, the partner and the index expressions
        atoms = _atoms(site.gates)
        if site.partner is not None:
            L.append(f"    {old} = OLD{k}[key]; {new} = D{k}.get(key, d{k})")
        L.append("    try:")
        indent = "        "
        body_lines: list[str] = []
        order: list[tuple[BoundVar, str]] = []
        needed = [v for v in part.vars if v not in known]
        # extra inner variables that gates connect (bound only through selectors of bound ones)
        for v, sel in binding_order(self, site, needed, set(known), arg_slots, mode):
            if sel is None:
                self.fallbacks.append((pi, f"{part.invariant.name}: {site.func.name}[...] -> {v.name}"))
                sel_code = f"range{code.total(v.sort)}"
            else:
                sel_code = code.render(sel, known, slots)
            name_v = code.fresh("b")
            known[v] = name_v
            order.append((v, sel_code))
            body_lines.append(f"{indent}for {name_v} in {sel_code}:")
            indent += "    "
        # filters: each is a necessary fact, so one that is false (and evaluates without error)
        # excludes the instance; each is tested at the outermost loop that binds its variables,
        # so a fact about the changed key alone skips the loops instead of filtering every pass
        conds: list[tuple[str, set[BoundVar]]] = []
        env = dict(known)
        for arg, comp in arg_atoms:
            if _bound_vars(arg) <= set(env):
                code.pre = mode["W2"]
                conds.append((f"{code.expr(arg, env)} == {comp}", _bound_vars(arg)))
                code.pre = False
        if site.partner is not None and _bound_vars(site.partner) <= set(env):
            code.pre = mode["W1"]
            p1 = code.expr(site.partner, env)
            code.pre = mode["W2"]
            p2 = code.expr(site.partner, env)
            code.pre = False
            conds.append((f"({p1} in ({old}, {new}) or {p2} in ({old}, {new}))", _bound_vars(site.partner)))
        for expr, world, truth in atoms:
            if not _bound_vars(expr) <= set(env):
                continue
            code.pre = mode[world]
            c = code.expr(expr, env)
            code.pre = False
            conds.append((c if truth else f"not {c}", _bound_vars(expr)))
        loop_vars = [v for v, _ in order]

        def level(vars_: set[BoundVar]) -> int:
            return max((loop_vars.index(v) + 1 for v in vars_ if v in loop_vars), default=0)

        inner = [c for c, vs in conds if level(vs) == len(loop_vars)]
        lines_at: dict[int, list[str]] = {}
        for c, vs in conds:
            lv = level(vs)
            if lv < len(loop_vars):
                pad = "        " + "    " * lv
                skip = "return" if lv == 0 else "continue"
                lines_at.setdefault(lv, []).extend(
                    [f"{pad}try:", f"{pad}    if not ({c}): {skip}", f"{pad}except EvaluationError:", f"{pad}    pass"])
        # body_lines holds one `for` line per loop; put each level's early exits before its loop
        loops = body_lines
        body_lines = []
        for i, line in enumerate(loops):
            body_lines.extend(lines_at.get(i, []))
            body_lines.append(line)
        inst = ", ".join(known[v] for v in part.vars)
        add = f"out.add({inst})" if len(part.vars) == 1 else f"out.add(({inst},))"
        if inner:
            body_lines.append(f"{indent}try:")
            body_lines.append(f"{indent}    ok_ = {' and '.join(inner)}")
            body_lines.append(f"{indent}except EvaluationError:")
            body_lines.append(f"{indent}    ok_ = True")
            body_lines.append(f"{indent}if ok_: {add}")
        else:
            body_lines.append(f"{indent}{add}")
        L.extend(body_lines)
        L.append("    except EvaluationError:")
        L.append(f"        out.update(all{pi}())")
        return "\n".join(L), name

    # -- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        ns = self.ns
        V = ns["V"]
        for d, j in self.var_index.items():
            V[j] = int(d.init)
        for k, f in enumerate(self.funcs):
            ns[f"D{k}"].clear()
            ns[f"d{k}"] = int(f.init)
            ns[f"I{k}"].clear()
            if len(f.index_sorts) == 2:
                ns[f"P{k}_0"].clear()
                ns[f"P{k}_1"].clear()
        ns["N"].clear()
        for s in self.id_sorts:
            ns["N"][s] = 0
        for k in range(len(self.funcs)):
            ns["CH"][k].clear()
            ns["OLD"][k].clear()
        ns["DF"].clear()
        self.clear_changes()

    def clear_changes(self) -> None:
        self._clear()

    def size(self, sort: str) -> int:
        return int(self.ns["N"][sort])

    def grow(self, sort: str, n: int) -> None:
        """Make identities ``0..n-1`` of ``sort`` known."""
        N = self.ns["N"]
        if n > N[sort]:
            N[sort] = n

    def check_step(self) -> list[Invariant]:
        """The invariants (state, then transition) the last step broke, judged incrementally."""
        return [self.invariants[i] for i in self._check_step()]

    def check_invariants_incrementally(self) -> list[Invariant]:
        """The state invariants violated by the last step (see `check_step`)."""
        return [inv for inv in self.check_step() if not inv.transition]

    def check_transition_invariants(self) -> list[Invariant]:
        """The transition invariants violated by the last step (see `check_step`)."""
        return [inv for inv in self.check_step() if inv.transition]

    def check_invariants_fully(self) -> list[Invariant]:
        """Every state invariant evaluated over every identity (slow; for the end of a run and tests)."""
        return [inv for k, inv in enumerate(self.state_invariants) if not self.ns[f"inv{k}"]()]

    def check_transition_invariants_fully(self) -> list[Invariant]:
        """Every transition invariant evaluated over the last step in full (slow; for tests)."""
        return [inv for k, inv in enumerate(self.transition_invariants) if not self.ns[f"tinv{k}"]()]

    # -- reading state (for reports and oracles) ----------------------------------------------------
    def read_var(self, var: StateVar) -> int:
        return int(self.ns["V"][self.var_index[var]])

    def read_cell(self, func: Func, args: tuple[int, ...]) -> int:
        k = self.func_index[func]
        key = args[0] if len(args) == 1 else args
        return int(self.ns[f"D{k}"].get(key, self.ns[f"d{k}"]))

    def domain(self, sort: Sort) -> range:
        if isinstance(sort, IdSort):
            return range(self.ns["N"][sort.name] + self.fresh[sort.name])
        return sort.values({})

    def const(self, c: ModelConst) -> int:
        return int(self.consts[c.name])

    def cells(self, func: Func) -> dict[Any, int]:
        return dict(self.ns[f"D{self.func_index[func]}"])

    def fn(self, name: str) -> Callable[..., Any]:
        return self.ns[name]  # type: ignore[no-any-return]


def enum_value(sort: Sort, text: object) -> int:
    """Encode a trace value of an Enum/Bool/Int sort."""
    if isinstance(sort, BoolSort):
        if isinstance(text, bool):
            return int(text)
        if text in ("true", "false"):
            return int(text == "true")
        raise ValueError(f"expected true/false, got {text!r}")
    if isinstance(sort, EnumSort):
        if isinstance(text, str) and text in sort.members:
            return sort.members.index(text)
        raise ValueError(f"expected one of {', '.join(sort.members)}, got {text!r}")
    if isinstance(sort, IntSort):
        if isinstance(text, int) and not isinstance(text, bool):
            return text
        raise ValueError(f"expected an integer, got {text!r}")
    if isinstance(sort, OptSort):
        raise ValueError("Opt parameters are not supported in traces")
    raise ValueError(f"cannot decode a {sort.name}")
