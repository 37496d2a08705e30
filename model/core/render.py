"""Pretty-printing of expressions, actions and concrete values (for docs, diagrams and traces)."""

from __future__ import annotations

from .expr import App, Const, Expr, Quant, Ref, Select, _NoneConst
from .sorts import EnumSort, OptSort

__all__ = ["render_expr"]

_INFIX = {
    "and": ("&", 3),
    "or": ("|", 2),
    "implies": ("=>", 1),
    "iff": ("<=>", 1),
    "eq": ("==", 5),
    "ne": ("!=", 5),
    "lt": ("<", 5),
    "le": ("<=", 5),
    "add": ("+", 6),
    "sub": ("-", 6),
}


def render_expr(e: Expr, prec: int = 0) -> str:
    """Render ``e`` in the same operator syntax the models are written in."""
    if isinstance(e, _NoneConst):
        return "NONE"
    if isinstance(e, Const):
        s = e.sort
        if isinstance(s, EnumSort):
            return s.members[e.value]
        if isinstance(s, OptSort) and e.value == -1:
            return "NONE"
        return s.render(e.value) if s.name != "Bool" else ("TRUE" if e.value else "FALSE")
    if isinstance(e, Ref):
        return e.decl.name
    if isinstance(e, Select):
        return f"{e.func.name}[{', '.join(render_expr(a) for a in e.args)}]"
    if isinstance(e, Quant):
        text = f"{'forall' if e.kind == 'forall' else 'exists'} {e.var.name}: {e.var.sort.name}. {render_expr(e.body)}"
        return f"({text})" if prec > 0 else text
    if isinstance(e, App):
        if e.op in _INFIX:
            sym, p = _INFIX[e.op]
            text = f" {sym} ".join(render_expr(a, p + 1) for a in e.args)
            return f"({text})" if p < prec else text
        if e.op == "not":
            return f"~{render_expr(e.args[0], 9)}"
        if e.op == "ite":
            c, t, o = e.args
            return f"({render_expr(t)} if {render_expr(c)} else {render_expr(o)})"
        if e.op == "some":
            return render_expr(e.args[0], prec)
        if e.op == "unwrap":
            return f"{render_expr(e.args[0], 9)}.some"
        if e.op == "post":
            return f"{render_expr(e.args[0], 9)}'"
    return f"<{type(e).__name__}>"
