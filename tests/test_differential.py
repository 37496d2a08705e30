"""The three-way differential (conformance/http/differential.py, `iospec differential`): the logic that
decides agreement, blocking and explanations, the repeatability comparison, the report, and the
`run_for_conformance` entry point, with seeded wrong inputs each check must catch."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.http import run_for_conformance
from conformance.http.differential import (
    Row,
    compare_runs,
    expectation,
    fingerprint,
    outcome_of,
    run_differential,
    scenario_result,
    write_report,
)
from conformance.http.scenarios import load_all, select
from conformance.http.workerd import WorkerdError
from conformance.results import ScenarioResult

SCENARIOS = {s.id: s for s in load_all()}


def record(scenario_id: str, implementation: str, **responses: Any) -> dict[str, Any]:
    return {"scenario": scenario_id, "implementation": implementation, "version": "v", "error": None,
            "responses": responses, "events": [], "logs": []}


LISTENER_500 = {"outcome": "response", "status": 500, "headers": {"connection": "close", "content-length": "21"},
                "body": "Internal Server Error", "complete": True, "chunked": False, "connection": "closed"}


def row_for(scenario_id: str, **observations: dict[str, Any]) -> Row:
    scenario = SCENARIOS[scenario_id]
    expected = expectation(scenario)
    row = Row(scenario, expected)
    for name, obs in observations.items():
        row.results[name] = scenario_result(scenario, expected, obs)
    return row


def test_agreement_is_not_blocking() -> None:
    row = row_for("exception-sync-throw", reference=record("exception-sync-throw", "reference", r1=LISTENER_500),
                  workerd=record("exception-sync-throw", "workerd", r1=LISTENER_500))
    assert row.agrees and not row.blocking and row.explanations() == {}


def test_must_disagreement_blocks() -> None:
    wrong = dict(LISTENER_500, status=200)
    row = row_for("exception-sync-throw", reference=record("exception-sync-throw", "reference", r1=wrong),
                  workerd=record("exception-sync-throw", "workerd", r1=LISTENER_500))
    assert not row.agrees and row.blocking
    assert row.results["reference"].outcome == "FAIL" and row.explanations() == {"reference": ""}


def test_explained_informational_difference_does_not_block() -> None:
    sid = "scheduled-without-flag-is-rpc"
    odd = {"outcome": "response", "status": 200, "body": "ok: outcome=ok noRetry=false"}
    row = row_for(sid, reference=record(sid, "reference", r1=odd))
    assert row.results["reference"].outcome == "INFORMATIONAL"
    assert "service_binding_extra_handlers" in row.explanations()["reference"]
    assert not row.blocking
    # the same difference from an implementation the scenario does not explain: blocking
    unexplained = row_for(sid, other=record(sid, "other", r1=odd))
    assert unexplained.explanations() == {"other": ""} and unexplained.blocking


def test_not_implemented_and_errors() -> None:
    sid = "scheduled-flag-needs-experimental"
    ni = dict(record(sid, "reference"), not_implemented="no config gate")
    assert outcome_of(SCENARIOS[sid], ni, []) == ("NOT-IMPLEMENTED", "no config gate")
    assert not row_for(sid, reference=ni).blocking
    crashed = dict(record("exception-sync-throw", "workerd"), error="workerd exited (code 1)")
    row = row_for("exception-sync-throw", workerd=crashed)
    assert row.results["workerd"].outcome == "ERROR" and row.blocking


def test_fingerprint_ignores_timing_and_ports_but_not_observations() -> None:
    a = record("x", "workerd", r1=dict(LISTENER_500, t_done=1.0, body="GET http://127.0.0.1:4242/"))
    b = record("x", "workerd", r1=dict(LISTENER_500, t_done=9.0, body="GET http://127.0.0.1:5353/"))
    assert fingerprint(a) == fingerprint(b)
    c = copy.deepcopy(b)
    c["responses"]["r1"]["complete"] = False
    assert fingerprint(a) != fingerprint(c)


def report(outcome: str, fp: dict[str, Any]) -> dict[str, Any]:
    return {"scenarios": [{"id": "s", "results": {"workerd": {"outcome": outcome, "fingerprint": fp}}}]}


def test_compare_runs_catches_each_change() -> None:
    base = report("PASS", {"responses": {"r1": {"status": 500}}})
    assert compare_runs(base, copy.deepcopy(base)) == []
    assert compare_runs(base, report("FAIL", {"responses": {"r1": {"status": 500}}})) == [
        "s [workerd]: outcome PASS before, FAIL now"]
    assert "observed" in compare_runs(base, report("PASS", {"responses": {"r1": {"status": 200}}}))[0]
    assert compare_runs(base, {"scenarios": []}) == ["s [workerd]: only in the previous run"]


def test_reference_run_report_and_entry_point(tmp_path: Path) -> None:
    chosen = select(list(SCENARIOS.values()), ids=["exception-sync-throw", "scheduled-flag-needs-experimental"])
    diff = run_differential(chosen, implementations=["reference"])
    md, js = write_report(diff, tmp_path)
    text = md.read_text()
    assert text.index("## Disagreements") < text.index("scheduled-flag-needs-experimental") < text.index(
        "## Agreements") < text.index("| exception-sync-throw | MUST")
    data = json.loads(js.read_text())
    assert {s["id"]: s["agrees"] for s in data["scenarios"]} == {
        "exception-sync-throw": True, "scheduled-flag-needs-experimental": False}
    assert not diff.blocking
    results = run_for_conformance(argparse.Namespace(impl="reference", ids=["exception-sync-throw"]))
    assert [(r.scenario_id, r.outcome, r.suite) for r in results] == [("exception-sync-throw", "PASS", "http")]
    assert isinstance(results[0], ScenarioResult) and results[0].prediction["expect"]["responses"]


def test_entry_point_bad_binary_is_one_line() -> None:
    with pytest.raises(WorkerdError, match=r"^workerd binary not found: /nonexistent/workerd$"):
        run_for_conformance(argparse.Namespace(impl="workerd", workerd_bin="/nonexistent/workerd", ids=[]))


@pytest.mark.parametrize(("argv", "message"), [
    (["--workerd-bin", "/nonexistent/workerd", "exception-sync-throw"], "workerd binary not found: /nonexistent"),
    (["--impl", "reference", "no-such-scenario"], "no scenario has id 'no-such-scenario'"),
    (["--impl", "reference", "--compare", "/nonexistent.json", "exception-sync-throw"], "not a differential report"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "iospec.cli", "differential", "--out", str(tmp_path), *argv],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_cli_compare_repeats_and_catches_a_change(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "iospec.cli", "differential", "-q", "--impl", "reference", "exception-sync-throw"]
    first = subprocess.run([*argv, "--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    previous = str(tmp_path / "a" / "differential.json")
    again = subprocess.run([*argv, "--out", str(tmp_path / "b"), "--compare", previous], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and "identical results" in again.stdout, again.stdout + again.stderr
    seeded = json.loads((tmp_path / "a" / "differential.json").read_text())
    seeded["scenarios"][0]["results"]["reference"]["fingerprint"]["responses"]["r1"]["status"] = 200
    (tmp_path / "seeded.json").write_text(json.dumps(seeded))
    changed = subprocess.run([*argv, "--out", str(tmp_path / "c"), "--compare", str(tmp_path / "seeded.json")],
                             capture_output=True, text=True, timeout=120)
    assert changed.returncode == 1 and "NOT REPEATED exception-sync-throw [reference]" in changed.stdout
