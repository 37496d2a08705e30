"""Predictive checking (properties/predict.py) and the controlled scheduler (reference_impl/scheduler.py).

For each interleaving-dependent seeded fault, a committed *lucky* schedule (the GC thread's drop
completes before the owner's thread touches the queue; the DeleteQueue's signal task runs before
the teardown task of the same event loop) is replayed exactly: the bug does not show and the
monitors accept the run.  Predictive checking of that run still finds a schedule
that breaks the ownership model, and replaying that witness through the controlled scheduler
makes the monitors reject the run.  On the reference implementation the same runs admit no
violation.  A witness from a trace with a synchronisation edge removed is reported infeasible,
naming the lock.  PCT, random and bounded DFS exploration run with fixed seeds.  Runs recorded
through the HTTP listener (hand-offs between runtime threads recorded by their event loops)
admit no violation, and without those hand-off edges they would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest

from iospec.cli import main as iospec_main
from properties.predict import predict_events, predict_trace
from properties.tracecheck import TraceFormatError
from reference_impl.api import Promise, Request, Response
from reference_impl.runtime import Runtime
from reference_impl.scenarios import explore, record_uncontrolled, replay_schedule, run_scenario
from reference_impl.scheduler import PCTStrategy, PriorityStrategy, ReplayStrategy, Schedule, next_dfs_prefix
from reference_impl.trace import SYNC_VERSION

SCHEDULES = Path(__file__).parent / "data" / "schedules"

#: fault -> the scenario whose lucky schedule hides it
RACES = {
    "queue_lock_skipped": "gc_drop_vs_entry",
    "queue_closed_without_lock": "gc_drop_vs_teardown",
    # two asyncio tasks of one event loop (the signal task and the teardown job): sync_version 3 traces
    "queue_processed_when_dead": "signal_vs_teardown",
}
#: fault -> the model guard its witness breaks
GUARD = {
    "queue_lock_skipped": "queue_mutex_free",
    "queue_closed_without_lock": "queue_mutex_free",
    "queue_processed_when_dead": "run_actions is not allowed here: guard 'signaled'",
}


def _predict(header: dict[str, Any], trace: list[dict[str, Any]], **kw: Any) -> Any:
    return predict_events(header, [(i + 2, e) for i, e in enumerate(trace)], **kw)


def _lucky(scenario: str, faults: list[str]) -> Any:
    sched = Schedule.load(SCHEDULES / f"{scenario}.lucky.json")
    return run_scenario(scenario, ReplayStrategy(sched.events), faults=faults)


@pytest.mark.parametrize("fault", sorted(RACES))
def test_a_clean_looking_run_admits_a_violation_and_the_replay_confirms_it(fault: str, tmp_path: Path) -> None:
    scenario = RACES[fault]
    run = _lucky(scenario, [fault])
    assert run.replay is not None and run.replay.complete, run.replay
    assert run.violation is None, "the lucky schedule must hide the bug"
    report = _predict(run.header, run.trace)
    assert report.witness is not None, report.summary()
    assert GUARD[fault] in report.witness.violation.message
    witness = tmp_path / "witness.json"
    witness.write_text(json.dumps(report.witness.to_json(run.header, "lucky")))
    replayed = replay_schedule(witness)
    assert replayed.replay is not None and replayed.replay.complete, replayed.replay
    assert replayed.violation is not None, "the replayed witness must be rejected by the monitors"
    # the live monitor watches the trace's models (the violation is reported by the largest one that has the step)
    assert replayed.violation.message.split(": ", 1)[1] == report.witness.violation.message.split(": ", 1)[1]


@pytest.mark.parametrize("scenario", sorted(set(RACES.values())))
def test_the_reference_runs_admit_no_violation(scenario: str) -> None:
    run = _lucky(scenario, [])
    assert run.violation is None
    report = _predict(run.header, run.trace)
    assert report.ok, report.summary()
    assert "no feasible violation among all schedules consistent with this run" in report.summary()


def test_an_uncontrolled_reference_run_with_many_objects_admits_no_violation() -> None:
    header, trace = record_uncontrolled("churn")
    report = _predict(header, trace, window=200)
    assert report.ok, report.summary()
    assert report.windows >= 2


def test_a_witness_that_needs_an_unrecorded_edge_is_reported_infeasible_naming_the_lock(tmp_path: Path) -> None:
    run = _lucky("gc_drop_vs_entry", [])
    # the trace as an implementation that does not record the DeleteQueue mutex would write it
    trace = [e for e in run.trace if not (e["op"] in ("note.lock_acquire", "note.lock_release")
                                          and e["args"]["lock"].startswith("queue:"))]
    report = _predict(run.header, trace)
    assert report.witness is not None
    witness = tmp_path / "w.json"
    witness.write_text(json.dumps(report.witness.to_json(run.header, "stripped")))
    replayed = replay_schedule(witness, stuck=1.0)
    assert replayed.violation is None
    assert replayed.replay is not None and not replayed.replay.complete
    assert "missing synchronisation edge" in replayed.replay.stuck
    assert "lock queue:ctx-1 held by gc" in replayed.replay.stuck


def test_the_committed_witnesses_still_replay_to_a_violation() -> None:
    for fault in sorted(RACES):
        replayed = replay_schedule(SCHEDULES / f"{fault}.witness.json")
        assert replayed.violation is not None, fault


def test_a_witness_reaching_into_the_shutdown_holds_back_the_tasks_it_runs_later(tmp_path: Path) -> None:
    # a witness z3 found when the shortening probes timed out (a loaded machine): the signal task's step comes
    # after the shutdown's hand-off to thread-1, whose cancelling task (task-1) has its step after the violation
    path = SCHEDULES / "queue_processed_when_dead.long-witness.json"
    witness = json.loads(path.read_text())
    assert "task-1" in witness["later"]["thread-1"]
    replayed = replay_schedule(path)
    assert replayed.replay is not None and replayed.replay.complete, replayed.replay
    assert replayed.violation is not None and GUARD["queue_processed_when_dead"] in replayed.violation.message
    # without `later` the loop runs the cancelling task first and the signal task never takes its step
    del witness["later"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(witness))
    stuck = replay_schedule(bare, stuck=1.0)
    assert stuck.violation is None
    assert stuck.replay is not None and "thread-1 never reached note.lock_acquire" in stuck.replay.stuck


def test_an_unshortened_witness_replays_too(tmp_path: Path) -> None:
    run = _lucky("signal_vs_teardown", ["queue_processed_when_dead"])
    report = _predict(run.header, run.trace, shorten=False)
    assert report.witness is not None
    witness = tmp_path / "w.json"
    witness.write_text(json.dumps(report.witness.to_json(run.header, "lucky")))
    replayed = replay_schedule(witness)
    assert replayed.replay is not None and replayed.replay.complete, replayed.replay
    assert replayed.violation is not None


def test_a_schedule_replays_exactly(tmp_path: Path) -> None:
    first = run_scenario("gc_drop_vs_entry", PCTStrategy(7, depth=2))
    path = tmp_path / "s.json"
    first.schedule.save(path)
    again = replay_schedule(path)
    assert again.replay is not None and again.replay.complete
    assert [[e["thread"], e["op"]] for e in again.trace] == [[e["thread"], e["op"]] for e in first.trace]


# ---- strategies ------------------------------------------------------------------------------------------


def test_pct_is_a_function_of_its_seed() -> None:
    waits = [["MainThread", "gc"], ["gc", "thread-1"], ["MainThread", "gc", "thread-1"]] * 10
    a, b = PCTStrategy(3, depth=3, steps=30), PCTStrategy(3, depth=3, steps=30)
    assert [a.choose(w, i + 1) for i, w in enumerate(waits)] == [b.choose(w, i + 1) for i, w in enumerate(waits)]
    assert len(a.changes) == 2


def test_bounded_dfs_backtracks_within_its_preemption_bound() -> None:
    assert next_dfs_prefix([(0, 2), (0, 1), (0, 3)], 1) == [0, 0, 1]
    assert next_dfs_prefix([(0, 2), (0, 1), (1, 3)], 1) == [0, 0, 2]
    assert next_dfs_prefix([(0, 2), (0, 1), (2, 3)], 1) == [1]
    assert next_dfs_prefix([(1, 2), (0, 1), (0, 3)], 1) is None


#: scheduling decisions wait this long for the running thread (longer than the default: CI machines are loaded,
#: and a decision taken before the running thread arrives changes which schedule a seed or DFS prefix means)
QUIET = 0.01


@pytest.mark.parametrize("strategy,runs", [("dfs", 30), ("pct", 60)])
def test_exploration_finds_the_teardown_race_with_fixed_seeds(strategy: str, runs: int) -> None:
    found, n = explore("gc_drop_vs_teardown", strategy, runs=runs, faults=["queue_closed_without_lock"], seed=1,
                       depth=1 if strategy == "dfs" else 3, quiet=QUIET)
    assert found is not None, f"{strategy}: no violation in {n} schedules"
    assert "queue_mutex_free" in found.violation.message
    # the schedule that found it replays to the same violation
    again = run_scenario(found.schedule.scenario, ReplayStrategy(found.schedule.events), faults=found.schedule.faults)
    assert again.violation is not None and again.violation.message == found.violation.message  # same monitor


def test_dfs_finds_the_race_between_two_tasks_of_one_loop() -> None:
    """The thread-level scheduler decides which hand-off reaches thread-1's loop first (the signal or the teardown
    job), and so the order of the two tasks' steps there: bounded DFS finds the unlucky one, and it replays."""
    found, n = explore("signal_vs_teardown", "dfs", runs=30, faults=["queue_processed_when_dead"], depth=1,
                       quiet=QUIET)
    assert found is not None, f"dfs: no violation in {n} schedules"
    assert "run_actions is not allowed here" in found.violation.message
    again = run_scenario(found.schedule.scenario, ReplayStrategy(found.schedule.events), faults=found.schedule.faults)
    assert again.violation is not None and again.violation.message == found.violation.message


def test_dfs_finds_nothing_on_the_reference() -> None:
    found, n = explore("gc_drop_vs_teardown", "dfs", runs=6, depth=1, quiet=QUIET)
    assert found is None and n >= 2


# ---- command line --------------------------------------------------------------------------------------------


def test_check_trace_predict_exit_codes_and_witness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _lucky("gc_drop_vs_teardown", ["queue_closed_without_lock"])
    bad = tmp_path / "bad.ndjson"
    bad.write_text("\n".join(run.trace_lines()) + "\n")
    witness = tmp_path / "w.json"
    assert iospec_main(["check-trace", "--predict", str(bad), "--witness", str(witness)]) == 1
    out = capsys.readouterr().out
    assert "FEASIBLE VIOLATION" in out and json.loads(witness.read_text())["iospec_witness"] == 1
    good_run = _lucky("gc_drop_vs_teardown", [])
    good = tmp_path / "good.ndjson"
    good.write_text("\n".join(good_run.trace_lines()) + "\n")
    assert iospec_main(["check-trace", "--predict", str(good)]) == 0
    assert "no feasible violation among all schedules consistent with this run" in capsys.readouterr().out
    assert predict_trace(good).ok


def test_a_trace_without_synchronisation_is_refused_in_one_line(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.ndjson"
    f.write_text('{"iospec_trace": 1, "models": ["ownership"]}\n'
                 '{"seq": 1, "op": "create_context", "args": {"c": "c", "t": "t", "actor": false}}\n')
    assert iospec_main(["check-trace", "--predict", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{f}:1:" in err and '"sync": true' in err


def test_replay_cli_reports_a_bad_schedule_in_one_line(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text('{"events": 3}')
    r = subprocess.run([sys.executable, "-m", "reference_impl", "replay", str(f)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and str(f) in r.stderr


def test_priority_strategy_prefers_the_first_waiting_thread() -> None:
    p = PriorityStrategy(["gc", "thread-1"])
    assert p.choose(["thread-1", "gc"], 1) == "gc"
    assert p.choose(["MainThread", "thread-1"], 2) == "thread-1"
    assert p.choose(["MainThread", "zz"], 3) == "MainThread"


# ---- runs recorded through the HTTP listener -------------------------------------------------------------------

TRACE_SCHEMA = Path(__file__).parent.parent / "properties" / "schema" / "trace-v1.schema.json"


class _CrossRequestPromise:
    """``/wait`` awaits a promise that ``/resolve`` (another request, on another thread) resolves: the resolver
    schedules an action on the waiter's DeleteQueue and signals its thread (io/io-own.c++ scheduleAction)."""

    waiting: ClassVar[list[Promise]] = []

    async def fetch(self, request: Request, env: Any, ctx: Any) -> Response:
        if request.url.endswith("/wait"):
            p = Promise()
            _CrossRequestPromise.waiting.append(p)
            timer = asyncio.ensure_future(asyncio.sleep(10))  # a pending timer: hang detection leaves it alone
            value = await p
            timer.cancel()
            return Response(f"resolved with {value}")
        _CrossRequestPromise.waiting.pop(0).resolve("x")
        return Response("resolved")


def _http_cross_thread_run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _CrossRequestPromise.waiting.clear()
    rt = Runtime(threads=2, record_sync=True)
    try:
        rt.add_worker("app", _CrossRequestPromise)
        on_0, on_1 = rt.serve("app", threads=[0]), rt.serve("app", threads=[1])
        got: list[bytes] = []
        waiter = threading.Thread(target=lambda: got.append(urllib.request.urlopen(on_0.url + "/wait",
                                                                                     timeout=20).read()))
        waiter.start()
        deadline = time.monotonic() + 20
        while not _CrossRequestPromise.waiting and time.monotonic() < deadline:
            time.sleep(0.005)
        assert urllib.request.urlopen(on_1.url + "/resolve", timeout=20).read() == b"resolved"
        waiter.join(20)
        assert got == [b"resolved with x"]
    finally:
        rt.close()
    assert rt.trace is not None and rt.trace.head is not None
    return dict(rt.trace.head), list(rt.trace.events)


def test_an_http_run_with_a_cross_thread_signal_predicts_clean_and_needs_the_recorded_hand_off() -> None:
    header, trace = _http_cross_thread_run()
    assert header["sync"] is True and header["sync_version"] == SYNC_VERSION
    validator = jsonschema.Draft202012Validator(json.loads(TRACE_SCHEMA.read_text()))
    for line in [header] + trace:
        validator.validate(line)
    ops = [(e["thread"], e["op"]) for e in trace]
    assert ("thread-1", "schedule_action") in ops and ("thread-0", "run_actions") in ops
    # the DeleteQueue's signal: posted on the resolver's thread, awaited on the waiter's
    posts = {e["args"]["edge"]: e["thread"] for e in trace if e["op"] == "note.post" and e["args"].get("via")}
    assert any(e["op"] == "note.wait" and e["thread"] == "thread-0" and posts.get(e["args"]["edge"]) == "thread-1"
               for e in trace)

    report = _predict(header, trace)
    assert report.ok, report.summary()

    # Without the hand-offs the loops recorded, run_actions could run before the action was scheduled:
    # a false witness (the runtime only runs the signal task after the signal).
    stripped = [e for e in trace if not (e["op"] in ("note.post", "note.wait") and e["args"].get("via"))]
    report = _predict(header, stripped)
    assert report.witness is not None
    assert "run_actions is not allowed here: guard 'signaled' is false" in report.witness.violation.message
    order = report.witness.to_json(header, "stripped")["order"]
    seq_of = {(e["thread"], e["op"]): e["seq"] for e in stripped}
    assert seq_of[("thread-0", "run_actions")] in order and seq_of[("thread-1", "schedule_action")] not in order


def test_a_trace_of_python_m_reference_impl_serve_sync_predicts_clean(tmp_path: Path) -> None:
    """The demo over real HTTP (Durable Object requests cross threads both ways: the actor's thread and back)."""
    trace = tmp_path / "serve.ndjson"
    proc = subprocess.Popen([sys.executable, "-m", "reference_impl", "serve", "--port", "0", "--trace", str(trace),
                             "--sync"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1].rstrip("/")
        # the actors live on thread-0 (a) and thread-1 (b); a request is served on whichever thread accepted it.
        # The two loops tend to take turns accepting (the one that just served is busy), so requests alternating
        # a, b would mostly stay home; in pairs (a, a, b, b) one of each pair lands on the other thread
        for path in ["/", "/wait", "/count"] + ["/do/a", "/do/a", "/do/b", "/do/b"] * 10:
            urllib.request.urlopen(url + path, timeout=20).read()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[0]["sync"] is True and events[0]["sync_version"] == SYNC_VERSION
    threads_of = {e["args"]["edge"]: e["thread"] for e in events[1:] if e["op"] == "note.post"}
    crossings = {(threads_of.get(e["args"]["edge"]), e["thread"]) for e in events[1:] if e["op"] == "note.wait"}
    assert {("thread-0", "thread-1"), ("thread-1", "thread-0")} & crossings, crossings
    report = predict_trace(trace)
    assert report.ok, report.summary()


# ---- soak (tox -e soak; IOSPEC_SLOW=1) ------------------------------------------------------------------------

@pytest.mark.parametrize("fault", sorted(RACES))
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("IOSPEC_SLOW") != "1", reason="slow: set IOSPEC_SLOW=1")
def test_soak_uncontrolled_faulty_runs_are_caught_live_or_predicted(fault: str, batch: int) -> None:
    """Real (uncontrolled) runs: whichever schedule the OS picks, the monitors or predictive checking catch it.
    (A run of signal_vs_teardown whose action comes after the teardown has no signal to race: the action is
    dropped, a branch the run did not take; such runs are counted, not checked.)"""
    scenario = RACES[fault]
    raced = 0
    for k in range(100):
        header, trace = record_uncontrolled(scenario, faults=[fault])
        ops = [e["op"] for e in trace if e["op"] in ("schedule_action", "destroy_end")]
        if fault == "queue_processed_when_dead" and ops[:1] == ["destroy_end"]:
            continue
        raced += 1
        report = _predict(header, trace)
        assert not report.ok, f"run {k} (batch {batch}): neither the run nor any consistent schedule violates"
    assert raced >= 20


@pytest.mark.parametrize("scenario", sorted(set(RACES.values())) + ["churn"])
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("IOSPEC_SLOW") != "1", reason="slow: set IOSPEC_SLOW=1")
def test_soak_reference_schedules_and_predictions_are_clean(scenario: str) -> None:
    for strategy in ("random", "pct"):
        found, n = explore(scenario, strategy, runs=60, seed=11, depth=3, quiet=QUIET)
        assert found is None, f"{strategy} after {n}: {found.violation if found else ''}"
    for _ in range(10):
        header, trace = record_uncontrolled(scenario)
        report = _predict(header, trace)
        assert report.ok, report.summary()


@pytest.mark.parametrize("fault", sorted(RACES))
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("IOSPEC_SLOW") != "1", reason="slow: set IOSPEC_SLOW=1")
def test_soak_every_strategy_finds_each_race(fault: str) -> None:
    for strategy, runs, depth in (("pct", 150, 3), ("random", 150, 2), ("dfs", 60, 1)):
        found, n = explore(RACES[fault], strategy, runs=runs, faults=[fault], seed=5, depth=depth, quiet=QUIET)
        assert found is not None, f"{fault}: {strategy} found nothing in {n} schedules"


def test_a_newer_sync_version_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.ndjson"
    f.write_text('{"iospec_trace": 1, "models": ["ownership"], "sync": true, "sync_version": 9}\n'
                 '{"seq": 1, "op": "create_context", "args": {"c": "c", "t": "t", "actor": false}, "thread": "t"}\n')
    assert iospec_main(["check-trace", "--predict", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{f}:1:" in err and "sync_version" in err


def test_a_synchronised_trace_needs_threads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.ndjson"
    f.write_text('{"iospec_trace": 1, "models": ["ownership"], "sync": true}\n'
                 '{"seq": 1, "op": "create_context", "args": {"c": "c", "t": "t", "actor": false}}\n')
    assert iospec_main(["check-trace", "--predict", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{f}:2:" in err and "'thread'" in err


def test_window_boundaries_add_no_reordering_the_run_forbids() -> None:
    """Lock sections and hand-offs cut by a window's edges still constrain it: small windows find nothing
    on the reference, and a window that holds the race finds it."""
    for scenario in sorted(set(RACES.values())):
        run = _lucky(scenario, [])
        for window in (2, 3, 5, 8, 13, 21):
            report = _predict(run.header, run.trace, window=window)
            assert report.ok, f"{scenario}, window {window}: {report.summary()}"
    faulty = _lucky("gc_drop_vs_teardown", ["queue_closed_without_lock"])
    assert not _predict(faulty.header, faulty.trace, window=32).ok


def test_every_interleaving_only_fault_has_a_race_here() -> None:
    """The conformance suite's kill rate leaves these faults to predictive checking: none may fall between.
    (queue_processed_when_dead is a race here too, but a conformance scenario also catches it in one run: the
    action is scheduled and the context destroyed in one turn, so it is not interleaving-only.)"""
    from reference_impl.faults import fault_names

    assert set(fault_names(interleaving_only=True)) <= set(RACES)
    assert set(RACES) - set(fault_names(interleaving_only=True)) == {"queue_processed_when_dead"}


def test_a_race_between_two_tasks_of_one_loop_is_predicted_only_with_per_task_program_order() -> None:
    """The lucky run of queue_processed_when_dead is all on one OS thread (the signal task and the teardown job of
    thread-1): with program order per OS thread (what a trace without tasks says) no schedule reorders them; with
    the tasks as units (sync_version 3) the teardown first is a schedule, and run_actions after it the witness."""
    run = _lucky("signal_vs_teardown", ["queue_processed_when_dead"])
    assert run.violation is None
    on_loop = [e for e in run.trace if e["thread"] == "thread-1"]
    assert {"signal:ctx-1", "job-3"} <= {e.get("task") for e in on_loop}
    assert _predict(run.header, run.trace).witness is not None
    per_thread = [{k: v for k, v in e.items() if k != "task"} for e in run.trace]
    assert _predict(run.header, per_thread).ok


def test_the_reference_records_what_makes_its_signal_task_safe() -> None:
    """The reference's teardown cancels the signal task (a cancellation edge: the task's steps so far stay before
    it) and its signal task checks the context is alive before run_actions (a note.read of the model's guard).
    Either keeps predictive checking of its run clean; without both the same run gives a false witness.  The
    faulty variant records neither."""
    ref = _lucky("signal_vs_teardown", [])

    def is_read(e: dict[str, Any]) -> bool:
        return e["op"] == "note.read" and e["args"]["op"] == "run_actions"

    def is_cancel(e: dict[str, Any]) -> bool:
        return e["op"] == "note.wait" and e["args"].get("via") == "cancel" and e.get("task") == "job-3"

    reads = [e for e in ref.trace if is_read(e)]
    assert reads and reads[0]["args"]["guard"] == "alive" and reads[0].get("task") == "signal:ctx-1"
    assert [e for e in ref.trace if is_cancel(e)]
    assert _predict(ref.header, ref.trace).ok
    assert _predict(ref.header, [e for e in ref.trace if not is_read(e)]).ok
    assert _predict(ref.header, [e for e in ref.trace if not is_cancel(e)]).ok
    report = _predict(ref.header, [e for e in ref.trace if not is_read(e) and not is_cancel(e)])
    assert report.witness is not None and "run_actions" in report.witness.violation.message
    faulty = _lucky("signal_vs_teardown", ["queue_processed_when_dead"])
    assert not [e for e in faulty.trace if is_read(e) or is_cancel(e)]


def test_a_read_of_a_guard_the_model_lacks_is_a_one_line_format_error(tmp_path: Path) -> None:
    run = _lucky("signal_vs_teardown", [])
    lines = run.trace_lines()
    at = next(i for i, line in enumerate(lines) if '"note.read"' in line)
    lines[at] = lines[at].replace('"guard": "alive"', '"guard": "no_such_guard"')
    f = tmp_path / "t.ndjson"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceFormatError) as err:
        predict_trace(f)
    assert str(err.value).startswith(f"{f}:{at + 1}:") and "no_such_guard" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_malformed_later_list_is_a_one_line_error(tmp_path: Path) -> None:
    witness = json.loads((SCHEDULES / "queue_processed_when_dead.long-witness.json").read_text())
    witness["later"] = {"thread-1": "task-1"}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(witness))
    with pytest.raises(ValueError, match=r"w\.json: 'later' must map each thread to a list of task names"):
        replay_schedule(path)


def test_joining_a_runtime_thread_waits_for_the_end_of_its_loops_last_step() -> None:
    # the loop stops only once the step that stops it has returned, so the joining thread's note.wait names that
    # step's release edge (a witness once put the join between the step's stop-* post and its end: unreplayable)
    run = _lucky("signal_vs_teardown", [])
    stops = {e["task"]: e for e in run.trace if e["op"] == "note.post" and e["args"]["edge"].startswith("stop-")}
    assert sorted(e["thread"] for e in stops.values()) == ["thread-0", "thread-1"]
    releases = {e["args"]["edge"]: e for e in run.trace
                if e["op"] == "note.lock_release" and e.get("task") in stops and "edge" in e["args"]}
    joins = [e for e in run.trace if e["thread"] == "MainThread" and e["op"] == "note.wait"
             and e["args"]["edge"] in releases]
    assert sorted(releases[j["args"]["edge"]]["thread"] for j in joins) == ["thread-0", "thread-1"]
