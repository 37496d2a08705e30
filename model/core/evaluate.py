"""Reference semantics: a direct, checked tree-walking evaluator of expressions.

This is the slow, obviously-correct interpreter.  The fast backends (the code generator in
`model.core.dense`, the sparse monitors, z3) are tested against it.  States are accessed
through a small `StateView` so the same evaluator serves dense tuples and sparse maps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from .errors import EvaluationError
from .expr import App, BoundVar, Const, Expr, Quant, Ref, Select, _NoneConst
from .model import ActionParam, Func, ModelConst, StateVar
from .sorts import NONE_VALUE, Sort

__all__ = ["StateView", "evaluate"]


class StateView(Protocol):
    def read_var(self, var: StateVar) -> int: ...

    def read_cell(self, func: Func, args: tuple[int, ...]) -> int: ...

    def domain(self, sort: Sort) -> range | list[int]: ...

    def const(self, c: ModelConst) -> int: ...


def evaluate(
    e: Expr,
    view: StateView,
    env: Mapping[object, int],
    post: StateView | None = None,
) -> int:
    """Evaluate ``e``; ``env`` binds action parameters and bound variables to encoded values."""
    if isinstance(e, Const):
        return e.value
    if isinstance(e, _NoneConst):
        return NONE_VALUE
    if isinstance(e, Ref):
        d = e.decl
        if isinstance(d, StateVar):
            return view.read_var(d)
        if isinstance(d, ModelConst):
            return view.const(d)
        if isinstance(d, (ActionParam, BoundVar)):
            try:
                return env[d]
            except KeyError:
                raise EvaluationError(f"unbound {d.name}") from None
        raise EvaluationError(f"unknown reference {d!r}")
    if isinstance(e, Select):
        args = tuple(evaluate(x, view, env, post) for x in e.args)
        for value in args:
            if value < 0:
                raise EvaluationError(f"{e.func.name} indexed by none (an unchecked .some)")
        return view.read_cell(e.func, args)
    if isinstance(e, Quant):
        var = e.var
        want = e.kind == "forall"
        local = dict(env)
        for v in view.domain(var.sort):
            local[var] = v
            if bool(evaluate(e.body, view, local, post)) != want:
                return int(not want)
        return int(want)
    if isinstance(e, App):
        op = e.op
        a = e.args
        if op == "and":
            return int(all(evaluate(x, view, env, post) for x in a))
        if op == "or":
            return int(any(evaluate(x, view, env, post) for x in a))
        if op == "not":
            return int(not evaluate(a[0], view, env, post))
        if op == "implies":
            return int((not evaluate(a[0], view, env, post)) or bool(evaluate(a[1], view, env, post)))
        if op == "iff":
            return int(bool(evaluate(a[0], view, env, post)) == bool(evaluate(a[1], view, env, post)))
        if op == "ite":
            return evaluate(a[1] if evaluate(a[0], view, env, post) else a[2], view, env, post)
        if op == "eq":
            return int(evaluate(a[0], view, env, post) == evaluate(a[1], view, env, post))
        if op == "ne":
            return int(evaluate(a[0], view, env, post) != evaluate(a[1], view, env, post))
        if op == "lt":
            return int(evaluate(a[0], view, env, post) < evaluate(a[1], view, env, post))
        if op == "le":
            return int(evaluate(a[0], view, env, post) <= evaluate(a[1], view, env, post))
        if op == "add":
            return evaluate(a[0], view, env, post) + evaluate(a[1], view, env, post)
        if op == "sub":
            return evaluate(a[0], view, env, post) - evaluate(a[1], view, env, post)
        if op == "some":
            return evaluate(a[0], view, env, post)
        if op == "unwrap":
            v = evaluate(a[0], view, env, post)
            if v == NONE_VALUE:
                raise EvaluationError(f"{a[0]!r}.some evaluated on none")
            return v
        if op == "post":
            if post is None:
                raise EvaluationError("Post() evaluated without a successor state")
            return evaluate(a[0], post, env, None)
        raise EvaluationError(f"unknown operator {op}")
    raise EvaluationError(f"unknown expression node {type(e).__name__}")


Evaluator = Callable[[Expr, StateView, Mapping[object, int]], int]
