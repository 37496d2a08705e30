"""Mermaid renderers: ``stateDiagram-v2``, ``flowchart`` and ``sequenceDiagram`` text from the diagram IR.

GitHub renders Mermaid in Markdown, but only a subset and an older version, and notes or
descriptions inside composite states render badly on some hosts (mermaid#4052, noted by
python-statemachine).  So these renderers stay flat and plain: no composite states, no
styling, no front-matter titles (the Markdown heading is the title), one arrow per pair of
states (the actions that take it are joined with commas), and labels stripped of the
characters Mermaid gives a meaning (``: ; # | "`` and brackets).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from iospec.errors import UserError

from .graph import FINAL, INITIAL, Message, SequenceGraph, SequenceNote, StateGraph

__all__ = ["PARSER", "clean", "flowchart", "parser_available", "sequence_diagram", "state_diagram", "validate"]

#: the real Mermaid parser (the browser library under jsdom), installed by scripts/setup.sh
PARSER = Path(__file__).resolve().parents[2] / "tools" / "mermaid"

_RESERVED = {"end", "state", "note", "direction", "graph", "subgraph", "style", "class", "classdef", "click",
             "default", "flowchart", "participant", "actor", "loop", "alt", "else", "opt", "par", "and", "rect"}
INDENT = "    "


def clean(text: str) -> str:
    """A label with Mermaid's syntax characters replaced, on one line."""
    text = re.sub(r"\s+", " ", text).strip()
    text = text.replace(":", " -").replace(";", ",").replace("#", "no.").replace("|", "/").replace('"', "'")
    return re.sub(r"[\[\]{}<>]", "", text)


def _sid(state_id: str) -> str:
    return f"s_{state_id}" if state_id.lower() in _RESERVED else state_id


def state_diagram(g: StateGraph) -> str:
    """``stateDiagram-v2``: ``[*] --> INITIAL``, ``A --> B: action, action``, ``FINAL --> [*]``."""
    lines = ["stateDiagram-v2"]
    for s in g.states:
        if s.label != s.id:
            lines.append(f'{INDENT}state "{clean(s.label)}" as {_sid(s.id)}')
    for s in g.initial:
        lines.append(f"{INDENT}{INITIAL} --> {_sid(s.id)}")
    for src, dst, labels in g.merged():
        lines.append(f"{INDENT}{_sid(src)} --> {_sid(dst)}: {clean(', '.join(labels))}")
    for s in g.finals:
        lines.append(f"{INDENT}{_sid(s.id)} --> {FINAL}")
    return "\n".join(lines) + "\n"


def flowchart(g: StateGraph, direction: str = "LR") -> str:
    """``flowchart``: rounded nodes, a start and an end circle, edges labelled by action."""
    lines = [f"flowchart {direction}"]
    node = {s.id: f"n_{s.id}" for s in g.states}
    if g.initial:
        lines.append(f'{INDENT}start_node(("start"))')
    for s in g.states:
        lines.append(f'{INDENT}{node[s.id]}("{clean(s.label)}")')
    if g.finals:
        lines.append(f'{INDENT}end_node(("end"))')
    for s in g.initial:
        lines.append(f"{INDENT}start_node --> {node[s.id]}")
    for src, dst, labels in g.merged():
        lines.append(f'{INDENT}{node[src]} -->|"{clean(", ".join(labels))}"| {node[dst]}')
    for s in g.finals:
        lines.append(f"{INDENT}{node[s.id]} --> end_node")
    return "\n".join(lines) + "\n"


def sequence_diagram(g: SequenceGraph) -> str:
    """``sequenceDiagram``: declared participants, then ``A->>B: label`` (``-->>`` for replies) and notes."""
    lines = ["sequenceDiagram"]
    pid = {p.id: _sid(p.id) for p in g.participants}
    for p in g.participants:
        lines.append(f"{INDENT}participant {pid[p.id]} as {clean(p.label)}")
    for item in g.items:
        if isinstance(item, Message):
            arrow = "-->>" if item.reply else "->>"
            lines.append(f"{INDENT}{pid[item.source]}{arrow}{pid[item.target]}: {clean(item.label)}")
        elif isinstance(item, SequenceNote):
            over = ",".join(pid[o] for o in item.over)
            lines.append(f"{INDENT}Note over {over}: {clean(item.text)}")
    return "\n".join(lines) + "\n"


def parser_available() -> bool:
    return shutil.which("node") is not None and (PARSER / "node_modules" / "mermaid").is_dir()


def validate(files: Sequence[Path]) -> list[str]:
    """Parse ``files`` with the real Mermaid parser; returns one message per file that does not parse.

    A missing Node.js or parser is a one-line `UserError` saying how to install it.
    """
    if not parser_available():
        raise UserError(f"the Mermaid parser is not installed: run scripts/setup.sh (npm ci in {PARSER}); "
                        "it needs Node.js")
    if not files:
        return []
    proc = subprocess.run(["node", str(PARSER / "check.mjs"), *map(str, files)], capture_output=True, text=True,
                          check=False, timeout=300)
    errors = [line[len("error "):] for line in proc.stdout.splitlines() if line.startswith("error ")]
    if proc.returncode != 0 and not errors:
        first = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"{PARSER / 'check.mjs'} failed: {first}")
    return errors
