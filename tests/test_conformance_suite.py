"""The conformance suite end to end: the reference passes, every seeded fault is caught, reports and coverage.

One full run of ``iospec conformance --impl reference`` is shared by the module (about 20 s);
the fault catalogue runs the MUST scenarios against each of the 20 faulty variants of the
reference implementation (the fault's own rule first, stopping at the first kill) and prints
the kill rate.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.expectations_file import parse_expectations
from conformance.generate import GENERATED_FILE, generated_text
from conformance.operations import markdown_table
from conformance.reports import UNCOVERED_FILE, coverage, explained_gaps
from conformance.results import ScenarioResult
from conformance.runner import apply_expectations, kill_faults, run_scenario
from conformance.scenario import ScenarioError, load_all, load_text
from conformance.schema import SCHEMA_PATH, schema_text
from iospec.cli import main
from reference_impl.faults import fault_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("reports")
    code = main(["conformance", "--impl", "reference", "--reports", str(out), "-q"])
    return code, out


def _report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    return data


def test_the_reference_passes_every_scenario(reference_run: tuple[int, Path]) -> None:
    code, out = reference_run
    report = _report(out)
    assert code == 0, report["totals"]
    assert report["passed"] is True
    outcomes = {r["scenario_id"]: r["outcome"] for r in report["results"]}
    assert len(outcomes) == len(load_all(generated=True)) >= 100
    # every known failure has a reason; everything else passes (INFORMATIONAL ones pass too)
    assert {o for o in outcomes.values()} <= {"PASS", "XFAIL"}
    for r in report["results"]:
        if r["outcome"] == "XFAIL":
            assert r["reason"]
    # hand-written scenarios all pass outright: only generated ones are known failures
    assert all(o == "PASS" for sid, o in outcomes.items() if not sid.startswith("gen."))


def test_reports_are_written(reference_run: tuple[int, Path]) -> None:
    _, out = reference_run
    report = _report(out)
    assert report["implementations"][0]["name"] == "reference"
    assert report["implementations"][0]["version"]
    first = report["results"][0]
    assert first["prediction"] and first["observation"] and first["transitions"]
    suites = ET.parse(out / "junit.xml").getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) == len(report["results"])
    assert not suites.findall(".//failure")
    md = (out / "summary.md").read_text()
    assert "## Implementation x rule" in md and "| [INV-O2]" in md and "`reference`" in md
    page = (out / "summary.html").read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page and ">INV-O2</a>" in page
    cov = json.loads((out / "coverage.json").read_text())
    assert cov["rules"]["INV-O2"]["scenarios"] and cov["rules"]["INV-O2"]["checks"]


def test_coverage_has_no_unexplained_gap(reference_run: tuple[int, Path]) -> None:
    """CI fails if a rule or a transition loses its coverage (or an explanation goes stale)."""
    cov = _report(reference_run[1])["coverage"]
    assert cov["unexplained_gaps"] == []
    gaps = explained_gaps()
    stale = [k for k in gaps if k not in cov["uncovered_rules"] and k not in cov["uncovered_transitions"]]
    assert stale == [], f"{UNCOVERED_FILE} explains gaps that are covered now: {stale}"
    assert sum(1 for n in cov["transitions"].values() if n) >= len(cov["transitions"]) - len(gaps)


#: seeded faults no scenario can express, and why (each is caught elsewhere, named here)
NOT_EXPRESSIBLE = {
    "run_without_request": "it breaks a guard of enter (has_request, INV-R8): a scenario step must be one the "
                           "model allows, so a refused run() cannot be written as a step; caught by the live "
                           "monitor (tests/test_reference_faults.py) and the stateful machine "
                           "(tests/test_stateful_reference.py)",
}


def test_every_seeded_fault_fails_a_must_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    # faults that show only in an unlucky schedule are predictive checking's (tests/test_predict.py)
    faults = [f for f in fault_names(interleaving_only=False) if f not in NOT_EXPRESSIBLE]
    killed = kill_faults(load_all(generated=True), faults)
    caught = [f for f, ids in killed.items() if ids]
    with capsys.disabled():
        print(f"\nconformance kill rate: {len(caught)}/{len(faults)} = {100 * len(caught) / len(faults):.0f}%")
        for f in faults:
            print(f"  {f:40} {killed[f][0] if killed[f] else 'NOT CAUGHT'}")
    assert caught == faults, f"not caught: {sorted(set(faults) - set(caught))}"


def test_a_fault_shows_in_the_reports(tmp_path: Path) -> None:
    code = main(["conformance", "--impl", "reference[double_deletion]", "--rule", "INV-O4", "--no-generated",
                 "--reports", str(tmp_path), "-q"])
    assert code == 1
    report = _report(tmp_path)
    failed = [r for r in report["results"] if r["outcome"] == "FAIL"]
    assert failed and all(r["differences"] and r["trace"] for r in failed)
    md = (tmp_path / "summary.md").read_text()
    assert "## Failures" in md and "```mermaid" in md and "class s" in md
    assert ET.parse(tmp_path / "junit.xml").getroot().findall(".//failure")


# ---- expectations -----------------------------------------------------------------------------------


def _one(sid: str) -> Any:
    return next(s for s in load_all(generated=True) if s.id == sid)


def test_known_failure_is_xfail_and_unexpected_pass_is_xpass() -> None:
    from conformance.reference_adapter import ReferenceImplementation

    sc = _one("lifecycle.deliver-twice-fails")
    exp = parse_expectations(json.dumps({"known_failures": [{"id": sc.id, "reason": "not yet"}]}), "e.json")
    broken = apply_expectations([run_scenario(sc, ReferenceImplementation(["deliver_twice"]))], exp)[0]
    assert broken.outcome == "XFAIL" and broken.reason == "not yet" and not broken.failed
    fixed = apply_expectations([run_scenario(sc, ReferenceImplementation())], exp)[0]
    assert fixed.outcome == "XPASS" and fixed.failed
    assert "update the expectations file" in fixed.differences[-1]


def test_xpass_fails_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "exp.json"
    exp.write_text(json.dumps({"known_failures": [{"id": "context.reentry-fails", "reason": "old bug"}]}))
    code = main(["conformance", "--impl", "reference", "--id", "context.reentry-fails", "--expectations", str(exp),
                 "--reports", str(tmp_path / "r"), "-q"])
    assert code == 1
    assert "XPASS" in capsys.readouterr().out


def test_expectations_for_another_implementation_do_not_apply() -> None:
    exp = parse_expectations(json.dumps({"implementation": "other", "known_failures": [
        {"id": "context.reentry-fails", "reason": "r"}]}), "e.json")
    assert exp.reason_for("reference", "context.reentry-fails") is None
    assert exp.reason_for("other", "context.reentry-fails") == "r"


# ---- other implementations and suites ----------------------------------------------------------------


def test_a_user_adapter_by_module_and_factory(tmp_path: Path) -> None:
    spec = "conformance.examples.toy_contexts:factory"
    assert main(["conformance", "--impl", spec, "--reports", str(tmp_path), "-q"]) == 0
    outcomes = {r["outcome"] for r in _report(tmp_path)["results"]}
    assert outcomes == {"PASS", "NOT-IMPLEMENTED"}
    buggy = "conformance.examples.toy_contexts:buggy_factory"
    assert main(["conformance", "--impl", buggy, "--rule", "INV-A1", "--reports", str(tmp_path), "-q"]) == 1


def test_recorded_traces(tmp_path: Path) -> None:
    from reference_impl import Request, Runtime
    from reference_impl.trace import NdjsonSink
    from tests.reference_helpers import Empty

    good = tmp_path / "good.ndjson"
    with Runtime(trace=[NdjsonSink(good)]) as rt:
        rt.add_worker("w", Empty)
        rt.fetch("w", Request())
        rt.settle()
    bad = tmp_path / "bad.ndjson"
    lines = good.read_text().splitlines()
    bad.write_text("\n".join(line for line in lines if '"deliver"' not in line) + "\n")
    out = tmp_path / "r"
    assert main(["conformance", "--trace", str(good), "--reports", str(out), "-q"]) == 0
    assert main(["conformance", "--trace", str(good), str(bad), "--reports", str(out), "-q"]) == 1
    results = _report(out)["results"]
    assert [r["outcome"] for r in results] == ["PASS", "FAIL"]
    assert results[0]["suite"] == "trace" and results[0]["transitions"]


def test_results_of_any_suite_go_into_the_reports(tmp_path: Path) -> None:
    from conformance.reports import write_reports

    http = ScenarioResult(scenario_id="http.throw-500", title="t", rules=["INV-E7"], level="MUST", suite="http",
                          implementation="workerd", implementation_version="1.2", outcome="FAIL",
                          differences=["status: expected 500, observed 200"])
    paths = write_reports([http], tmp_path, {"seed": 1})
    assert "`workerd`" in paths["markdown"].read_text()
    assert coverage([http]).rules == {"INV-E7": ["http.throw-500"]}


def test_workerd_dispatches_to_the_http_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--impl workerd`` hands the HTTP suite its options and reports its results with the rest."""
    import conformance.http as http

    seen: list[Any] = []

    def fake(args: Any) -> list[ScenarioResult]:
        seen.append(args)
        return [ScenarioResult(scenario_id="pass-through-fallback-serves", title="t", rules=["INV-E4"], level="MUST",
                               suite="http", implementation="workerd", implementation_version="1.2",
                               outcome="PASS")]

    monkeypatch.setattr(http, "run_for_conformance", fake)
    code = main(["conformance", "--impl", "workerd", "--impl", "reference", "--id", "context.*",
                 "--reports", str(tmp_path), "-q"])
    assert code == 0
    assert seen[0].impl == "workerd" and seen[0].ids == ["context.*"]
    report = _report(tmp_path)
    assert {i["name"] for i in report["implementations"]} == {"workerd", "reference"}
    assert "`workerd`" in (tmp_path / "summary.md").read_text()


def test_workerd_without_the_http_suite_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import conformance.http as http

    monkeypatch.delattr(http, "run_for_conformance")
    code = main(["conformance", "--impl", "workerd", "--reports", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run_for_conformance" in err[0]


# ---- the catalogue is derived, not copied -----------------------------------------------------------


def test_committed_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), "run: python -m conformance.schema"


def test_committed_generated_scenarios_are_current() -> None:
    assert GENERATED_FILE.read_text() == generated_text(), "run: python -m conformance.generate"


def test_docs_show_the_current_operation_table() -> None:
    assert markdown_table() in (ROOT / "docs" / "conformance.md").read_text()


def test_pinned_predictions_equal_the_model() -> None:
    pinned = [s for s in load_all() if any(st.pin for st in s.steps)]
    assert pinned, "the catalogue has pinned predictions"
    text = json.dumps({"description": "d", "scenarios": [{
        "id": "x", "title": "t", "rules": ["INV-O2"], "level": "MUST", "model": "ownership", "steps": [
            {"op": "create_context", "c": "c0", "t": "t0"},
            {"op": "enter", "c": "c0", "t": "t1", "expect": {"result": "OK"}}]}]}, indent=1)
    with pytest.raises(ScenarioError, match=r"x\.json:\d+: .*pinned prediction differs.*ERR_WRONG_THREAD"):
        load_text(text, "x.json")


def test_every_scenario_rule_exists_and_every_model_rule_is_reachable() -> None:
    from model.rules import LEFT_OUT, RULES

    scs = load_all(generated=True)
    checked = {r for s in scs for r in s.rules}
    assert checked <= set(RULES)
    missing = set(RULES) - checked - set(LEFT_OUT) - set(explained_gaps())
    assert missing == set(), f"rule ids no scenario checks: {sorted(missing)}"


def test_a_failing_request_is_drawn_on_the_lifecycle_diagram() -> None:
    from conformance.reference_adapter import ReferenceImplementation
    from conformance.reports import render_markdown

    sc = _one("lifecycle.drain-does-not-wait-for-plain-tasks")
    r = run_scenario(sc, ReferenceImplementation(["drain_waits_for_tasks"]))
    assert r.outcome == "FAIL"
    md = render_markdown([r], coverage([r]), {"seed": 0})
    assert "IncomingRequest lifecycle" in md
    assert "CURRENT --> DRAINING" in md and "class DRAINING failed" in md and "class CURRENT visited" in md


def test_coverage_check_fails_when_a_transition_loses_its_scenarios(reference_run: tuple[int, Path]) -> None:
    """The gap check above can fail: drop the scenarios that take drain_superseded and it reports the gap."""
    results = [ScenarioResult(**{k: v for k, v in r.items()}) for r in _report(reference_run[1])["results"]]
    kept = [r for r in results if "lifecycle.drain_superseded" not in r.transitions]
    cov = coverage(kept)
    assert "lifecycle.drain_superseded" in cov.unexplained
    assert coverage(results).unexplained == []
