"""Graphviz renderer: DOT text (through pydot) from a `StateGraph`, and SVG/PNG from the real ``dot`` binary.

Sequence diagrams are Mermaid only: Graphviz lays out graphs, not lifelines.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydot

from iospec.errors import UserError

from .graph import StateGraph, safe_id

__all__ = ["dot_binary", "render", "to_dot"]

_FONT = "Helvetica"


def to_dot(g: StateGraph, *, show_guards: bool = False) -> str:
    """DOT text: rounded boxes, a start point, an end ring; one edge per pair labelled by its actions."""
    d = pydot.Dot(safe_id(g.name), graph_type="digraph", rankdir="LR", label=g.title, labelloc="t",
                  fontname=_FONT, fontsize="14")
    d.set_node_defaults(shape="box", style="rounded", fontname=_FONT, fontsize="11")
    d.set_edge_defaults(fontname=_FONT, fontsize="9")
    if g.initial:
        d.add_node(pydot.Node("__start", shape="point", width="0.15", label=""))
    if g.finals:
        d.add_node(pydot.Node("__end", shape="doublecircle", width="0.12", label="", style="filled",
                              fillcolor="black"))
    for s in g.states:
        d.add_node(pydot.Node(s.id, label=s.label))
    for s in g.initial:
        d.add_edge(pydot.Edge("__start", s.id))
    guards = {(t.source, t.target, t.text): t.guards for t in g.transitions}
    for src, dst, labels in g.merged():
        text = []
        for lbl in labels:
            gl = guards.get((src, dst, lbl), ())
            text.append(f"{lbl} [{', '.join(gl)}]" if show_guards and gl else lbl)
        d.add_edge(pydot.Edge(src, dst, label="\\n".join(text)))
    for s in g.finals:
        d.add_edge(pydot.Edge(s.id, "__end"))
    return str(d.to_string())


def dot_binary() -> str:
    """The path of Graphviz's ``dot``; a one-line `UserError` if it is not installed."""
    path = shutil.which("dot")
    if path is None:
        raise UserError("Graphviz 'dot' is not on PATH; install Graphviz (e.g. apt-get install graphviz)")
    return path


def render(dot_text: str, out: Path, fmt: str) -> Path:
    """Run ``dot -T<fmt>`` on ``dot_text``, writing ``out``; a failure is a one-line `UserError`."""
    proc = subprocess.run([dot_binary(), f"-T{fmt}", "-o", str(out)], input=dot_text.encode(),
                          capture_output=True, check=False, timeout=120)
    if proc.returncode != 0:
        first = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[0]
        raise UserError(f"{out}: dot -T{fmt} failed: {first}")
    return out
