"""What the two worker generators share: variable names, template expressions, an indenting writer.

`conformance.http.jsgen` writes JavaScript for workerd and `conformance.http.pygen` Python for the
reference implementation from the same behaviour vocabulary (`conformance.http.vocabulary`); the
pieces here are language-neutral, parameterised by how each language writes a string literal
and how deep it indents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from conformance.http.vocabulary import template_names

__all__ = ["CodeWriter", "local", "saved_names", "template_expr", "slots_of"]


def local(name: str) -> str:
    """The generated local variable holding the result a step saved `as` ``name``."""
    return "v_" + name


def saved_names(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names the steps save results `as` (each becomes a local of the generated function)."""
    return sorted({step["as"] for step in steps if "as" in step})


def template_expr(template: str, literal: Callable[[str], str]) -> str:
    """An expression for ``template``: string literals joined (``+``) with the locals it names."""
    parts: list[str] = []
    rest = template
    for name in template_names(template):
        before, _, rest = rest.partition("{" + name + "}")
        if before:
            parts.append(literal(before))
        parts.append(local(name))
    if rest or not parts:
        parts.append(literal(rest))
    return "(" + " + ".join(parts) + ")"


def slots_of(step: Mapping[str, Any]) -> str:
    """The generated table a step's saved I/O objects live in: per instance (`I`) or global (`G`)."""
    return "I" if step.get("scope", "global") == "instance" else "G"


class CodeWriter:
    """Collects indented lines; ``fresh`` names helper functions uniquely."""

    indent = "    "

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0
        self.counter = 0

    def line(self, text: str) -> None:
        self.lines.append(self.indent * self.depth + text)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def text(self) -> str:
        return "\n".join(self.lines)
