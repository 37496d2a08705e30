"""Diagrams generated from the models: projection, renderers (Mermaid structure, the real ``dot``),
sequences, the seed-article comparison (and that a broken mapping is caught), the README block,
and the ``iospec diagrams`` command."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from iospec.cli import main
from iospec.diagrams import dot, mermaid
from iospec.diagrams.catalog import (
    DIAGRAMS,
    DOCS,
    LIFECYCLE_ARROWS,
    LOCKS_ARROWS,
    OWNERSHIP_ARROWS,
    ProjectionSpec,
    available,
    spec,
)
from iospec.diagrams.document import README_END, README_START, SEED_DIAGRAM, build, readme_block, seed_coverage
from iospec.diagrams.graph import DiagramState, DiagramTransition, SequenceGraph, StateGraph
from iospec.diagrams.project import Arrow, Milestone, milestone_trace, project, resolve_cell, sequence
from iospec.diagrams.seed import check, load_mapping, parse_state_diagram
from iospec.errors import UserError
from model.catalog import MODELS, get_model
from model.core import ConfigError, Enum, Int, Ite, ModelBuilder, Step
from model.vocab import Req

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def built(name: str) -> Any:
    """``build(spec(name))``, once per test run (the lifecycle projection takes seconds)."""
    return build(spec(name))

# ---- a tiny model whose projection is known by hand ----------------------------------------------

DoorPhase = Enum("DoorPhase", "SHUT OPEN LOCKED")
_door = ModelBuilder("door", "a door, for testing projections", bounds={"max_knocks": 2})
_phase = _door.var("phase", DoorPhase, "SHUT", "where the door is")
_knocks = _door.var("knocks", Int("Knocks", 0, "max_knocks"), 0, "knocks so far (never changes the phase)")
_SRC = "io/io-context.c++:1"


@_door.action(rules=("INV-C1",), source=_SRC)
def open_door() -> Step:
    """Open it."""
    return Step(guard={"shut": _phase == DoorPhase.SHUT}, updates={_phase: DoorPhase.OPEN})


@_door.action(rules=("INV-C1",), source=_SRC)
def kick() -> Step:
    """Open it another way: the same successor state as open_door."""
    return Step(guard={"shut": _phase == DoorPhase.SHUT, "angry": _knocks > 0}, updates={_phase: DoorPhase.OPEN})


@_door.action(rules=("INV-C1",), source=_SRC)
def close() -> Step:
    """Close it."""
    return Step(guard={"open": _phase == DoorPhase.OPEN}, updates={_phase: DoorPhase.SHUT})


@_door.action(rules=("INV-C1",), source=_SRC)
def lock() -> Step:
    """Lock it for good."""
    return Step(guard={"shut": _phase == DoorPhase.SHUT}, updates={_phase: DoorPhase.LOCKED})


@_door.action(rules=("INV-C1",), source=_SRC)
def knock() -> Step:
    """Knock: changes something, but not the phase."""
    return Step(guard={"not_locked": _phase != DoorPhase.LOCKED}, updates={_knocks: _knocks + 1})


_door.terminal(_phase == DoorPhase.LOCKED)
DOOR = _door.build()


# two requests; delivering one makes the other one old: a move of r0 caused by r1's action
ReqPhase = Enum("ReqPhase", "NEW CURRENT OLD")
_pair = ModelBuilder("pair", "two requests, for testing 'via'", bounds={"requests": 2})
_req_phase = _pair.func("phase", Req, ReqPhase, "NEW", "each request's phase")


@_pair.action(params={"r": Req}, rules=("INV-R3",), source=_SRC)
def deliver(r: Any) -> Step:
    """Deliver ``r``; the current one (another request) becomes old."""
    superseded = lambda x: Ite(_req_phase[x] == ReqPhase.CURRENT, ReqPhase.OLD, _req_phase[x])
    return Step(guard={"new": _req_phase[r] == ReqPhase.NEW},
                updates={_req_phase: lambda x: Ite(x == r, ReqPhase.CURRENT, superseded(x))})


PAIR = _pair.build()


def door_graph() -> StateGraph:
    return project(DOOR.config(), "phase", name="door", title="Door")


def test_projection_of_a_tiny_model_is_exact() -> None:
    g = door_graph()
    assert [(s.label, s.initial, s.final) for s in g.states] == [
        ("SHUT", True, False), ("OPEN", False, False), ("LOCKED", False, True)]
    assert {(t.source, t.target, t.label) for t in g.transitions} == {
        ("SHUT", "OPEN", "open_door"), ("SHUT", "OPEN", "kick"),  # both, though they reach the same state
        ("OPEN", "SHUT", "close"), ("SHUT", "LOCKED", "lock")}
    kick_edge = next(t for t in g.transitions if t.label == "kick")
    assert kick_edge.guards == ("shut", "angry")
    assert ("[*]", "SHUT", "") in g.triples() and ("LOCKED", "[*]", "") in g.triples()


def test_projection_onto_two_cells_and_renamed_values() -> None:
    g = project(DOOR.config(max_knocks=1), ["phase", "knocks"], name="d", title="d",
                labels={"knocks=0": "", "knocks=1": "knocked"})
    labels = {s.label for s in g.states}
    assert labels == {"SHUT", "SHUT · knocked", "OPEN", "OPEN · knocked", "LOCKED", "LOCKED · knocked"}
    assert ("SHUT", "SHUT · knocked", "knock") in {(a, b, c) for a, b, c in _labelled(g)}
    assert not any(t.label == "kick" and g.state(t.source).label == "SHUT" for t in g.transitions)


def test_projection_says_when_another_identity_moved_the_object() -> None:
    g = project(PAIR.config(), "phase[r0]", name="pair", title="pair")
    assert {(g.state(t.source).label, g.state(t.target).label, t.label, t.via) for t in g.transitions} == {
        ("NEW", "CURRENT", "deliver", ""), ("CURRENT", "OLD", "deliver", "another Req")}
    assert "CURRENT --> OLD: deliver (another Req)" in mermaid.state_diagram(g)


def _labelled(g: StateGraph) -> list[tuple[str, str, str]]:
    return [(g.state(t.source).label, g.state(t.target).label, t.label) for t in g.transitions]


def test_projection_of_the_context_model() -> None:
    g = built("context").graph
    assert isinstance(g, StateGraph)
    assert _labelled(g) == [("UNBORN", "ALIVE", "create_context"), ("ALIVE", "TEARDOWN", "destroy_begin"),
                            ("TEARDOWN", "DEAD", "destroy_end")]


@pytest.mark.parametrize("cell, message", [
    ("nosuch[c0]", "has no variable 'nosuch'"),
    ("ctx_state", "takes 1 index(es)"),
    ("ctx_state[c7]", "'c7' is not a Ctx"),
    ("ctx_state[", "is not NAME or NAME[INDEX"),
])
def test_bad_cells_are_one_line_errors(cell: str, message: str) -> None:
    from model.core import compile_dense

    dm = compile_dense(get_model("context").config(threads=1, contexts=1))
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_cell(dm, cell)


# ---- renderers --------------------------------------------------------------------------------------


def tricky_graph() -> StateGraph:
    g = StateGraph("tricky", 'Labels with : ; # | " [ ]')
    g.states = [DiagramState("A", "A: start; #1", initial=True), DiagramState("end", 'the "end"', final=True)]
    g.transitions = [DiagramTransition("A", "end", "go: now; | [x]"), DiagramTransition("A", "end", "also")]
    return g


@pytest.mark.parametrize("graph", [door_graph, tricky_graph], ids=["door", "tricky"])
def test_state_diagram_round_trips_through_a_mermaid_parser(graph: Any) -> None:
    g = graph()
    text = mermaid.state_diagram(g)
    assert text.startswith("stateDiagram-v2\n")
    parsed = parse_state_diagram(text, "generated")
    label = {s.id: mermaid.clean(s.label) for s in g.states}
    merged = {(label[s], label[d], ", ".join(ls)) for s, d, ls in g.merged()}
    got = {t for t in parsed.transitions if "[*]" not in t[:2]}
    assert {(a, b) for a, b, _ in got} == {(a, b) for a, b, _ in merged}
    assert {(a, b) for a, b, _ in parsed.transitions if "[*]" in (a, b)} == {
        ("[*]", label[s.id]) for s in g.initial} | {(label[s.id], "[*]") for s in g.finals}
    for line in text.splitlines()[1:]:  # labels keep no Mermaid syntax characters
        assert line.count(":") <= 1 and ";" not in line and "#" not in line


_FLOW_NODE = re.compile(r'^    (\w+)(\(\("[^"]*"\)\)|\("[^"]*"\))$')
_FLOW_EDGE = re.compile(r'^    (\w+) -->(?:\|"[^"|]*"\|)? (\w+)$')


@pytest.mark.parametrize("graph", [door_graph, tricky_graph], ids=["door", "tricky"])
def test_flowchart_structure(graph: Any) -> None:
    text = mermaid.flowchart(graph())
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    declared: set[str] = set()
    edges = 0
    for line in lines[1:]:
        node, edge = _FLOW_NODE.match(line), _FLOW_EDGE.match(line)
        assert node or edge, f"unexpected flowchart line {line!r}"
        if node:
            declared.add(node.group(1))
        else:
            assert edge is not None
            assert {edge.group(1), edge.group(2)} <= declared, f"edge to an undeclared node: {line!r}"
            assert edge.group(1) not in {"end", "graph", "subgraph"}
            edges += 1
    g = graph()
    assert edges == len(g.merged()) + len(g.initial) + len(g.finals)


def test_sequence_diagram_structure() -> None:
    b = built("locks-sequence")
    lines = b.mermaid.splitlines()
    assert lines[0] == "sequenceDiagram"
    declared = [m.group(1) for line in lines if (m := re.match(r"^    participant (\w+) as .+$", line))]
    assert declared[:4] == ["thread_t0", "AsyncLockQueue_i0", "AsyncLockQueue_i1", "thread_t1"]
    messages = [re.match(r"^    (\w+)(->>|-->>)(\w+): (.+)$", line) for line in lines[1 + len(declared):]]
    assert all(messages), lines
    assert all(m.group(1) in declared and m.group(3) in declared for m in messages if m)
    # the story: t0's request for i1 is blocked until t0 releases i0, which hands i0 to t1
    text = b.mermaid
    assert text.index("joined=BLOCKED") < text.index("drop AsyncLock") < text.index("loops after the release")


def test_dot_is_valid_for_the_real_dot(tmp_path: Path) -> None:
    for g in (door_graph(), tricky_graph(), project(get_model("context").config(threads=1, contexts=1),
                                                    "ctx_state[c0]", name="ctx", title="IoContext")):
        text = dot.to_dot(g, show_guards=True)
        proc = subprocess.run([dot.dot_binary(), "-Tsvg"], input=text.encode(), capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
        assert b"<svg" in proc.stdout
        for s in g.states:  # every state is drawn
            assert s.label.replace('"', "&quot;").split(" ")[0].encode() in proc.stdout
    out = dot.render(dot.to_dot(door_graph()), tmp_path / "door.png", "png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


needs_mermaid = pytest.mark.skipif(
    not mermaid.parser_available(),
    reason=f"the real Mermaid parser is not installed (scripts/setup.sh runs npm ci in {mermaid.PARSER})")


@needs_mermaid
def test_generated_mermaid_parses_with_the_real_parser(tmp_path: Path) -> None:
    files = []
    for name, text in [("door-state", mermaid.state_diagram(door_graph())),
                       ("door-flow", mermaid.flowchart(door_graph())),
                       ("tricky-state", mermaid.state_diagram(tricky_graph())),
                       ("tricky-flow", mermaid.flowchart(tricky_graph()))]:
        files.append(tmp_path / f"{name}.mmd")
        files[-1].write_text(text)
    for s in DIAGRAMS:
        if available(s):
            files.append(tmp_path / f"{s.name}.mmd")
            files[-1].write_text(built(s.name).mermaid)
    assert mermaid.validate(files) == []


@needs_mermaid
def test_the_real_parser_rejects_broken_mermaid(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.mmd", tmp_path / "bad.mmd"
    good.write_text(mermaid.state_diagram(door_graph()))
    bad.write_text(mermaid.state_diagram(door_graph()).replace("SHUT --> OPEN", "SHUT --> : OPEN"))
    errors = mermaid.validate([good, bad])
    assert len(errors) == 1 and errors[0].startswith(f"{bad}: Parse error")


def test_dot_failure_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dot -Tsvg failed: .*syntax error"):
        dot.render("digraph { a -> }", tmp_path / "bad.svg", "svg")


# ---- sequences ----------------------------------------------------------------------------------------


def test_milestone_trace_is_shortest_and_in_order() -> None:
    config = DOOR.config()
    tr = milestone_trace(config, [Milestone.parse("phase=OPEN"), Milestone.parse("phase=LOCKED")])
    assert [s.instance.action.name for s in tr.steps] == ["open_door", "close", "lock"]
    tr = milestone_trace(config, [Milestone.parse("knocks=1"), Milestone.parse("phase=OPEN")])
    assert len(tr.steps) == 2
    with pytest.raises(ConfigError, match="no run of"):
        milestone_trace(config, [Milestone.parse("phase=LOCKED"), Milestone.parse("phase=OPEN")])
    with pytest.raises(ConfigError, match="not CELL=VALUE"):
        milestone_trace(config, [Milestone.parse("phase")])


def test_sequence_needs_an_arrow_for_every_action() -> None:
    tr = milestone_trace(DOOR.config(), [Milestone.parse("phase=LOCKED")])
    g = sequence(tr, {"lock": Arrow("you", "door {t}" if False else "door")}, name="s", title="s")
    assert isinstance(g, SequenceGraph) and [p.label for p in g.participants] == ["you", "door"]
    tr = milestone_trace(DOOR.config(), [Milestone.parse("phase=OPEN")])
    with pytest.raises(ConfigError, match="no arrow for action"):
        sequence(tr, {"lock": Arrow("you", "door")}, name="s", title="s")


@pytest.mark.parametrize("model, table", [("ownership", OWNERSHIP_ARROWS), ("locks", LOCKS_ARROWS),
                                          ("lifecycle", LIFECYCLE_ARROWS)])
def test_arrow_tables_cover_every_action(model: str, table: dict[str, Arrow]) -> None:
    if model not in MODELS:
        pytest.skip(f"model {model!r} is not registered in model/catalog.py yet")
    actions = {a.name: a for a in get_model(model).actions}
    assert set(table) == set(actions)
    for name, arrow in table.items():  # every field names a parameter of the action
        params = {p.name: "x" for p in actions[name].params}
        for text in (arrow.source, arrow.target, arrow.label, arrow.note):
            text.format(**params)


# ---- the seed article ---------------------------------------------------------------------------------


def test_seed_diagram_is_the_articles() -> None:
    article = parse_state_diagram(SEED_DIAGRAM.read_text(), str(SEED_DIAGRAM))
    assert article.states == ["Created", "Delivered", "Canceled", "Draining", "FinishScheduled", "Done",
                              "Superseded", "Timeout"]
    assert len(article.transitions) == 11
    assert ("FinishScheduled", "Timeout", "time limit exceeded") in article.transitions


ARTICLE = """stateDiagram-v2
[*] --> New
New --> Running: start
Running --> Gone: stop
New --> Stuck: never
Gone --> [*]
"""

GOOD_MAPPING: dict[str, Any] = {
    "states": [
        {"article": "New", "model": "UNBORN"},
        {"article": "Running", "model": "ALIVE"},
        {"article": "Gone", "model": "DEAD"},
        {"article": "Stuck", "model": None, "why": "nothing gets stuck"},
    ],
    "transitions": [
        {"article": "[*] --> New", "model": ["[*] --> UNBORN"]},
        {"article": "New --> Running: start", "model": ["UNBORN --> ALIVE: create_context"]},
        {"article": "Running --> Gone: stop",
         "model": [["ALIVE --> TEARDOWN: destroy_begin", "TEARDOWN --> DEAD: destroy_end"]]},
        {"article": "New --> Stuck: never", "model": [], "why": "no such move"},
        {"article": "Gone --> [*]", "model": ["DEAD --> [*]"]},
    ],
    "model_only": {
        "states": [{"model": "TEARDOWN", "why": "destruction has two steps"}],
        "transitions": [],
    },
}


def _coverage(tmp_path: Path, mapping: dict[str, Any]) -> Any:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    g = built("context").graph
    assert isinstance(g, StateGraph)
    return check(parse_state_diagram(ARTICLE, "article"), load_mapping(path), g)


def test_mapping_check_passes_when_right(tmp_path: Path) -> None:
    cov = _coverage(tmp_path, GOOD_MAPPING)
    assert cov.ok, cov.problems
    md = cov.markdown()
    assert "| Stuck | — | nothing gets stuck |" in md and "state TEARDOWN" in md
    assert "`ALIVE --> TEARDOWN: destroy_begin` then `TEARDOWN --> DEAD: destroy_end`" in md


def _no_chain(m: dict[str, Any]) -> None:
    m["transitions"][2].update(model=[], why="the model destroys in two steps")


def test_model_only_patterns_explain_transitions(tmp_path: Path) -> None:
    def edit(m: dict[str, Any]) -> None:
        _no_chain(m)
        m["model_only"]["transitions"] = [{"model": "* --> *: destroy_*", "why": "two steps"}]
    cov = _coverage(tmp_path, _broken(edit))
    assert cov.ok, cov.problems
    assert [t for t, _ in cov.model_only_transitions] == ["ALIVE --> TEARDOWN: destroy_begin",
                                                          "TEARDOWN --> DEAD: destroy_end"]


def _broken(edit: Any) -> dict[str, Any]:
    m = json.loads(json.dumps(GOOD_MAPPING))
    edit(m)
    return m


@pytest.mark.parametrize("edit, problem", [
    (lambda m: m["states"].pop(1), "article state Running has no entry"),
    (lambda m: m["states"][1].update(model="RUNNING"), "maps to RUNNING, which the model's diagram lacks"),
    (lambda m: m["states"][3].update(why=""), "Stuck has no model state and no 'why'"),
    (lambda m: m["states"].append({"article": "Ghost", "model": None, "why": "?"}),
     "article state Ghost, which the article does not have"),
    (lambda m: m["transitions"].pop(1), "New --> Running: start has no entry"),
    (lambda m: m["transitions"][1].update(model=["UNBORN --> ALIVE: enter"]), "which the model's diagram lacks"),
    (lambda m: m["transitions"][2].update(model=["ALIVE --> TEARDOWN: destroy_begin"]), "but its ends map to"),
    (lambda m: m["model_only"]["states"].clear(), "model state TEARDOWN is neither mapped nor explained"),
    (_no_chain, "TEARDOWN --> DEAD: destroy_end is neither mapped"),
    (lambda m: m["model_only"]["transitions"].append({"model": "X --> Y: z", "why": "?"}), "matches no unmapped"),
], ids=["unmapped-state", "unknown-model-state", "no-why", "stale-state", "unmapped-transition",
        "unknown-model-transition", "inconsistent-ends", "unexplained-model-state",
        "unexplained-model-transition", "stale-pattern"])
def test_a_broken_mapping_is_caught(tmp_path: Path, edit: Any, problem: str) -> None:
    cov = _coverage(tmp_path, _broken(edit))
    assert not cov.ok
    assert any(problem in p for p in cov.problems), cov.problems


def test_malformed_mapping_file_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"states": [')
    with pytest.raises(UserError, match=r"m.json:1: not JSON"):
        load_mapping(path)
    path.write_text('{"transitions": [{"article": "A -> B", "model": []}]}')
    with pytest.raises(UserError, match=r"transitions\[0\]: 'A -> B' is not a transition"):
        load_mapping(path)
    with pytest.raises(UserError, match=r"article:2: not a transition"):
        parse_state_diagram("stateDiagram-v2\nA -> B\n", "article")


LIFECYCLE = spec("lifecycle")
needs_lifecycle = pytest.mark.skipif(
    not available(LIFECYCLE),
    reason="the lifecycle model (model/lifecycle.py, name 'lifecycle') is not registered in model/catalog.py yet")


@needs_lifecycle
def test_lifecycle_diagram_covers_the_seed_article() -> None:
    b = built("lifecycle")
    assert b.coverage is not None
    assert b.coverage.ok, "\n".join(b.coverage.problems)


@needs_lifecycle
def test_lifecycle_mapping_check_can_fail(tmp_path: Path) -> None:
    assert isinstance(LIFECYCLE, ProjectionSpec) and LIFECYCLE.seed_mapping
    data = json.loads((DOCS / LIFECYCLE.seed_mapping).read_text())
    data["transitions"].pop(0)
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(data))
    g = built("lifecycle").graph
    assert isinstance(g, StateGraph)
    assert seed_coverage(g, DOCS / LIFECYCLE.seed_mapping).ok
    assert not seed_coverage(g, path).ok


# ---- the README -------------------------------------------------------------------------------------


def test_readme_shows_the_generated_lifecycle_diagram() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text() if readme.exists() else ""
    if README_START not in text or README_END not in text:
        pytest.skip(f"README.md has no {README_START} ... {README_END} markers yet (the lead adds them)")
    if not available(LIFECYCLE):
        pytest.skip("the lifecycle model is not registered yet, so its diagram cannot be generated")
    shown = text.split(README_START, 1)[1].split(README_END, 1)[0].strip("\n")
    assert readme_block() == f"```mermaid\n{built('lifecycle').mermaid}```\n"
    assert shown == readme_block().strip("\n"), (
        "README.md's lifecycle diagram is out of date; replace the block between the markers with the "
        "output of: python -c 'from iospec.diagrams.document import readme_block; print(readme_block())'")


# ---- the command ----------------------------------------------------------------------------------------


def test_iospec_diagrams_writes_everything(tmp_path: Path, capsys: Any) -> None:
    check = ["--check-mermaid"] if mermaid.parser_available() else []
    assert main(["diagrams", "--out", str(tmp_path), *check]) == 0
    ready = [s for s in DIAGRAMS if available(s)]
    for s in ready:
        assert (tmp_path / f"{s.name}.mmd").read_text() == built(s.name).mermaid
        assert (tmp_path / f"{s.name}.md").exists()
        if isinstance(s, ProjectionSpec):
            assert (tmp_path / f"{s.name}.svg").read_text().lstrip().startswith("<?xml")
            assert (tmp_path / f"{s.name}.png").read_bytes()[:4] == b"\x89PNG"
    index = (tmp_path / "index.md").read_text()
    assert index.count("```mermaid") == len(ready)
    assert "entrypoint-sequence" in index  # pending diagrams are listed, not faked
    if "lifecycle" not in MODELS:
        assert "lifecycle" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["diagrams", "--only", "nosuch"], "unknown diagram 'nosuch'"),
    (["diagrams", "--model", "nosuch", "--cell", "x"], "unknown model 'nosuch'"),
    (["diagrams", "--model", "context", "--cell", "ctx_state[c9]"], "'c9' is not a Ctx"),
    (["diagrams", "--model", "context"], "needs both --model and --cell"),
    (["diagrams", "--bounds", "threads=2"], "need --model and --cell"),
    (["diagrams", "--model", "context", "--cell", "ctx_state[c0]", "--bounds", "threads=x"], "not an integer"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: Any, argv: list[str], message: str) -> None:
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_option_is_one_line_exit_2(capsys: Any) -> None:
    with pytest.raises(SystemExit) as e:
        main(["diagrams", "--nosuch"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_ad_hoc_projection(tmp_path: Path, capsys: Any) -> None:
    argv = ["diagrams", "--model", "locks", "--cell", "waiter[t0]", "--bounds", "threads=2,isolates=1,lock_requests=1",
            "--out", str(tmp_path), "--flowchart"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart LR") and '-->|"request_lock"|' in out
    assert (tmp_path / "locks_waiter_t0.svg").exists()
