"""Substitution of declarations inside expressions (used by model composition)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .expr import App, Const, Expr, Quant, Ref, Select, _NoneConst

__all__ = ["substitute_params", "substitute"]


def substitute(e: Expr, mapping: Mapping[object, Expr]) -> Expr:
    """Replace every ``Ref(decl)`` whose decl is a key of ``mapping`` by the mapped expression."""
    if isinstance(e, (Const, _NoneConst)):
        return e
    if isinstance(e, Ref):
        return mapping.get(e.decl, e)
    if isinstance(e, Select):
        args = tuple(substitute(a, mapping) for a in e.args)
        return e if all(x is y for x, y in zip(args, e.args)) else Select(e.func, args)
    if isinstance(e, App):
        args = tuple(substitute(a, mapping) for a in e.args)
        return e if all(x is y for x, y in zip(args, e.args)) else App(e.op, args, e.sort)
    if isinstance(e, Quant):
        body = substitute(e.body, mapping)
        return e if body is e.body else Quant(e.kind, e.var, body)
    raise TypeError(type(e).__name__)


def substitute_params(e: Expr, mapping: Mapping[Any, Any]) -> Expr:
    """Re-point references to action parameters (``old decl -> new decl``)."""
    return substitute(e, {old: Ref(new) for old, new in mapping.items()})  # type: ignore[arg-type]
