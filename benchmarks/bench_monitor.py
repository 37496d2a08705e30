"""Monitor benchmarks: overhead of the live monitors, monitored steps/s, offline trace checking.

Prints figures measured in this run (the lead measures final figures on a quiet machine)::

    python benchmarks/bench_monitor.py                      # defaults sized for a shared machine
    python benchmarks/bench_monitor.py --events 1000000     # the issue's 1M-event trace

1. Monitor overhead: the same request workload on the reference implementation with the
   live monitors off and on (every model of `TRACE_MODELS`), interleaved rounds, ratio of the
   medians: the Python monitor, ``monitor="c"`` (checking on the engine's own thread) and the
   compiled monitor checking on the runtime's thread.  Target <= 1.3x.  ``--only overhead-breakdown``:
   where the compiled monitor's time goes per event (CPU time, the C's own timers).
2. Steps/s: the hypothesis state machine (tests/stateful_reference.py) against the monitored
   reference implementation, every step followed by the model comparison, with the oracle reading
   the compiled engine and the Python monitor (the same programs, interleaved rounds, the ratio of
   the medians).  Target >= 1,000.  ``--workers N``: also N processes running the machine at once
   (each its own programs) against one of them alone, the throughput of a campaign run in parallel.
   ``--breakdown`` adds, from a second instrumented run, where a step's time goes (hypothesis
   engine, program set-up and teardown, oracle, rule bodies, the live monitors).
3. Offline checking: a trace of N events (copies of a recorded demo trace with fresh
   identities), checked end to end by `properties.tracecheck.check_trace` with the Python
   engine and with the compiled engine (docs/compiled-engine.md), and plain ``json.loads`` of
   the same lines for the ratio; then a 1,000,000-event trace with the compiled engine only
   (the Python engine would take minutes).  Target >= 1,000,000 events/s.
4. Oracle reads (``--only reads``): mid-run, one function's cells, one model's state and one
   prediction read from the compiled engine and from the Python monitor, microseconds per call.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.reference_throughput import Bench  # noqa: E402  (the same workload)
from model.catalog import MODELS, get_model  # noqa: E402
from model.core.sorts import IdSort, OptSort  # noqa: E402
from properties.tracecheck import check_trace  # noqa: E402
from reference_impl import Request, Runtime  # noqa: E402
from reference_impl.demo import DemoWorker, build_demo  # noqa: E402
from reference_impl.trace import NdjsonSink  # noqa: E402


def _requests(rt: Runtime, n: int) -> float:
    """Seconds for ``n`` requests, until every context drained and the monitor (if any) checked every event."""
    t0 = time.perf_counter()
    for i in range(n):
        rt.fetch("b", Request(), thread=i % 2)
    rt.settle()
    if rt.monitor is not None:
        assert rt.monitor.ok, rt.monitor.report()  # reading the verdict waits for the compiled engine's thread
    return time.perf_counter() - t0


def _compiled_inline(rt: Runtime) -> Runtime:
    """``rt`` (no monitor) watched by the compiled engine checking each event on the runtime's thread."""
    from reference_impl.monitoring import attach_monitor

    rt.monitor = attach_monitor(rt, engine="c", thread=False)
    return rt


def monitor_overhead(requests: int, rounds: int) -> None:
    """Interleave unmonitored and monitored rounds of the same workload: the Python monitor, the compiled monitor
    (``monitor="c"``: it checks on its own thread), and the compiled monitor checking on the runtime's thread."""
    from properties.compiled.engine import compiled_checker
    from reference_impl.runtime import TRACE_MODELS

    have_c = compiled_checker([m for m in TRACE_MODELS if m in MODELS], {"production": 0}) is not None
    labels = {"python": "python monitor", "c": "compiled monitor (engine thread)",
              "c-inline": "compiled monitor (checking on the runtime's thread)"}
    off: list[float] = []
    with Runtime(threads=2, monitor=False, memory_trace=False) as plain, \
            Runtime(threads=2, monitor=True, memory_trace=False) as watched, \
            Runtime(threads=2, monitor="c" if have_c else True, memory_trace=False) as compiled, \
            Runtime(threads=2, monitor=False, memory_trace=False) as inline:
        runtimes = {"python": watched}
        if have_c:
            runtimes.update({"c": compiled, "c-inline": _compiled_inline(inline)})
        on: dict[str, list[float]] = {k: [] for k in runtimes}
        events = 0
        for rt in (plain, *runtimes.values()):
            rt.add_worker("b", Bench)
            _requests(rt, 20)  # warm up (the monitor compiles its models on construction)
        for _ in range(rounds):
            off.append(_requests(plain, requests))
            for k, rt in runtimes.items():
                start = rt.monitor.events
                on[k].append(_requests(rt, requests))
                events = rt.monitor.events - start
        for k, rt in runtimes.items():
            assert rt.monitor.ok, rt.monitor.report()
            assert k == "python" or rt.monitor.compiled is not None, "the compiled monitor took over"
    base = statistics.median(off)
    for k in runtimes:
        med = statistics.median(on[k])
        print(f"monitor overhead, {labels[k]}: {med / base:.2f}x  (monitors off {requests / base:,.0f} req/s, "
              f"on {requests / med:,.0f} req/s; {events / requests:.0f} events/request; "
              f"median of {rounds} interleaved rounds of {requests} requests)  target <= 1.3x")


def _cpu_requests(rt: Runtime, n: int) -> tuple[float, float]:
    """`_requests`, and the process CPU time it took (every thread: the runtime's and the caller's)."""
    c0 = time.process_time()
    wall = _requests(rt, n)
    return wall, time.process_time() - c0


def overhead_breakdown(requests: int, rounds: int) -> None:
    """Where the compiled monitor's time goes in the running runtime, per model event.

    Interleaved rounds of four runtimes: no monitor; no monitor but a sink that does nothing (the cost of the
    recorder calling any sink); the compiled monitor checking on the runtime's thread; and ``monitor="c"``
    (checking on the engine's own thread).  CPU time of the process per request: the runtime is GIL-bound, so
    CPU time is what a monitor adds (the engine's thread included), and it is less noisy than wall time on a
    shared machine.  Then one more round of each monitored runtime with the C's own timers on: decoding the
    event dict, logging and publishing it, checking it.  What is left ("indirect") is the monitor's effect on
    the rest of the process: caches, memory, wake-ups.
    """
    from reference_impl.trace import CallbackSink

    with Runtime(threads=2, monitor=False, memory_trace=False) as plain, \
            Runtime(threads=2, monitor=False, memory_trace=False) as sink, \
            Runtime(threads=2, monitor=False, memory_trace=False) as inline, \
            Runtime(threads=2, monitor="c", memory_trace=False) as compiled:
        if compiled.monitor.compiled is None or compiled.monitor.compiled.sink_event is None:
            print("breakdown: the compiled monitor's dict entry is not available here")
            return
        sink.recorder.add_sink(CallbackSink(lambda e: None))
        runtimes = {"off": plain, "sink": sink, "inline": _compiled_inline(inline), "thread": compiled}
        cpu: dict[str, list[float]] = {k: [] for k in runtimes}
        wall: dict[str, list[float]] = {k: [] for k in runtimes}
        for rt in runtimes.values():
            rt.add_worker("b", Bench)
            _requests(rt, 20)
        for _ in range(rounds):
            for k, rt in runtimes.items():
                w, c = _cpu_requests(rt, requests)
                wall[k].append(w)
                cpu[k].append(c)
        timers: dict[str, tuple[int, int, int, int]] = {}
        events = 0.0
        for k in ("inline", "thread"):
            rt = runtimes[k]
            stepper = rt.monitor.compiled
            before = rt.monitor.events
            stepper.timing(True)
            _requests(rt, requests)
            timers[k] = stepper.timing(False)
            events = (rt.monitor.events - before) / requests
            assert rt.monitor.ok and rt.monitor.compiled is not None, rt.monitor.report()
    per_req = {k: statistics.median(v) / requests * 1e6 for k, v in cpu.items()}
    sink_cost = (per_req["sink"] - per_req["off"]) / events
    print(f"compiled monitor, CPU per request (median of {rounds} interleaved rounds of {requests}): "
          f"off {per_req['off']:.0f} us, with a no-op sink {per_req['sink']:.0f} us, checking on the runtime's "
          f"thread {per_req['inline']:.0f} us, on the engine's thread {per_req['thread']:.0f} us")
    for k, where in (("inline", "on the runtime's thread"), ("thread", "on the engine's thread")):
        decode, publish, taken, check = timers[k]
        parts = [decode / taken / 1000, publish / taken / 1000, check / taken / 1000] if taken else [0.0] * 3
        extra = (per_req[k] - per_req["off"]) / events
        wall_ratio = statistics.median(wall[k]) / statistics.median(wall["off"])
        print(f"  checking {where}: CPU {per_req[k] / per_req['off']:.2f}x, wall {wall_ratio:.2f}x; per model event "
              f"({events:.0f}/request) +{extra:.2f} us CPU = recorder calling a sink {sink_cost:.2f} + decoding the "
              f"dict {parts[0]:.2f} + logging and publishing it {parts[1]:.2f} + checking it {parts[2]:.2f} + "
              f"indirect {extra - sink_cost - sum(parts):.2f}  (C timers over {taken:,} events)")


def _warm_up(machine: Any) -> None:
    """Compile both runtimes' monitors (a short random warm-up may send no whole event), then two programs."""
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    from tests.stateful_reference import profile

    warm = machine()
    warm.events_runtime()
    warm.teardown()
    run_state_machine_as_test(machine, settings=settings(profile("dev"), max_examples=2))


def machine_steps(examples: int, breakdown: bool = False, rounds: int = 2) -> None:
    """Steps/s of the whole machine, and of its core (contexts, objects, entering, aborts: the old scope), with the
    oracle reading the compiled engine (``c``) and the Python monitor (``python``), in interleaved rounds.

    The whole machine's steps are bigger (a whole fetch event is 20-30 model events over six
    models), so both figures are printed with the model events per step.  Both oracles run the same
    derandomized programs, so their steps are the same; the ratio is of the medians of this run.
    """
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    from tests.stateful_reference import EVENT_RULES, LIFECYCLE_RULES, STEPS, machine_with_faults, profile

    for label, without in (("whole machine", ()), ("core rules only", EVENT_RULES + LIFECYCLE_RULES)):
        rates: dict[str, list[float]] = {"python": [], "c": []}
        for engine in rates:
            _warm_up(machine_with_faults([], without=without, oracle=engine))
        for _ in range(rounds):
            for engine in rates:
                machine = machine_with_faults([], without=without, oracle=engine)
                # one name for both: a derandomized run's programs follow from the machine's name
                machine.__name__ = machine.__qualname__ = "ReferenceMachine_bench"
                before, events_before = STEPS["steps"], STEPS["model events"]
                t0 = time.perf_counter()
                run_state_machine_as_test(machine, settings=settings(profile("ci"), max_examples=examples,
                                                                     derandomize=True))
                elapsed = time.perf_counter() - t0
                steps = STEPS["steps"] - before
                events = STEPS["model events"] - events_before
                rates[engine].append(steps / elapsed)
                print(f"hypothesis steps/s, {label}, oracle {engine} (monitored reference implementation, model "
                      f"comparison after each step): {steps / elapsed:,.0f}  ({steps:,} steps, "
                      f"{events / steps:.1f} model events/step, {events / elapsed:,.0f} model events/s, "
                      f"{examples} programs, {elapsed:.1f}s)  target >= 1,000")
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"  {label}: median of {rounds} rounds: oracle c {med['c']:,.0f} steps/s, python {med['python']:,.0f}"
              f" ({med['c'] / med['python']:.2f}x)  load {os.getloadavg()[0]:.1f}")
        if breakdown:
            step_breakdown(machine_with_faults([], without=without), examples)


def _steps_worker(k: int, without: tuple[str, ...], examples: int, conn: Any) -> None:
    """A process of `machine_steps_parallel`: warms its machine up, then runs its programs on each ``run`` it is
    sent and answers (steps, start, end) on the monotonic clock (system-wide, so comparable across processes)."""
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    from tests.stateful_reference import STEPS, close_pool, machine_with_faults, profile

    machine = machine_with_faults([], without=without)
    _warm_up(machine)
    # its own programs: a derandomized run's programs follow from the machine's name
    machine.__name__ = machine.__qualname__ = f"ReferenceMachine_bench_{k}"
    conn.send("ready")
    while conn.recv() == "run":
        before = STEPS["steps"]
        t0 = time.monotonic()
        run_state_machine_as_test(machine, settings=settings(profile("ci"), max_examples=examples, derandomize=True))
        conn.send((STEPS["steps"] - before, t0, time.monotonic()))
    close_pool()


def machine_steps_parallel(examples: int, workers: int, rounds: int) -> None:
    """Steps/s of ``workers`` processes running the state machine at once (each its own derandomized programs, the
    compiled oracle), against the first of them alone, in interleaved rounds: the throughput of a campaign that
    runs its seeds in parallel (the soak, pytest-xdist), as hypothesis is run at scale.

    The aggregate is every process's steps over the span from the first start to the last end.
    """
    import multiprocessing

    from tests.stateful_reference import EVENT_RULES, LIFECYCLE_RULES

    ctx = multiprocessing.get_context("spawn")  # no runtime threads or compiled engines copied by a fork
    for label, without in (("whole machine", ()), ("core rules only", EVENT_RULES + LIFECYCLE_RULES)):
        conns, procs = [], []
        for k in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_steps_worker, args=(k, tuple(without), examples, child), daemon=True)
            proc.start()
            conns.append(parent)
            procs.append(proc)
        for c in conns:
            if c.recv() != "ready":
                raise RuntimeError("a worker did not start")
        alone: list[float] = []
        together: list[float] = []
        for _ in range(rounds):
            conns[0].send("run")
            steps, t0, t1 = conns[0].recv()
            alone.append(steps / (t1 - t0))
            for c in conns:
                c.send("run")
            got = [c.recv() for c in conns]
            span = max(t1 for _, _, t1 in got) - min(t0 for _, t0, _ in got)
            total = sum(steps for steps, _, _ in got)
            together.append(total / span)
            print(f"hypothesis steps/s, {label}, oracle c: one process {alone[-1]:,.0f} ({steps:,} steps); {workers} "
                  f"processes at once {together[-1]:,.0f} ({total:,} steps in {span:.1f}s)  target >= 1,000")
        for c in conns:
            c.send("stop")
        for proc in procs:
            proc.join(60)
        one, many = statistics.median(alone), statistics.median(together)
        print(f"  {label}: median of {rounds} rounds: {workers} processes {many:,.0f} steps/s, one process {one:,.0f}"
              f" ({many / one:.2f}x; {os.cpu_count()} cores)  load {os.getloadavg()[0]:.1f}")


def step_breakdown(machine: Any, examples: int) -> None:
    """Where a step's time goes: the same derandomized run again, its parts timed (the timers add a little).

    Wall time per step, split into the hypothesis engine (drawing rules and arguments, evaluating preconditions:
    the main thread outside the machine's code), the machine's program set-up and teardown, the oracle (the
    invariant comparing the runtimes' views with the models), and the rule bodies; a rule body's time is the
    main thread's own CPU plus waiting for the runtime threads, of which the live monitors' stepping (every
    model event, on the thread that emitted it) is measured.  Also the process's CPU per step (every thread).
    """
    import collections
    import functools

    from hypothesis import settings
    from hypothesis.stateful import INITIALIZE_RULE_MARKER, INVARIANT_MARKER, RULE_MARKER, run_state_machine_as_test

    from reference_impl.monitoring import LiveMonitor
    from tests.stateful_reference import STEPS, profile

    wall: collections.Counter[str] = collections.Counter()
    cpu: collections.Counter[str] = collections.Counter()

    def timed(kind: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def run(*a: Any, **kw: Any) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                wall[kind] += time.perf_counter() - t0
                cpu[kind] += time.thread_time() - c0
        return run

    patched: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, attr: str, value: Any) -> None:
        patched.append((obj, attr, getattr(obj, attr)))
        object.__setattr__(obj, attr, value) if not isinstance(obj, type) else setattr(obj, attr, value)

    for name in dir(machine):
        f = getattr(machine, name)
        for marker, kind in ((RULE_MARKER, "rules"), (INITIALIZE_RULE_MARKER, "rules"), (INVARIANT_MARKER, "oracle")):
            r = getattr(f, marker, None)
            if r is not None:
                patch(r, "function", timed(kind, r.function))
    patch(machine, "__init__", timed("setup", machine.__init__))
    patch(machine, "teardown", timed("setup", machine.teardown))
    monitor_lock = threading.Lock()
    on_event = LiveMonitor.on_event

    def monitored(self: LiveMonitor, event: Any) -> None:
        t0 = time.perf_counter()
        try:
            on_event(self, event)
        finally:
            with monitor_lock:
                wall["monitor"] += time.perf_counter() - t0

    LiveMonitor.on_event = monitored  # type: ignore[method-assign]
    try:
        # hypothesis's start-up per run (it digests the machine's source, among others), with one 1-step program
        t0 = time.perf_counter()
        run_state_machine_as_test(machine, settings=settings(profile("ci"), max_examples=1, stateful_step_count=1,
                                                             derandomize=True))
        start_up = time.perf_counter() - t0
        wall.clear()
        cpu.clear()
        before = STEPS["steps"]
        t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
        run_state_machine_as_test(machine, settings=settings(profile("ci"), max_examples=examples, derandomize=True))
        elapsed, process, main = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
    finally:
        LiveMonitor.on_event = on_event  # type: ignore[method-assign]
        for obj, attr, value in reversed(patched):
            object.__setattr__(obj, attr, value) if not isinstance(obj, type) else setattr(obj, attr, value)
    steps = STEPS["steps"] - before
    machine_wall = wall["rules"] + wall["oracle"] + wall["setup"]

    def us(x: float) -> str:
        return f"{1e6 * x / steps:6.0f} us"

    rows = [
        ("hypothesis engine (rule choice, preconditions, draws; main thread)", elapsed - machine_wall),
        ("program set-up and teardown (runtimes, final checks)", wall["setup"]),
        ("oracle after each step (statistics() views vs model state)", wall["oracle"]),
        ("rule bodies: main thread's own CPU", cpu["rules"]),
        ("rule bodies: waiting for runtime threads (implementation, hand-offs, monitors)",
         wall["rules"] - cpu["rules"]),
        ("  the live monitors stepping the models (every model event, mostly within the row above)",
         wall["monitor"]),
    ]
    print(f"  per-step breakdown ({steps:,} steps, {elapsed:.2f}s wall, {1e6 * elapsed / steps:.0f} us/step; "
          f"process CPU {1e6 * process / steps:.0f} us/step, of which main thread {1e6 * main / steps:.0f}; "
          f"load {os.getloadavg()[0]:.2f}):")
    for label, value in rows:
        print(f"    {us(value)}  {label}")
    print(f"    a run of one 1-step program takes {1e3 * start_up:.0f} ms (hypothesis's start-up, included in the "
          f"engine's row above once per run)")


def _demo_trace() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    buf = io.StringIO()
    DemoWorker.finished.clear()
    DemoWorker.saved.clear()
    with Runtime(threads=1, trace=[NdjsonSink(buf)], memory_trace=False) as rt:
        build_demo(rt)
        for path in ("/", "/throw", "/pass", "/wait", "/do/a", "/do/a"):
            try:
                rt.fetch("app", Request("GET", f"http://example.com{path}"))
            except Exception:  # an exception tunnelled to the listener is part of the workload
                pass
            rt.settle()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    return lines[0], lines[1:]


def _id_params(models: list[str]) -> dict[str, set[str]]:
    """op -> the parameters that name identities other than threads (renamed per copy)."""
    out: dict[str, set[str]] = {}
    for name in models:
        for a in get_model(name).actions:
            for p in a.params:
                sort = p.sort.inner if isinstance(p.sort, OptSort) else p.sort
                if isinstance(sort, IdSort) and sort.name != "Thread":
                    out.setdefault(a.operation or a.name, set()).add(p.name)
    return out


def write_big_trace(path: Path, events: int) -> int:
    """Copies of the demo trace, each with its own identities (``ctx-1`` becomes ``ctx-1.k``), until ``events``."""
    header, body = _demo_trace()
    ids = _id_params(header["models"])
    seq = 0
    with path.open("w") as f:
        f.write(json.dumps(header) + "\n")
        copy = 0
        while seq < events:
            for e in body:
                if seq >= events:
                    break
                seq += 1
                renamed = ids.get(e["op"], ())
                args = {k: (f"{v}.{copy}" if k in renamed and v is not None else v) for k, v in e["args"].items()}
                f.write(json.dumps({**e, "seq": seq, "args": args}) + "\n")
            copy += 1
    return seq


def _json_rate(path: Path, n: int) -> float:
    t0 = time.perf_counter()
    with path.open("rb") as f:
        for line in f:
            json.loads(line)
    return n / (time.perf_counter() - t0)


def _timed_check(path: Path, engine: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    rep = check_trace(path, engine=engine)
    total = time.perf_counter() - t0
    assert rep.ok and rep.engine == engine, rep.summary()
    return total, rep


def offline_throughput(events: int, c_events: int) -> None:
    """Both engines end to end on the same trace (checking, header included); json.loads for the ratio.

    The compiled engine is built once before timing (a build is cached on disk by the hash of
    its source; the first build of a model set takes ~20-30s at -O2).
    """
    from properties.compiled.engine import compiled_checker, unavailable_reason

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.ndjson"
        n = write_big_trace(path, events)
        parse = _json_rate(path, n)
        t0 = time.perf_counter()
        header = json.loads(path.open("rb").readline())
        have_c = compiled_checker(header["models"]) is not None
        build = time.perf_counter() - t0
        total, _ = _timed_check(path, "python")
        print(f"offline trace checking, python engine: {n / total:,.0f} events/s end to end ({n:,} events, "
              f"{total:.1f}s; plain json.loads alone {parse:,.0f} events/s, checking costs "
              f"{parse * total / n:.0f}x parsing)  target >= 1,000,000 events/s")
        if not have_c:
            print(f"offline trace checking, c engine: not available ({unavailable_reason()})")
            return
        c_total, _ = _timed_check(path, "c")
        print(f"offline trace checking, c engine: {n / c_total:,.0f} events/s end to end ({n:,} events, "
              f"{c_total:.2f}s; {total / c_total:.0f}x the python engine; {n / c_total / parse:.1f}x plain json.loads; "
              f"build or cache lookup before timing {build:.1f}s)  target >= 1,000,000 events/s")
    if c_events:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "big.ndjson"
            t0 = time.perf_counter()
            n = write_big_trace(path, c_events)
            written = time.perf_counter() - t0
            parse = _json_rate(path, n)
            c_total, _ = _timed_check(path, "c")
            print(f"offline trace checking, c engine, {n:,} events: {n / c_total:,.0f} events/s end to end "
                  f"({c_total:.2f}s; plain json.loads alone {parse:,.0f} events/s: {n / c_total / parse:.1f}x; "
                  f"trace written in {written:.0f}s)  target >= 1,000,000 events/s")


def _per_call_us(calls: dict[str, Any], n: int, rounds: int) -> dict[str, float]:
    """Microseconds per call of each of ``calls``: the median over ``rounds`` interleaved batches of ``n`` calls."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for k, fn in calls.items():
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[k].append((time.perf_counter() - t0) / n * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


def reads_cost(requests: int, rounds: int) -> None:
    """The oracle's reads, mid-run: one function's cells, one model's state, one prediction (allowed and forbidden),
    from the compiled engine (`CompiledStepper.cells`, `state`, `predict`: docs/compiled-engine.md) and from the
    Python monitor (the same renderings), in microseconds per call, measured in one run."""
    from properties.compiled.engine import compiled_stepper
    from properties.monitor import Monitor, render_cells
    from reference_impl.monitoring import monitor_consts

    with Runtime(threads=2) as rt:
        rt.add_worker("b", Bench)
        for i in range(requests):
            rt.fetch("b", Request(), thread=i % 2)
        # mid-run: contexts alive, requests pending
        for i in range(2):
            rt.fetch("b", Request(), thread=i % 2)
        assert rt.trace is not None
        models, consts, events = list(rt.recorder.header["models"]), monitor_consts(rt), list(rt.trace.events)
        rt.settle()
    checked = [e for e in events if not e["op"].startswith("note.")]
    mid = len(checked) - 20
    stepper = compiled_stepper(models, consts, thread=True)
    if stepper is None:
        print("reads: no C compiler")
        return
    mon = Monitor(models, consts=consts)
    for e in checked[:mid]:
        mon.step(e)
        stepper.sink_event(e)
    allowed = {"op": checked[mid]["op"], "args": checked[mid]["args"]}
    forbidden = next({"op": e["op"], "args": e["args"]} for e in checked[:mid] if mon.predict(e) is None)
    model, func = "context", "ctx_state"
    w, decls = mon.tracked(model)
    d = next(x for x in decls if x.name == func)
    assert stepper.cells(model, func) == render_cells(mon.names, d, w.sm.cells(d))  # type: ignore[arg-type]
    assert stepper.state(model) == mon.state(model)
    assert stepper.held(model, func) == set(w.sm.cells(d).values())  # type: ignore[arg-type]
    assert stepper.predict(allowed) == mon.predict(allowed) is not None
    assert stepper.predict(forbidden) is mon.predict(forbidden) is None
    us = _per_call_us({
        "c cells": lambda: stepper.cells(model, func),
        "python cells": lambda: render_cells(mon.names, d, w.sm.cells(d)),  # type: ignore[arg-type]
        "c held": lambda: stepper.held(model, func),
        "python held": lambda: set(w.sm.cells(d).values()),  # type: ignore[arg-type]
        "c state": lambda: stepper.state(model),
        "python state": lambda: mon.state(model),
        "c predict allowed": lambda: stepper.predict(allowed),
        "python predict allowed": lambda: mon.predict(allowed),
        "c predict forbidden": lambda: stepper.predict(forbidden),
        "python predict forbidden": lambda: mon.predict(forbidden),
    }, 2000, rounds)
    cells = len(w.sm.cells(d))  # type: ignore[arg-type]
    print(f"oracle reads after {mid:,} events of {len(models)} models (median of {rounds} interleaved batches of "
          f"2,000 calls, us per call):")
    rows = [(f"cells({model}, {func}) [{cells} cells]", "cells"), (f"held({model}, {func})", "held"),
            (f"state({model})", "state"),
            (f"predict({allowed['op']}) allowed", "predict allowed"),
            (f"predict({forbidden['op']}) forbidden", "predict forbidden")]
    for label, key in rows:
        c, py = us[f"c {key}"], us[f"python {key}"]
        print(f"  {label:<44} c {c:7.2f}   python {py:7.2f}   ({py / c:.1f}x)")
    stepper.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=100, help="requests per round (monitor overhead)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--programs", type=int, default=40, help="hypothesis programs (steps/s)")
    p.add_argument("--events", type=int, default=100_000, help="events in the offline trace (both engines)")
    p.add_argument("--c-events", type=int, default=1_000_000,
                   help="events in a second trace checked by the c engine only (the issue's 1,000,000; 0: skip)")
    p.add_argument("--only", choices=("overhead", "overhead-breakdown", "steps", "offline", "reads"),
                   help="run one benchmark")
    p.add_argument("--steps-rounds", type=int, default=2, help="steps/s: interleaved rounds of each oracle")
    p.add_argument("--workers", type=int, default=1,
                   help="steps/s: also N processes running the machine at once against one alone (N > 1)")
    p.add_argument("--breakdown", action="store_true",
                   help="steps/s: also time where a step goes (a second, instrumented run of each machine)")
    args = p.parse_args()
    if args.only in (None, "overhead"):
        monitor_overhead(args.requests, args.rounds)
    if args.only in (None, "overhead-breakdown"):
        overhead_breakdown(args.requests, args.rounds)
    if args.only in (None, "steps"):
        machine_steps(args.programs, args.breakdown, args.steps_rounds)
        if args.workers > 1:
            machine_steps_parallel(args.programs, args.workers, args.steps_rounds)
    if args.only in (None, "offline"):
        offline_throughput(args.events, args.c_events)
    if args.only in (None, "reads"):
        reads_cost(args.requests // 10, args.rounds)


if __name__ == "__main__":
    main()
