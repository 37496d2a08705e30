"""The HTTP-level scenarios against the reference implementation's listener (real loopback sockets).

The worker behaviour is generated as Python handlers (conformance/http/pygen.py) from the same
vocabulary the JavaScript workers come from; every scenario is checked against the models'
prediction merged with its pins.  Seeded faults (faulty reference implementations from
reference_impl/faults.py, and a wrong expectation) run in their own batch and must be caught.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from conformance.http.differential import expectation, scenario_result
from conformance.http.expect import check
from conformance.http.jsgen import generate_worker as generate_js
from conformance.http.pygen import ACTOR_CLASS, WORKER_CLASS, generate_worker, load_worker
from conformance.http.reference import NOT_IMPLEMENTED_STARTUP, run_scenarios
from conformance.http.scenarios import Scenario, load_all, select
from conformance.http.workerd import BatchResult

SCENARIOS = select(load_all())
BY_ID = {s.id: s for s in SCENARIOS}


@pytest.fixture(scope="module")
def run() -> BatchResult:
    return run_scenarios(SCENARIOS)


def observation(run: BatchResult, scenario_id: str) -> dict[str, Any]:
    return next(o for o in run.observations if o["scenario"] == scenario_id)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(run: BatchResult, scenario: Scenario) -> None:
    record = observation(run, scenario.id)
    result = scenario_result(scenario, expectation(scenario), record)
    where = f"{scenario.file}:{scenario.line} ({scenario.level})"
    if scenario.startup_only:
        assert result.outcome == "NOT-IMPLEMENTED" and result.reason == NOT_IMPLEMENTED_STARTUP
        return
    if result.outcome == "INFORMATIONAL":
        assert scenario.differences.get("reference"), f"{scenario.id}: an unexplained difference at {where}"
        pytest.xfail(f"explained difference: {scenario.differences['reference']}")
    assert result.outcome == "PASS", f"{scenario.id} at {where}:\n  " + "\n  ".join(result.differences)


def test_records_name_the_reference_and_use_loopback(run: BatchResult) -> None:
    assert run.implementation == "reference" and run.version.startswith("iospec reference_impl")
    assert all(o["implementation"] == "reference" for o in run.observations)
    assert run.processes_started == len({s.runtime.verbose for s in SCENARIOS if not s.startup_only})


# ---------------------------------------------------------------- seeded faults: each must be caught

#: (fault of reference_impl/faults.py, the scenario whose observation it must change)
RUNTIME_FAULTS = [
    ("pass_through_ignored", "pass-through-fallback-serves"),
    ("fallback_after_headers", "pass-through-after-started-response"),
    ("exception_after_headers_500", "stream-fails-after-first-chunk"),
    ("drain_ignores_wait_until", "wait-until-after-response"),
    ("finish_scheduled_ignores_wait_until", "scheduled-waits-for-wait-until"),
    ("access_check_missing", "xreq-identity-transform-stream"),
    ("actor_new_context_per_request", "do-shared-context-identity-stream"),
]


@pytest.fixture(scope="module")
def faulty_runs() -> dict[str, dict[str, Any]]:
    out = {}
    for fault, scenario_id in RUNTIME_FAULTS:
        out[fault] = run_scenarios([BY_ID[scenario_id]], faults=[fault]).observations[0]
    return out


@pytest.mark.parametrize(("fault", "scenario_id"), RUNTIME_FAULTS, ids=[f for f, _ in RUNTIME_FAULTS])
def test_faulty_reference_is_caught(faulty_runs: dict[str, dict[str, Any]], fault: str, scenario_id: str) -> None:
    problems = check(expectation(BY_ID[scenario_id]).expect, faulty_runs[fault])
    assert problems, f"the reference with fault {fault} still satisfies {scenario_id}"


def test_wrong_expectation_is_caught(run: BatchResult) -> None:
    wrong = {"source": "pinned", "responses": {"r1": {"status": 200, "body": {"equals": "fine"}}}}
    assert check(wrong, observation(run, "exception-sync-throw"))


# ---------------------------------------------------------------- the Python generator


def test_every_scenario_worker_generates_and_loads() -> None:
    # every op is used by some scenario (test_conformance_http), so this loads a translation of every op
    for scenario in load_all():
        for worker in scenario.workers:
            _source, namespace = load_worker(scenario.id, worker)
            assert WORKER_CLASS in namespace
            assert (ACTOR_CLASS in namespace) == ("durable_object" in worker)
    with pytest.raises(AssertionError, match="no translation for op 'explode'"):
        generate_worker("x", {"name": "main", "routes": {"/": [{"op": "explode"}]}})


def test_python_and_javascript_come_from_the_same_steps(tmp_path: Path) -> None:
    scenario = BY_ID["wait-until-nested"]
    worker = scenario.workers[0]
    py, js = generate_worker(scenario.id, worker), generate_js(scenario.id, worker)
    assert py.count("ctx.wait_until(") == js.count("ctx.waitUntil(") >= 2
    assert py.count("await record(") == js.count("await record(")


def test_generated_python_is_kept_when_asked(tmp_path: Path) -> None:
    scenario = dataclasses.replace(BY_ID["exception-sync-throw"], observe_ms=0)
    run_scenarios([scenario], keep_dir=tmp_path)
    assert "raise JsError('boom')" in (tmp_path / "exception-sync-throw__main.py").read_text()
