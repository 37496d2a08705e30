"""The compiled trace checker (C generated from the models) agrees with the Python monitors.

Differential tests: the same trace checked by both engines gets the same verdict and the same
first bad line (and the same kind of violation).  Traces come from

* the example traces in examples/traces/ (clean and seeded violations);
* the reference implementation with each seeded fault of `reference_impl.faults` switched on
  (the scenarios of tests/test_reference_faults.py, recorded to NDJSON);
* every seeded fault variant of every model (`model.faults`): its violating run, checked
  against the variant (the C engine must report the broken invariant at the same line: every
  invariant check in C can fail) and against the correct model;
* random walks of every model, clean, and with one random event (any action, any arguments,
  any reported result) inserted: the violation paths (guards, results, outputs, invariants);
* malformed lines: the C engine stops and the Python engine's error is the one reported;
* the live engine's reads (`CompiledStepper.state`, `cells`, `held`, `predict`) after every event
  of random walks and of a recorded run equal the Python monitor's, and seeded faults of each read
  make that comparison fail.

Skipped when no C compiler is available.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import inspect
import io
import json
import random
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reference_throughput import Bench
from iospec.cli import main
from model.catalog import MODELS, get_model
from model.core import Model, compile_dense
from model.core.errors import EvaluationError
from model.core.model import Action, Func
from model.core.sorts import BoolSort, EnumSort, IntSort, OptSort
from model.faults import FAULTS as MODEL_FAULTS
from properties.compiled.engine import compiled_checker, find_compiler
from properties.monitor import Monitor, MonitorViolation
from properties.tracecheck import TraceFormatError, check_compiled, check_trace
from tests.test_monitor import event_for, first_violating_run, random_walk

pytestmark = pytest.mark.skipif(find_compiler() is None, reason="no C compiler")


@pytest.fixture(autouse=True)
def _fast_builds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkers built here compile at -O0 (10x faster than -O2); `test_optimised_build` checks -O2."""
    if "optimised" not in request.node.name:
        monkeypatch.setenv("IOSPEC_C_OPT", "-O0")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "traces").glob("*.ndjson"))
TRACE_MODELS = ["context", "ownership", "lifecycle", "entrypoint", "actor", "locks"]


def _write(path: Path, models: list[str], events: list[dict[str, Any]]) -> Path:
    with path.open("w") as f:
        f.write(json.dumps({"iospec_trace": 1, "models": models}) + "\n")
        for i, e in enumerate(events, 1):
            f.write(json.dumps({"seq": i, **e}) + "\n")
    return path


def python_verdict(path: Path) -> tuple[tuple[str, Any], Any]:
    """(kind, line) or ("format", message), and the Python engine's report."""
    try:
        rep = check_trace(path, engine="python")
    except TraceFormatError as e:
        return ("format", str(e)), None
    if rep.violation is None:
        return ("clean", None), rep
    return (rep.violation.kind, rep.violation.line), rep


def assert_agree(path: Path, *, may_bail: bool = False) -> tuple[str, Any]:
    """Both engines' verdicts on ``path`` agree; returns the Python one.

    ``may_bail``: the input is unusual (e.g. an identity given as a list), so the C engine may
    leave it to the Python engine (``bail``) even where the Python engine accepts it.
    """
    want, p_rep = python_verdict(path)
    _, got = check_compiled(path)
    assert got is not None
    if want[0] == "format":
        assert got.kind == "bail", f"{path}: python: {want[1]}; c: {got}"
        with pytest.raises(TraceFormatError, match=re.escape(want[1])):
            check_trace(path, engine="c")
        return want
    if not (may_bail and got.kind == "bail"):
        assert (got.kind, got.line) == want, f"{path}: python {want}, c {got.kind} at line {got.line}"
    # end to end, `--engine c` reports exactly what `--engine python` reports (the timing aside)
    c_rep = check_trace(path, engine="c")
    assert c_rep.engine == ("c" if want[0] == "clean" and got.kind == "clean" else "python")
    strip = lambda s: s.split(" (")[0] if p_rep.ok else s
    assert strip(c_rep.summary()) == strip(p_rep.summary())
    return want


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_traces(path: Path) -> None:
    assert_agree(path)


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_optimised_build(path: Path) -> None:
    """The default -O2 build (what users run; the first build takes 20-60s) agrees too."""
    assert_agree(path)


def test_without_a_compiler(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """auto: one line of notice and the Python engine; c: a one-line error, exit 2."""
    import properties.compiled.engine as engine

    monkeypatch.setattr(engine, "find_compiler", lambda: None)
    monkeypatch.setattr(engine, "_cache", {})
    clean = str(ROOT / "examples" / "traces" / "clean_demo.ndjson")
    assert main(["check-trace", clean]) == 0
    out = capsys.readouterr()
    assert "no violation" in out.out and out.err.count("\n") == 1 and "Python engine" in out.err
    assert main(["check-trace", "--engine", "c", clean]) == 2
    err = capsys.readouterr().err
    assert "no C compiler" in err and err.count("\n") == 1


def test_cli_engine_choice(capsys: pytest.CaptureFixture[str]) -> None:
    bad = ROOT / "examples" / "traces" / "fault_access_check_missing.ndjson"
    assert main(["check-trace", "--engine", "c", str(bad)]) == 1
    c_out = capsys.readouterr().out
    assert main(["check-trace", "--engine", "python", str(bad)]) == 1
    assert c_out == capsys.readouterr().out, "the same report, word for word"
    clean = ROOT / "examples" / "traces" / "clean_demo.ndjson"
    assert main(["check-trace", "--engine", "c", str(clean)]) == 0
    assert "no violation" in capsys.readouterr().out


# ---- the reference implementation with each seeded fault ------------------------------------------------


#: faults whose recorded trace is clean: caught by comparing statistics with the model, or only in an
#: unlucky schedule (predictive checking); see tests/test_reference_faults.py
NOT_IN_THE_TRACE = ("abort_last_reason_wins", "drain_waits_for_tasks", "last_failure_wins", "queue_closed_without_lock",
                    "queue_lock_skipped")


def _reference_fault_names() -> list[str]:
    from reference_impl.faults import FAULTS

    return sorted(FAULTS)


@pytest.mark.parametrize("fault", ["(none)", *_reference_fault_names()])
def test_reference_fault_traces(fault: str, tmp_path: Path) -> None:
    from reference_impl import Runtime
    from reference_impl.trace import NdjsonSink
    from tests.test_reference_faults import SCENARIOS

    results = []
    for name, sc in sorted(SCENARIOS.items()):
        if fault != "(none)" and name != fault:
            continue
        buf = io.StringIO()
        kw: dict[str, Any] = dict(sc.kw or {})
        if "new_context(" in inspect.getsource(sc.run):
            from reference_impl.runtime import TRACE_MODELS as TM

            kw.setdefault("models", [m for m in TM if m != "entrypoint"])
        rt = Runtime(threads=sc.threads, faults={fault} if fault != "(none)" else set(), monitor=False,
                     trace=[NdjsonSink(buf)], memory_trace=False, **kw)
        try:
            try:
                sc.run(rt)
            except Exception:  # the faulty run may fail; its trace up to there is what is checked
                pass
        finally:
            rt.close()
        path = tmp_path / f"{name}.ndjson"
        path.write_text(buf.getvalue())
        results.append((name, assert_agree(path)))
    assert results
    if fault not in ("(none)", *NOT_IN_THE_TRACE):
        assert results[0][1][0] in ("not_allowed", "wrong_result", "wrong_output", "invariant"), results
    if fault == "(none)":
        assert all(v[0] in ("clean", "format") for _, v in results), results
        assert sum(v[0] == "clean" for _, v in results) > len(results) // 2, results


@pytest.mark.parametrize("scenario", ["gc_drop_vs_entry", "gc_drop_vs_teardown", "churn"])
@pytest.mark.parametrize("faults", [(), ("queue_lock_skipped",), ("delete_on_wrong_thread",)], ids=str)
def test_multithreaded_scenarios_with_sync_notes(scenario: str, faults: tuple[str, ...], tmp_path: Path) -> None:
    """Real threads, with the synchronisation recorded as note.* events (skipped by both engines)."""
    from reference_impl.scenarios import record_uncontrolled

    path = tmp_path / "run.ndjson"
    record_uncontrolled(scenario, faults=faults, trace_path=path)
    assert '"op": "note.' in path.read_text()
    assert_agree(path)


# ---- the live monitor on the compiled engine ------------------------------------------------------------


@pytest.mark.parametrize("fault", ["(none)", "access_check_missing", "double_deletion", "run_after_abort",
                                   "pass_through_ignored", "superseded_drain_not_cancelled"])
def test_live_compiled_monitor(fault: str) -> None:
    """Runtime(monitor="c") reports what the Python monitor reports on the same run (which writes the report)."""
    from reference_impl import Runtime
    from reference_impl.monitoring import LiveMonitor, monitor_consts
    from tests.test_reference_faults import SCENARIOS

    sc = SCENARIOS["access_check_missing" if fault == "(none)" else fault]
    kw: dict[str, Any] = dict(sc.kw or {})
    if "new_context(" in inspect.getsource(sc.run):
        from reference_impl.runtime import TRACE_MODELS as TM

        kw.setdefault("models", [m for m in TM if m != "entrypoint"])
    rt = Runtime(threads=sc.threads, faults={fault} if fault != "(none)" else set(), monitor="c", **kw)
    try:
        try:
            sc.run(rt)
        except Exception:  # the faulty run may fail; what was recorded is compared
            pass
    finally:
        rt.close()
    assert rt.trace is not None
    python = LiveMonitor(list(rt.recorder.header["models"]), monitor_consts(rt))
    for e in rt.trace.events:
        python.on_event(e)
    assert (rt.monitor.ok, rt.monitor.report()) == (python.ok, python.report())
    assert rt.monitor.ok == (fault == "(none)")
    if fault == "(none)":
        assert rt.monitor.compiled is not None, "a clean run stays on the compiled engine"


def test_live_compiled_monitor_state_on_demand() -> None:
    """`compare_with_model` reads the model state from the compiled engine, which keeps checking; a read of
    ``.monitor`` builds the Python monitor from the accepted events, which then takes over (and agrees)."""
    from reference_impl import Runtime
    from reference_impl.monitoring import compare_with_model
    from tests.reference_helpers import drain, new_context, run_in

    with Runtime(threads=2, monitor="c", memory_trace=False,
                 models=["context", "ownership", "lifecycle", "actor", "locks"]) as rt:
        ctx, r = new_context(rt, 0)
        run_in(rt, ctx, lambda: None)
        assert rt.monitor.compiled is not None and rt.monitor.events > 0
        assert compare_with_model(rt) == []
        assert rt.monitor.engine == "c", "the compiled engine answered the reads"
        assert rt.monitor.state("context") == rt.monitor.monitor.state("context")
        assert rt.monitor.compiled is None and rt.monitor.engine == "python", "the Python monitor took over"
        drain(rt, r)
        assert rt.monitor.ok and compare_with_model(rt) == []


_BUILT_MONITORS: dict[str, Monitor] = {}


@pytest.fixture
def reused_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """LiveMonitors here share one reset `Monitor` per model set (building one compiles the models: ~1.5 s)."""
    import reference_impl.monitoring as monitoring

    def reset_monitor(models: list[str], consts: dict[str, int], history: int) -> Monitor:
        key = repr((models, sorted(consts.items()), history))
        if key not in _BUILT_MONITORS:
            _BUILT_MONITORS[key] = Monitor(models, consts=consts, history=history)
        _BUILT_MONITORS[key].reset()
        return _BUILT_MONITORS[key]

    monkeypatch.setattr(monitoring, "Monitor", reset_monitor)


@functools.cache
def _recorded_events(requests: int) -> tuple[list[str], dict[str, int], list[dict[str, Any]]]:
    from reference_impl import Request, Runtime
    from reference_impl.monitoring import monitor_consts

    with Runtime(threads=2, record_sync=True) as rt:
        rt.add_worker("b", Bench)  # a response, an I/O object, a waitUntil task: every model takes part
        for i in range(requests):
            rt.fetch("b", Request(), thread=i % 2)
        rt.settle()
        assert rt.trace is not None
        return list(rt.recorder.header["models"]), monitor_consts(rt), list(rt.trace.events)


def _copy(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "args": dict(e["args"])} for e in events]


def _fed(models: list[str], consts: dict[str, int], events: list[dict[str, Any]], engine: str,
         thread: bool = True) -> Any:
    """A LiveMonitor given ``events`` through the sink call the recorder makes (the builtin, for the C engine;
    ``thread``: it checks them on its own thread)."""
    from reference_impl.monitoring import LiveMonitor

    live = LiveMonitor(models, consts, engine=engine, thread=thread)
    if engine == "c":
        assert live.compiled is not None and live.compiled.sink_event is not None
    sink = live.sink_event()
    for e in events:
        sink(e)
    return live


class _Str(str):
    pass


def _with_arg(e: dict[str, Any], value: Any) -> dict[str, Any]:
    args = dict(e["args"])
    args[next(iter(args))] = value
    return {**e, "args": args}


#: an event of the trace changed in a way the compiled engine's dict entry must treat exactly as its JSON
#: text would be treated (or hand to the Python engine)
ODD_EVENTS: dict[str, Any] = {
    "float argument": lambda e: _with_arg(e, 1.5),
    "str subclass identity": lambda e: _with_arg(e, _Str(next(iter(e["args"].values())))),
    "integer identity": lambda e: _with_arg(e, 7),
    "huge integer identity": lambda e: _with_arg(e, 10 ** 18),
    "18-digit integer identity": lambda e: _with_arg(e, -(10 ** 18 - 1)),
    "identity with a quote": lambda e: _with_arg(e, 'ctx-"1'),
    "identity with DEL": lambda e: _with_arg(e, "ctx-\x7f"),
    "non-ASCII identity": lambda e: _with_arg(e, "ctx-\u00e9"),
    "lone surrogate identity": lambda e: _with_arg(e, "ctx-\ud800"),
    "None argument": lambda e: _with_arg(e, None),
    "list argument": lambda e: _with_arg(e, [1]),
    "non-str argument name": lambda e: {**e, "args": {**e["args"], 1: "x"}},
    "escaped argument name": lambda e: {**e, "args": {**e["args"], "a\"b": "x"}},
    "extra argument": lambda e: {**e, "args": {**e["args"], "zz": "x"}},
    "no args": lambda e: {k: v for k, v in e.items() if k != "args"},
    "bool seq": lambda e: {**e, "seq": True},
    "seq going back": lambda e: {**e, "seq": 1},
    "result None": lambda e: {**e, "result": None},
    "wrong result": lambda e: {**e, "result": "SOMETHING_ELSE"},
    "outputs not a dict": lambda e: {**e, "outputs": "x"},
    "unknown op": lambda e: {**e, "op": "no_such_op"},
    "note op": lambda e: {**e, "op": "note.x", "args": {"nested": {"a": [1.5]}}},
    "no op": lambda e: {k: v for k, v in e.items() if k != "op"},
    "thread not JSON": lambda e: {**e, "thread": object()},
}


@pytest.mark.parametrize("thread", [True, False], ids=["engine thread", "inline"])
@pytest.mark.parametrize("change", sorted(ODD_EVENTS))
def test_live_dict_entry_agrees_on_odd_events(change: str, thread: bool, reused_monitor: None) -> None:
    """The live compiled monitor reads the recorder's dicts itself: odd values get the Python monitor's verdict."""
    models, consts, events = _recorded_events(3)
    events = _copy(events)
    checked = [i for i, e in enumerate(events) if not e["op"].startswith("note.") and e.get("args")]
    k = checked[len(checked) // 2]  # mid-run: events before it are accepted, events after it pending
    changed = events[:k] + [ODD_EVENTS[change](dict(events[k]))] + events[k + 1:]
    outcomes = []
    for engine in ("c", "python"):
        try:
            live = _fed(models, consts, changed, engine, thread)
            if engine == "c" and live.compiled is not None:
                _assert_logged_exactly(live.compiled, changed)
            outcomes.append((live.ok, live.report(), live.events))
        except Exception as e:  # an event the Python monitor cannot take fails both engines the same way
            outcomes.append((type(e).__name__, str(e), 0))
    assert outcomes[0] == outcomes[1]


def _assert_logged_exactly(stepper: Any, events: list[dict[str, Any]]) -> None:
    """The events the C accepted, as its log rebuilds them, are the recorder's (what a monitor reads of them)."""
    stepper.forward()
    accepted, _ = stepper.accepted_and_pending()
    fields = ("seq", "op", "args", "result", "outputs")
    given = [{k: e[k] for k in fields if k in e} for e in events if not str(e.get("op", "")).startswith("note.")]
    assert [{k: e[k] for k in fields if k in e} for e in accepted] == given[:len(accepted)]
    assert all(type(v) is type(w) for a, g in zip(accepted, given) for v, w in zip(a["args"].values(),
                                                                                   g["args"].values()))


@pytest.mark.parametrize("thread", [True, False], ids=["engine thread", "inline"])
def test_live_compiled_monitor_long_run_take_over(thread: bool) -> None:
    """Past the engine's lag and its held events: the Python monitor rebuilt from the log has the same state,
    and its recent events are the recorder's dicts themselves."""
    from reference_impl.monitoring import HISTORY

    models, consts, events = _recorded_events(40)
    checked = [e for e in events if not e["op"].startswith("note.")]
    assert len(checked) > 300 + HISTORY  # more than LIVE_LAG + the held events
    c = _fed(models, consts, events, "c", thread)
    python = _fed(models, consts, events, "python")
    assert c.compiled is not None and c.events == python.events == len(checked)
    _assert_logged_exactly(c.compiled, events)
    for m in python.monitor.watched:
        assert c.monitor.state(m.model.name) == python.monitor.state(m.model.name)
    assert c.compiled is None and all(a is b for a, b in zip(c.monitor.recent, checked[-HISTORY:], strict=True))


def test_live_compiled_monitor_after_step_and_close(reused_monitor: None) -> None:
    """after_step sees exactly the events recorded after it was set; after close, events go to the Python engine."""
    models, consts, events = _recorded_events(2)
    half = len(events) // 2
    live = _fed(models, consts, events[:half], "c")
    seen: list[int] = []
    live.after_step = lambda e, predicted: seen.append(e["seq"])
    sink = live.compiled.sink_event
    for e in events[half:]:
        sink(e)
    assert live.ok and seen == [e["seq"] for e in events[half:] if not e["op"].startswith("note.")]
    closed = _fed(models, consts, events[:half], "c")
    closed.close()
    sink = closed.sink_event()
    for e in events[half:]:
        sink(e)  # late events: the Python monitor takes over
    assert closed.ok and closed.compiled is None and closed.events == live.events


@pytest.mark.parametrize("thread", [True, False], ids=["engine thread", "inline"])
def test_after_step_skips_events_the_compiled_engine_held_when_a_reader_takes_over(thread: bool,
                                                                                   reused_monitor: None) -> None:
    """The compiled engine stops mid-run (an event it cannot decide), later events wait in it, then after_step is
    set and another thread reads the verdict: the Python monitor takes over on that thread, and after_step still
    sees exactly the events recorded after it was set, each on the thread that recorded it.  (Checking inline, the
    recording thread takes over at the stop, so nothing is held.)"""
    models, consts, events = _recorded_events(2)
    checked = [i for i, e in enumerate(events) if not e["op"].startswith("note.") and e.get("args")]
    k, m = checked[len(checked) // 3], checked[2 * len(checked) // 3]
    changed = _copy(events)
    changed[k] = ODD_EVENTS["seq going back"](changed[k])  # the C stops (it checks seq); Python accepts it
    live = _fed(models, consts, changed[:m], "c", thread)
    if thread:
        assert live.compiled is not None
        live.compiled.drain()
        assert live.compiled.status()[2] is not None  # stopped at the changed event, the rest held
        sink = live.compiled.sink_event
    else:
        assert live.compiled is None  # checking inline, the recording thread took over at the stop: none held
        sink = live.sink_event()
    seen: list[tuple[int, str]] = []
    live.after_step = lambda e, predicted: seen.append((e["seq"], threading.current_thread().name))
    reader = threading.Thread(target=lambda: live.violation, name="reader")
    reader.start()
    reader.join()
    assert live.compiled is None  # the reader's read made the Python monitor take over
    for e in changed[m:]:
        sink(e)
    recorder = threading.current_thread().name
    assert seen == [(e["seq"], recorder) for e in changed[m:] if not e["op"].startswith("note.")]
    python = _fed(models, consts, changed, "python")
    assert (live.ok, live.events) == (python.ok, python.events)


def test_without_the_dict_entry_the_python_monitor_checks(reused_monitor: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the builtin cannot be made (no ``ctypes.pythonapi``, the engine's thread does not start), a live
    monitor asked for the C engine checks with the Python monitor: the same verdict on a clean run and a bad one."""
    from properties.compiled.engine import CompiledStepper
    from reference_impl.monitoring import LiveMonitor

    monkeypatch.setattr(CompiledStepper, "_setup_dict_entry", lambda self, history, thread: None)
    models, consts, events = _recorded_events(2)
    bad = _copy(events)
    wrong = next(i for i in range(len(bad) // 2, len(bad)) if bad[i].get("result") == "OK")
    bad[wrong]["result"] = "ERR_ABORTED"  # a step the models predict OK reports an error
    for run in (events, bad):
        live = LiveMonitor(models, consts, engine="c")
        assert live.compiled is None
        for e in run:
            live.sink_event()(e)
        python = _fed(models, consts, run, "python")
        assert (live.ok, live.events, live.report()) == (python.ok, python.events, python.report())
    assert not live.ok


def test_the_sink_outlives_its_stepper(reused_monitor: None) -> None:
    """A recorder keeps calling the compiled engine's builtin after the Python monitor took over and the stepper
    was dropped (and collected): the objects the C calls (the fallback) live as long as the builtin."""
    import gc

    models, consts, events = _recorded_events(2)
    live = _fed(models, consts, events[:20], "c")
    sink = live.compiled.sink_event
    assert live.monitor is not None and live.compiled is None  # took over: nothing references the stepper now
    gc.collect()
    for e in events[20:]:
        sink(e)
    python = _fed(models, consts, events, "python")
    assert (live.ok, live.events) == (python.ok, python.events)


# ---- seeded fault variants of the models ----------------------------------------------------------------


def _c_verdict(models: list[Model], path: Path) -> tuple[str, int | None]:
    checker = compiled_checker(models)
    assert checker is not None
    with path.open("rb") as f:
        offset = len(f.readline())
    res = checker.check(path, offset, 2)
    return res.kind, res.line


def _py_verdict(models: list[Model], events: list[dict[str, Any]]) -> tuple[str, int | None]:
    mon = Monitor(models)
    try:
        for n, e in enumerate(events, 2):
            mon.step(e, line=n)
    except MonitorViolation as v:
        return v.kind, v.line
    except EvaluationError:
        return "error", n
    return "clean", None


#: faults that break invariants (not only liveness: a deadlock has no violating event); the default run
#: takes the first of each model (each variant is its own C build), ``IOSPEC_SLOW=1`` all of them
INVARIANT_FAULTS = [f for f in MODEL_FAULTS if set(f.breaks) - {"deadlock"}]
_FIRST = {id(f) for m in MODELS for f in [g for g in INVARIANT_FAULTS if g.model == m][:1]}


@pytest.mark.parametrize("fault", [pytest.param(f, marks=() if id(f) in _FIRST else pytest.mark.slow)
                                   for f in INVARIANT_FAULTS], ids=lambda f: f"{f.model}/{f.name}")
def test_model_fault_variants(fault: Any, tmp_path: Path) -> None:
    """The variant's violating run: the C engine reports the invariant where the Python engine does."""
    base, variant, dm, trace = first_violating_run(fault)
    events = [event_for(dm, s, st.instance) for s, st in zip(trace.states, trace.steps)]
    path = _write(tmp_path / "run.ndjson", [fault.model], events)
    want = _py_verdict([variant], events)
    assert _c_verdict([variant], path) == want
    assert _c_verdict([base], path) == _py_verdict([base], events)


# ---- random walks --------------------------------------------------------------------------------------

WALK_BOUNDS = {
    "context": {"threads": 2, "contexts": 3},
    "ownership": {"threads": 2, "contexts": 2, "objects": 3, "max_actions": 1},
}


def _bounds(name: str) -> dict[str, int]:
    if name in WALK_BOUNDS:
        return WALK_BOUNDS[name]
    faults = [f for f in MODEL_FAULTS if f.model == name and f.bounds]
    return dict(faults[0].bounds) if faults else {}


def _random_event(model: Model, rng: random.Random, names: dict[str, list[str]]) -> dict[str, Any]:
    """Any action with any known (or new) identities and any reported result."""
    a = rng.choice(model.actions)
    args = _random_args(a, rng, names)
    ev: dict[str, Any] = {"op": a.operation or a.name, "args": args}
    twin = any(b.name == f"{a.name}_rejected" for b in model.actions) or a.checks or a.rejected
    if twin:
        from model.vocab import Result

        ev["result"] = rng.choice(["OK", *Result.members])
    if a.outputs and rng.random() < 0.5:
        name, expr = rng.choice(list(a.outputs))
        if name != "result" and isinstance(expr.sort, EnumSort):
            ev["outputs"] = {name: rng.choice(expr.sort.members)}
        elif name != "result" and isinstance(expr.sort, BoolSort):
            ev["outputs"] = {name: rng.random() < 0.5}
    return ev


def _random_args(a: Action, rng: random.Random, names: dict[str, list[str]]) -> dict[str, Any]:
    """Arguments for ``a``: known (or new) identities, any Bool, Enum member or small integer."""
    args: dict[str, Any] = {}
    for p in a.params:
        ids = p.sort.id_sort()
        if ids is not None:
            pool = names.get(ids.name, []) + [f"{ids.name.lower()}-new"]
            args[p.name] = None if p.sort.name.startswith("Opt") and rng.random() < 0.2 else rng.choice(pool)
        elif isinstance(p.sort, BoolSort):
            args[p.name] = rng.random() < 0.5
        elif isinstance(p.sort, EnumSort):
            args[p.name] = rng.choice(p.sort.members)
        else:
            args[p.name] = rng.randrange(4)
    return args


@pytest.mark.parametrize("name", sorted(MODELS))
def test_random_walks(name: str, tmp_path: Path) -> None:
    """Clean walks agree (both clean), and so do walks with one random event inserted."""
    model = get_model(name)
    dm = compile_dense(model.config(**_bounds(name)))
    seen_kinds: set[str] = set()
    for seed in range(4):
        rng = random.Random(seed)
        walk = random_walk(dm, rng, 80)
        events = [event_for(dm, s, inst) for s, inst in walk]
        path = _write(tmp_path / f"walk{seed}.ndjson", [name], events)
        assert _py_verdict([model], events) == ("clean", None), f"seed {seed}"
        assert _c_verdict([model], path) == ("clean", None), f"seed {seed}"
        for trial in range(4):
            at = rng.randrange(len(events) + 1)
            mutated = [*events[:at], _random_event(model, rng, _id_pool(model, events)), *events[at:]]
            path = _write(tmp_path / f"walk{seed}-{trial}.ndjson", [name], mutated)
            want = _py_verdict([model], mutated)
            got = _c_verdict([model], path)
            if want[0] in ("bad_event", "unknown_op", "error"):
                assert got[0] == "bail", f"seed {seed} trial {trial}: python {want}, c {got}"
            else:
                assert got == want, f"seed {seed} trial {trial}: python {want}, c {got}"
            seen_kinds.add(want[0])
    assert seen_kinds & {"not_allowed", "wrong_result", "invariant"}, seen_kinds


def _id_pool(model: Model, events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The identities the events name, per Id sort (from the actions' parameter sorts)."""
    sorts: dict[tuple[str, str], str] = {}
    for a in model.actions:
        for p in a.params:
            ids = p.sort.id_sort()
            if ids is not None:
                sorts[(a.operation or a.name, p.name)] = ids.name
    pool: dict[str, set[str]] = {}
    for e in events:
        for p, v in e["args"].items():
            s = sorts.get((e["op"], p))
            if s is not None and v is not None:
                pool.setdefault(s, set()).add(v)
    return {k: sorted(v) for k, v in pool.items()}


# ---- the compiled engine's state and predictions ------------------------------------------------------
# `CompiledStepper.state`, `cells` and `predict` read the C (docs/compiled-engine.md, "Reading the state and
# predicting"): after every event they must give exactly what `Monitor.state` and `Monitor.predict` give.


def _asked(e: dict[str, Any]) -> dict[str, Any]:
    """An event as a prediction is asked for it: its op and arguments only."""
    return {"op": e["op"], "args": dict(e["args"])}


def _candidates(models: list[Model], rng: random.Random, names: dict[str, list[str]],
                following: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Events to predict next: the run's next one (allowed), random ones (any action, known and new identities:
    allowed, forbidden, failing checks), and one naming a rejected twin's action (the monitor raises when its
    checks pass)."""
    out = [] if following is None else [_asked(following)]
    for _ in range(3):
        out.append(_asked(_random_event(rng.choice(models), rng, names)))
    twins = [a for m in models for a in m.actions if a.rejected]
    if twins:
        a = rng.choice(twins)
        out.append({"op": a.name, "args": _random_args(a, rng, names)})
    return out


def _python_prediction(mon: Monitor, e: dict[str, Any]) -> tuple[str, Any]:
    try:
        predicted = mon.predict(e)
    except (MonitorViolation, EvaluationError):
        return ("raises", None)
    return ("forbidden", None) if predicted is None else ("allowed", predicted)


def _c_prediction(stepper: Any, e: dict[str, Any]) -> tuple[str, Any]:
    from properties.compiled.engine import NotDecided

    try:
        predicted = stepper.predict(e)
    except NotDecided:
        return ("raises", None)
    return ("forbidden", None) if predicted is None else ("allowed", predicted)


def assert_same_reads(stepper: Any, mon: Monitor, models: list[str], candidates: list[dict[str, Any]],
                      seen: set[str], where: str) -> None:
    """The C's state of every model, each function read alone (its cells and the values it holds), and its
    predictions (in this order: a prediction interns new identities in both engines) equal the Python monitor's."""
    for m in models:
        want = mon.state(m)
        assert stepper.state(m) == want, f"{where}: state of {m}"
        w, decls = mon.tracked(m)
        for d in decls:
            if isinstance(d, Func):
                assert stepper.cells(m, d.name) == want[d.name], f"{where}: cells of {m}.{d.name}"
                assert stepper.held(m, d.name) == set(w.sm.cells(d).values()), f"{where}: values held by {m}.{d.name}"
    assert stepper.check_all() == mon.check_all(), f"{where}: invariants broken"
    for e in candidates:
        want_p = _python_prediction(mon, e)
        assert _c_prediction(stepper, e) == want_p, f"{where}: prediction of {e}"
        seen.add(want_p[0] if want_p[0] != "allowed" or want_p[1].get("result", "OK") == "OK" else "error result")


def _walk_reads(name: str, seeds: range, seen: set[str]) -> None:
    """Random walks of ``name``: after every event (fed to both engines), the reads agree."""
    from properties.compiled.engine import compiled_stepper

    model = get_model(name)
    dm = compile_dense(model.config(**_bounds(name)))
    for seed in seeds:
        rng = random.Random(seed)
        events = [{"seq": i, **event_for(dm, s, inst)} for i, (s, inst) in enumerate(random_walk(dm, rng, 80), 1)]
        stepper = compiled_stepper([model], thread=seed % 2 == 0)
        assert stepper is not None
        refused: list[Any] = []
        stepper.set_fallback(refused.append)
        mon = Monitor([model])
        names = _id_pool(model, events)
        assert_same_reads(stepper, mon, [name], _candidates([model], rng, names, events[0] if events else None),
                          seen, f"{name} seed {seed} before the first event")
        for i, e in enumerate(events):
            mon.step(e)
            stepper.sink_event(e)
            following = events[i + 1] if i + 1 < len(events) else None
            assert_same_reads(stepper, mon, [name], _candidates([model], rng, names, following), seen,
                              f"{name} seed {seed} after event {i + 1}")
        assert not refused and stepper.accepted_count == len(events)
        stepper.close()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_state_and_predictions_on_random_walks(name: str) -> None:
    """Every model family, walks checked on the engine's thread and inline: state, cells and predictions."""
    seen: set[str] = set()
    _walk_reads(name, range(2), seen)
    assert {"allowed", "forbidden", "raises"} <= seen, seen


def _recorded_run_and_engines() -> tuple[list[str], list[dict[str, Any]], Any, list[Any], Monitor]:
    """A recorded run of two requests, a compiled engine checking on its thread (the events it refuses go to the
    returned list) and a Python monitor, both fresh, for its models."""
    from properties.compiled.engine import compiled_stepper

    models, consts, events = _recorded_events(2)
    stepper = compiled_stepper(models, consts, thread=True)
    assert stepper is not None
    refused: list[Any] = []
    stepper.set_fallback(refused.append)
    return models, events, stepper, refused, Monitor(models, consts=consts)


def test_state_and_predictions_on_a_recorded_run() -> None:
    """Every model of a run of the reference implementation at once: extensions and the bases they cover (read
    from the extension, as `Monitor.state` reads them), ops several watched models take, notes, integer names."""
    models, events, stepper, refused, mon = _recorded_run_and_engines()
    assert mon.covered, "some model is read through its extension"
    assert any(len(ws) > 1 for ws in mon.by_op.values()), "some op steps several watched models"
    catalog = [get_model(m) for m in models]
    names: dict[str, list[Any]] = {}
    for m in catalog:
        for sort, known in _id_pool(m, [e for e in events if not e["op"].startswith("note.")]).items():
            names[sort] = sorted(set(names.get(sort, [])) | set(known))
    names["Ctx"] = [*names["Ctx"], 12345, "12345"]  # an integer identity: interned apart from the string
    rng = random.Random(3)
    seen: set[str] = set()
    checked = [e for e in events if not e["op"].startswith("note.")]
    for i, e in enumerate(events):
        mon.step(e)
        stepper.sink_event(e)
        if i % 3 and i != len(events) - 1:
            continue  # every third event (each read renders every model: ~2 ms)
        following = next((x for x in events[i + 1:] if not x["op"].startswith("note.")), None)
        assert_same_reads(stepper, mon, models, _candidates(catalog, rng, names, following), seen,
                          f"after event {i + 1}")
    assert not refused and stepper.accepted_count == len(checked)
    assert {"allowed", "forbidden", "raises"} <= seen, seen
    stepper.close()


def test_restart_reuses_the_engine() -> None:
    """`CompiledStepper.restart`: after a run (clean, stopped at a forbidden event, or forwarded), the same
    engine checks another run from a fresh state, identities numbered afresh, and its reads equal a fresh
    Python monitor's."""
    from properties.compiled.engine import compiled_stepper

    model = get_model("ownership")
    dm = compile_dense(model.config(**_bounds("ownership")))
    walks = [[{"seq": i, **event_for(dm, s, inst)} for i, (s, inst) in
              enumerate(random_walk(dm, random.Random(seed), 40), 1)] for seed in range(3)]
    for thread in (True, False):
        stepper = compiled_stepper([model], thread=thread)
        assert stepper is not None
        refused: list[Any] = []
        stepper.set_fallback(refused.append)
        for n, (first, second) in enumerate(zip(walks, walks[1:] + walks[:1])):
            for e in first:
                stepper.sink_event(e)
            if n == 1:
                stepper.sink_event({"seq": 999, "op": "no_such_op", "args": {}})  # a stop: events go to the fallback
            elif n == 2:
                stepper.forward()
            assert stepper.restart()
            refused.clear()
            mon = Monitor([model])
            for i, e in enumerate(second):
                mon.step(e)
                stepper.sink_event(e)
                if i % 10 == 9:
                    assert_same_reads(stepper, mon, ["ownership"], [], set(), f"restart {n}, event {i + 1}")
            assert not refused and stepper.accepted_count == len(second)
        stepper.close()


def _counted_functions(mon: Monitor, models: list[str]) -> list[tuple[str, str]]:
    return [(m, d.name) for m in models for d in mon.tracked(m)[1] if isinstance(d, Func)]


def _count_held_in_python(mon: Monitor, funcs: list[tuple[str, str]], event: dict[str, Any],
                          counts: list[collections.Counter[int]]) -> None:
    """What `CompiledStepper.count_held` counts for ``event`` (just stepped by ``mon``), counted from the Python
    monitor: for each function of a model that took the event, each value held once (identities: -1 / 0, integers:
    0 / 1)."""
    stepped = {id(w) for w in mon.by_op.get(event["op"], ())}
    for (model, func), c in zip(funcs, counts):
        w, decls = mon.tracked(model)
        if id(w) not in stepped:
            continue
        d = next(x for x in decls if x.name == func)
        assert isinstance(d, Func)
        sort = d.value_sort
        values = set(w.sm.cells(d).values())
        if sort.id_sort() is not None or isinstance(sort, OptSort):
            values = {-1 if v < 0 else 0 for v in values}
        elif isinstance(sort, IntSort):
            values = {int(v != 0) for v in values}
        c.update(values)


def test_count_held_equals_the_python_monitors_values_after_every_event() -> None:
    """`count_held` (per-event coverage counts in the C) equals counting the Python monitor's `held` values after
    every event, over a recorded run of every model (ops several models take, notes), also after a restart."""
    _compare_count_held()


def test_the_count_held_comparison_catches_a_missed_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Principle 2: a seeded fault of the coverage counts (one event of one value not counted) is caught."""
    from properties.compiled.engine import CompiledStepper

    real = CompiledStepper.held_counts

    def one_missed(self: Any) -> list[dict[int, int]]:
        counts = real(self)
        for c in counts:
            for v in c:
                c[v] -= 1
                return counts
        return counts

    monkeypatch.setattr(CompiledStepper, "held_counts", one_missed)
    with pytest.raises(AssertionError):
        _compare_count_held()


def _compare_count_held() -> None:
    models, events, stepper, refused, mon = _recorded_run_and_engines()
    funcs = _counted_functions(mon, models)
    stepper.count_held(funcs)
    for _ in range(2):
        counts: list[collections.Counter[int]] = [collections.Counter() for _ in funcs]
        for e in events:
            mon.step(e)
            stepper.sink_event(e)
            if not e["op"].startswith("note."):
                _count_held_in_python(mon, funcs, e, counts)
        got = stepper.held_counts()
        assert [dict(c) for c in counts] == got
        assert sum(sum(c.values()) for c in got) > len(events), "values were counted"
        assert not refused
        stepper.restart()
        mon.reset()
    stepper.close()


def _live_reads(live: Any, models: list[str], probe: dict[str, Any]) -> Any:
    """Every read of the LiveMonitor oracle API: state, cells and held of every function, a prediction, check_all."""
    out: list[Any] = [live.check_all(), live.predict(probe)]
    for m in models:
        out.append(live.state(m))
        for name, value in live.state(m).items():
            if isinstance(value, dict):
                out.append((live.cells(m, name), live.held(m, name)))
    return out


def test_live_monitor_reads_use_the_c_and_fall_back(reused_monitor: None) -> None:
    """`LiveMonitor`'s oracle reads (state, cells, held, predict, check_all) answer from the compiled engine without
    a take-over, equal the Python monitor's; after a take-over the Python monitor answers the same; `reset` starts
    the compiled engine again (also counting held values), and a prediction the C leaves to Python takes over."""
    from reference_impl.monitoring import LiveMonitor

    models, consts, events = _recorded_events(2)
    probe = _asked(next(e for e in events if e["op"] == "enter"))
    mon = Monitor(models, consts=consts)
    for e in events:
        mon.step(e)
    want: list[Any] = [mon.check_all(), mon.predict(probe)]
    for m in models:
        want.append(mon.state(m))
        w, decls = mon.tracked(m)
        for d in decls:
            if isinstance(d, Func):
                want.append((mon.state(m)[d.name], set(w.sm.cells(d).values())))
    live = LiveMonitor(models, consts, engine="c")
    for run in range(2):
        assert live.engine == "c"
        counted = live.count_held([("context", "ctx_state")])
        assert counted
        sink = live.sink_event()
        for e in _copy(events):
            sink(e)
        assert _live_reads(live, models, probe) == want and live.engine == "c", f"run {run}: the C answers"
        assert live.held_counts()[0], "held values counted"
        assert live.monitor is not None and live.engine == "python"
        assert _live_reads(live, models, probe) == want, f"run {run}: the Python monitor answers after a take-over"
        live.reset()
    sink = live.sink_event()
    for e in _copy(events):
        sink(e)
    odd = {"op": "enter", "args": {"c": 1.5, "t": "thread-0"}}  # an identity the C does not decode: Python decides
    assert live.predict(odd) == mon.predict(odd)
    assert live.engine == "python"
    live.close()
    python = LiveMonitor(models, consts, engine="python")
    for e in _copy(events):
        python.on_event(e)
    assert _live_reads(python, models, probe) == want and not python.count_held([("context", "ctx_state")])


def test_reads_with_tiny_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads that do not fit the buffers (cells, values held, names) are made again with larger ones."""
    import properties.compiled.engine as engine

    made = engine._Reads.__init__

    def tiny(self: Any, *args: Any) -> None:
        made(self, *args)
        self.grow_cells(1)
        self.name_buf = ctypes.create_string_buffer(4)
        self.name_lens = (ctypes.c_int64 * 1)()

    monkeypatch.setattr(engine._Reads, "__init__", tiny)
    _walk_reads("ownership", range(1), set())


def test_reads_refuse_a_stopped_engine() -> None:
    """After a stop (or once events go to the Python monitor) the C state is not the run's: the reads raise."""
    from properties.compiled.engine import NotCurrent, compiled_stepper

    model = get_model("context")
    dm = compile_dense(model.config(**_bounds("context")))
    events = [{"seq": i, **event_for(dm, s, inst)} for i, (s, inst) in
              enumerate(random_walk(dm, random.Random(1), 10), 1)]
    for stop in ("a forbidden event", "forwarded"):
        stepper = compiled_stepper([model], thread=True)
        assert stepper is not None
        stepper.set_fallback(lambda e: None)
        for e in events:
            stepper.sink_event(e)
        assert stepper.state("context") == run_python(model, events).state("context")
        if stop == "forwarded":
            stepper.forward()
        else:
            stepper.sink_event({"seq": 99, "op": "exit", "args": {"c": "ctx-new", "t": "thread-0"}})
        for read in (lambda: stepper.state("context"), lambda: stepper.cells("context", "ctx_state"),
                     lambda: stepper.predict(_asked(events[0]))):
            with pytest.raises(NotCurrent):
                read()
        stepper.close()


def run_python(model: Model, events: list[dict[str, Any]]) -> Monitor:
    mon = Monitor([model])
    for e in events:
        mon.step(e)
    return mon


def _shift_one_cell(real: Any) -> Any:
    """A seeded fault of the state export: one cell's value index is off by one."""
    def raw_cells(self: Any, view: Any, m: int, k: int, arity: int) -> dict[Any, int]:
        cells = real(self, view, m, k, arity)
        if cells:
            key = next(iter(cells))
            cells[key] += 1
        return cells
    return raw_cells


def _pass_failed_checks(real: Any) -> Any:
    """A seeded fault of the predictions: a failing check is read as passing (an error predicted as OK)."""
    def raw_predict(self: Any, view: Any, event: dict[str, Any]) -> tuple[int, tuple[int, ...]]:
        r, written = real(self, view, event)
        return r, tuple(-1 if i % view.stride == 1 else x for i, x in enumerate(written))
    return raw_predict


def _drop_a_held_value(real: Any) -> Any:
    """A seeded fault of the values held: the largest one is missing."""
    def held(self: Any, model: str, func: str) -> set[int]:
        values = real(self, model, func)
        return values - {max(values)} if values else values
    return held


def _report_a_broken_invariant(real: Any) -> Any:
    """A seeded fault of the full invariant check: the first invariant of the first model is reported broken."""
    def check_all(self: Any) -> list[tuple[str, Any]]:
        found = real(self)
        w = self._view().analysis.watched[0]
        first = (w.model.name, w.sm.parts[0].invariant)
        return found if first in found else [first, *found]
    return check_all


#: seeded faults of the reads: (method of CompiledStepper, the fault, what the comparison must report)
READ_FAULTS = {
    "invariant reported broken": ("check_all", _report_a_broken_invariant, "invariants broken"),
    "shifted cell value": ("_raw_cells", _shift_one_cell, "state of|cells of"),
    "failed check read as passing": ("_raw_predict", _pass_failed_checks, "prediction"),
    "dropped held value": ("held", _drop_a_held_value, "values held"),
}


@pytest.mark.parametrize("fault", sorted(READ_FAULTS))
def test_the_comparison_catches_a_wrong_read(fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Principle 2: with a seeded fault in the C reads, the comparison of the random-walk tests fails."""
    from properties.compiled.engine import CompiledStepper

    method, seeded, reported = READ_FAULTS[fault]
    monkeypatch.setattr(CompiledStepper, method, seeded(getattr(CompiledStepper, method)))
    with pytest.raises(AssertionError, match=reported):
        _walk_reads("ownership", range(2), set())


# ---- malformed lines -----------------------------------------------------------------------------------

BAD_LINES = [
    "",
    "   ",
    "{",
    "[]",
    '{"seq": 5, "op": "enter", "args": {"c": "ctx-1", "t": "thread-0"}, "result": "OK"} x',
    '{"seq": 1, "op": "enter", "args": {"c": "ctx-1", "t": "thread-0"}, "result": "OK"}',  # seq does not increase
    '{"seq": 9.5, "op": "enter", "args": {"c": "ctx-1", "t": "thread-0"}, "result": "OK"}',
    '{"seq": true, "op": "enter", "args": {}, "result": "OK"}',
    '{"seq": 9, "op": "", "args": {}}',
    '{"seq": 9, "op": "fly", "args": {}}',
    '{"seq": 9, "op": "enter", "args": []}',
    '{"seq": 9, "op": "enter", "args": {"c": "ctx-1"}, "result": "OK"}',
    '{"seq": 9, "op": "enter", "args": {"c": "ctx-1", "t": "thread-0"}}',
    '{"seq": 9, "op": "enter", "args": {"c": "ctx-1", "t": "thread-0"}, "result": 3}',
    '{"seq": 9, "op": "enter", "args": {"c": "ctx-1", "t": "thread-0"}, "result": "OK", "outputs": 1}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-9", "t": "thread-0", "actor": "maybe"}}',
    '{"seq": 9, "op": "create_context", "args": {"c": [1], "t": "thread-0", "actor": false}}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-9", "t": "thread-0", "actor": false}, "se\\u0071": 1}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-9", "t": "thread-0", "actor": false}, "seq": 10}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-\\u0039", "t": "thread-0", "actor": false}}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-é", "t": "thread-0", "actor": false}}',
    '{"seq": 9, "op": "create_context", "args": {"c": 12345678901234567890, "t": "thread-0", "actor": false}}',
    '{"seq": 9, "op": "note.x", "args": {}, "note": "tab\there"}',
    '{"seq": 9, "op": "note.x", "args": {}, "note": NaN}',
    '{"seq": 9, "op": "note.x", "args": {}, "note": "fine \\"quoted\\" \\u00e9"}',
    '{"seq": 9, "op": "note.x", "args": {}, "deep": {"a": [1, 2.5e3, -0, null, {"b": "c"}]}}',
    '\x0b{"seq": 9, "op": "note.x", "args": {}}',
    # long strings: the 8-byte scanner must see an escape, a control or a non-ASCII byte anywhere
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-12345678901\\u0041", "t": "thread-0", "actor": false}}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-1234567890123\x01", "t": "thread-0", "actor": false}}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-12345678901234ü", "t": "thread-0", "actor": false}}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-123456789012345", "t": "thread-0", "actor": false}}',
    '{"seq": 9, "op": "note.x", "args": {}, "note": "a long note with \\"quotes\\" past eight bytes"}',
    '{"seq": 9, "op": "create_context", "args": {"c": "ctx-9", "t": "thread-0", "actor": false} }  ',
]


#: argument values the C engine must not read itself (their value is not their bytes, or not a string/integer)
MUST_STOP = ('"ctx-12345678901\\u0041"', "\x01", "ü", '"ctx-\\u0039"', "ctx-é", "[1]", "12345678901234567890")


@pytest.mark.parametrize("bad", BAD_LINES, ids=range(len(BAD_LINES)))
def test_malformed_lines(bad: str, tmp_path: Path) -> None:
    """A line the C engine does not accept exactly as the Python engine would is left to the Python engine."""
    clean = (ROOT / "examples" / "traces" / "clean_demo.ndjson").read_text().splitlines()
    # the bad line is line 7 (after seq 5); what follows is renumbered so only the bad line is in question
    rest = [json.dumps({**json.loads(x), "seq": 100 + i}) for i, x in enumerate(clean[6:])]
    text = "\n".join([*clean[:6], bad, *rest]) + "\n"
    path = tmp_path / "bad.ndjson"
    path.write_bytes(text.encode())
    want = assert_agree(path, may_bail=True)
    _, got = check_compiled(path)
    assert got is not None
    if want[0] == "format":
        assert got.line == int(want[1].split(":")[1]), (want, got)
    if any(m in bad for m in MUST_STOP):
        assert (got.kind, got.line) == ("bail", 7), got


def test_truncated_and_empty(tmp_path: Path) -> None:
    clean = (ROOT / "examples" / "traces" / "clean_demo.ndjson").read_bytes()
    cut = tmp_path / "cut.ndjson"
    cut.write_bytes(clean[: len(clean) - 30])
    assert assert_agree(cut)[0] == "format"
    header_only = tmp_path / "header.ndjson"
    header_only.write_bytes(clean.split(b"\n")[0] + b"\n")
    for engine in ("python", "c"):
        with pytest.raises(TraceFormatError, match="no events"):
            check_trace(header_only, engine=engine)
    no_newline = tmp_path / "nonl.ndjson"
    no_newline.write_bytes(clean.rstrip(b"\n"))
    assert assert_agree(no_newline) == ("clean", None)


def test_mutated_bytes(tmp_path: Path) -> None:
    """Byte edits, cuts, insertions, swapped lines: the C engine agrees, or stops and the Python engine decides."""
    src = (ROOT / "examples" / "traces" / "clean_demo.ndjson").read_bytes()
    lines = src.split(b"\n")
    rng = random.Random(7)
    alphabet = b'{}[]":,\\ \t\r\x0b\x00\x7f\xc3\xa9-0123456789.eEtruefalsnul'
    kinds: set[str] = set()
    for i in range(12):
        data = bytearray(src)
        if i % 4 == 0:
            for _ in range(rng.randrange(1, 20)):
                data[rng.randrange(len(data))] = rng.choice(alphabet)
        elif i % 4 == 1:
            data = data[: rng.randrange(len(data))]
        elif i % 4 == 2:
            ls = lines[:]
            a, b = rng.randrange(1, len(ls)), rng.randrange(1, len(ls))
            ls[a], ls[b] = ls[b], ls[a]
            data = bytearray(b"\n".join(ls))
        else:
            for _ in range(rng.randrange(1, 5)):
                at = rng.randrange(len(data))
                data[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 30)))
        path = tmp_path / f"m{i}.ndjson"
        path.write_bytes(bytes(data))
        try:
            kinds.add(assert_agree(path, may_bail=True)[0])
        except TraceFormatError:  # the header itself was hit: both engines raise the same error
            with pytest.raises(TraceFormatError):
                check_trace(path, engine="c")
    assert {"format", "clean"} <= kinds or len(kinds) >= 2, kinds
