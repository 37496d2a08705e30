"""Bad input to the conformance suite: one line naming file, line and problem; exit 2; never a traceback.

Hypothesis feeds the scenario parser and the expectations parser garbage (arbitrary text,
arbitrary JSON, and valid-looking scenarios with random operations and arguments, which also
exercises the model runner); every failure must be the parser's own one-line error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.expectations_file import ExpectationsError, parse_expectations
from conformance.operations import OPS
from conformance.scenario import ScenarioError, load_text
from iospec.cli import main
from iospec.errors import UserError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _one_line(e: BaseException) -> None:
    text = str(e)
    assert text and "\n" not in text and "Traceback" not in text


@SETTINGS
@given(st.text(max_size=300))
def test_scenario_parser_on_arbitrary_text(text: str) -> None:
    try:
        load_text(text, "garbage.json")
    except ScenarioError as e:
        _one_line(e)
        assert str(e).startswith("garbage.json:")


@SETTINGS
@given(json_values)
def test_scenario_parser_on_arbitrary_json(value: Any) -> None:
    try:
        load_text(json.dumps(value, indent=1), "v.json")
    except ScenarioError as e:
        _one_line(e)
        assert str(e).startswith("v.json:")


NAMES = {
    "Thread": st.sampled_from(["t0", "t1", "t2", "gc"]), "Ctx": st.sampled_from(["c0", "c1", "c2"]),
    "Req": st.sampled_from(["r0", "r1"]), "Obj": st.sampled_from(["o1", "o2"]), "Actor": st.sampled_from(["a0"]),
    "Isolate": st.sampled_from(["i0", "i1"]), "Handle": st.sampled_from(["h1", "w1", "k1", "l1"]),
    "bool": st.booleans(), "reason": st.sampled_from(["REASON_A", "REASON_B"]),
    "kind": st.sampled_from(["IO_OWN", "IO_PTR"]), "text": st.just("X"), "int": st.integers(0, 50),
    "program": st.lists(st.fixed_dictionaries({"do": st.sampled_from(["respond", "throw", "wait_until", "await_io",
                                                                       "pass_through_on_exception", "no_retry"]),
                                               "h": st.sampled_from(["w1", "k1"])}), min_size=1, max_size=3),
    "fallback": st.sampled_from(["ok", "fail", "none"]),
}


@st.composite
def random_step(draw: st.DrawFn) -> dict[str, Any]:
    op = OPS[draw(st.sampled_from(sorted(OPS)))]
    step: dict[str, Any] = {"op": op.name}
    for p, kind in op.params.items():
        if p == "actor":
            step[p] = draw(st.sampled_from([None, "a0"]))
        else:
            step[p] = draw(NAMES[kind])
    return step


@SETTINGS
@given(st.sampled_from(["context", "ownership", "lifecycle", "entrypoint", "actor", "locks"]),
       st.lists(random_step(), min_size=1, max_size=8))
def test_scenario_parser_on_random_operations(model: str, steps: list[dict[str, Any]]) -> None:
    text = json.dumps({"description": "d", "scenarios": [
        {"id": "random", "title": "t", "rules": ["INV-C1"], "level": "MUST", "model": model, "steps": steps}]},
        indent=1)
    try:
        load_text(text, "random.json")
    except ScenarioError as e:
        _one_line(e)
        assert str(e).startswith("random.json:")


@SETTINGS
@given(json_values | st.text(max_size=200).map(lambda t: {"known_failures": t}))
def test_expectations_parser_on_garbage(value: Any) -> None:
    try:
        parse_expectations(value if isinstance(value, str) else json.dumps(value, indent=1), "exp.json")
    except ExpectationsError as e:
        _one_line(e)
        assert str(e).startswith("exp.json:")


@SETTINGS
@given(st.text(max_size=200))
def test_expectations_parser_on_arbitrary_text(text: str) -> None:
    try:
        parse_expectations(text, "exp.json")
    except ExpectationsError as e:
        _one_line(e)


@pytest.mark.parametrize(("text", "problem"), [
    ('{"description": "d", "scenarios": []}', "should be non-empty"),
    ('{"description": "d",\n "scenarios": [{"id": "x"}]}', ":2: scenarios[0]: 'title' is a required property"),
    ('{"description": "d", "scenarios": [\n{"id": "x", "title": "t", "rules": ["INV-Z9"], "level": "MUST", '
     '"model": "context", "steps": [{"op": "exit", "c": "c0", "t": "t0"}]}]}', "rule id INV-Z9 is not in"),
    ('{"description": "d", "scenarios": [\n{"id": "x", "title": "t", "rules": ["INV-C1"], "level": "MUST", '
     '"model": "context", "steps": [\n{"op": "exit", "c": "c0", "t": "t0"}]}]}',
     ":3: x step 1 exit: the model allows none of its alternatives: exit(c=c0, t=t0): guard innermost is false"),
    ('{"description": "d", "scenarios": [\n{"id": "x", "title": "t", "rules": ["INV-C1"], "level": "MUST", '
     '"model": "context", "steps": [\n{"op": "teleport"}]}]}', "'teleport' is not one of"),
    ('{"description": "d", "scenarios": [\n{"id": "x", "title": "t", "rules": ["INV-C1"], "level": "MUST", '
     '"model": "context", "steps": [\n{"op": "drain", "r": "r0"}]}]}', "has none of this operation's actions"),
    ("{\n  \"description\": 1,,\n}", ":2: not JSON"),
])
def test_malformed_scenarios_name_file_line_and_problem(text: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(text, "s.json")
    _one_line(info.value)
    assert str(info.value).startswith("s.json:")
    assert problem in str(info.value)


@pytest.mark.parametrize(("text", "problem"), [
    ('{"known_failures": [\n{"id": "context.reentry-fails"}]}',
     ":2: known failure 'context.reentry-fails' has no reason"),
    ('{"known_failures": [\n{"id": "a", "reason": "r"},\n{"id": "a", "reason": "r"}]}',
     ":3: scenario 'a' is listed twice"),
    ('{"known_failures": {}}', "known_failures must be a list"),
    ('{"known_failure": []}', "unknown key 'known_failure'"),
    ('[1,', "not JSON"),
])
def test_malformed_expectations(text: str, problem: str) -> None:
    with pytest.raises(ExpectationsError) as info:
        parse_expectations(text, "e.json")
    _one_line(info.value)
    assert problem in str(info.value)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


@pytest.mark.parametrize("args", [
    ["conformance", "--impl", "nosuchmodule:factory"],
    ["conformance", "--impl", "justaword"],
    ["conformance", "--impl", "reference[no_such_fault]"],
    ["conformance", "--impl", "conformance.examples.toy_contexts:missing"],
    ["conformance", "--impl", "conformance.examples.toy_contexts:ToySession"],
    ["conformance", "--rule", "INV-NOPE"],
    ["conformance", "--level", "MAYBE"],
    ["conformance", "--scenarios", "/no/such/file.json"],
    ["conformance", "--expectations", "/no/such/expectations.json"],
    ["conformance", "--trace", "/no/such/trace.ndjson"],
    ["conformance", "--seed", "many"],
])
def test_bad_options_are_one_line_and_exit_2(args: list[str], capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    try:
        code, err = _cli([*args, "--reports", str(tmp_path)], capsys)
    except SystemExit as e:  # argparse's own usage errors (also one line, see iospec.cli.OneLineParser)
        code, err = int(e.code or 0), [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    assert len(err) == 1 and err[0].startswith("iospec"), err


def test_bad_files_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = tmp_path / "bad.json"
    sc.write_text('{"description": "d", "scenarios": [\n{"id": "x", "title": "t", "rules": ["INV-C1"], "level": '
                  '"MUST", "model": "context", "steps": [\n{"op": "enter", "c": "c0", "t": "t0"}]}]}')
    code, err = _cli(["conformance", "--scenarios", str(sc), "--reports", str(tmp_path)], capsys)
    assert code == 2 and len(err) == 1 and f"{sc}:3:" in err[0] and "create_context" not in err[0]
    exp = tmp_path / "exp.json"
    exp.write_text('{"known_failures": [\n{"id": "no.such.scenario", "reason": "r"}]}')
    code, err = _cli(["conformance", "--expectations", str(exp), "--reports", str(tmp_path)], capsys)
    assert code == 2 and len(err) == 1 and f"{exp}:2:" in err[0] and "not in the catalogue" in err[0]
    trace = tmp_path / "t.ndjson"
    trace.write_bytes(b'{"iospec_trace": 1, "models": ["context"]}\n{"seq": 1, "op": \xff}\n')
    code, err = _cli(["conformance", "--trace", str(trace), "--reports", str(tmp_path)], capsys)
    assert code == 2 and len(err) == 1 and str(trace) in err[0]


@SETTINGS
@given(st.binary(max_size=200))
def test_garbage_traces_are_user_errors(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    from conformance.runner import run_traces

    f = tmp_path_factory.mktemp("t") / "g.ndjson"
    f.write_bytes(data)
    try:
        run_traces([f])
    except UserError as e:
        _one_line(e)
