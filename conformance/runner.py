"""Run scenarios against an implementation: predict each step with the model, perform it, compare.

`run_scenario` is the harness's one loop.  For every step it first asks the model
(`conformance.model_run.ModelRun.perform`) what must be observed, then has the adapter
perform the operation, and compares the `Observation` with the `Prediction`; for an
operation whose ending the implementation chooses (a drain ends DONE or SUPERSEDED...), the
observation must be one of the endings the model allows, and the model follows it.  The first
difference ends the scenario (later steps would only repeat it) and becomes a FAIL with the
steps so far as the minimal replayable trace.  When the adapter records a trace
(docs/trace-format.md), the monitors check it too (properties/monitor.py): a step the models
forbid is a FAIL even if every observation matched.

`run_traces` is the trace suite: each recorded NDJSON file (``--trace``) is checked by
`properties.tracecheck.check_trace` and becomes one result.

Every suite produces `conformance.results.ScenarioResult` records; `apply_expectations` turns
listed known failures into XFAIL (and a listed scenario that passes into XPASS).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from model.catalog import MODELS, get_model
from properties.monitor import Monitor, MonitorViolation

from .adapter import Implementation, Observation, Session, Setup
from .expectations_file import Expectations
from .model_run import Prediction
from .operations import OPS
from .results import ScenarioResult
from .scenario import Scenario

__all__ = ["Timing", "apply_expectations", "defining_model", "run_scenario", "run_suite", "run_traces",
           "transition_name"]


class Timing:
    """Where the time went: predicting with the model vs the implementation performing."""

    def __init__(self) -> None:
        self.model = 0.0
        self.implementation = 0.0
        self.monitor = 0.0


@functools.cache
def _defining() -> dict[str, str]:
    """Each action name -> the smallest catalogue model that has it (the model that defines it)."""
    out: dict[str, str] = {}
    for name in sorted(MODELS, key=lambda n: len(get_model(n).actions)):
        for a in get_model(name).actions:
            out.setdefault(a.name, name)
    return out


def defining_model(action: str) -> str:
    return _defining().get(action, "?")


def transition_name(action: str) -> str:
    """``model.action`` with the model that defines the action (composed models share their parts' actions)."""
    return f"{defining_model(action)}.{action}"


@functools.lru_cache(maxsize=16)
def _compiled_monitor(models: tuple[str, ...], consts: tuple[tuple[str, int], ...]) -> Monitor:
    return Monitor(list(models), history=12, consts=dict(consts))


def _monitor(models: tuple[str, ...], consts: tuple[tuple[str, int], ...]) -> Monitor:
    """A monitor in its initial state (compiling the models' monitors is most of a monitor's cost: reuse)."""
    mon = _compiled_monitor(models, consts)
    mon.reset()
    return mon


def _compare(pred: Prediction, obs: Observation) -> list[str]:
    seen = obs.to_json()
    diffs = []
    for key, want in pred.expect.items():
        if key == "message":
            if want is not None and obs.message != want:
                diffs.append(f"message: expected {want!r}, observed {obs.message!r}")
            continue
        got = seen.get(key)
        if got != want:
            diffs.append(f"{key}: expected {want!r}, observed {got!r}")
    return diffs


def _match_allowed(pred: Prediction, obs: Observation) -> int | None:
    seen = obs.to_json()
    for k, allowed in enumerate(pred.allowed):
        if all(seen.get(key) == v for key, v in allowed.items() if key not in ("taken", "state", "action")):
            return k
    return None


def _step_args(op_name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    op = OPS[op_name]
    full = {**op.defaults, **args}
    return {p: full.get(p) for p in op.params}


def run_scenario(sc: Scenario, impl: Implementation, *, seed: int = 0, timing: Timing | None = None) -> ScenarioResult:
    """One scenario against one implementation (never raises for the implementation's misbehaviour)."""
    timing = timing or Timing()
    start = time.perf_counter()
    res = ScenarioResult(scenario_id=sc.id, title=sc.title, rules=list(sc.rules), level=sc.level,  # type: ignore[arg-type]
                         suite="model", implementation=impl.name, implementation_version=impl.version,
                         outcome="PASS", seed=seed)
    needed = sorted({OPS[s.op].capability for s in sc.steps} - set(impl.capabilities))
    if needed:
        res.outcome = "NOT-IMPLEMENTED"
        res.reason = f"the implementation lacks capability {', '.join(needed)}"
        return res
    t0 = time.perf_counter()
    run = sc.model_run()
    timing.model += time.perf_counter() - t0
    steps: list[dict[str, Any]] = []
    res.prediction, res.observation = [], []
    # the first request's phase after each step: the failure report draws its path on the lifecycle diagram
    first_request = next(iter(sc.identities().get("Req", [])), None) if run.has("phase") else None
    session: Session | None = None
    try:
        t0 = time.perf_counter()
        trace_models: tuple[str, ...] = (sc.model,)
        if any(st.op == "fetch" and st.args.get("actor") for st in sc.steps):
            trace_models += ("actor",)  # the actor model checks the actor's one context (setIoContext)
        session = impl.open(Setup(scenario=sc.id, model=sc.model, trace_models=trace_models,
                                  threads=tuple(sc.threads()), consts=dict(sc.consts), seed=seed))
        timing.implementation += time.perf_counter() - t0
        for k, st in enumerate(sc.steps, 1):
            t0 = time.perf_counter()
            pred = run.perform(st.op, st.args, where=f"{sc.where} step {k}")
            t1 = time.perf_counter()
            timing.model += t1 - t0
            try:
                obs = getattr(session, st.op)(**_step_args(st.op, st.args))
            finally:
                timing.implementation += time.perf_counter() - t1
            if not isinstance(obs, Observation):
                raise TypeError(f"{impl.name}: {st.op} returned {type(obs).__name__}, not an Observation")
            diffs: list[str] = []
            if obs.failure:
                diffs.append(f"could not perform: {obs.failure}")
            elif pred.allowed:
                idx = _match_allowed(pred, obs)
                if idx is None:
                    shown = " or ".join(str({k2: v for k2, v in a.items() if k2 not in ("taken", "state", "action")})
                                        for a in pred.allowed)
                    diffs.append(f"observed {obs.to_json()}, the model allows {shown}")
                    run.choose(pred, 0)
                else:
                    run.choose(pred, idx)
            else:
                diffs = _compare(pred, obs)
            res.prediction.append({"step": k, "op": st.render(), **pred.to_json()})
            if first_request is not None:
                res.prediction[-1]["lifecycle_phase"] = {first_request: run.cell("phase", first_request)}
            res.observation.append({"step": k, "op": st.render(), **obs.to_json()})
            steps.append({"step": k, "op": st.render(), "line": st.line})
            if diffs:
                res.differences = [f"step {k} {st.render()} ({sc.file}:{st.line}): {d}" for d in diffs]
                break
        t0 = time.perf_counter()
        trace = session.trace()
        timing.implementation += time.perf_counter() - t0
        if trace is not None and trace.events:
            t0 = time.perf_counter()
            models = [m for m in trace.header.get("models", [sc.model]) if m in MODELS] or [sc.model]
            mon = _monitor(tuple(models), tuple(sorted(sc.consts.items())))
            try:
                for n, event in enumerate(trace.events, 1):
                    mon.step(event, line=n)
            except MonitorViolation as v:
                res.differences.append(f"trace: {v}")
                res.trace = [dict(e) for e in mon.recent]
            timing.monitor += time.perf_counter() - t0
        if res.differences and res.trace is None:
            res.trace = steps
        if res.differences:
            res.outcome = "INFORMATIONAL" if sc.level == "INFORMATIONAL" else "FAIL"
    except NotImplementedError as e:
        res.outcome, res.reason = "NOT-IMPLEMENTED", str(e) or "not implemented"
    except Exception as e:  # the adapter crashed or timed out: an ERROR, reported on one line
        res.outcome, res.reason = "ERROR", f"{type(e).__name__}: {e}"
        res.trace = steps
    finally:
        if session is not None:
            t0 = time.perf_counter()
            try:
                session.close()
            except Exception as e:
                if res.outcome == "PASS":
                    res.outcome, res.reason = "ERROR", f"closing the session: {type(e).__name__}: {e}"
            timing.implementation += time.perf_counter() - t0
    res.transitions = [transition_name(t.action) for t in run.path]
    res.duration = time.perf_counter() - start
    return res


def run_suite(scenarios: Sequence[Scenario], impl: Implementation, *, seed: int = 0, timing: Timing | None = None,
              progress: Callable[[ScenarioResult], None] | None = None) -> list[ScenarioResult]:
    out = []
    for sc in scenarios:
        r = run_scenario(sc, impl, seed=seed, timing=timing)
        out.append(r)
        if progress is not None:
            progress(r)
    return out


def run_traces(paths: Iterable[str | Path]) -> list[ScenarioResult]:
    """The trace suite: one result per recorded trace (a malformed file is a UserError naming file and line)."""
    from iospec.errors import UserError
    from properties.tracecheck import TraceFormatError, check_trace

    out = []
    for p in paths:
        start = time.perf_counter()
        try:
            rep = check_trace(p, final_check=True)
        except TraceFormatError as e:
            raise UserError(str(e)) from None
        except OSError as e:
            raise UserError(f"{p}: cannot read: {e.strerror or e}") from None
        v = rep.violation
        # a violation names its rules; a clean trace checked the rules of every action it took
        rules = list(v.rules) if v is not None and v.rules else _rules_of_ops(rep.per_op)
        res = ScenarioResult(
            scenario_id=f"trace:{Path(p).name}", title=f"recorded trace {p}", rules=rules, level="MUST",
            suite="trace", implementation=rep.implementation or "trace", implementation_version="",
            outcome="PASS" if rep.ok else "FAIL",
            observation={"events": rep.events, "models": rep.models},
            transitions=[transition_name(op) for op, n in rep.per_op.items() for _ in range(n)
                         if defining_model(op) != "?"],
            duration=time.perf_counter() - start)
        if v is not None:
            res.differences = [v.report()]
            res.trace = [dict(e) for e in v.recent] if getattr(v, "recent", None) else None
        elif rep.end_violations:
            res.differences = [f"invariants violated at the end: {', '.join(rep.end_violations)}"]
        out.append(res)
    return out


def _rules_of_ops(ops: Iterable[str]) -> list[str]:
    out: dict[str, None] = {}
    for op in ops:
        model = defining_model(op)
        if model == "?":
            continue
        action = next((a for a in get_model(model).actions if a.name == op), None)
        for r in (action.rules if action is not None else ()):
            out.setdefault(r, None)
    return sorted(out)


def apply_expectations(results: list[ScenarioResult], expectations: Expectations | None) -> list[ScenarioResult]:
    """Known failures become XFAIL; a listed scenario that passes is XPASS (an error: update the file)."""
    if expectations is None:
        return results
    for r in results:
        reason = expectations.reason_for(r.implementation, r.scenario_id)
        if reason is None:
            continue
        r.reason = reason
        if r.outcome == "FAIL":
            r.outcome = "XFAIL"
        elif r.outcome == "PASS":
            r.outcome = "XPASS"
            r.differences.append("listed as a known failure but passed: update the expectations file "
                                 f"({expectations.path})")
    return results


def kill_faults(scenarios: Sequence[Scenario], faults: Sequence[str], *, first_only: bool = True,
                progress: Callable[[str, list[str]], None] | None = None) -> dict[str, list[str]]:
    """For each seeded fault of the reference implementation: the MUST scenarios it fails.

    Scenarios checking the fault's rule run first; with ``first_only`` a fault stops at its
    first failing scenario (a kill).  An ERROR counts as a kill only if the reference passes.
    """
    from reference_impl.faults import FAULTS

    from .reference_adapter import ReferenceImplementation

    must = [s for s in scenarios if s.level == "MUST"]
    out: dict[str, list[str]] = {}
    for name in faults:
        rule = FAULTS[name].rule
        ordered = sorted(must, key=lambda s: (rule not in s.rules, s.generated, s.id))
        impl = ReferenceImplementation([name])
        killed: list[str] = []
        for sc in ordered:
            r = run_scenario(sc, impl)
            if r.outcome in ("FAIL", "ERROR"):
                killed.append(sc.id)
                if first_only:
                    break
        out[name] = killed
        if progress is not None:
            progress(name, killed)
    return out
