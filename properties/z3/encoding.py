"""z3 encoding of a model, derived from its expression trees (no rule is restated here).

Two *universes* give the model's sorts a z3 meaning:

* `BoundedEncoding` (one `Config`): every sort is finite and encoded as the explorer encodes
  it (`model.core.sorts`): Bool as z3 Bool, Enum/Int/Id/Opt as z3 Int in the sort's range
  (``-1`` for none).  Every cell of a function-valued variable is its own z3 constant, and
  quantifiers are expanded over the domain, so every formula is quantifier-free over
  Bool and linear integer arithmetic (QF_LIA); constants (``nesting``, ``production``) and
  action parameters of an instance are folded away, as the dense compiler does.
* `ParametricEncoding` (any size): each `Id` sort is an *uninterpreted* z3 sort with one
  extra element ``none_<Sort>`` that stands for ``NONE`` (so ``Opt(Id)`` is the same z3 sort
  and ``.some`` is the identity), ``ForAll(Id, ...)`` becomes a z3 quantifier relativised to
  ``x != none``, Enum is a z3 EnumSort, Int counters are z3 Int (a bound such as
  ``max_actions`` is a free Int constant unless fixed), and function-valued variables are z3
  uninterpreted functions.  Model constants (feature flags) are free constants unless fixed,
  so one proof covers every combination.

A state at step ``i`` is a `SymState` (`state(i)`); `PostState` is the successor of a state
under one action with given parameters, computed by substitution (no fresh variables, no
frame axioms); `InitState` is the initial state as constants.  `Translator` turns any model
expression into a z3 term over such views, folding constants.

What an ``unwrap`` of none reads is left unspecified by the model (the checked interpreters
raise; the explorer's checked mode shows no reachable state does it).  Here: bounded, an
out-of-range index reads the last cell; parametric, ``none.some`` is the ``none`` element,
whose cells are ordinary (unconstrained) cells.  Neither choice can make a reachable-state
proof unsound while the models never evaluate ``.some`` of none.

API used by BMC, induction and (later) predictive checking of recorded runs:
`BoundedEncoding.state`, `.init`, `.types`, `.transition(i, actions=..., instances=...)`,
`.invariant(inv, i)`, `.decode_state`, `.decode_instance`, `.decode_trace`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import z3
from z3 import z3core as _z3c

from model.core import Config, Instance, Model
from model.core.errors import ModelDefinitionError
from model.core.expr import App, BoundVar, Const, Expr, Quant, Ref, Select, _NoneConst, walk
from model.core.model import Action, ActionParam, Assign, Func, FuncAssign, Invariant, ModelConst, StateVar
from model.core.sorts import NONE_VALUE, BoolSort, EnumSort, IdSort, IntSort, OptSort, Sort

__all__ = [
    "Value",
    "SymState",
    "InitState",
    "PostState",
    "Translator",
    "Encoding",
    "BoundedEncoding",
    "ParametricEncoding",
    "decls_read",
    "decls_written",
]

#: A translated value: a folded Python constant (bool / int) or a z3 term (z3 is untyped, hence Any).
Value = Any


def _concrete(v: Value) -> bool:
    return not isinstance(v, z3.ExprRef)


# --------------------------------------------------------------------------------------
# Views of a state
# --------------------------------------------------------------------------------------


class SymState:
    """What a translated expression reads: scalar variables and function cells."""

    def var(self, decl: StateVar) -> Value:
        raise NotImplementedError

    def cell(self, func: Func, args: Sequence[Value]) -> Value:
        raise NotImplementedError


class InitState(SymState):
    """The initial state: every variable and every cell holds its declared ``init``."""

    def __init__(self, enc: "Encoding") -> None:
        self.enc = enc

    def var(self, decl: StateVar) -> Value:
        return self.enc.value_of(decl.sort, decl.init)

    def cell(self, func: Func, args: Sequence[Value]) -> Value:
        return self.enc.value_of(func.value_sort, func.init)


class PostState(SymState):
    """The successor of ``pre`` under ``action`` with parameters ``env`` (by substitution).

    Updates are evaluated in the pre-state and applied in order (a later write to the same
    cell wins), exactly as the dense compiler and `DenseModel.apply` do.
    """

    def __init__(self, enc: "Encoding", pre: SymState, action: Action, env: Mapping[object, Value]) -> None:
        self.enc = enc
        self.pre = pre
        self.action = action
        self.env = dict(env)
        self.tr = Translator(enc, pre)
        self._var_updates: dict[StateVar, Assign] = {}
        self._func_updates: dict[Func, list[Assign | FuncAssign]] = {}
        for u in action.updates:
            if isinstance(u, Assign) and isinstance(u.target, Ref):
                self._var_updates[u.target.decl] = u  # type: ignore[index]
            else:
                self._func_updates.setdefault(u.decl, []).append(u)  # type: ignore[arg-type]
        self._cache: dict[int, Value] = {}
        self._cells: dict[object, Value] = {}

    def _tr_cached(self, e: Expr) -> Value:
        key = id(e)
        if key not in self._cache:
            self._cache[key] = self.tr(e, self.env)
        return self._cache[key]

    def writes(self, decl: StateVar | Func) -> bool:
        return decl in self._var_updates or decl in self._func_updates

    def var(self, decl: StateVar) -> Value:
        u = self._var_updates.get(decl)
        if u is None:
            return self.pre.var(decl)
        return self._tr_cached(u.value)

    def cell(self, func: Func, args: Sequence[Value]) -> Value:
        ups = self._func_updates.get(func)
        if not ups:
            return self.pre.cell(func, args)
        key = (func, _key(args))
        hit = self._cells.get(key)
        if hit is None:
            hit = self._cells[key] = self._cell(func, ups, args)
        return hit

    def _cell(self, func: Func, ups: list[Assign | FuncAssign], args: Sequence[Value]) -> Value:
        # the last whole-function assignment overrides everything before it
        start = 0
        for k, u in enumerate(ups):
            if isinstance(u, FuncAssign):
                start = k
        first = ups[start]
        cur: Value
        if isinstance(first, FuncAssign):
            cur = self.tr(first.body, {**self.env, **dict(zip(first.vars, args))})
            rest = ups[start + 1:]
        else:
            cur = self.pre.cell(func, args)
            rest = ups[start:]
        for u in rest:
            assert isinstance(u, Assign) and isinstance(u.target, Select)
            idx = [self._tr_cached(a) for a in u.target.args]
            hit = self.enc.all_equal(u.target.args, idx, args)
            cur = self.enc.ite(hit, self._tr_cached(u.value), cur, func.value_sort)
        return cur


# --------------------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------------------


def _key(args: Sequence[Value]) -> tuple[object, ...]:
    """A hashable key for translated values (z3 terms by their unique id)."""
    return tuple(int(a) if _concrete(a) else ("z", a.get_id()) for a in args)


# Term constructors.  z3's operators (``And``, ``If``, ``==``, ``<``) coerce and check their arguments
# in Python, which costs several times the term itself; here the arguments are already z3 terms of
# one sort and context (the translation made them so), so the C functions are called directly (still
# with z3's error check).  The terms are the same ones the operators make (z3 hash-conses them).


def _same(a: Any, b: Any) -> bool:
    """Two z3 terms are the same term (hash-consed: the same pointer)."""
    return a.ast.value == b.ast.value  # type: ignore[no-any-return]


def _nary(mk: Any, parts: Sequence[Any]) -> Any:
    ctx = parts[0].ctx
    arr = (z3.Ast * len(parts))(*[p.ast for p in parts])
    return z3.BoolRef(mk(ctx.ref(), len(parts), arr), ctx)


def mk_and(parts: Sequence[Any]) -> Any:
    """``And`` of one or more z3 Booleans."""
    return parts[0] if len(parts) == 1 else _nary(_z3c.Z3_mk_and, parts)


def mk_or(parts: Sequence[Any]) -> Any:
    """``Or`` of one or more z3 Booleans."""
    return parts[0] if len(parts) == 1 else _nary(_z3c.Z3_mk_or, parts)


def mk_distinct(terms: Sequence[Any]) -> Any:
    """``Distinct`` of two or more z3 terms of one sort."""
    return _nary(_z3c.Z3_mk_distinct, terms)


def mk_not(a: Any) -> Any:
    return z3.BoolRef(_z3c.Z3_mk_not(a.ctx.ref(), a.ast), a.ctx)


def mk_implies(a: Any, b: Any) -> Any:
    return z3.BoolRef(_z3c.Z3_mk_implies(a.ctx.ref(), a.ast, b.ast), a.ctx)


def mk_eq(a: Any, b: Any) -> Any:
    """``a == b`` for two z3 terms of one sort."""
    return z3.BoolRef(_z3c.Z3_mk_eq(a.ctx.ref(), a.ast, b.ast), a.ctx)


def mk_ite(c: Any, a: Any, b: Any) -> Any:
    """``If(c, a, b)`` for z3 terms ``a``, ``b`` of one sort (``a`` itself when they are the same term)."""
    if _same(a, b):
        return a
    ctx = c.ctx
    ast = _z3c.Z3_mk_ite(ctx.ref(), c.ast, a.ast, b.ast)
    if isinstance(a, z3.BoolRef):
        return z3.BoolRef(ast, ctx)
    if isinstance(a, z3.ArithRef):
        return z3.ArithRef(ast, ctx)
    return z3.z3._to_expr_ref(ast, ctx)


def mk_lt(a: Any, b: Any) -> Any:
    """``a < b`` (integers; other sorts through z3's operator, which picks e.g. signed bit-vector order)."""
    if isinstance(a, z3.ArithRef) and isinstance(b, z3.ArithRef):
        return z3.BoolRef(_z3c.Z3_mk_lt(a.ctx.ref(), a.ast, b.ast), a.ctx)
    return a < b


def mk_le(a: Any, b: Any) -> Any:
    if isinstance(a, z3.ArithRef) and isinstance(b, z3.ArithRef):
        return z3.BoolRef(_z3c.Z3_mk_le(a.ctx.ref(), a.ast, b.ast), a.ctx)
    return a <= b


def _and(parts: Iterable[Value]) -> Value:
    out = []
    for p in parts:
        if _concrete(p):
            if not p:
                return False
            continue
        out.append(p)
    if not out:
        return True
    return mk_and(out)


def _or(parts: Iterable[Value]) -> Value:
    out = []
    for p in parts:
        if _concrete(p):
            if p:
                return True
            continue
        out.append(p)
    if not out:
        return False
    return mk_or(out)


def _not(a: Value) -> Value:
    return (not a) if _concrete(a) else mk_not(a)


class Translator:
    """Model expression -> z3 term (or a folded constant) over a pre-state and an optional post-state."""

    def __init__(self, enc: "Encoding", pre: SymState, post: SymState | None = None) -> None:
        self.enc = enc
        self.pre = pre
        self.post = post

    def __call__(self, e: Expr, env: Mapping[object, Value]) -> Value:
        return self._tr(e, env, self.pre)

    def formula(self, e: Expr, env: Mapping[object, Value] | None = None) -> Any:
        """``e`` as a z3 BoolRef (a folded constant becomes BoolVal)."""
        return self.enc.as_z3(BoolSort(), self(e, env or {}))

    def _tr(self, e: Expr, env: Mapping[object, Value], view: SymState) -> Value:
        enc = self.enc
        if isinstance(e, Const):
            return bool(e.value) if isinstance(e.sort, BoolSort) else e.value
        if isinstance(e, _NoneConst):
            return NONE_VALUE
        if isinstance(e, Ref):
            d = e.decl
            if isinstance(d, StateVar):
                return view.var(d)
            if isinstance(d, ModelConst):
                return enc.const(d)
            if d in env:
                return env[d]
            raise ModelDefinitionError(f"unbound reference {d.name} in the z3 translation")
        if isinstance(e, Select):
            args = [self._tr(a, env, view) for a in e.args]
            return view.cell(e.func, args)
        if isinstance(e, Quant):
            var = e.var
            return enc.quantify(e.kind, var.sort, lambda v: self._tr(e.body, {**env, var: v}, view), var.name)
        if isinstance(e, App):
            return self._app(e, env, view)
        raise ModelDefinitionError(f"cannot translate expression node {type(e).__name__}")

    def _app(self, e: App, env: Mapping[object, Value], view: SymState) -> Value:
        enc = self.enc
        op = e.op
        a = e.args
        if op == "and":
            return _and(self._tr(x, env, view) for x in a)
        if op == "or":
            return _or(self._tr(x, env, view) for x in a)
        if op == "not":
            return _not(self._tr(a[0], env, view))
        if op == "post":
            if self.post is None:
                raise ModelDefinitionError("Post() translated without a successor state")
            return self._tr(a[0], env, self.post)
        if op == "implies":
            x = self._tr(a[0], env, view)
            if _concrete(x) and not x:
                return True
            y = self._tr(a[1], env, view)
            if _concrete(x):
                return y
            if _concrete(y):
                return True if y else mk_not(x)
            return mk_implies(x, y)
        if op == "iff":
            x, y = self._tr(a[0], env, view), self._tr(a[1], env, view)
            if _concrete(x) and _concrete(y):
                return bool(x) == bool(y)
            return mk_eq(enc.as_z3(a[0].sort, x), enc.as_z3(a[1].sort, y))
        if op == "ite":
            c = self._tr(a[0], env, view)
            if _concrete(c):
                return self._tr(a[1] if c else a[2], env, view)
            return enc.ite(c, self._tr(a[1], env, view), self._tr(a[2], env, view), e.sort)
        if op in ("some", "unwrap"):
            return self._tr(a[0], env, view)
        x, y = self._tr(a[0], env, view), self._tr(a[1], env, view)
        sort = a[0].sort
        if op == "eq":
            return enc.eq(x, y, sort)
        if op == "ne":
            return _not(enc.eq(x, y, sort))
        if _concrete(x) and _concrete(y):
            return {"lt": x < y, "le": x <= y, "add": x + y, "sub": x - y}[op]  # type: ignore[operator]
        zx, zy = enc.as_z3(sort, x), enc.as_z3(sort, y)
        if op == "lt":
            return mk_lt(zx, zy)
        if op == "le":
            return mk_le(zx, zy)
        if op == "add":
            return zx + zy
        if op == "sub":
            return zx - zy
        raise ModelDefinitionError(f"cannot translate operator {op}")


def decls_read(e: Expr) -> set[object]:
    """State declarations (variables and functions) an expression reads."""
    out: set[object] = set()
    for n in walk(e):
        if isinstance(n, Ref) and isinstance(n.decl, StateVar):
            out.add(n.decl)
        elif isinstance(n, Select):
            out.add(n.func)
    return out


def decls_written(a: Action) -> set[object]:
    return {u.decl for u in a.updates}


# --------------------------------------------------------------------------------------
# Encodings
# --------------------------------------------------------------------------------------


class Encoding:
    """Common part of the two universes: sorts, constants, formulas, actions."""

    model: Model
    parametric: bool

    def __init__(self, model: Model, tag: str = "") -> None:
        self.model = model
        self.tag = tag
        self._states: dict[int, SymState] = {}
        self._invariants: dict[tuple[int, int], tuple[Invariant, Any]] = {}

    # -- sorts and values (universe-specific) -----------------------------------------------
    def z3sort(self, sort: Sort) -> Any:
        raise NotImplementedError

    def value_of(self, sort: Sort, value: int) -> Value:
        """An encoded model value (as in `model.core.sorts`) as a translated value."""
        raise NotImplementedError

    def lit(self, sort: Sort, value: Value) -> Any:
        """A folded constant of ``sort`` as a z3 term."""
        raise NotImplementedError

    def as_z3(self, sort: Sort, v: Value) -> Any:
        return self.lit(sort, v) if _concrete(v) else v

    def const(self, c: ModelConst) -> Value:
        raise NotImplementedError

    def upper(self, sort: IntSort) -> Value:
        raise NotImplementedError

    def quantify(self, kind: str, sort: Sort, body: Callable[[Value], Value], name: str) -> Value:
        raise NotImplementedError

    def in_domain(self, sort: Sort, v: Value) -> Value:
        """The constraint that ``v`` is a value of ``sort`` (true where the z3 sort says so)."""
        raise NotImplementedError

    def fresh(self, name: str, sort: Sort) -> Any:
        return z3.Const(f"{name}{self.tag}", self.z3sort(sort))

    def state(self, i: int) -> SymState:
        raise NotImplementedError

    # -- generic helpers ----------------------------------------------------------------------
    def eq(self, x: Value, y: Value, sort: Sort) -> Value:
        if _concrete(x) and _concrete(y):
            return self._norm(sort, x) == self._norm(sort, y)
        return mk_eq(self.as_z3(sort, x), self.as_z3(sort, y))

    @staticmethod
    def _norm(sort: Sort, v: Value) -> int:
        return int(v)

    def all_equal(self, exprs: Sequence[Expr], xs: Sequence[Value], ys: Sequence[Value]) -> Value:
        return _and(self.eq(x, y, e.sort) for e, x, y in zip(exprs, xs, ys))

    def ite(self, c: Value, a: Value, b: Value, sort: Sort) -> Value:
        if _concrete(c):
            return a if c else b
        if _concrete(a) and _concrete(b) and self._norm(sort, a) == self._norm(sort, b):
            return a
        return mk_ite(c, self.as_z3(sort, a), self.as_z3(sort, b))

    def translator(self, pre: SymState, post: SymState | None = None) -> Translator:
        return Translator(self, pre, post)

    def init_state(self) -> InitState:
        return InitState(self)

    def invariant(self, inv: Invariant, i: int) -> Any:
        """A state invariant at step ``i``; a transition invariant on steps ``(i, i+1)``."""
        key = (id(inv), i)
        hit = self._invariants.get(key)
        if hit is None:
            post = self.state(i + 1) if inv.transition else None
            hit = self._invariants[key] = (inv, self.translator(self.state(i), post).formula(inv.expr))
        return hit[1]

    def invariant_on(self, inv: Invariant, pre: SymState, post: SymState | None = None) -> Any:
        return self.translator(pre, post).formula(inv.expr)

    def guard(self, pre: SymState, action: Action, env: Mapping[object, Value]) -> Value:
        """The action's guard plus, for each counter it assigns, the counter's range (the explorer
        prunes a transition that would leave it)."""
        tr = self.translator(pre)
        parts: list[Value] = [tr(g, env) for _, g in action.guard]
        for u in action.updates:
            if isinstance(u, Assign) and isinstance(u.target.sort, IntSort):
                sort = u.target.sort
                v = tr(u.value, env)
                hi = self.upper(sort)
                if _concrete(v) and _concrete(hi):
                    parts.append(sort.lo <= v <= hi)  # type: ignore[operator]
                else:
                    zv = self.as_z3(sort, v)
                    parts.append(z3.And(zv >= sort.lo, zv <= hi))
        return _and(parts)

    def post_state(self, pre: SymState, action: Action, env: Mapping[object, Value]) -> PostState:
        return PostState(self, pre, action, env)

    def params(self, action: Action, tag: str) -> tuple[dict[object, Value], Value]:
        """Symbolic action parameters (fresh constants) and their domain constraint."""
        env: dict[object, Value] = {}
        cons: list[Value] = []
        for p in action.params:
            v = self.fresh(f"{action.name}.{p.name}@{tag}", p.sort)
            env[p] = v
            cons.append(self.in_domain(p.sort, v))
        return env, _and(cons)

    def types(self, i: int) -> Any:
        """Domain constraints of the state variables at step ``i``."""
        raise NotImplementedError

    def init(self, i: int = 0) -> Any:
        """Step ``i`` is the initial state."""
        raise NotImplementedError

    def transition(self, i: int, *, actions: Iterable[str] | None = None) -> Any:
        """T(s_i, s_{i+1}), optionally only by the named actions."""
        raise NotImplementedError

    def types_on(self, st: SymState) -> Any:
        raise NotImplementedError


class _BoundedState(SymState):
    def __init__(self, enc: "BoundedEncoding", i: int) -> None:
        self.enc = enc
        self.i = i
        self.slots: list[Any] = []
        self.vars: dict[StateVar, Any] = {}
        self.cells: dict[Func, dict[tuple[int, ...], Any]] = {}
        self._memo: dict[object, Value] = {}
        for d in enc.model.state:
            if isinstance(d, StateVar):
                v = z3.Const(f"{d.name}@{i}{enc.tag}", enc.z3sort(d.sort))
                self.vars[d] = v
                self.slots.append(v)
            else:
                cells = {}
                for idx in enc.indices(d):
                    key = ",".join(s.render(x) for s, x in zip(d.index_sorts, idx))
                    v = z3.Const(f"{d.name}[{key}]@{i}{enc.tag}", enc.z3sort(d.value_sort))
                    cells[idx] = v
                    self.slots.append(v)
                self.cells[d] = cells

    def var(self, decl: StateVar) -> Value:
        return self.vars[decl]

    def cell(self, func: Func, args: Sequence[Value]) -> Value:
        if all(_concrete(a) for a in args):
            n = [s.size(self.enc.sizes) for s in func.index_sorts]
            return self.cells[func][tuple(int(a) if 0 <= int(a) < k else k - 1 for a, k in zip(args, n))]
        key = (func, _key(args))
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._chain(func, args)
        return hit

    def _chain(self, func: Func, args: Sequence[Value]) -> Value:
        enc = self.enc
        cells = self.cells[func]
        choices: list[list[int]] = []
        for a, s in zip(args, func.index_sorts):
            n = s.size(enc.sizes)
            if _concrete(a):
                k = int(a)
                choices.append([k if 0 <= k < n else n - 1])
            else:
                choices.append(list(range(n)))
        combos = list(itertools.product(*choices))
        out: Value = cells[combos[-1]]
        for idx in reversed(combos[:-1]):
            cond = _and(enc.eq(a, x, s) for a, x, s in zip(args, idx, func.index_sorts))
            out = enc.ite(cond, cells[idx], out, func.value_sort)
        return out


class BoundedEncoding(Encoding):
    """One bounded configuration, quantifier-free (see the module docstring)."""

    parametric = False

    def __init__(self, config: Config, tag: str = "", *, ints: str = "bv") -> None:
        super().__init__(config.model, tag)
        self.config = config
        self.sizes = dict(config.sizes)
        self.ints = ints
        self.width = _width(config)
        self.consts = dict(config.consts)
        self.instances: list[Instance] = []
        for a in self.model.actions:
            for args in itertools.product(*(p.sort.values(self.sizes) for p in a.params)):
                self.instances.append(Instance(len(self.instances), a, tuple(args)))
        self._index = {(i.action.name, i.args): i for i in self.instances}
        self._selectors: dict[int, Any] = {}
        self._transitions: dict[object, Any] = {}

    # sorts -------------------------------------------------------------------------------------
    def z3sort(self, sort: Sort) -> Any:
        if isinstance(sort, BoolSort):
            return z3.BoolSort()
        return z3.BitVecSort(self.width) if self.ints == "bv" else z3.IntSort()

    def value_of(self, sort: Sort, value: int) -> Value:
        return bool(value) if isinstance(sort, BoolSort) else int(value)

    def lit(self, sort: Sort, value: Value) -> Any:
        if isinstance(sort, BoolSort):
            return z3.BoolVal(bool(value))
        return z3.BitVecVal(int(value), self.width) if self.ints == "bv" else z3.IntVal(int(value))

    def number(self, x: Any) -> int:
        return int(x.as_signed_long()) if self.ints == "bv" else int(x.as_long())

    def const(self, c: ModelConst) -> Value:
        return self.value_of(c.sort, self.consts[c.name])

    def upper(self, sort: IntSort) -> Value:
        return sort.upper(self.sizes)

    def quantify(self, kind: str, sort: Sort, body: Callable[[Value], Value], name: str) -> Value:
        vals = (self.value_of(sort, v) for v in sort.values(self.sizes))
        parts = (body(v) for v in vals)
        return _and(parts) if kind == "forall" else _or(parts)

    def in_domain(self, sort: Sort, v: Value) -> Value:
        if isinstance(sort, BoolSort):
            return True
        vals = sort.values(self.sizes)
        if _concrete(v):
            return int(v) in vals
        return z3.And(v >= vals.start, v <= vals.stop - 1)

    def indices(self, func: Func) -> list[tuple[int, ...]]:
        return list(itertools.product(*(range(s.size(self.sizes)) for s in func.index_sorts)))

    # states -------------------------------------------------------------------------------------
    def state(self, i: int) -> _BoundedState:
        st = self._states.get(i)
        if st is None:
            st = self._states[i] = _BoundedState(self, i)
        return st  # type: ignore[return-value]

    def slot_sorts(self) -> list[Sort]:
        out: list[Sort] = []
        for d in self.model.state:
            if isinstance(d, StateVar):
                out.append(d.sort)
            else:
                out.extend([d.value_sort] * len(self.indices(d)))
        return out

    def initial_tuple(self) -> tuple[int, ...]:
        out: list[int] = []
        for d in self.model.state:
            if isinstance(d, StateVar):
                out.append(self.value_of(d.sort, d.init))  # type: ignore[arg-type]
            else:
                out.extend([self.value_of(d.value_sort, d.init)] * len(self.indices(d)))  # type: ignore[list-item]
        return tuple(out)

    def init(self, i: int = 0) -> Any:
        """Step ``i`` is the initial state."""
        return self.equals(i, self.initial_tuple())

    def equals(self, i: int, state: Sequence[int]) -> Any:
        """Step ``i`` is the explorer state ``state`` (a dense tuple)."""
        st = self.state(i)
        return z3.And(*[v == self.lit(s, x) for v, s, x in zip(st.slots, self.slot_sorts(), state)])

    def types(self, i: int) -> Any:
        return self.types_on(self.state(i))

    def types_on(self, st: SymState) -> Any:
        assert isinstance(st, _BoundedState)
        cons = [self.in_domain(s, v) for v, s in zip(st.slots, self.slot_sorts())]
        return self.as_z3(BoolSort(), _and(cons))

    # transitions -----------------------------------------------------------------------------
    def selector(self, i: int) -> Any:
        """The z3 Int naming the instance (index into `instances`) taken from step i to i+1; -1 = stutter."""
        s = self._selectors.get(i)
        if s is None:
            s = self._selectors[i] = z3.Const(f"act@{i}{self.tag}", self._selector_sort())
        return s

    def _selector_sort(self) -> Any:
        if self.ints != "bv":
            return z3.IntSort()
        return z3.BitVecSort(max(2, (len(self.instances) + 1).bit_length() + 1))

    def instance(self, action: str, args: Mapping[str, int | str] | Sequence[int]) -> Instance:
        """An instance by action name and arguments (values or their rendered names, e.g. ``"c0"``)."""
        a = self.model.action(action)
        if isinstance(args, Mapping):
            vals = []
            for p in a.params:
                raw = args[p.name]
                if isinstance(raw, str):
                    found = [v for v in p.sort.values(self.sizes) if p.sort.render(v) == raw]
                    if not found:
                        raise KeyError(f"{raw!r} is not a {p.sort.name} here")
                    vals.append(found[0])
                else:
                    vals.append(int(raw))
            key = tuple(vals)
        else:
            key = tuple(int(x) for x in args)
        return self._index[(action, key)]

    def transition(
        self,
        i: int,
        *,
        actions: Iterable[str] | None = None,
        instances: Iterable[Instance] | None = None,
        stutter: bool = False,
    ) -> Any:
        """T(s_i, s_{i+1}): some enabled instance (optionally only of ``actions`` / among
        ``instances``) leads from step i to step i+1; the selector says which."""
        key = (i, stutter, None if actions is None else tuple(sorted(actions)),
               None if instances is None else tuple(x.index for x in instances))
        hit = self._transitions.get(key)
        if hit is None:
            hit = self._transitions[key] = self._transition(i, actions, instances, stutter)
        return hit

    def _transition(
        self, i: int, actions: Iterable[str] | None, instances: Iterable[Instance] | None, stutter: bool
    ) -> Any:
        pre, post = self.state(i), self.state(i + 1)
        act = self.selector(i)
        if instances is not None:
            chosen = list(instances)
        elif actions is not None:
            names = set(actions)
            unknown = names - {a.name for a in self.model.actions}
            if unknown:
                raise KeyError(f"model {self.model.name} has no action(s) {sorted(unknown)}")
            chosen = [x for x in self.instances if x.action.name in names]
        else:
            chosen = self.instances
        allowed: list[int] = [-1] if stutter else []
        side: list[Any] = []
        writes: dict[int, list[tuple[int, Value]]] = {}
        slot_of: dict[int, int] = {}
        for k, v in enumerate(pre.slots):
            slot_of[id(v)] = k
        sorts = self.slot_sorts()
        for inst in chosen:
            env: dict[object, Value] = {
                p: self.value_of(p.sort, x) for p, x in zip(inst.action.params, inst.args)
            }
            g = self.guard(pre, inst.action, env)
            if _concrete(g) and not g:
                continue
            allowed.append(inst.index)
            if not _concrete(g):
                side.append(z3.Implies(act == inst.index, g))
            ps = self.post_state(pre, inst.action, env)
            for d in self.model.state:
                if not ps.writes(d):
                    continue
                if isinstance(d, StateVar):
                    targets = [(pre.vars[d], ps.var(d))]
                else:
                    targets = [(pre.cells[d][idx], ps.cell(d, idx)) for idx in self.indices(d)]
                for old, new in targets:
                    if not _concrete(new) and new.eq(old):
                        continue
                    writes.setdefault(slot_of[id(old)], []).append((inst.index, new))
        parts: list[Any] = [z3.Or(*[act == j for j in allowed]) if allowed else z3.BoolVal(False)]
        parts += side
        for k, (old, new) in enumerate(zip(pre.slots, post.slots)):
            val: Any = old
            for j, v in reversed(writes.get(k, [])):
                val = z3.If(act == j, self.lit(sorts[k], v) if _concrete(v) else v, val)
            parts.append(new == val)
        return z3.And(*parts)

    # decoding ---------------------------------------------------------------------------------
    def decode_state(self, model: Any, i: int) -> tuple[int, ...]:
        """The explorer (dense) state tuple of step ``i`` in a z3 model."""
        out: list[int] = []
        for v, s in zip(self.state(i).slots, self.slot_sorts()):
            x = model.eval(v, model_completion=True)
            out.append(bool(z3.is_true(x)) if isinstance(s, BoolSort) else self.number(x))
        return tuple(out)

    def decode_instance(self, model: Any, i: int) -> Instance | None:
        """The instance taken from step i to i+1 (None for a stutter step)."""
        j = self.number(model.eval(self.selector(i), model_completion=True))
        return None if j < 0 else self.instances[j]

    def decode_trace(self, model: Any, length: int, reason: str) -> Any:
        """A `properties.explorer.Trace` of ``length`` steps read from a z3 model (stutters dropped)."""
        from properties.explorer import Trace, TraceStep

        dm = self.dense()
        states = [self.decode_state(model, 0)]
        steps: list[TraceStep] = []
        for i in range(length):
            inst = self.decode_instance(model, i)
            nxt = self.decode_state(model, i + 1)
            if inst is None:
                continue
            steps.append(TraceStep(inst, tuple(dm.diff(states[-1], nxt)), dm.outputs(states[-1], inst)))
            states.append(nxt)
        return Trace(self.config, tuple(states), tuple(steps), reason)

    def dense(self) -> Any:
        if not hasattr(self, "_dense"):
            from model.core import compile_dense

            self._dense = compile_dense(self.config, checked=True)
        return self._dense


# --------------------------------------------------------------------------------------
# Parametric universe
# --------------------------------------------------------------------------------------


class _ParamState(SymState):
    def __init__(self, enc: "ParametricEncoding", i: int) -> None:
        self.enc = enc
        self.vars: dict[StateVar, Any] = {}
        self.funcs: dict[Func, Any] = {}
        for d in enc.model.state:
            if isinstance(d, StateVar):
                self.vars[d] = z3.Const(f"{d.name}@{i}{enc.tag}", enc.z3sort(d.sort))
            else:
                sig = [enc.z3sort(s) for s in d.index_sorts] + [enc.z3sort(d.value_sort)]
                self.funcs[d] = z3.Function(f"{d.name}@{i}{enc.tag}", *sig)

    def var(self, decl: StateVar) -> Value:
        return self.vars[decl]

    def cell(self, func: Func, args: Sequence[Value]) -> Value:
        enc = self.enc
        return self.funcs[func](*[enc.as_z3(s, a) for s, a in zip(func.index_sorts, args)])


class ParametricEncoding(Encoding):
    """Any number of each Id sort (see the module docstring).

    ``fixed`` pins model constants and non-Id bounds (e.g. ``{"max_actions": 1}``); the others
    are free z3 constants, so a proof covers every value.
    """

    parametric = True

    def __init__(self, model: Model, fixed: Mapping[str, int] | None = None, tag: str = "") -> None:
        super().__init__(model, tag)
        self.fixed = dict(fixed or {})
        self._sorts: dict[Sort, Any] = {}
        self._none: dict[IdSort, Any] = {}
        self._enum_values: dict[EnumSort, list[Any]] = {}
        self._consts: dict[str, Any] = {}
        self._bound_counter = 0
        id_bounds = {s.bound for s in model.id_sorts}
        known = set(dict(model.bounds)) | {c.name for c in model.consts}
        for k in self.fixed:
            if k not in known:
                raise ModelDefinitionError(f"model {model.name} has no bound or constant {k!r}")
        self.free_bounds = [b for b, _ in model.bounds if b not in id_bounds and b not in self.fixed]
        self.free_consts = [c.name for c in model.consts if c.name not in self.fixed]

    def z3sort(self, sort: Sort) -> Any:
        if isinstance(sort, OptSort):
            sort = sort.inner
        s = self._sorts.get(sort)
        if s is not None:
            return s
        if isinstance(sort, BoolSort):
            s = z3.BoolSort()
        elif isinstance(sort, IntSort):
            s = z3.IntSort()
        elif isinstance(sort, IdSort):
            s = z3.DeclareSort(f"{sort.name}{self.tag}")
            self._none[sort] = z3.Const(f"none_{sort.name}{self.tag}", s)
        elif isinstance(sort, EnumSort):
            s, values = _enum_sort(sort)
            self._enum_values[sort] = values
        else:  # pragma: no cover
            raise ModelDefinitionError(f"no z3 sort for {sort.name}")
        self._sorts[sort] = s
        return s

    def none(self, sort: IdSort) -> Any:
        self.z3sort(sort)
        return self._none[sort]

    def value_of(self, sort: Sort, value: int) -> Value:
        if isinstance(sort, BoolSort):
            return bool(value)
        if isinstance(sort, (IdSort, OptSort)):
            if value != NONE_VALUE:
                raise ModelDefinitionError(f"a literal {sort.name} value {value} has no parametric meaning")
            return self.none(sort.id_sort())  # type: ignore[arg-type]
        return int(value)

    def lit(self, sort: Sort, value: Value) -> Any:
        if isinstance(sort, BoolSort):
            return z3.BoolVal(bool(value))
        if isinstance(sort, IntSort):
            return z3.IntVal(int(value))
        if isinstance(sort, EnumSort):
            self.z3sort(sort)
            return self._enum_values[sort][int(value)]
        if isinstance(sort, (IdSort, OptSort)):
            if int(value) != NONE_VALUE:
                raise ModelDefinitionError(f"a literal {sort.name} value {value} has no parametric meaning")
            return self.none(sort.id_sort())  # type: ignore[arg-type]
        raise ModelDefinitionError(f"no literal of {sort.name}")

    def const(self, c: ModelConst) -> Value:
        if c.name in self.fixed:
            return self.value_of(c.sort, self.fixed[c.name])
        if c.name not in self._consts:
            self._consts[c.name] = z3.Const(f"{c.name}{self.tag}", self.z3sort(c.sort))
        return self._consts[c.name]

    def upper(self, sort: IntSort) -> Value:
        if isinstance(sort.hi, int):
            return sort.hi
        if sort.hi in self.fixed:
            return self.fixed[sort.hi]
        if sort.hi not in self._consts:
            self._consts[sort.hi] = z3.Int(f"{sort.hi}{self.tag}")
        return self._consts[sort.hi]

    def background(self) -> Any:
        """Facts about the free bounds: each Int bound is at least its sorts' lower bounds."""
        facts = []
        for s in _int_sorts(self.model):
            hi = self.upper(s)
            if not _concrete(hi):
                facts.append(hi >= s.lo)
        return z3.And(*facts) if facts else z3.BoolVal(True)

    def quantify(self, kind: str, sort: Sort, body: Callable[[Value], Value], name: str) -> Value:
        if isinstance(sort, (BoolSort, EnumSort)):
            vals = [True, False] if isinstance(sort, BoolSort) else list(range(len(sort.members)))
            parts = (body(v) for v in vals)
            return _and(parts) if kind == "forall" else _or(parts)
        assert isinstance(sort, IdSort)
        self._bound_counter += 1
        x = z3.Const(f"{name}!{self._bound_counter}", self.z3sort(sort))
        b = self.as_z3(BoolSort(), body(x))
        real = x != self.none(sort)
        if kind == "forall":
            return z3.ForAll([x], z3.Implies(real, b))
        return z3.Exists([x], z3.And(real, b))

    def in_domain(self, sort: Sort, v: Value) -> Value:
        if isinstance(sort, IdSort):
            return v != self.none(sort)
        if isinstance(sort, IntSort):
            zv = self.as_z3(sort, v)
            return z3.And(zv >= sort.lo, zv <= self.as_z3(sort, self.upper(sort)))
        return True

    @staticmethod
    def _norm(sort: Sort, v: Value) -> int:
        return int(v)

    def state(self, i: int) -> _ParamState:
        st = self._states.get(i)
        if st is None:
            st = self._states[i] = _ParamState(self, i)
        return st  # type: ignore[return-value]

    def types(self, i: int) -> Any:
        return self.types_on(self.state(i))

    def types_on(self, st: SymState) -> Any:
        """Int counters lie in their range (everywhere, the none cells included)."""
        cons: list[Any] = []
        for d in self.model.state:
            sort = d.sort if isinstance(d, StateVar) else d.value_sort
            if not isinstance(sort, IntSort):
                continue
            if isinstance(d, StateVar):
                cons.append(self.in_domain(sort, st.var(d)))
                continue
            xs = [z3.Const(f"{d.name}_x{k}", self.z3sort(s)) for k, s in enumerate(d.index_sorts)]
            cons.append(z3.ForAll(xs, self.in_domain(sort, st.cell(d, xs))))
        return z3.And(*cons) if cons else z3.BoolVal(True)

    def init(self, i: int = 0) -> Any:
        st = self.state(i)
        cons: list[Any] = []
        for d in self.model.state:
            if isinstance(d, StateVar):
                cons.append(st.var(d) == self.lit(d.sort, self.value_of(d.sort, d.init)))
            else:
                xs = [z3.Const(f"{d.name}_x{k}", self.z3sort(s)) for k, s in enumerate(d.index_sorts)]
                init = self.as_z3(d.value_sort, self.value_of(d.value_sort, d.init))
                cons.append(z3.ForAll(xs, st.cell(d, xs) == init))
        return z3.And(*cons)

    def transition(self, i: int, *, actions: Iterable[str] | None = None) -> Any:
        """T(s_i, s_{i+1}) with per-step functions and universally quantified frame conditions."""
        pre, post = self.state(i), self.state(i + 1)
        names = set(actions) if actions is not None else None
        disj = []
        for a in self.model.actions:
            if names is not None and a.name not in names:
                continue
            env, dom = self.params(a, f"{i}")
            g = self.guard(pre, a, env)
            ps = self.post_state(pre, a, env)
            parts: list[Any] = [self.as_z3(BoolSort(), dom), self.as_z3(BoolSort(), g)]
            for d in self.model.state:
                if isinstance(d, StateVar):
                    parts.append(post.var(d) == self.as_z3(d.sort, ps.var(d)))
                else:
                    xs = [z3.Const(f"{d.name}_x{k}", self.z3sort(s)) for k, s in enumerate(d.index_sorts)]
                    parts.append(z3.ForAll(xs, post.cell(d, xs) == self.as_z3(d.value_sort, ps.cell(d, xs))))
            disj.append(z3.And(*parts))
        return z3.Or(*disj) if disj else z3.BoolVal(False)


def _width(config: Config) -> int:
    """Bits of the signed bit-vectors holding every non-Bool value (with room for +-1 overflow)."""
    sizes = dict(config.sizes)
    from model.core.model import _all_sorts

    biggest = 2
    for s in _all_sorts(config.model):
        if isinstance(s, BoolSort):
            continue
        vals = s.values(sizes)
        biggest = max(biggest, abs(vals.start) + 2, abs(vals.stop) + 2)
    return biggest.bit_length() + 1


_ENUMS: dict[int, tuple[Any, list[Any]]] = {}


def _enum_sort(sort: EnumSort) -> tuple[Any, list[Any]]:
    """One z3 EnumSort per model Enum (z3 sort names are global, so distinct enums get distinct names)."""
    hit = _ENUMS.get(id(sort))
    if hit is not None:
        return hit
    name = sort.name
    taken = {s.name() for s, _ in _ENUMS.values()}
    n = 1
    while name in taken:
        n += 1
        name = f"{sort.name}_{n}"
    s, values = z3.EnumSort(name, [f"{name}.{m}" for m in sort.members])
    _ENUMS[id(sort)] = (s, list(values))
    return _ENUMS[id(sort)]


def _int_sorts(model: Model) -> list[IntSort]:
    from model.core.model import _all_sorts

    seen: dict[str, IntSort] = {}
    for s in _all_sorts(model):
        if isinstance(s, IntSort):
            seen.setdefault(f"{s.name}:{s.lo}:{s.hi}", s)
    return list(seen.values())


def bound_vars_of(e: Expr) -> set[BoundVar]:
    return {n.var for n in walk(e) if isinstance(n, Quant)}


_ = ActionParam
