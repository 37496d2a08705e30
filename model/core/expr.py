"""The expression language in which every guard, update, output and invariant is written.

A model never contains Python code that runs on states: it contains *expressions*, small
typed trees built with Python operators, which each backend interprets in its own way
(the dense compiler generates Python, the z3 backend builds formulas, the renderer prints
them).  This is what lets one rule be written once and checked by every engine.

Operators: ``&`` ``|`` ``~`` (Python's ``and``/``or``/``not`` cannot be overloaded, so
using them on an expression raises a `ModelDefinitionError`), ``==`` ``!=``, ``<`` ``<=``
``>`` ``>=`` ``+`` ``-`` on `Int` sorts, and the functions `Implies`, `Iff`, `Ite`,
`ForAll`, `Exists`, `Some`, `Post`.  ``opt.some`` unwraps an ``Opt`` value (the caller must
have checked ``opt != NONE``; the checked interpreters raise if it is none).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Union

from .errors import ModelDefinitionError
from .sorts import BOOL, NONE_VALUE, BoolSort, EnumSort, IdSort, IntSort, OptSort, Sort

if TYPE_CHECKING:
    from .model import ActionParam, Func, ModelConst, StateVar

__all__ = [
    "Expr",
    "Const",
    "Ref",
    "Select",
    "App",
    "Quant",
    "BoundVar",
    "TRUE",
    "FALSE",
    "NONE",
    "lift",
    "And",
    "Or",
    "Not",
    "Implies",
    "Iff",
    "Ite",
    "ForAll",
    "Exists",
    "Some",
    "Post",
    "walk",
    "conjuncts",
]

ExprLike = Union["Expr", bool, int, str]


class Expr:
    """A typed expression node.  Equality operators build expressions, so nodes hash by identity."""

    __slots__ = ("sort",)
    sort: Sort

    def __bool__(self) -> bool:
        raise ModelDefinitionError(
            "a model expression was used as a Python truth value; use & | ~ (or And/Or/Not, "
            "Implies, Ite) instead of and/or/not/if on expressions"
        )

    __hash__ = object.__hash__

    # Boolean connectives ---------------------------------------------------------------
    def __and__(self, other: ExprLike) -> "Expr":
        return And(self, other)

    def __rand__(self, other: ExprLike) -> "Expr":
        return And(other, self)

    def __or__(self, other: ExprLike) -> "Expr":
        return Or(self, other)

    def __ror__(self, other: ExprLike) -> "Expr":
        return Or(other, self)

    def __invert__(self) -> "Expr":
        return Not(self)

    # Comparison ------------------------------------------------------------------------
    def __eq__(self, other: object) -> "Expr":  # type: ignore[override]
        return _compare("eq", self, other)

    def __ne__(self, other: object) -> "Expr":  # type: ignore[override]
        return _compare("ne", self, other)

    def __lt__(self, other: ExprLike) -> "Expr":
        return _order("lt", self, other)

    def __le__(self, other: ExprLike) -> "Expr":
        return _order("le", self, other)

    def __gt__(self, other: ExprLike) -> "Expr":
        return _order("lt", lift(other, self.sort), self)

    def __ge__(self, other: ExprLike) -> "Expr":
        return _order("le", lift(other, self.sort), self)

    # Arithmetic on Int sorts -----------------------------------------------------------
    def __add__(self, other: ExprLike) -> "Expr":
        return _arith("add", self, other)

    def __sub__(self, other: ExprLike) -> "Expr":
        return _arith("sub", self, other)

    # Opt ---------------------------------------------------------------------------------
    @property
    def some(self) -> "Expr":
        """Unwrap an ``Opt[X]`` value to ``X`` (only meaningful where it is not none)."""
        if not isinstance(self.sort, OptSort):
            raise ModelDefinitionError(f".some applies to Opt values, not to {self.sort.name}")
        return App("unwrap", (self,), self.sort.inner)

    def is_none(self) -> "Expr":
        return self == NONE

    def is_some(self) -> "Expr":
        return self != NONE

    def __repr__(self) -> str:
        from .render import render_expr

        return render_expr(self)


class Const(Expr):
    """A constant of a sort, by its encoded value."""

    __slots__ = ("value",)

    def __init__(self, sort: Sort, value: int) -> None:
        self.sort = sort
        self.value = value


class _NoneConst(Expr):
    """The untyped ``NONE``: takes the Opt sort of whatever it is compared with or assigned to."""

    __slots__ = ()

    def __init__(self) -> None:
        self.sort = BOOL  # placeholder; always replaced by `lift`


NONE: Expr = _NoneConst()
TRUE = Const(BOOL, 1)
FALSE = Const(BOOL, 0)


class Ref(Expr):
    """A reference to a scalar state variable, an action parameter, a bound variable or a model constant."""

    __slots__ = ("decl",)

    def __init__(self, decl: "StateVar | ActionParam | BoundVar | ModelConst") -> None:
        self.decl = decl
        self.sort = decl.sort


class Select(Expr):
    """``func[args]``: one cell of a function-valued state variable."""

    __slots__ = ("func", "args")

    def __init__(self, func: "Func", args: tuple[Expr, ...]) -> None:
        self.func = func
        self.args = args
        self.sort = func.value_sort


class App(Expr):
    """An operator applied to arguments.

    Ops: ``not and or implies iff eq ne lt le add sub ite some unwrap post``.
    """

    __slots__ = ("op", "args")

    def __init__(self, op: str, args: tuple[Expr, ...], sort: Sort) -> None:
        self.op = op
        self.args = args
        self.sort = sort


class BoundVar:
    """A variable bound by a quantifier or by a whole-function update."""

    __slots__ = ("name", "sort")

    def __init__(self, name: str, sort: Sort) -> None:
        self.name = name
        self.sort = sort

    def __repr__(self) -> str:
        return self.name


class Quant(Expr):
    """``forall``/``exists`` over the values of a finite or Id sort."""

    __slots__ = ("kind", "var", "body")

    def __init__(self, kind: str, var: BoundVar, body: Expr) -> None:
        self.kind = kind
        self.var = var
        self.body = body
        self.sort = BOOL


# --------------------------------------------------------------------------------------
# Lifting Python values and type checking
# --------------------------------------------------------------------------------------


def lift(value: object, sort: Sort) -> Expr:
    """Turn a Python value (or NONE, or an expression) into an expression of ``sort``.

    An ``Id`` expression is widened to ``Opt[Id]`` where an Opt is expected.
    """
    if value is NONE:
        if not isinstance(sort, OptSort):
            raise ModelDefinitionError(f"NONE used where a {sort.name} is expected; only Opt values can be none")
        return Const(sort, NONE_VALUE)
    if isinstance(value, Expr):
        if value.sort is sort:
            return value
        if isinstance(sort, OptSort) and value.sort is sort.inner:
            return App("some", (value,), sort)
        raise ModelDefinitionError(f"type mismatch: expected {sort.name}, got {value.sort.name} ({value!r})")
    if isinstance(sort, BoolSort) and isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(sort, IntSort) and isinstance(value, int) and not isinstance(value, bool):
        return Const(sort, value)
    if isinstance(sort, EnumSort) and isinstance(value, str):
        return Const(sort, sort.index(value))
    raise ModelDefinitionError(f"cannot use Python value {value!r} as a {sort.name}")


def _unify(a: object, b: object) -> tuple[Expr, Expr]:
    """Give two operands of a comparison a common sort."""
    if isinstance(a, Expr) and not isinstance(a, _NoneConst):
        if isinstance(b, Expr) and not isinstance(b, _NoneConst):
            if a.sort is b.sort:
                return a, b
            if isinstance(a.sort, OptSort) and b.sort is a.sort.inner:
                return a, lift(b, a.sort)
            if isinstance(b.sort, OptSort) and a.sort is b.sort.inner:
                return lift(a, b.sort), b
            raise ModelDefinitionError(f"cannot compare {a.sort.name} with {b.sort.name}: {a!r} vs {b!r}")
        return a, lift(b, a.sort)
    if isinstance(b, Expr) and not isinstance(b, _NoneConst):
        return lift(a, b.sort), b
    raise ModelDefinitionError(f"comparison needs at least one typed expression: {a!r}, {b!r}")


def _compare(op: str, a: object, b: object) -> Expr:
    x, y = _unify(a, b)
    return App(op, (x, y), BOOL)


def _order(op: str, a: ExprLike, b: ExprLike) -> Expr:
    x, y = _unify(a, b)
    if not isinstance(x.sort, IntSort):
        raise ModelDefinitionError(
            f"order comparison on {x.sort.name}: only Int values are ordered "
            "(comparing identities by order would also break symmetry reduction)"
        )
    return App(op, (x, y), BOOL)


def _arith(op: str, a: ExprLike, b: ExprLike) -> Expr:
    if not isinstance(a, Expr) or not isinstance(a.sort, IntSort):
        raise ModelDefinitionError(f"arithmetic needs an Int expression on the left, got {a!r}")
    return App(op, (a, lift(b, a.sort)), a.sort)


def _bool(x: ExprLike) -> Expr:
    e = lift(x, BOOL)
    if e.sort is not BOOL:
        raise ModelDefinitionError(f"expected a Bool expression, got {e.sort.name}: {e!r}")
    return e


def And(*args: ExprLike) -> Expr:
    parts: list[Expr] = []
    for a in args:
        e = _bool(a)
        if isinstance(e, App) and e.op == "and":
            parts.extend(e.args)
        elif e is TRUE:
            continue
        else:
            parts.append(e)
    if not parts:
        return TRUE
    if len(parts) == 1:
        return parts[0]
    return App("and", tuple(parts), BOOL)


def Or(*args: ExprLike) -> Expr:
    parts: list[Expr] = []
    for a in args:
        e = _bool(a)
        if isinstance(e, App) and e.op == "or":
            parts.extend(e.args)
        elif e is FALSE:
            continue
        else:
            parts.append(e)
    if not parts:
        return FALSE
    if len(parts) == 1:
        return parts[0]
    return App("or", tuple(parts), BOOL)


def Not(a: ExprLike) -> Expr:
    e = _bool(a)
    if isinstance(e, App) and e.op == "not":
        return e.args[0]
    return App("not", (e,), BOOL)


def Implies(a: ExprLike, b: ExprLike) -> Expr:
    return App("implies", (_bool(a), _bool(b)), BOOL)


def Iff(a: ExprLike, b: ExprLike) -> Expr:
    return App("iff", (_bool(a), _bool(b)), BOOL)


def Ite(cond: ExprLike, then: object, otherwise: object) -> Expr:
    c = _bool(cond)
    t, o = _unify(then, otherwise)
    return App("ite", (c, t, o), t.sort)


def Some(value: Expr) -> Expr:
    """Widen an ``Id`` expression to ``Opt[Id]``."""
    s = value.sort
    if not isinstance(s, IdSort):
        raise ModelDefinitionError(f"Some() takes an Id value, got {s.name}")
    return App("some", (value,), s.opt)


def Post(value: Expr) -> Expr:
    """The value of ``value`` in the *next* state; only inside transition invariants."""
    return App("post", (value,), value.sort)


_bound_counter = [0]


def _quant(kind: str, sort: Sort, body: Callable[[Expr], ExprLike], name: str | None) -> Expr:
    if not isinstance(sort, (IdSort, EnumSort, BoolSort)):
        raise ModelDefinitionError(f"quantifiers range over Id, Enum or Bool sorts, not {sort.name}")
    _bound_counter[0] += 1
    var = BoundVar(name or f"{sort.name.lower()}_{_bound_counter[0]}", sort)
    return Quant(kind, var, _bool(body(Ref(var))))


def ForAll(sort: Sort, body: Callable[[Expr], ExprLike], name: str | None = None) -> Expr:
    """``ForAll(Obj, lambda o: ...)``."""
    return _quant("forall", sort, body, name)


def Exists(sort: Sort, body: Callable[[Expr], ExprLike], name: str | None = None) -> Expr:
    """``Exists(Ctx, lambda c: ...)``."""
    return _quant("exists", sort, body, name)


# --------------------------------------------------------------------------------------
# Traversal helpers used by the backends and the validators
# --------------------------------------------------------------------------------------


def children(e: Expr) -> Sequence[Expr]:
    if isinstance(e, (Const, Ref, _NoneConst)):
        return ()
    if isinstance(e, Select):
        return e.args
    if isinstance(e, App):
        return e.args
    if isinstance(e, Quant):
        return (e.body,)
    raise TypeError(f"unknown expression node {type(e).__name__}")


def walk(e: Expr) -> Iterator[Expr]:
    """Every node of ``e``, pre-order."""
    stack = [e]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))


def conjuncts(e: Expr) -> list[Expr]:
    """The top-level conjuncts of ``e`` (``[e]`` if it is not a conjunction)."""
    if isinstance(e, App) and e.op == "and":
        return list(e.args)
    if e is TRUE:
        return []
    return [e]


def free_refs(e: Expr) -> Iterable[object]:
    """Declarations referenced by ``e`` (state variables, functions, params, bound vars)."""
    for n in walk(e):
        if isinstance(n, Ref):
            yield n.decl
        elif isinstance(n, Select):
            yield n.func
