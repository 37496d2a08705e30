"""Named multi-threaded scenarios of the reference implementation, runnable under the controlled scheduler.

A scenario is a function of a `Runtime` that drives real threads: the GC thread drops an
``IoOwn`` (io/io-own.c++ ``scheduleDeletion``) while the owner's thread enters the context
again (io/io-context.c++:1317-1326, the DeleteQueue processed under its mutex) or tears it
down (io/io-context.h:1137-1152, the queue closed under its mutex).  What the scenario's
threads do concurrently is left to the scheduler; hand-offs between the driving thread and
the runtime threads are recorded (``note.post`` / ``note.wait``) so predictive checking knows
what the driver orders.  ``signal_vs_teardown`` races two asyncio tasks of one thread: the
DeleteQueue's signal task (woken by another thread's ``scheduleAction``, io/io-own.c++:22-55)
against the teardown job (io/io-context.c++:700-721, which cancels the signal task).

`run_scenario` runs one scenario with a strategy (reference_impl.scheduler) and returns the
trace, the live monitor's verdict and the schedule (replayable: `Schedule.save`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from reference_impl.runtime import TRACE_MODELS, Runtime
from reference_impl.scheduler import (
    ControlledScheduler,
    ReplayStrategy,
    RunResult,
    Schedule,
    Strategy,
    later_units,
)

__all__ = ["SCENARIOS", "run_scenario", "replay_schedule", "record_uncontrolled"]

#: Contexts are made by hand (no WorkerEntrypoint), so the entrypoint model is left out of the trace.
SCENARIO_MODELS = [m for m in TRACE_MODELS if m != "entrypoint"]


class _Empty:
    async def fetch(self, request: Any, env: Any, ctx: Any) -> Any:
        from reference_impl import Response

        return Response("empty")


class _Closable:
    def __init__(self) -> None:
        self.closed_on: list[str] = []

    def close(self) -> None:
        self.closed_on.append(threading.current_thread().name)


def _start(rt: Runtime, thread: int, fn: Callable[[], Any], *, coroutine: bool = False) -> tuple[Any, str]:
    """Hand ``fn`` to runtime thread ``thread``; returns (future, edge).  The hand-off itself is recorded by
    the thread's loop (``call_soon_threadsafe``); its completion, which this thread waits for without a
    loop, is recorded here (``note.post {edge}:done`` there, where the future is resolved, ``note.wait`` in
    `_join`).  A coroutine runs as the task named ``edge`` (``job-N``)."""
    rec = rt.recorder
    edge = rec.new_id("job")
    if coroutine:
        return rt.threads[thread].submit(fn(), name=edge,
                                         settled=lambda: rec.sync_event("post", edge=edge + ":done")), edge

    def job() -> Any:
        try:
            return fn()
        finally:
            rec.sync_event("post", edge=edge + ":done")

    return rt.threads[thread].call(job), edge


def _join(rt: Runtime, started: tuple[Any, str], timeout: float = 20.0) -> Any:
    fut, edge = started
    result = fut.result(timeout)
    rt.recorder.sync_event("wait", edge=edge + ":done")
    return result


def _on(rt: Runtime, thread: int, fn: Callable[[], Any], *, coroutine: bool = False) -> Any:
    return _join(rt, _start(rt, thread, fn, coroutine=coroutine))


def _gc_start(rt: Runtime, fn: Callable[[], Any]) -> tuple[threading.Event, list[BaseException]]:
    return rt.gc.submit(fn)


def _gc_join(rt: Runtime, job: tuple[threading.Event, list[BaseException]], timeout: float = 20.0) -> None:
    done, errors = job
    if not done.wait(timeout):
        raise TimeoutError("the GC thread did not finish")
    edge = getattr(done, "edge", None)
    if edge is not None:
        rt.recorder.sync_event("wait", edge=edge + ":done")
    if errors:
        raise errors[0]


def _context(rt: Runtime, thread: int) -> tuple[Any, Any]:
    """A stateless context with one delivered IncomingRequest on ``thread`` (kept alive until `_drain`)."""
    from reference_impl import IncomingRequest, IoContext

    svc = rt.services.get("w") or rt.add_worker("w", _Empty)

    def make() -> tuple[Any, Any]:
        ctx = IoContext(rt, svc.worker, svc)  # type: ignore[attr-defined,arg-type]
        r = IncomingRequest(ctx)
        r.delivered()
        ctx._io_pending += 1  # an in-flight I/O: hang detection leaves the context alone until _drain
        return ctx, r

    return _on(rt, thread, make)  # type: ignore[no-any-return]


def _drain_async(rt: Runtime, r: Any) -> Callable[[], Any]:
    async def drain() -> None:
        r.context._io_pending -= 1
        await r.drain()

    return drain


def gc_drop_vs_entry(rt: Runtime) -> None:
    """The GC thread drops an IoOwn while its owner's thread enters the context again."""
    ctx, r = _context(rt, 1)
    own = _on(rt, 1, lambda: ctx.run(lambda: ctx.add_object(_Closable(), "X")), coroutine=True)
    gc = _gc_start(rt, own.drop)
    entry = _start(rt, 1, lambda: ctx.run(lambda: None), coroutine=True)
    _gc_join(rt, gc)
    _join(rt, entry)
    _on(rt, 1, _drain_async(rt, r), coroutine=True)


def gc_drop_vs_teardown(rt: Runtime) -> None:
    """The GC thread drops an IoOwn while its owner's context is torn down."""
    ctx, r = _context(rt, 1)
    own = _on(rt, 1, lambda: ctx.run(lambda: ctx.add_object(_Closable(), "X")), coroutine=True)
    gc = _gc_start(rt, own.drop)
    teardown = _start(rt, 1, _drain_async(rt, r), coroutine=True)
    _gc_join(rt, gc)
    _join(rt, teardown)


def signal_vs_teardown(rt: Runtime) -> None:
    """Another thread schedules an action on a context (io/io-own.c++ ``scheduleAction``: the DeleteQueue's
    cross-thread signal wakes the context's signal task) while the owner's thread tears the context down
    (io/io-context.c++:700-721: the signal task is cancelled).  Both are steps of the owner's event loop: the
    race is between two asyncio tasks of one thread (``signal:ctx-1`` and the teardown job)."""
    ctx, r = _context(rt, 1)
    action = _start(rt, 0, lambda: ctx.delete_queue.schedule_action(lambda: None))
    teardown = _start(rt, 1, _drain_async(rt, r), coroutine=True)
    _join(rt, action)
    _join(rt, teardown)


def churn(rt: Runtime, objects: int = 20, rounds: int = 1) -> None:
    """Many objects in two contexts on two threads; the GC drops half of them while both owners keep entering."""
    contexts = [_context(rt, 0), _context(rt, 1)]

    def add_objects(c: Any) -> Callable[[], Any]:
        return lambda: c.run(lambda: [c.add_object(_Closable(), "X") for _ in range(objects)])

    def enter(c: Any) -> Callable[[], Any]:
        return lambda: c.run(lambda: None)

    for _ in range(rounds):
        owns: list[list[Any]] = [_on(rt, i, add_objects(ctx), coroutine=True) for i, (ctx, _r) in enumerate(contexts)]

        def drops(batches: list[list[Any]] = owns) -> None:
            for batch in batches:
                for o in batch[: objects // 2]:
                    o.drop()

        gc = _gc_start(rt, drops)
        entries = [_start(rt, i, enter(ctx), coroutine=True) for i, (ctx, _r) in enumerate(contexts)]
        _gc_join(rt, gc)
        for en in entries:
            _join(rt, en)
        for i, (ctx, _r) in enumerate(contexts):
            _on(rt, i, enter(ctx), coroutine=True)
    for i, (_ctx, r) in enumerate(contexts):
        _on(rt, i, _drain_async(rt, r), coroutine=True)


SCENARIOS: dict[str, Callable[[Runtime], None]] = {
    "gc_drop_vs_entry": gc_drop_vs_entry,
    "gc_drop_vs_teardown": gc_drop_vs_teardown,
    "signal_vs_teardown": signal_vs_teardown,
    "churn": churn,
}


def _check(name: str) -> Callable[[Runtime], None]:
    fn = SCENARIOS.get(name)
    if fn is None:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return fn


def _label(rt: Runtime, name: str, faults: list[str]) -> None:
    """Name the scenario and faults in the trace header (so a witness can be replayed)."""
    for head in (rt.recorder.header, rt.trace.head if rt.trace is not None else None):
        if head is not None:
            head["scenario"] = name
            head["faults"] = faults


def run_scenario(name: str, strategy: Strategy, *, faults: Iterable[str] = (), quiet: float = 0.004,
                 stuck: float = 2.0, trace_path: str | Path | None = None) -> RunResult:
    """Run scenario ``name`` under the controlled scheduler with ``strategy``; the live monitor watches."""
    fn = _check(name)
    faults = sorted(faults)
    sched = ControlledScheduler(strategy, quiet=quiet, stuck=stuck)
    t0 = time.perf_counter()
    rt = Runtime(threads=2, faults=faults, models=SCENARIO_MODELS, monitor=True, scheduler=sched)
    _label(rt, name, faults)
    try:
        fn(rt)
        if isinstance(strategy, ReplayStrategy):
            # a witness may place steps among the threads' shutdown (the scenario does not wait for every task)
            for t in rt.threads:
                t.stop()
    finally:
        sched.stop()
        rt.close()
    assert rt.trace is not None and rt.trace.head is not None
    desc = strategy.describe()
    result = RunResult(Schedule(name, faults, desc, [list(e) for e in sched.events]), list(rt.trace.events),
                       dict(rt.trace.head), rt.monitor.violation, seconds=time.perf_counter() - t0)
    if isinstance(strategy, ReplayStrategy):
        result.replay = sched.outcome
    result.extra["decisions"] = len(sched.decisions)
    result.extra["scheduler"] = sched
    if trace_path is not None:
        Path(trace_path).write_text("\n".join(result.trace_lines()) + "\n")
    return result


def replay_schedule(schedule: Schedule | str | Path, *, faults: Iterable[str] | None = None, **kw: Any) -> RunResult:
    """Replay a schedule file (or a predictive-checking witness, which has the same ``events``);
    ``faults`` replaces the schedule's faults (e.g. to replay a faulty run's schedule on the reference)."""
    if not isinstance(schedule, Schedule):
        p = Path(schedule)
        obj = json.loads(p.read_text())
        if "iospec_witness" in obj:
            schedule = Schedule(obj.get("scenario", ""), list(obj.get("faults", [])), {"name": "witness"},
                                [list(e) for e in obj["events"]], later=later_units(obj, p))
        else:
            schedule = Schedule.load(p)
    if not schedule.scenario:
        raise ValueError("the schedule names no scenario (record runs with run_scenario)")
    chosen = schedule.faults if faults is None else sorted(faults)
    return run_scenario(schedule.scenario, schedule.replay_strategy(), faults=chosen, **kw)


def record_uncontrolled(name: str, *, faults: Iterable[str] = (), trace_path: str | Path | None = None,
                        **scenario_kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run a scenario with real (uncontrolled) threads, recording synchronisation: (header, events)."""
    fn = _check(name)
    rt = Runtime(threads=2, faults=sorted(faults), models=SCENARIO_MODELS, record_sync=True)
    _label(rt, name, sorted(faults))
    try:
        fn(rt, **scenario_kw) if scenario_kw else fn(rt)  # type: ignore[call-arg]
    finally:
        rt.close()
    assert rt.trace is not None and rt.trace.head is not None
    if trace_path is not None:
        lines = [json.dumps(rt.trace.head)] + [json.dumps(e, sort_keys=True) for e in rt.trace.events]
        Path(trace_path).write_text("\n".join(lines) + "\n")
    return dict(rt.trace.head), list(rt.trace.events)


def make_strategy(name: str, *, seed: int = 1, depth: int = 2, order: Iterable[str] = ()) -> Strategy:
    """A strategy by name (random, pct, priority; dfs starts from the empty prefix)."""
    from reference_impl.scheduler import DFSStrategy, PCTStrategy, PriorityStrategy, RandomStrategy

    if name == "random":
        return RandomStrategy(seed)
    if name == "pct":
        return PCTStrategy(seed, depth=depth)
    if name == "priority":
        return PriorityStrategy(list(order))
    if name == "dfs":
        return DFSStrategy()
    raise ValueError(f"unknown strategy {name!r}; known: random, pct, priority, dfs")


def explore(name: str, strategy: str, *, runs: int, faults: Iterable[str] = (), seed: int = 1, depth: int = 2,
            quiet: float = 0.004,
            on_run: Callable[[int, RunResult], None] | None = None) -> tuple[RunResult | None, int]:
    """Run ``name`` under up to ``runs`` schedules (seeds ``seed``, ``seed+1``, ...; or a bounded DFS over the
    first ``depth`` decisions) until the live monitor rejects one: (that run or None, schedules run)."""
    from reference_impl.scheduler import DFSStrategy, next_dfs_prefix

    prefix: list[int] | None = []
    for k in range(runs):
        if strategy == "dfs":
            if prefix is None:
                return None, k
            strat: Strategy = DFSStrategy(prefix)
        else:
            strat = make_strategy(strategy, seed=seed + k, depth=depth)
        res = run_scenario(name, strat, faults=faults, quiet=quiet)
        if on_run is not None:
            on_run(k, res)
        if res.caught:
            return res, k + 1
        if isinstance(strat, DFSStrategy):
            prefix = next_dfs_prefix(strat.taken, depth)
    return None, runs
