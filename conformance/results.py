"""The result of running one conformance scenario against one implementation.

Every suite (in-process model-step scenarios, HTTP-level scenarios, recorded traces) produces
`ScenarioResult` records; the reports, the expectations handling and the coverage accounting
consume only these.  Outcomes follow web-platform-tests / Autobahn usage:

========================  ===================================================================
``PASS``                  the observation equals the model's prediction
``FAIL``                  it differs (at a MUST or SHOULD level)
``XFAIL``                 it differs and the implementation's expectations file says so (with a reason)
``XPASS``                 it passes although the expectations file lists it: an error, update the file
``NOT-IMPLEMENTED``       the implementation declares it cannot run this scenario (e.g. no actors)
``INFORMATIONAL``         a scenario at level INFORMATIONAL; differences are reported, never fail the run
``ERROR``                 the harness could not run it (crash, timeout); always fails the run
========================  ===================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["ScenarioResult", "Outcome", "Level", "FAILING_OUTCOMES"]

Outcome = Literal["PASS", "FAIL", "XFAIL", "XPASS", "NOT-IMPLEMENTED", "INFORMATIONAL", "ERROR"]
Level = Literal["MUST", "SHOULD", "INFORMATIONAL"]

#: outcomes that make a conformance run fail
FAILING_OUTCOMES: frozenset[str] = frozenset({"FAIL", "XPASS", "ERROR"})


@dataclass
class ScenarioResult:
    scenario_id: str
    title: str
    rules: list[str]
    level: Level
    #: which suite produced it: "model" (in-process steps), "http", or "trace"
    suite: str
    implementation: str
    implementation_version: str
    outcome: Outcome
    #: JSON-able: what the model predicts, and what the implementation did
    prediction: Any = None
    observation: Any = None
    #: one line per difference between prediction and observation
    differences: list[str] = field(default_factory=list)
    #: the reason from the expectations file (XFAIL/XPASS) or why it is NOT-IMPLEMENTED/ERROR
    reason: str = ""
    #: the minimal event trace of a failure (trace-format events), if the suite has one
    trace: list[dict[str, Any]] | None = None
    #: model transitions ("model.action") the scenario exercised, for transition coverage
    transitions: list[str] = field(default_factory=list)
    duration: float = 0.0
    seed: int | None = None

    @property
    def failed(self) -> bool:
        return self.outcome in FAILING_OUTCOMES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
