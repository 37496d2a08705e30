"""Build the catalogue's diagrams and write them out: Mermaid, Markdown, DOT, SVG and PNG.

`build` turns a spec into the intermediate graph; `write_diagrams` renders every available
diagram into a directory (``<name>.mmd``, ``<name>.md``, and for state graphs ``<name>.dot``,
``.svg``, ``.png``) plus ``index.md`` embedding them all; `readme_block` is the Mermaid
block the README shows (kept equal to the generated one by tests/test_diagrams.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iospec.errors import UserError
from model.catalog import get_model

from . import dot, mermaid
from .catalog import DIAGRAMS, DOCS, PENDING, ProjectionSpec, Spec, available, spec
from .graph import SequenceGraph, StateGraph
from .project import Milestone, milestone_trace, project, sequence
from .seed import Coverage, check, load_mapping, parse_state_diagram

__all__ = [
    "README_END",
    "README_START",
    "SEED_DIAGRAM",
    "Built",
    "build",
    "readme_block",
    "seed_coverage",
    "write_diagrams",
]

README_START = "<!-- lifecycle-diagram:start -->"
README_END = "<!-- lifecycle-diagram:end -->"
SEED_DIAGRAM = DOCS / "seed-lifecycle.mmd"


@dataclass
class Built:
    """One diagram, built and rendered to Mermaid text."""

    spec: Spec
    graph: StateGraph | SequenceGraph
    mermaid: str
    coverage: Coverage | None = None
    notes: list[str] = field(default_factory=list)


def build(s: Spec) -> Built:
    """Derive the diagram of ``s`` from its model (explore / shortest run), then render it as Mermaid."""
    model = get_model(s.model)
    config = model.config(**dict(s.bounds))
    if isinstance(s, ProjectionSpec):
        g = project(config, s.cells, name=s.name, title=s.title, labels=s.labels)
        text = mermaid.flowchart(g) if s.style == "flowchart" else mermaid.state_diagram(g)
        built = Built(s, g, text, notes=[f"Projection of {config.describe()} onto {', '.join(s.cells)}."])
        if s.seed_mapping:
            built.coverage = seed_coverage(g, DOCS / s.seed_mapping)
        return built
    trace = milestone_trace(config, [Milestone.parse(m) for m in s.milestones])
    sg = sequence(trace, s.arrows, name=s.name, title=s.title, participants=s.participants)
    steps = " then ".join(f"`{m}`" for m in s.milestones)
    return Built(s, sg, mermaid.sequence_diagram(sg),
                 notes=[f"Shortest run of {config.describe()} reaching {steps} ({len(trace.steps)} steps)."])


def seed_coverage(g: StateGraph, mapping_path: Path) -> Coverage:
    """Compare ``g`` with the seed article's diagram through the mapping table at ``mapping_path``."""
    try:
        article = parse_state_diagram(SEED_DIAGRAM.read_text(), str(SEED_DIAGRAM))
    except OSError as e:
        raise UserError(f"{SEED_DIAGRAM}: cannot read: {e.strerror}") from None
    return check(article, load_mapping(mapping_path), g)


def _fence(text: str) -> str:
    return f"```mermaid\n{text}```\n"


def readme_block() -> str:
    """The README's lifecycle diagram: a fenced Mermaid block generated from the lifecycle model."""
    return _fence(build(spec("lifecycle")).mermaid)


def _markdown(b: Built, *, image: str | None) -> str:
    s = b.spec
    out = [f"# {s.title}", "", s.about.replace("``", "`"), "", _fence(b.mermaid)]
    if image:
        out += [f"Graphviz rendering: [{image}]({image}) (generated with `dot`).", ""]
    out += [n.replace("``", "`") for n in b.notes] + [""]
    if isinstance(b.graph, StateGraph):
        out += ["| transition | action | whose | guard conjuncts |", "|---|---|---|---|"]
        label = {st.id: st.label for st in b.graph.states}
        for t in b.graph.transitions:
            out.append(f"| {label[t.source]} → {label[t.target]} | `{t.label}` | {t.via or 'its own'} | "
                       f"{', '.join(t.guards)} |")
        out.append("")
    if b.coverage is not None:
        out += ["## Compared with the seed article", "",
                f"The seed article's diagram (`docs/{SEED_DIAGRAM.name}`) is mapped onto this one by "
                f"`docs/{getattr(s, 'seed_mapping', '')}`; each difference is explained.", "",
                b.coverage.markdown()]
    return "\n".join(out)


def write_diagrams(out: Path, names: Sequence[str] | None = None, *, render: bool = True,
                   guards: bool = False) -> tuple[list[Built], list[Path]]:
    """Write the chosen (default: all available) diagrams into ``out``; returns them and the files written."""
    known = {s.name: s for s in DIAGRAMS}
    if names:
        bad = [n for n in names if n not in known and n not in PENDING]
        if bad:
            raise UserError(f"unknown diagram {bad[0]!r}; known: {', '.join([*known, *PENDING])}")
        pending = [n for n in names if n in PENDING or not available(known[n])]
        if pending:
            raise UserError(f"diagram {pending[0]!r} is not available yet: {_why_pending(pending[0])}")
        chosen = [known[n] for n in names]
    else:
        chosen = [s for s in DIAGRAMS if available(s)]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out}: cannot create directory: {e.strerror}") from None
    written: list[Path] = []
    built: list[Built] = []

    def put(name: str, data: str | bytes) -> Path:
        p = out / name
        if isinstance(data, str):
            p.write_text(data)
        else:
            p.write_bytes(data)
        written.append(p)
        return p

    for s in chosen:
        b = build(s)
        built.append(b)
        put(f"{s.name}.mmd", b.mermaid)
        image = None
        if isinstance(b.graph, StateGraph):
            dot_text = dot.to_dot(b.graph, show_guards=guards)
            put(f"{s.name}.dot", dot_text)
            if render:
                for fmt in ("svg", "png"):
                    written.append(dot.render(dot_text, out / f"{s.name}.{fmt}", fmt))
                image = f"{s.name}.svg"
        put(f"{s.name}.md", _markdown(b, image=image))
    if not names:
        put("index.md", _index(built, _pending_list()))
    return built, written


def _why_pending(name: str) -> str:
    if name in PENDING:
        return PENDING[name]
    return f"its model {spec(name).model!r} is not in model/catalog.py yet"


def _pending_list() -> list[tuple[str, str]]:
    return [(s.name, _why_pending(s.name)) for s in DIAGRAMS if not available(s)] + list(PENDING.items())


def _index(built: Iterable[Built], pending: list[tuple[str, str]]) -> str:
    out = ["# iospec diagrams", "",
           "Generated by `iospec diagrams` from the models; never drawn by hand.  Each state diagram is "
           "every reachable state of a small configuration projected onto one object's variables; each "
           "sequence is the shortest run through the named milestones.", ""]
    for b in built:
        out += [f"## {b.spec.title}", "", b.spec.about.replace("``", "`"), "", _fence(b.mermaid),
                f"Details: [{b.spec.name}.md]({b.spec.name}.md)", ""]
    if pending:
        out += ["## Not generated yet", ""] + [f"* **{n}**: {why}" for n, why in pending] + [""]
    return "\n".join(out)

