"""Compare a generated state diagram with a hand-drawn one (the seed article's lifecycle) through a mapping table.

The seed article drew the IncomingRequest lifecycle as a Mermaid ``stateDiagram-v2``
(copied verbatim to ``docs/seed-lifecycle.mmd``).  ``docs/seed-lifecycle-mapping.json`` says,
for each of its states and transitions, which model state(s) and transition(s) stand for it,
or why none does; and it explains every model state and transition the article lacks.
`check` verifies the table against both diagrams, so that neither the model nor the table can
drift silently:

* every article state and transition has exactly one entry, and no entry names one the
  article does not have (an article state may stand for several model states);
* every model state or transition an entry names exists in the generated diagram, and each
  model counterpart of an article transition joins the states its ends map to: either one
  model transition, or a chain of them (a list) through states the article does not draw;
* an entry without a counterpart says why; every model state and transition that no entry
  covers is explained under ``model_only`` (patterns may use ``*``), and every
  ``model_only`` pattern matches something.

Transitions are written as in Mermaid: ``"Created --> Delivered: delivered()"``, with
``[*]`` for the start and the end of a run.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from iospec.errors import UserError

from .graph import INITIAL, StateGraph

__all__ = ["Coverage", "HandDiagram", "Mapping", "check", "load_mapping", "parse_arrow", "parse_state_diagram"]

_ARROW = re.compile(r"^\s*(\[\*\]|[\w.*]+)\s*-->\s*(\[\*\]|[\w.*]+)\s*(?::\s*(.*?))?\s*$")
_STATE_DECL = re.compile(r'^\s*state\s+"([^"]*)"\s+as\s+(\w+)\s*$')

Triple = tuple[str, str, str]


def parse_arrow(text: str) -> Triple | None:
    """``"A --> B: label"`` -> ``("A", "B", "label")`` (label may be empty); None if not an arrow."""
    m = _ARROW.match(text)
    if not m:
        return None
    return m.group(1), m.group(2), (m.group(3) or "").strip()


def _show(t: Triple) -> str:
    return f"{t[0]} --> {t[1]}" + (f": {t[2]}" if t[2] else "")


@dataclass
class HandDiagram:
    """The states and transitions of a hand-drawn ``stateDiagram-v2`` (flat; no composite states)."""

    states: list[str] = field(default_factory=list)
    transitions: list[Triple] = field(default_factory=list)


def parse_state_diagram(text: str, where: str) -> HandDiagram:
    """Parse the flat subset of ``stateDiagram-v2``; a line it does not understand is a one-line `UserError`."""
    out = HandDiagram()
    seen_header = False
    labels: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("%%"):
            continue
        if not seen_header:
            if line != "stateDiagram-v2":
                raise UserError(f"{where}:{n}: expected 'stateDiagram-v2', found {line[:60]!r}")
            seen_header = True
            continue
        decl = _STATE_DECL.match(line)
        if decl:
            labels[decl.group(2)] = decl.group(1)
            continue
        arrow = parse_arrow(line)
        if arrow is None:
            raise UserError(f"{where}:{n}: not a transition 'A --> B[: label]': {line[:60]!r}")
        src, dst, label = (labels.get(arrow[0], arrow[0]), labels.get(arrow[1], arrow[1]), arrow[2])
        for s in (src, dst):
            if s != INITIAL and s not in out.states:
                out.states.append(s)
        out.transitions.append((src, dst, label))
    if not seen_header:
        raise UserError(f"{where}: empty diagram (no 'stateDiagram-v2' line)")
    return out


@dataclass
class Mapping:
    """The table (see the module docstring); ``where`` names the file for messages."""

    where: str
    states: dict[str, tuple[list[str], str]]  # article state -> (the model states it stands for, why)
    #: article transition -> (alternatives, each a chain of model transitions; why)
    transitions: dict[Triple, tuple[list[list[Triple]], str]]
    model_states: dict[str, str]  # model state -> why the article lacks it
    model_transitions: list[tuple[Triple, str]]  # pattern -> why
    problems: list[str] = field(default_factory=list)  # malformed or duplicate entries found while loading


def _arrow(text: object, where: str) -> Triple:
    t = parse_arrow(str(text))
    if t is None:
        raise UserError(f"{where}: {text!r} is not a transition 'A --> B[: label]'")
    return t


def load_mapping(path: Path) -> Mapping:
    """Read the mapping JSON; malformed input is a one-line `UserError` naming the file and entry."""
    where = str(path)
    try:
        data: Any = json.loads(path.read_text())
    except OSError as err:
        raise UserError(f"{where}: cannot read: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{where}:{err.lineno}: not JSON: {err.msg}") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected an object with 'states', 'transitions' and 'model_only'")
    m = Mapping(where, {}, {}, {}, [])
    for k, e in enumerate(data.get("states", [])):
        at = f"{where}: states[{k}]"
        if not isinstance(e, dict) or "article" not in e or "model" not in e:
            raise UserError(f"{at}: expected {{'article': ..., 'model': ... or null, 'why': ...}}")
        if e["article"] in m.states:
            m.problems.append(f"{at}: article state {e['article']} is mapped twice")
        model = e["model"]
        targets = [] if model is None else [str(x) for x in model] if isinstance(model, list) else [str(model)]
        m.states[str(e["article"])] = (targets, str(e.get("why", "")))
    for k, e in enumerate(data.get("transitions", [])):
        at = f"{where}: transitions[{k}]"
        if not isinstance(e, dict) or "article" not in e or not isinstance(e.get("model"), list):
            raise UserError(f"{at}: expected {{'article': 'A --> B: label', 'model': [...], 'why': ...}}")
        key = _arrow(e["article"], at)
        if key in m.transitions:
            m.problems.append(f"{at}: article transition {_show(key)} is mapped twice")
        alternatives = [[_arrow(y, at) for y in x] if isinstance(x, list) else [_arrow(x, at)] for x in e["model"]]
        if any(not chain for chain in alternatives):
            raise UserError(f"{at}: an empty chain of model transitions")
        m.transitions[key] = (alternatives, str(e.get("why", "")))
    only = data.get("model_only", {})
    for k, e in enumerate(only.get("states", [])):
        at = f"{where}: model_only.states[{k}]"
        if not isinstance(e, dict) or "model" not in e or not e.get("why"):
            raise UserError(f"{at}: expected {{'model': STATE, 'why': ...}}")
        m.model_states[str(e["model"])] = str(e["why"])
    for k, e in enumerate(only.get("transitions", [])):
        at = f"{where}: model_only.transitions[{k}]"
        if not isinstance(e, dict) or "model" not in e or not e.get("why"):
            raise UserError(f"{at}: expected {{'model': 'A --> B: action' (* allowed), 'why': ...}}")
        m.model_transitions.append((_arrow(e["model"], at), str(e["why"])))
    return m


@dataclass
class Coverage:
    """The result of `check`: problems (empty when the table is right) and the rows for the report."""

    problems: list[str] = field(default_factory=list)
    state_rows: list[tuple[str, str, str]] = field(default_factory=list)  # article, model, why
    transition_rows: list[tuple[str, str, str]] = field(default_factory=list)
    model_only_states: list[tuple[str, str]] = field(default_factory=list)
    model_only_transitions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def markdown(self) -> str:
        """The comparison as Markdown tables (the generated document embeds it)."""
        out = ["| article state | model state | note |", "|---|---|---|"]
        out += [f"| {a} | {m or '—'} | {w} |" for a, m, w in self.state_rows]
        out += ["", "| article transition | model transition(s) | note |", "|---|---|---|"]
        out += [f"| `{a}` | {m or '—'} | {w} |" for a, m, w in self.transition_rows]
        if self.model_only_states or self.model_only_transitions:
            out += ["", "In the model (and workerd's source) but not in the article:", "",
                    "| model | why the article lacks it |", "|---|---|"]
            out += [f"| state {s} | {w} |" for s, w in self.model_only_states]
            out += [f"| `{t}` | {w} |" for t, w in self.model_only_transitions]
        if self.problems:
            out += ["", "**The mapping table is out of date:**", ""] + [f"* {p}" for p in self.problems]
        return "\n".join(out) + "\n"


def _matches(pattern: Triple, t: Triple) -> bool:
    """``*`` matches any text; ``[*]`` is the start/end pseudo-state, not a character class."""
    return all(x == p if p == INITIAL else fnmatchcase(x, p) for p, x in zip(pattern, t, strict=True))


def check(article: HandDiagram, mapping: Mapping, graph: StateGraph) -> Coverage:
    """Check ``mapping`` against the hand-drawn ``article`` and the generated ``graph`` (see the module docstring)."""
    cov = Coverage(problems=list(mapping.problems))
    where = mapping.where
    model_states = {s.label for s in graph.states}
    model_edges = graph.triples()
    covered_states: set[str] = set()
    covered_edges: set[Triple] = set()

    for a in article.states:
        if a not in mapping.states:
            cov.problems.append(f"{where}: article state {a} has no entry")
            continue
        targets, why = mapping.states[a]
        if not targets and not why:
            cov.problems.append(f"{where}: article state {a} has no model state and no 'why'")
        for target in targets:
            if target not in model_states:
                cov.problems.append(f"{where}: article state {a} maps to {target}, which the model's diagram lacks "
                                    f"(its states: {', '.join(sorted(model_states))})")
            else:
                covered_states.add(target)
        cov.state_rows.append((a, ", ".join(targets), why))
    for a in mapping.states:
        if a not in article.states:
            cov.problems.append(f"{where}: entry for article state {a}, which the article does not have")

    def ends(t: Triple) -> tuple[list[str], list[str]]:
        def end(s: str) -> list[str]:
            return [s] if s == INITIAL else mapping.states.get(s, ([], ""))[0]
        return end(t[0]), end(t[1])

    for t in article.transitions:
        if t not in mapping.transitions:
            cov.problems.append(f"{where}: article transition {_show(t)} has no entry")
            continue
        chains, why = mapping.transitions[t]
        if not chains and not why:
            cov.problems.append(f"{where}: article transition {_show(t)} has no model transition and no 'why'")
        src, dst = ends(t)
        for chain in chains:
            shown = " then ".join(_show(x) for x in chain)
            missing = [x for x in chain if x not in model_edges]
            for x in missing:
                cov.problems.append(f"{where}: {_show(t)} maps to {_show(x)}, which the model's diagram lacks")
            covered_edges.update(x for x in chain if x in model_edges)
            joined = all(a[1] == b[0] for a, b in itertools.pairwise(chain))
            if not joined or (src and chain[0][0] not in src) or (dst and chain[-1][1] not in dst):
                cov.problems.append(f"{where}: {_show(t)} maps to {shown}, but its ends map to "
                                    f"{' or '.join(src) or '?'} and {' or '.join(dst) or '?'}")
        rows = [" then ".join(f"`{_show(x)}`" for x in chain) for chain in chains]
        cov.transition_rows.append((_show(t), "; or ".join(rows), why))
    for t in mapping.transitions:
        if t not in article.transitions:
            cov.problems.append(f"{where}: entry for article transition {_show(t)}, which the article does not have")

    for s in sorted(model_states - covered_states):
        if s in mapping.model_states:
            cov.model_only_states.append((s, mapping.model_states[s]))
        else:
            cov.problems.append(f"{where}: model state {s} is neither mapped nor explained under model_only.states")
    for s in mapping.model_states:
        if s not in model_states:
            cov.problems.append(f"{where}: model_only.states names {s}, which the model's diagram lacks")
        elif s in covered_states:
            cov.problems.append(f"{where}: model_only.states names {s}, but an article state maps to it")
    used: set[int] = set()
    for t in sorted(model_edges - covered_edges):
        hits = [k for k, (p, _) in enumerate(mapping.model_transitions) if _matches(p, t)]
        if not hits:
            cov.problems.append(f"{where}: model transition {_show(t)} is neither mapped nor explained "
                                "under model_only.transitions")
            continue
        used.update(hits)
        cov.model_only_transitions.append((_show(t), mapping.model_transitions[hits[0]][1]))
    for k, (p, _) in enumerate(mapping.model_transitions):
        if k not in used:
            cov.problems.append(f"{where}: model_only.transitions pattern {_show(p)} matches no unmapped "
                                "model transition")
    return cov
