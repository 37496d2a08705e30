"""The three-way differential: model prediction | reference implementation | workerd, per HTTP scenario.

For each scenario the expectation is the models' prediction (`conformance.http.predict`) merged
with the observations the scenario pins because no model decides them (`expect.merge`); both
implementations' observation records are checked against it (`expect.check`).  A scenario
*agrees three ways* when both implementations satisfy the expectation and the prediction does
not contradict a pin.  Every disagreement must be explained: by the scenario's ``differences``
(INFORMATIONAL scenarios: where workerd standalone differs from production, or where the
reference implementation lacks a workerd configuration gate), or by the adapter's
NOT-IMPLEMENTED reason; anything else is UNEXPLAINED and fails the run, as does any
disagreement at level MUST.

Also the entry point other suites dispatch to: `run_for_conformance(args)` returns the
`conformance.results.ScenarioResult` records of one implementation (``--impl workerd`` or
``reference``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.results import Outcome, ScenarioResult
from iospec.errors import UserError

from . import reference, workerd
from .expect import check, conflicts, merge
from .predict import Prediction, predict
from .scenarios import Scenario, load_all, select

__all__ = ["IMPLEMENTATIONS", "Differential", "Row", "expectation", "fingerprint", "outcome_of", "run_differential",
           "run_for_conformance", "run_implementation", "scenario_result", "write_report"]

IMPLEMENTATIONS = ("reference", "workerd")
_PORT = re.compile(r"127\.0\.0\.1:[0-9]+")


@dataclass(frozen=True)
class Expected:
    """What a scenario expects: the prediction merged with the pins, and where the two contradict each other."""

    prediction: Prediction
    expect: dict[str, Any]
    conflicts: list[str]


def expectation(scenario: Scenario) -> Expected:
    prediction = predict(scenario)
    merged = merge(prediction.expect, scenario.expect)
    return Expected(prediction, merged, conflicts(prediction.expect, scenario.expect))


def outcome_of(scenario: Scenario, record: Mapping[str, Any], problems: Sequence[str]) -> tuple[Outcome, str]:
    """The `ScenarioResult` outcome of one observation and, for NOT-IMPLEMENTED / ERROR, why."""
    if record.get("not_implemented"):
        return "NOT-IMPLEMENTED", str(record["not_implemented"])
    if record.get("error"):
        return "ERROR", str(record["error"])
    if not problems:
        return "PASS", ""
    if scenario.level == "INFORMATIONAL":
        return "INFORMATIONAL", scenario.differences.get(str(record.get("implementation")), "")
    return "FAIL", ""


def scenario_result(scenario: Scenario, expected: Expected, record: Mapping[str, Any]) -> ScenarioResult:
    problems = [] if record.get("not_implemented") else check(expected.expect, record)
    outcome, reason = outcome_of(scenario, record, problems)
    return ScenarioResult(
        scenario_id=scenario.id, title=scenario.title, rules=list(scenario.rules), level=scenario.level,  # type: ignore[arg-type]
        suite="http", implementation=str(record.get("implementation")), implementation_version=str(record["version"]),
        outcome=outcome, prediction={"expect": expected.expect, "not_covered": expected.prediction.not_covered},
        observation=dict(record), differences=list(problems), reason=reason, trace=expected.prediction.trace or None,
        transitions=list(expected.prediction.transitions), duration=float(record.get("duration_ms", 0.0)) / 1000)


def run_implementation(implementation: str, scenarios: Sequence[Scenario], *, workerd_bin: str | None = None,
                       keep_dir: Path | None = None,
                       on_result: Callable[[dict[str, Any]], None] | None = None) -> workerd.BatchResult:
    """Run `scenarios` against one implementation; its batch of observation records."""
    if implementation == "workerd":
        binary = workerd.resolve_workerd(workerd_bin)
        return workerd.run_scenarios(scenarios, binary, keep_dir=keep_dir, on_result=on_result)
    if implementation == "reference":
        return reference.run_scenarios(scenarios, keep_dir=keep_dir, on_result=on_result)
    raise UserError(f"unknown implementation {implementation!r} (known: {', '.join(IMPLEMENTATIONS)})")


def run_for_conformance(args: Any) -> list[ScenarioResult]:
    """``iospec conformance --impl workerd|reference [--workerd-bin PATH]``: the HTTP suite's results.

    Reads ``impl`` (default workerd), ``workerd_bin``, ``slow``, ``ids`` (or ``scenarios``) and ``keep``
    from `args` when present.  Bad input raises `iospec.errors.UserError` (one line).
    """
    implementation = getattr(args, "impl", None) or "workerd"
    ids = list(getattr(args, "ids", None) or getattr(args, "scenarios", None) or [])
    scenarios = select(load_all(), ids=ids, slow=bool(getattr(args, "slow", False)))
    keep = getattr(args, "keep", None)
    batch = run_implementation(implementation, scenarios, workerd_bin=getattr(args, "workerd_bin", None),
                               keep_dir=Path(keep) if keep else None)
    by_id = {o["scenario"]: o for o in batch.observations}
    return [scenario_result(s, expectation(s), by_id[s.id]) for s in scenarios]


# --------------------------------------------------------------------------------------------- the report


def fingerprint(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a run observed without its timings, ports and log lines: two runs of one build must give the same."""
    if record.get("not_implemented") or record.get("error"):
        return {"not_run": str(record.get("not_implemented") or record.get("error"))}
    if "startup" in record:
        return {"startup_refused": record["startup"]["refused"]}
    responses = {}
    for rid, r in record.get("responses", {}).items():
        responses[rid] = {k: _PORT.sub("127.0.0.1:PORT", v) if isinstance(v, str) else v for k, v in r.items()
                          if k in ("outcome", "status", "body", "complete", "chunked", "connection")}
        if "headers" in r:
            responses[rid]["headers"] = sorted(h for h in r["headers"] if h != "date")
    events = sorted((e["event"], _PORT.sub("127.0.0.1:PORT", e["value"])) for e in record.get("events", []))
    return {"responses": responses, "events": [list(e) for e in events]}


@dataclass
class Row:
    scenario: Scenario
    expected: Expected
    results: dict[str, ScenarioResult] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return not self.expected.conflicts and all(r.outcome == "PASS" for r in self.results.values())

    def explanations(self) -> dict[str, str]:
        """Per disagreeing implementation (or 'model'), why; '' when nothing explains it."""
        out: dict[str, str] = {}
        if self.expected.conflicts:
            out["model"] = ""
        for name, result in self.results.items():
            if result.outcome != "PASS":
                out[name] = result.reason or self.scenario.differences.get(name, "")
        return out

    @property
    def blocking(self) -> bool:
        """A disagreement that fails the run: at level MUST, or one nothing explains, or a harness error."""
        if self.agrees:
            return False
        if any(r.outcome == "ERROR" for r in self.results.values()):
            return True
        return self.scenario.level == "MUST" or any(not why for why in self.explanations().values())


@dataclass
class Differential:
    rows: list[Row]
    batches: dict[str, workerd.BatchResult]
    wall_s: float

    @property
    def blocking(self) -> list[Row]:
        return [r for r in self.rows if r.blocking]

    def to_json(self) -> dict[str, Any]:
        return {
            "implementations": {name: {"version": b.version, "binary": b.binary, "wall_s": round(b.wall_s, 2),
                                       "processes_started": b.processes_started} for name, b in self.batches.items()},
            "wall_s": round(self.wall_s, 2),
            "scenarios": [{
                "id": row.scenario.id, "level": row.scenario.level, "rules": list(row.scenario.rules),
                "file": f"{row.scenario.file}:{row.scenario.line}", "agrees": row.agrees, "blocking": row.blocking,
                "explanations": row.explanations(), "model_conflicts": row.expected.conflicts,
                "prediction": row.expected.expect, "not_covered": row.expected.prediction.not_covered,
                "results": {name: {"outcome": r.outcome, "differences": r.differences, "reason": r.reason,
                                   "fingerprint": fingerprint(r.observation)} for name, r in row.results.items()},
            } for row in self.rows],
        }


def run_differential(scenarios: Sequence[Scenario], *, workerd_bin: str | None = None, keep_dir: Path | None = None,
                     implementations: Sequence[str] = IMPLEMENTATIONS,
                     on_row: Callable[[str, ScenarioResult], None] | None = None) -> Differential:
    started = time.monotonic()
    expected = {s.id: expectation(s) for s in scenarios}
    rows = {s.id: Row(s, expected[s.id]) for s in scenarios}
    batches: dict[str, workerd.BatchResult] = {}
    by_id = {s.id: s for s in scenarios}
    for name in implementations:
        def collect(record: dict[str, Any], name: str = name) -> None:
            scenario = by_id[record["scenario"]]
            result = scenario_result(scenario, expected[scenario.id], record)
            rows[scenario.id].results[name] = result
            if on_row:
                on_row(name, result)

        batches[name] = run_implementation(name, scenarios, workerd_bin=workerd_bin,
                                           keep_dir=keep_dir / name if keep_dir else None, on_result=collect)
    return Differential([rows[s.id] for s in scenarios], batches, time.monotonic() - started)


def _clip(text: str, limit: int = 60) -> str:
    text = text.replace("\n", "\\n").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _match_text(match: Mapping[str, str]) -> str:
    kind, value = next(iter(match.items()))
    return ("=" if kind == "equals" else "~") + repr(_clip(value, 50))


def summarise_expectation(expect: Mapping[str, Any]) -> str:
    if "startup" in expect:
        return "startup refused" if expect["startup"].get("refused") else "starts"
    parts = []
    for rid, want in expect.get("responses", {}).items():
        bits = [str(want.get("status", want.get("outcome", "response")))]
        if "body" in want:
            bits.append(_match_text(want["body"]))
        if want.get("complete") is False:
            bits.append("truncated")
        if "connection" in want:
            bits.append(want["connection"])
        parts.append(f"{rid}: " + " ".join(bits))
    events = [e["event"] for e in expect.get("events", [])]
    if events:
        parts.append("events " + ",".join(events))
    if expect.get("events_absent"):
        parts.append("no " + ",".join(expect["events_absent"]))
    if expect.get("logs"):
        parts.append(f"{len(expect['logs'])} log match(es)")
    return "; ".join(parts) or "(nothing predicted)"


def summarise_observation(record: Mapping[str, Any]) -> str:
    if record.get("not_implemented"):
        return "not implemented"
    if record.get("error"):
        return "error: " + _clip(str(record["error"]))
    if "startup" in record:
        return "startup refused" if record["startup"]["refused"] else "started"
    parts = []
    for rid, got in record.get("responses", {}).items():
        if got.get("outcome") != "response":
            parts.append(f"{rid}: {got.get('outcome')}")
            continue
        bits = [str(got.get("status")), repr(_clip(_PORT.sub("127.0.0.1:PORT", got.get("body", "")), 50))]
        if got.get("complete") is False:
            bits.append("truncated")
        bits.append(str(got.get("connection")))
        parts.append(f"{rid}: " + " ".join(bits))
    events = [e["event"] for e in record.get("events", [])]
    if events:
        parts.append("events " + ",".join(events))
    return "; ".join(parts)


def _markdown(diff: Differential) -> str:
    out = ["# Three-way differential: model prediction | reference implementation | workerd", ""]
    out.append("Generated by `iospec differential`.  Expected = the models' prediction (conformance/http/predict.py) "
               "merged with the observations the scenario pins because no model decides them.")
    out.append("")
    for name, batch in diff.batches.items():
        unit = "workerd processes" if name == "workerd" else "runtimes"
        out.append(f"* **{name}**: `{batch.version}` ({batch.binary}); {batch.wall_s:.1f} s, "
                   f"{batch.processes_started} {unit}")
    counts: dict[str, int] = {}
    for row in diff.rows:
        for name, result in row.results.items():
            counts[f"{name} {result.outcome}"] = counts.get(f"{name} {result.outcome}", 0) + 1
    agree = sum(row.agrees for row in diff.rows)
    out.append(f"* {len(diff.rows)} scenarios: {agree} agree three ways, {len(diff.rows) - agree} disagree "
               f"({len(diff.blocking)} blocking: MUST level or unexplained); "
               + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    out.append("")
    names = list(diff.batches)
    header = "| scenario | level | model prediction | " + " | ".join(names) + " |"
    rule = "|---|---|---|" + "---|" * len(names)
    disagreements = [r for r in diff.rows if not r.agrees]
    out += ["## Disagreements", ""]
    if not disagreements:
        out += ["None: every scenario agrees three ways.", ""]
    for row in disagreements:
        s = row.scenario
        flag = "BLOCKING" if row.blocking else "explained"
        out.append(f"### {s.id} ({s.level}, {flag})")
        out.append("")
        out.append(f"{s.title}.  {s.file}:{s.line}; rules {', '.join(s.rules)}.")
        out.append("")
        out.append(f"* model: {summarise_expectation(row.expected.expect)}")
        for c in row.expected.conflicts:
            out.append(f"  * the prediction contradicts a pin: {c}")
        for name, result in row.results.items():
            out.append(f"* {name}: **{result.outcome}**: {summarise_observation(result.observation)}")
            for d in result.differences[:6]:
                out.append(f"  * {_clip(d, 300)}")
        for name, why in row.explanations().items():
            out.append(f"* why {name} differs: {why or '**UNEXPLAINED**'}")
        if s.description:
            out.append(f"* scenario note: {s.description}")
        out.append("")
    out += ["## Agreements", "", header, rule]
    for row in diff.rows:
        if row.agrees:
            cells = [summarise_observation(row.results[n].observation) for n in names]
            out.append(f"| {row.scenario.id} | {row.scenario.level} | {summarise_expectation(row.expected.expect)} | "
                       + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def write_report(diff: Differential, out_dir: Path) -> tuple[Path, Path]:
    """reports/differential.md and .json (the JSON holds every observation fingerprint, for --compare)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "differential.md", out_dir / "differential.json"
    md.write_text(_markdown(diff), encoding="utf-8")
    js.write_text(json.dumps(diff.to_json(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return md, js


def compare_runs(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Differences between two differential JSON reports' outcomes and fingerprints (one line each)."""
    def index(report: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
        return {(s["id"], name): (r["outcome"], r["fingerprint"]) for s in report["scenarios"]
                for name, r in s["results"].items()}

    a, b = index(previous), index(current)
    out = [f"{key[0]} [{key[1]}]: only in {'the previous' if key in a else 'this'} run"
           for key in sorted(a.keys() ^ b.keys())]
    for key in sorted(a.keys() & b.keys()):
        if a[key] != b[key]:
            sid, name = key
            if a[key][0] != b[key][0]:
                out.append(f"{sid} [{name}]: outcome {a[key][0]} before, {b[key][0]} now")
            else:
                out.append(f"{sid} [{name}]: observed {json.dumps(a[key][1])[:200]} before, "
                           f"{json.dumps(b[key][1])[:200]} now")
    return out
