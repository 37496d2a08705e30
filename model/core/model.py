"""Models as declarative transition systems: state declarations, actions, invariants.

A `Model` is data, not code.  It holds

* **bounds**: named sizes (``threads``, ``contexts``, ...) that give `Id` sorts their number
  of elements, and model constants (``production``) that select a limit-enforcer profile;
* **state**: scalar variables (`StateVar`) and function-valued variables (`Func`, e.g.
  ``owner: Obj -> Ctx``), each with one initial value, so there is exactly one initial state;
* **actions**: named, parameterised steps with a guard made of *named conjuncts*, a list of
  assignments evaluated in the pre-state, and *outputs* (what the model predicts an
  implementation observes, e.g. an error message id);
* **invariants**: state predicates (or, with `Post`, predicates over one transition).  Those
  marked ``lemma`` are strengthenings that explain *why* a rule holds (used by induction).

Every action and invariant names the rule ids it implements (see `model.rules`) and the
workerd source it follows.  Misuse is reported when the model is built, with a fix.

Composition: ``ModelBuilder(extends=base)`` copies a model and lets the new one *refine*
base actions (synchronised product: guards conjoined, assignments and outputs united), so a
rule shared by two models is written once.  Fault variants (`Model.variant`) swap one action
or invariant for a broken one; they are how every check is shown able to fail.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigError, ModelDefinitionError
from .expr import (
    TRUE,
    App,
    BoundVar,
    Const,
    Expr,
    Quant,
    Ref,
    Select,
    conjuncts,
    lift,
    walk,
)
from .sorts import BOOL, BoolSort, EnumSort, IdSort, IntSort, OptSort, Sort

__all__ = [
    "StateVar",
    "Func",
    "ActionParam",
    "ModelConst",
    "Assign",
    "FuncAssign",
    "Step",
    "Action",
    "Invariant",
    "Model",
    "ModelBuilder",
    "Config",
]

_SOURCE_RE = re.compile(r"^[\w./+-]+\.(?:c\+\+|h|capnp|js|ts|py|md):\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*$")


def _check_source(where: str, source: Sequence[str]) -> tuple[str, ...]:
    if isinstance(source, str):
        source = (source,)
    if not source:
        raise ModelDefinitionError(
            f"{where} has no workerd source reference; add source='io/io-context.c++:254' "
            "(file:line at commit 6552d999)"
        )
    for s in source:
        if not _SOURCE_RE.match(s):
            raise ModelDefinitionError(
                f"{where}: source reference {s!r} is not 'path/file.ext:LINE[-LINE]' (e.g. 'io/io-own.c++:9-20')"
            )
    return tuple(source)


def _check_rules(where: str, rules: Sequence[str]) -> tuple[str, ...]:
    from model.rules import RULES

    if isinstance(rules, str):
        rules = (rules,)
    if not rules:
        raise ModelDefinitionError(
            f"{where} names no rule id; pass rules=('INV-O4',) with the ids from model/rules.py it implements"
        )
    for r in rules:
        if r not in RULES:
            raise ModelDefinitionError(
                f"{where}: unknown rule id {r!r}; add it to model/rules.py (with its source) or fix the spelling"
            )
    return tuple(rules)


# --------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------


class StateVar:
    """A scalar state variable."""

    __slots__ = ("name", "sort", "init", "doc", "ghost")

    def __init__(self, name: str, sort: Sort, init: int, doc: str, ghost: bool) -> None:
        self.name = name
        self.sort = sort
        self.init = init
        self.doc = doc
        self.ghost = ghost

    def __repr__(self) -> str:
        return self.name


class Func:
    """A function-valued state variable, ``name: S1 x ... x Sn -> V``; ``f[a, b]`` is a cell."""

    __slots__ = ("name", "index_sorts", "value_sort", "init", "doc", "ghost")

    def __init__(
        self, name: str, index_sorts: tuple[Sort, ...], value_sort: Sort, init: int, doc: str, ghost: bool
    ) -> None:
        self.name = name
        self.index_sorts = index_sorts
        self.value_sort = value_sort
        self.init = init
        self.doc = doc
        self.ghost = ghost

    def __getitem__(self, args: object) -> Select:
        items = args if isinstance(args, tuple) else (args,)
        if len(items) != len(self.index_sorts):
            raise ModelDefinitionError(
                f"{self.name} takes {len(self.index_sorts)} index(es) "
                f"({', '.join(s.name for s in self.index_sorts)}), got {len(items)}"
            )
        exprs = []
        for a, s in zip(items, self.index_sorts):
            if isinstance(a, Expr) and isinstance(a.sort, OptSort) and a.sort.inner is s:
                raise ModelDefinitionError(
                    f"{self.name}[...] indexed by an Opt value {a!r}; check it is not NONE and use .some"
                )
            if isinstance(a, int) and isinstance(s, IdSort):
                raise ModelDefinitionError(
                    f"{self.name}[{a}]: a literal {s.name} id names one element and breaks symmetry; "
                    "use an action parameter or a quantified variable"
                )
            exprs.append(lift(a, s))
        return Select(self, tuple(exprs))

    def __repr__(self) -> str:
        return self.name


class ActionParam:
    __slots__ = ("name", "sort")

    def __init__(self, name: str, sort: Sort) -> None:
        self.name = name
        self.sort = sort

    def __repr__(self) -> str:
        return self.name


class ModelConst:
    """A model constant (e.g. the limit-enforcer profile), fixed per configuration."""

    __slots__ = ("name", "sort", "default", "doc")

    def __init__(self, name: str, sort: Sort, default: int, doc: str) -> None:
        self.name = name
        self.sort = sort
        self.default = default
        self.doc = doc

    def __repr__(self) -> str:
        return self.name


StateDecl = StateVar | Func


@dataclass(frozen=True)
class Assign:
    """``target := value``; ``target`` is a scalar variable or one cell ``f[args]``."""

    target: Ref | Select
    value: Expr

    @property
    def decl(self) -> StateDecl:
        t = self.target
        return t.func if isinstance(t, Select) else t.decl  # type: ignore[return-value]


@dataclass(frozen=True)
class FuncAssign:
    """``f := lambda vars: body``: every cell of ``f`` at once (use sparingly: O(domain))."""

    func: Func
    vars: tuple[BoundVar, ...]
    body: Expr

    @property
    def decl(self) -> Func:
        return self.func


Update = Assign | FuncAssign
UpdatesLike = Mapping[Any, object] | Sequence[tuple[Any, object]] | Sequence[Update]


@dataclass(frozen=True)
class Step:
    """What an action function returns: guard, updates and outputs, all expressions.

    ``guard`` is a mapping ``{label: condition}`` (preferred: labels appear in violation
    messages, diagrams and fault variants) or a single expression; it is required; write
    ``guard=TRUE`` for an action that is always enabled.
    """

    guard: Mapping[str, object] | Expr | bool | None = None
    updates: UpdatesLike = ()
    outputs: Mapping[str, object] = field(default_factory=dict)
    #: Runtime checks workerd performs, in order: ``(label, condition, error)``.  The action
    #: happens when all hold; otherwise a twin action ``<name>_rejected`` happens (same
    #: guard, no state change beyond ``on_reject``) whose ``result`` output is the error of
    #: the first failing check.  Both report ``result``; the success twin reports ``OK``.
    checks: Sequence[tuple[str, object, object]] = ()
    on_reject: UpdatesLike = ()


@dataclass(frozen=True)
class Action:
    name: str
    params: tuple[ActionParam, ...]
    guard: tuple[tuple[str, Expr], ...]
    updates: tuple[Update, ...]
    outputs: tuple[tuple[str, Expr], ...]
    rules: tuple[str, ...]
    source: tuple[str, ...]
    doc: str
    label: str
    #: The operation an implementation reports (``access`` for both ``access`` and
    #: ``access_rejected``); trace events name operations, not actions.
    operation: str = ""
    rejected: bool = False
    checks: tuple[tuple[str, Expr, Expr], ...] = ()

    @property
    def guard_expr(self) -> Expr:
        from .expr import And

        return And(*(g for _, g in self.guard)) if self.guard else TRUE

    def without_guard(self, label: str) -> "Action":
        """This action with one guard conjunct removed (for fault variants)."""
        if label not in dict(self.guard):
            raise ModelDefinitionError(
                f"action {self.name} has no guard {label!r}; guards: {', '.join(k for k, _ in self.guard)}"
            )
        return replace(
            self,
            guard=tuple((k, g) for k, g in self.guard if k != label),
            checks=tuple(c for c in self.checks if c[0] != label),
        )

    def with_guard(self, label: str, cond: Expr) -> "Action":
        """This action with guard conjunct (or check) ``label`` replaced by ``cond``."""
        return replace(
            self,
            guard=tuple((k, g) for k, g in self.guard if k != label) + ((label, cond),),
            checks=tuple((k, cond if k == label else c, e) for k, c, e in self.checks),
        )

    def without_update(self, target_name: str) -> "Action":
        kept = tuple(u for u in self.updates if u.decl.name != target_name)
        if len(kept) == len(self.updates):
            raise ModelDefinitionError(f"action {self.name} assigns no variable named {target_name!r}")
        return replace(self, updates=kept)

    def with_updates(self, updates: UpdatesLike) -> "Action":
        return replace(self, updates=tuple(_normalise_updates(self.name, updates)))

    def param_refs(self) -> tuple[Ref, ...]:
        return tuple(Ref(p) for p in self.params)


@dataclass(frozen=True)
class Invariant:
    name: str
    expr: Expr
    rules: tuple[str, ...]
    source: tuple[str, ...]
    doc: str
    lemma: bool = False

    @property
    def transition(self) -> bool:
        """True if the invariant relates a state to its successor (uses `Post`)."""
        return any(isinstance(n, App) and n.op == "post" for n in walk(self.expr))


@dataclass(frozen=True)
class Model:
    name: str
    doc: str
    bounds: tuple[tuple[str, int], ...]
    consts: tuple[ModelConst, ...]
    state: tuple[StateDecl, ...]
    actions: tuple[Action, ...]
    invariants: tuple[Invariant, ...]
    terminal: Expr | None
    variant_of: str | None = None
    fault: str | None = None
    #: names of the models this one extends (directly or not), nearest first
    bases: tuple[str, ...] = ()

    # lookups ---------------------------------------------------------------------------
    def action(self, name: str) -> Action:
        for a in self.actions:
            if a.name == name:
                return a
        raise KeyError(f"model {self.name} has no action {name!r}")

    def invariant(self, name: str) -> Invariant:
        for i in self.invariants:
            if i.name == name:
                return i
        raise KeyError(f"model {self.name} has no invariant {name!r}")

    def decl(self, name: str) -> StateDecl:
        for d in self.state:
            if d.name == name:
                return d
        raise KeyError(f"model {self.name} has no state variable {name!r}")

    @property
    def id_sorts(self) -> tuple[IdSort, ...]:
        seen: dict[str, IdSort] = {}
        for s in _all_sorts(self):
            ids = s.id_sort()
            if ids is not None:
                seen.setdefault(ids.name, ids)
        return tuple(seen.values())

    @property
    def rules(self) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for a in self.actions:
            out.update(dict.fromkeys(a.rules))
        for i in self.invariants:
            out.update(dict.fromkeys(i.rules))
        return tuple(out)

    def config(self, **values: int | bool) -> "Config":
        return Config.make(self, values)

    def variant(
        self,
        name: str,
        fault: str,
        *,
        actions: Iterable[Action] = (),
        invariants: Iterable[Invariant] = (),
    ) -> "Model":
        """A copy of this model with some actions/invariants replaced (matched by name)."""
        new_actions = {a.name: a for a in actions}
        new_invs = {i.name: i for i in invariants}
        for n in new_actions:
            self.action(n)
        for n in new_invs:
            self.invariant(n)
        model = replace(
            self,
            name=name,
            variant_of=self.name,
            fault=fault,
            actions=tuple(new_actions.get(a.name, a) for a in self.actions),
            invariants=tuple(new_invs.get(i.name, i) for i in self.invariants),
        )
        _validate(model)
        return model


def _all_sorts(model: Model) -> Iterable[Sort]:
    for d in model.state:
        if isinstance(d, Func):
            yield from d.index_sorts
            yield d.value_sort
        else:
            yield d.sort
    for a in model.actions:
        for p in a.params:
            yield p.sort
    for c in model.consts:
        yield c.sort
    for expr in _all_exprs(model):
        for n in walk(expr):
            if isinstance(n, Quant):
                yield n.var.sort


def _all_exprs(model: Model) -> Iterable[Expr]:
    for a in model.actions:
        for _, g in a.guard:
            yield g
        for u in a.updates:
            if isinstance(u, Assign):
                yield u.target
                yield u.value
            else:
                yield u.body
        for _, o in a.outputs:
            yield o
    for i in model.invariants:
        yield i.expr
    if model.terminal is not None:
        yield model.terminal


# --------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A model with every bound and constant fixed: what the explorer runs."""

    model: Model
    sizes: Mapping[str, int]
    consts: Mapping[str, int]

    @staticmethod
    def make(model: Model, values: Mapping[str, int | bool]) -> "Config":
        sizes = dict(model.bounds)
        consts = {c.name: c.default for c in model.consts}
        for key, value in values.items():
            if key in sizes:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"bound {key!r} of model {model.name} must be an integer, got {value!r}")
                id_bounds = {s.bound for s in model.id_sorts}
                if value < (1 if key in id_bounds else 0):
                    raise ConfigError(
                        f"bound {key}={value} gives an empty domain; model {model.name} needs "
                        f"{key} >= {1 if key in id_bounds else 0}"
                    )
                sizes[key] = value
            elif key in consts:
                const = next(c for c in model.consts if c.name == key)
                if isinstance(const.sort, BoolSort):
                    if not isinstance(value, (bool, int)) or value not in (0, 1):
                        raise ConfigError(f"constant {key!r} of model {model.name} is a Bool; use 0/1/true/false")
                    consts[key] = int(value)
                else:
                    if int(value) not in const.sort.values(sizes):
                        raise ConfigError(f"constant {key}={value} is outside {const.sort.name}")
                    consts[key] = int(value)
            else:
                valid = ", ".join([*sizes, *consts]) or "(none)"
                raise ConfigError(f"model {model.name} has no bound or constant {key!r}; valid: {valid}")
        return Config(model, sizes, consts)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.sizes.items()]
        parts += [f"{k}={v}" for k, v in self.consts.items()]
        return f"{self.model.name}({', '.join(parts)})"

    def with_model(self, model: Model) -> "Config":
        return Config(model, dict(self.sizes), dict(self.consts))


# --------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------


def _normalise_updates(where: str, updates: UpdatesLike) -> list[Update]:
    items: Iterable[Any]
    if isinstance(updates, Mapping):
        items = updates.items()
    else:
        items = updates
    out: list[Update] = []
    for item in items:
        if isinstance(item, (Assign, FuncAssign)):
            out.append(item)
            continue
        target, value = item
        if isinstance(target, Func):
            # whole-function update: value is a callable over bound variables
            if not callable(value):
                raise ModelDefinitionError(
                    f"{where}: assigning to the whole function {target.name} needs a lambda over its indices"
                )
            bvars = tuple(BoundVar(f"{target.name}_{i}", s) for i, s in enumerate(target.index_sorts))
            body = lift(value(*(Ref(b) for b in bvars)), target.value_sort)
            out.append(FuncAssign(target, bvars, body))
            continue
        if isinstance(target, Ref) and isinstance(target.decl, StateVar):
            out.append(Assign(target, lift(value, target.sort)))
        elif isinstance(target, Select):
            out.append(Assign(target, lift(value, target.sort)))
        else:
            raise ModelDefinitionError(
                f"{where}: cannot assign to {target!r}; targets are state variables or cells f[...]"
            )
    return out


def _normalise_guard(where: str, guard: object) -> tuple[tuple[str, Expr], ...]:
    if guard is None:
        raise ModelDefinitionError(
            f"{where} has no guard; every action needs one: Step(guard={{'label': condition, ...}}) "
            "or Step(guard=TRUE) if it is always enabled"
        )
    if isinstance(guard, Mapping):
        out = []
        for label, cond in guard.items():
            if not isinstance(label, str) or not label.isidentifier():
                raise ModelDefinitionError(f"{where}: guard label {label!r} must be an identifier")
            out.append((label, lift(cond, BOOL)))
        return tuple(out)
    e = lift(guard, BOOL)
    return tuple((f"g{i}", c) for i, c in enumerate(conjuncts(e)))


class ModelBuilder:
    """Builds a `Model`; see the module docstring and `model/ownership.py` for an example."""

    def __init__(
        self,
        name: str,
        doc: str,
        *,
        bounds: Mapping[str, int] | None = None,
        extends: Model | Sequence[Model] = (),
    ) -> None:
        if not name.replace("-", "_").isidentifier():
            raise ModelDefinitionError(f"model name {name!r} must be an identifier (dashes allowed)")
        self.name = name
        self.doc = inspect.cleandoc(doc or "")
        if not self.doc:
            raise ModelDefinitionError(f"model {name} has no doc; say what it models and which workerd rule")
        self._bounds: dict[str, int] = {}
        self._consts: dict[str, ModelConst] = {}
        self._state: dict[str, StateDecl] = {}
        self._actions: dict[str, Action] = {}
        self._invariants: dict[str, Invariant] = {}
        self._terminal: Expr | None = None
        bases = (extends,) if isinstance(extends, Model) else tuple(extends)
        self._bases: list[str] = []
        for base in bases:
            self._absorb(base)
            for n in (base.name, *base.bases):
                if n not in self._bases:
                    self._bases.append(n)
        for k, v in (bounds or {}).items():
            if v < 1:
                raise ModelDefinitionError(f"bound {k}={v} of model {name} gives an empty domain; use >= 1")
            self._bounds[k] = v

    def _absorb(self, base: Model) -> None:
        for k, v in base.bounds:
            self._bounds.setdefault(k, v)
        for c in base.consts:
            self._consts.setdefault(c.name, c)
        for d in base.state:
            other = self._state.get(d.name)
            if other is not None and other is not d:
                raise ModelDefinitionError(f"composing {base.name}: two different variables named {d.name}")
            self._state[d.name] = d
        for a in base.actions:
            if a.name in self._actions and self._actions[a.name] is not a:
                # synchronise actions of the same name from two bases
                self._actions[a.name] = _synchronise(self._actions[a.name], a)
            else:
                self._actions[a.name] = a
        for i in base.invariants:
            self._invariants.setdefault(i.name, i)
        if base.terminal is not None:
            from .expr import And

            self._terminal = base.terminal if self._terminal is None else And(self._terminal, base.terminal)

    # declarations ----------------------------------------------------------------------
    def _new_name(self, name: str) -> None:
        if not name.isidentifier():
            raise ModelDefinitionError(f"{name!r} is not an identifier")
        if name in self._state or name in self._consts:
            raise ModelDefinitionError(f"model {self.name} already declares {name!r}")

    def var(self, name: str, sort: Sort, init: object, doc: str = "", *, ghost: bool = False) -> Ref:
        """A scalar state variable; returns an expression usable in guards and as an update target."""
        self._new_name(name)
        v = StateVar(name, sort, _init_value(name, sort, init), doc, ghost)
        self._state[name] = v
        return Ref(v)

    def func(
        self,
        name: str,
        index: Sort | tuple[Sort, ...],
        value: Sort,
        init: object,
        doc: str = "",
        *,
        ghost: bool = False,
    ) -> Func:
        """A function-valued state variable; every cell starts at ``init``."""
        self._new_name(name)
        idx = index if isinstance(index, tuple) else (index,)
        for s in idx:
            if not isinstance(s, (IdSort, EnumSort, BoolSort)):
                raise ModelDefinitionError(f"{name}: index sorts must be Id, Enum or Bool, not {s.name}")
        f = Func(name, idx, value, _init_value(name, value, init), doc, ghost)
        self._state[name] = f
        return f

    def const(self, name: str, sort: Sort, default: object, doc: str = "") -> Ref:
        """A model constant fixed per configuration (e.g. ``production``)."""
        self._new_name(name)
        c = ModelConst(name, sort, _init_value(name, sort, default), doc)
        self._consts[name] = c
        return Ref(c)

    def bound(self, name: str, default: int) -> None:
        if default < 1:
            raise ModelDefinitionError(f"bound {name}={default} gives an empty domain; use >= 1")
        self._bounds[name] = default

    # actions -----------------------------------------------------------------------------
    def action(
        self,
        *,
        params: Mapping[str, Sort] | None = None,
        rules: Sequence[str],
        source: Sequence[str] | str,
        label: str | None = None,
        name: str | None = None,
    ) -> Callable[[Callable[..., Step]], Action]:
        """Decorator: ``@m.action(params={"c": Ctx}, rules=(...), source=...)`` over ``def f(c) -> Step``."""

        def deco(fn: Callable[..., Step]) -> Action:
            aname = name or fn.__name__
            if aname in self._actions:
                raise ModelDefinitionError(
                    f"model {self.name} already has an action {aname!r}; use refine() to extend it"
                )
            act, rejected = self._make_action(aname, fn, params or {}, rules, source, label)
            for a in (act, rejected):
                if a is None:
                    continue
                if a.name in self._actions:
                    raise ModelDefinitionError(f"model {self.name} already has an action {a.name!r}")
                self._actions[a.name] = a
            return act

        return deco

    def _make_action(
        self,
        aname: str,
        fn: Callable[..., Step],
        params: Mapping[str, Sort],
        rules: Sequence[str],
        source: Sequence[str] | str,
        label: str | None,
    ) -> tuple[Action, Action | None]:
        where = f"action {self.name}.{aname}"
        sig = list(inspect.signature(fn).parameters)
        if sig != list(params):
            raise ModelDefinitionError(
                f"{where}: function parameters {sig} must match params={list(params)} (same names, same order)"
            )
        for pname, psort in params.items():
            if isinstance(psort, IntSort) and isinstance(psort.hi, int) and psort.hi < psort.lo:
                raise ModelDefinitionError(f"{where}: parameter {pname} has an empty domain")
        decls = tuple(ActionParam(p, s) for p, s in params.items())
        step = fn(*(Ref(d) for d in decls))
        if not isinstance(step, Step):
            raise ModelDefinitionError(f"{where} must return Step(guard=..., updates=..., outputs=...)")
        guard = _normalise_guard(where, step.guard)
        checks = _normalise_checks(where, step.checks)
        outputs = tuple((k, _as_expr(where, k, v)) for k, v in step.outputs.items())
        common = dict(
            params=decls,
            rules=_check_rules(where, rules),
            source=_check_source(where, source),
            doc=inspect.cleandoc(fn.__doc__ or ""),
            operation=aname,
            checks=checks,
        )
        if not checks:
            if step.on_reject:
                raise ModelDefinitionError(f"{where}: on_reject given without checks")
            act = Action(
                name=aname,
                guard=guard,
                updates=tuple(_normalise_updates(where, step.updates)),
                outputs=outputs,
                label=label or aname,
                **common,  # type: ignore[arg-type]
            )
            return act, None
        from .expr import And, Ite, Not

        result_sort = checks[0][2].sort
        ok = lift("OK", result_sort)
        act = Action(
            name=aname,
            guard=guard + tuple((lbl, cond) for lbl, cond, _ in checks),
            updates=tuple(_normalise_updates(where, step.updates)),
            outputs=(("result", ok),) + outputs,
            label=label or aname,
            **common,  # type: ignore[arg-type]
        )
        error: Expr = checks[-1][2]
        for _, cond, err in reversed(checks[:-1]):
            error = Ite(cond, error, err)
        rejected = Action(
            name=f"{aname}_rejected",
            guard=guard + (("some_check_fails", Not(And(*(c for _, c, _ in checks)))),),
            updates=tuple(_normalise_updates(where, step.on_reject)),
            outputs=(("result", error),),
            label=f"{label or aname} (rejected)",
            rejected=True,
            **common,  # type: ignore[arg-type]
        )
        return act, rejected

    def refine(
        self,
        name: str,
        *,
        rules: Sequence[str] = (),
        source: Sequence[str] | str = (),
        reject_too: bool = True,
    ) -> Callable[[Callable[..., Step]], Action]:
        """Decorator: add guards/updates/outputs to an inherited action (synchronised product).

        The function receives the base action's parameters and returns a `Step` whose guard is
        conjoined with the base guard and whose updates and outputs are added.  If the action
        has a ``_rejected`` twin, the new guard applies to it too unless ``reject_too=False``
        (for conditions that only the successful path waits for, like a mutex).
        """

        def deco(fn: Callable[..., Step]) -> Action:
            if name not in self._actions:
                raise ModelDefinitionError(f"refine({name!r}): model {self.name} inherits no such action")
            base = self._actions[name]
            where = f"refinement {self.name}.{name}"
            sig = list(inspect.signature(fn).parameters)
            if sig != [p.name for p in base.params]:
                raise ModelDefinitionError(
                    f"{where}: parameters {sig} must match the base action's {[p.name for p in base.params]}"
                )
            step = fn(*(Ref(p) for p in base.params))
            if step.checks:
                raise ModelDefinitionError(f"{where}: a refinement adds guards, not checks")
            ext_guard = _normalise_guard(where, step.guard if step.guard is not None else TRUE)
            ext_updates = _normalise_updates(where, step.updates)
            ext_outputs = tuple((k, _as_expr(where, k, v)) for k, v in step.outputs.items())
            twin = self._actions.get(f"{name}_rejected")
            if twin is not None and twin.rejected and reject_too:
                self._actions[twin.name] = replace(
                    twin,
                    guard=twin.guard[:-1] + ext_guard + twin.guard[-1:],
                    updates=twin.updates + tuple(_normalise_updates(where, step.on_reject)),
                )
            elif step.on_reject:
                raise ModelDefinitionError(f"{where}: on_reject needs a rejected twin and reject_too=True")
            refined = replace(
                base,
                guard=base.guard + ext_guard,
                updates=base.updates + tuple(ext_updates),
                outputs=base.outputs + ext_outputs,
                rules=base.rules
                + tuple(r for r in (_check_rules(where, rules) if rules else ()) if r not in base.rules),
                source=base.source + (_check_source(where, source) if source else ()),
                doc=base.doc + ("\n\n" + inspect.cleandoc(fn.__doc__) if fn.__doc__ else ""),
            )
            self._actions[name] = refined
            return refined

        return deco

    # invariants --------------------------------------------------------------------------
    def invariant(
        self,
        *,
        rules: Sequence[str],
        source: Sequence[str] | str,
        lemma: bool = False,
        name: str | None = None,
    ) -> Callable[[Callable[[], Expr]], Invariant]:
        """Decorator over a zero-argument function returning the invariant's expression."""

        def deco(fn: Callable[[], Expr]) -> Invariant:
            iname = name or fn.__name__
            where = f"invariant {self.name}.{iname}"
            if iname in self._invariants:
                raise ModelDefinitionError(f"{where} is declared twice")
            doc = inspect.cleandoc(fn.__doc__ or "")
            if not doc:
                raise ModelDefinitionError(f"{where} has no docstring; say what it means and why it holds")
            inv = Invariant(
                name=iname,
                expr=lift(fn(), BOOL),
                rules=_check_rules(where, rules),
                source=_check_source(where, source),
                doc=doc,
                lemma=lemma,
            )
            self._invariants[iname] = inv
            return inv

        return deco

    def terminal(self, expr: Expr) -> None:
        """States where no action being enabled is *not* a deadlock (the run is complete)."""
        self._terminal = lift(expr, BOOL)

    def build(self) -> Model:
        model = Model(
            name=self.name,
            doc=self.doc,
            bounds=tuple(self._bounds.items()),
            consts=tuple(self._consts.values()),
            state=tuple(self._state.values()),
            actions=tuple(self._actions.values()),
            invariants=tuple(self._invariants.values()),
            terminal=self._terminal,
            bases=tuple(self._bases),
        )
        _validate(model)
        return model


def _normalise_checks(where: str, checks: Sequence[tuple[str, object, object]]) -> tuple[tuple[str, Expr, Expr], ...]:
    out = []
    sort: Sort | None = None
    for item in checks:
        if len(item) != 3:
            raise ModelDefinitionError(f"{where}: each check is (label, condition, error), got {item!r}")
        label, cond, err = item
        if not isinstance(label, str) or not label.isidentifier():
            raise ModelDefinitionError(f"{where}: check label {label!r} must be an identifier")
        if not isinstance(err, Expr) or not isinstance(err.sort, EnumSort):
            raise ModelDefinitionError(f"{where}: check {label!r} needs an error from a result Enum, got {err!r}")
        if sort is None:
            sort = err.sort
            if "OK" not in err.sort.members:
                raise ModelDefinitionError(f"{where}: result enum {err.sort.name} needs an OK member")
        elif err.sort is not sort:
            raise ModelDefinitionError(f"{where}: all check errors must share one Enum")
        out.append((label, lift(cond, BOOL), err))
    return tuple(out)


def _as_expr(where: str, key: str, value: object) -> Expr:
    if isinstance(value, Expr):
        return value
    raise ModelDefinitionError(f"{where}: output {key!r} must be an expression (e.g. an Enum constant), got {value!r}")


def _init_value(name: str, sort: Sort, init: object) -> int:
    from .expr import NONE

    if init is NONE:
        if not isinstance(sort, OptSort):
            raise ModelDefinitionError(f"{name}: init NONE needs an Opt sort, not {sort.name}")
        return -1
    if isinstance(init, Const):
        if init.sort is not sort:
            raise ModelDefinitionError(f"{name}: init {init!r} is a {init.sort.name}, not a {sort.name}")
        return init.value
    if isinstance(sort, BoolSort) and isinstance(init, bool):
        return int(init)
    if isinstance(sort, EnumSort) and isinstance(init, str):
        return sort.index(init)
    if isinstance(sort, IntSort) and isinstance(init, int) and not isinstance(init, bool):
        if init < sort.lo:
            raise ModelDefinitionError(f"{name}: init {init} is below {sort.name}'s lower bound {sort.lo}")
        return init
    if isinstance(sort, (IdSort, OptSort)):
        raise ModelDefinitionError(
            f"{name}: an initial value naming one {sort.name} breaks symmetry; use an Opt sort with init=NONE"
        )
    raise ModelDefinitionError(f"{name}: cannot use {init!r} as the initial value of a {sort.name}")


def _synchronise(a: Action, b: Action) -> Action:
    if [p.name for p in a.params] != [p.name for p in b.params] or any(
        p.sort is not q.sort for p, q in zip(a.params, b.params)
    ):
        raise ModelDefinitionError(f"cannot synchronise two actions {a.name} with different parameters")
    # b's expressions refer to b's parameter objects; re-point them to a's.
    mapping = {q: p for p, q in zip(a.params, b.params)}
    from .subst import substitute_params

    # Parts both actions inherited from a common base are the same objects: keep them once.
    same_params = all(p is q for p, q in zip(a.params, b.params))
    a_guard = {id(g) for _, g in a.guard}
    a_updates = {id(u) for u in a.updates}
    a_outputs = {id(o) for _, o in a.outputs}
    return replace(
        a,
        guard=a.guard + tuple(
            (k, g if same_params else substitute_params(g, mapping)) for k, g in b.guard if id(g) not in a_guard
        ),
        updates=a.updates + tuple(
            u if same_params else substitute_params_update(u, mapping) for u in b.updates if id(u) not in a_updates
        ),
        outputs=a.outputs + tuple(
            (k, o if same_params else substitute_params(o, mapping)) for k, o in b.outputs if id(o) not in a_outputs
        ),
        rules=a.rules + tuple(r for r in b.rules if r not in a.rules),
        source=a.source + tuple(s for s in b.source if s not in a.source),
        doc=a.doc + "\n\n" + b.doc,
    )


def substitute_params_update(u: Update, mapping: Mapping[ActionParam, ActionParam]) -> Update:
    from .subst import substitute_params

    if isinstance(u, Assign):
        t = substitute_params(u.target, mapping)
        assert isinstance(t, (Ref, Select))
        return Assign(t, substitute_params(u.value, mapping))
    return FuncAssign(u.func, u.vars, substitute_params(u.body, mapping))


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _validate(model: Model) -> None:
    names: set[str] = set()
    for a in model.actions:
        if a.name in names:
            raise ModelDefinitionError(f"model {model.name}: duplicate action {a.name}")
        names.add(a.name)
    state = set(model.state)
    consts = set(model.consts)
    bounds = dict(model.bounds)
    for s in _all_sorts(model):
        ids = s.id_sort()
        if ids is not None and ids.bound not in bounds:
            raise ModelDefinitionError(
                f"model {model.name} uses Id sort {ids.name} but declares no bound {ids.bound!r}; "
                f"pass bounds={{'{ids.bound}': 2}} to ModelBuilder"
            )
        if isinstance(s, IntSort) and isinstance(s.hi, str) and s.hi not in bounds:
            raise ModelDefinitionError(f"model {model.name}: Int sort {s.name} is bounded by unknown bound {s.hi!r}")
    for a in model.actions:
        where = f"action {model.name}.{a.name}"
        params = set(a.params)
        written: set[str] = set()
        exprs: list[Expr] = [g for _, g in a.guard] + [o for _, o in a.outputs]
        for u in a.updates:
            if u.decl not in state:
                raise ModelDefinitionError(f"{where} assigns {u.decl.name}, which is not a state variable of the model")
            if isinstance(u, Assign):
                exprs += [u.target, u.value]
                if isinstance(u.decl, StateVar):
                    if u.decl.name in written:
                        raise ModelDefinitionError(f"{where} assigns {u.decl.name} twice")
                    written.add(u.decl.name)
            else:
                exprs.append(u.body)
        for e in exprs:
            _check_scope(where, e, state, consts, params, allow_post=False)
    for i in model.invariants:
        _check_scope(f"invariant {model.name}.{i.name}", i.expr, state, consts, set(), allow_post=True)
    if model.terminal is not None:
        _check_scope(f"terminal predicate of {model.name}", model.terminal, state, consts, set(), allow_post=False)


def _check_scope(
    where: str, e: Expr, state: set[Any], consts: set[Any], params: set[Any], *, allow_post: bool
) -> None:
    bound: set[BoundVar] = set()
    for n in walk(e):
        if isinstance(n, Quant):
            bound.add(n.var)
    for n in walk(e):
        if isinstance(n, Ref):
            d = n.decl
            if isinstance(d, StateVar) and d not in state:
                raise ModelDefinitionError(f"{where} reads {d.name}, which is not declared in this model")
            if isinstance(d, ModelConst) and d not in consts:
                raise ModelDefinitionError(f"{where} reads constant {d.name}, which is not declared in this model")
            if isinstance(d, ActionParam) and d not in params:
                raise ModelDefinitionError(f"{where} reads parameter {d.name}, which is not a parameter of it")
        elif isinstance(n, Select) and n.func not in state:
            raise ModelDefinitionError(f"{where} reads {n.func.name}, which is not declared in this model")
        elif isinstance(n, App) and n.op == "post" and not allow_post:
            raise ModelDefinitionError(f"{where} uses Post(), which is only allowed in invariants")
