"""Small helpers to write fault variants: change one update of an action."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from model.core import Action, Expr
from model.core.expr import lift
from model.core.model import Assign, FuncAssign

__all__ = ["set_update", "drop_update"]


def set_update(action: Action, target: str, value: Callable[..., object]) -> Action:
    """``action`` with the value assigned to variable ``target`` replaced by ``value(*params)``.

    For a cell ``f[i]`` the callable also receives the target's index expressions last.
    """
    params = action.param_refs()
    found = False
    out: list[Assign | FuncAssign] = []
    for u in action.updates:
        if isinstance(u, Assign) and u.decl.name == target:
            found = True
            extra = tuple(getattr(u.target, "args", ()))
            out.append(Assign(u.target, lift(value(*params, *extra), u.target.sort)))
        elif isinstance(u, FuncAssign) and u.decl.name == target:
            raise ValueError("use a FuncAssign-aware edit for whole-function updates")
        else:
            out.append(u)
    if not found:
        raise ValueError(f"action {action.name} assigns no {target!r}")
    return replace(action, updates=tuple(out))


def drop_update(action: Action, target: str) -> Action:
    return action.without_update(target)


def param(action: Action, name: str) -> Expr:
    for p, r in zip(action.params, action.param_refs()):
        if p.name == name:
            return r
    raise KeyError(name)
