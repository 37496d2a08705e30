"""Every faulty variant of the reference implementation is caught; the reference itself is not.

Each fault in `reference_impl.faults.FAULTS` has a scenario here that exercises its rule and a
detector.  The same scenario runs twice: on the reference implementation (the detector must
find nothing and the live monitor must pass) and on the faulty variant (the detector must
fire).  Detection is by the live monitor (a step the models forbid, a wrong result) where the
rule's model is in the catalog, by comparing `statistics()` with the model state, or by the
wrong behaviour the rule exists to prevent (what a conformance test observes).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from reference_impl import IncomingRequest, IoContext, JsError, Request, Response, Runtime, StaticService, WorkerdError
from reference_impl.api import CollectingResponse
from reference_impl.errors import ExceededCpu
from reference_impl.faults import FAULTS
from reference_impl.monitoring import compare_with_model
from tests.reference_helpers import drain, new_context, on, release_keep_alive, run_in, runtime, service


class Closable:
    def __init__(self) -> None:
        self.closed_on: list[str] = []

    def close(self) -> None:
        self.closed_on.append(threading.current_thread().name)


def monitor_violation(rt: Runtime) -> str | None:
    v = rt.monitor.violation if rt.monitor is not None else None
    return None if v is None else f"monitor: {v}"


@dataclass
class Scenario:
    run: Callable[[Runtime], Any]
    #: returns what caught the fault (empty: nothing did)
    detect: Callable[[Runtime, Any], list[str]]
    threads: int = 2
    kw: dict[str, Any] | None = None


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, threads: int = 2, **kw: Any) -> Callable[[Callable[[Runtime], Any]], Callable[[Runtime], Any]]:
    def deco(fn: Callable[[Runtime], Any]) -> Callable[[Runtime], Any]:
        SCENARIOS[name] = Scenario(fn, _detector(fn), threads, kw)
        return fn

    return deco


def _detector(fn: Callable[[Runtime], Any]) -> Callable[[Runtime, Any], list[str]]:
    """The scenario returns a behavioural finding (or None); the monitor and the model comparison are always checked."""

    def detect(rt: Runtime, finding: Any) -> list[str]:
        found = []
        v = monitor_violation(rt)
        if v:
            found.append(v)
        if finding:
            found.append(f"behaviour: {finding}")
        diffs = compare_with_model(rt) if rt.monitor is not None and rt.monitor.ok else []
        if diffs:
            found.append("statistics differ from the model: " + "; ".join(diffs))
        return found

    return detect


# ---- ownership ---------------------------------------------------------------------------------------


@scenario("delete_on_wrong_thread")
def _gc_drop(rt: Runtime) -> Any:
    ctx, r = new_context(rt, 0)
    obj = Closable()
    own = run_in(rt, ctx, lambda: ctx.add_object(obj, "X"))
    rt.gc.collect(own.drop)
    run_in(rt, ctx, lambda: None)
    drain(rt, r)
    return None if obj.closed_on == ["thread-0"] else f"object destroyed on {obj.closed_on}"


@scenario("access_check_missing")
def _cross_thread_access(rt: Runtime) -> Any:
    a, ra = new_context(rt, 0)
    b, rb = new_context(rt, 1)
    own = run_in(rt, a, lambda: a.add_object(Closable(), "X"))
    try:
        run_in(rt, b, own.get)
        finding = "another request's object was usable"
    except WorkerdError:
        finding = None
    drain(rt, ra)
    drain(rt, rb)
    return finding


@scenario("access_check_compares_threads")
def _same_thread_access(rt: Runtime) -> Any:
    a, ra = new_context(rt, 0)
    b, rb = new_context(rt, 0)
    own = run_in(rt, a, lambda: a.add_object(Closable(), "X"))
    try:
        run_in(rt, b, own.get)
        finding = "another request's object on the same thread was usable"
    except WorkerdError:
        finding = None
    drain(rt, ra)
    drain(rt, rb)
    return finding


@scenario("deletion_after_death")
def _drop_after_death(rt: Runtime) -> Any:
    ctx, r = new_context(rt, 0)
    obj = Closable()
    own = run_in(rt, ctx, lambda: ctx.add_object(obj, "X"))
    drain(rt, r)
    rt.gc.collect(own.drop)
    return None if len(obj.closed_on) == 1 else f"object destroyed {len(obj.closed_on)} times"


@scenario("double_deletion")
def _drop_in_owner(rt: Runtime) -> Any:
    ctx, r = new_context(rt, 0)
    obj = Closable()
    run_in(rt, ctx, lambda: ctx.add_object(obj, "X").drop())
    run_in(rt, ctx, lambda: None)
    drain(rt, r)
    return None if len(obj.closed_on) == 1 else f"object destroyed {len(obj.closed_on)} times"


@scenario("deletion_without_queue_lock")
def _gc_drop_locked(rt: Runtime) -> Any:
    return _gc_drop(rt)  # same as new_context( ... ) above: built by hand


@scenario("queue_processed_when_dead")
def _action_then_death(rt: Runtime) -> Any:
    ctx, r = new_context(rt, 0)
    release_keep_alive(rt, ctx)
    ran: list[int] = []

    def schedule_and_die() -> None:
        ctx.delete_queue.schedule_action(lambda: ran.append(1))
        r.destroy()  # the context dies in the same turn, before its signal task ran

    on(rt, 0, schedule_and_die)
    rt.threads[0].run(asyncio.sleep(0.02))
    return "an action ran in a dead context" if ran else None


# ---- IoContext / abort -------------------------------------------------------------------------------------


@scenario("run_after_abort")
def _run_after_abort(rt: Runtime) -> Any:
    ctx, r = new_context(rt, 0)
    on(rt, 0, lambda: ctx.abort(JsError("stop")))
    ran: list[int] = []
    try:
        run_in(rt, ctx, lambda: ran.append(1))
    except JsError:
        pass
    drain(rt, r)
    return "code ran after abort" if ran else None


@scenario("run_without_request", threads=1)
def _run_without_request(rt: Runtime) -> Any:
    """An actor context whose only request was dropped: its Actor keeps it alive, but no code may run in it."""
    ctx, r = new_context(rt, 0, actor=True)
    on(rt, 0, r.destroy)
    ran: list[int] = []
    try:
        run_in(rt, ctx, lambda: ran.append(1))
    except WorkerdError:
        pass
    return "code ran in an actor context with no IncomingRequest" if ran else None


class AbortedCron:
    async def scheduled(self, controller, env, ctx):  # type: ignore[no-untyped-def]
        ctx.wait_until(asyncio.get_running_loop().create_future())
        cur = IoContext.current()
        cur.abort(ExceededCpu("cpu"))
        cur.abort(JsError("later"))


@scenario("abort_last_reason_wins")
def _two_aborts(rt: Runtime) -> Any:
    service(rt, "c", AbortedCron)
    outcome = rt.scheduled("c").outcome
    return None if outcome == "exceededCpu" else f"scheduled outcome {outcome} (the first abort reason is exceededCpu)"


# ---- requests, drains, scheduled events ----------------------------------------------------------------------


class Lingers:
    """A stateless fetch with a waitUntil task and a plain task, timed so that no stall decides the outcome.

    The waitUntil task ends when the scenario opens `gate`, well after the response: a drain that does not wait
    for it has destroyed the context (and cancelled the task) long before.  The plain task would end long after
    that: the reference's drain ends with the waitUntil task and cancels it, a drain that waits for it lets it run.
    """

    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        done = Lingers.flags.setdefault(id(env), [])

        async def linger() -> None:
            while not Lingers.gate.is_set():
                await asyncio.sleep(0.002)
            done.append("waitUntil")

        async def plain() -> None:
            await asyncio.sleep(PLAIN_TASK_SECONDS)
            done.append("plain")

        ctx.wait_until(linger())
        Lingers.tasks.append(asyncio.ensure_future(plain()))  # a plain task: the drain must not wait for it
        return Response("ok")

    flags: ClassVar[dict[int, list[str]]] = {}
    tasks: ClassVar[list[object]] = []
    gate: ClassVar[threading.Event] = threading.Event()


#: the scenario opens the waitUntil task's gate this long after the response, and the plain task ends this long
#: after it started: each is hundreds of times what the step it races takes
GATE_SECONDS = 0.5
PLAIN_TASK_SECONDS = 3.0


def _lingers(rt: Runtime) -> list[str]:
    svc = service(rt, "l", Lingers)
    Lingers.flags.pop(id(svc.env), None)  # an earlier run's env may have had the same id
    Lingers.gate.clear()
    rt.fetch("l", Request())
    time.sleep(GATE_SECONDS)
    Lingers.gate.set()
    rt.settle()
    return Lingers.flags.get(id(svc.env), [])


@scenario("drain_ignores_wait_until")
def _drain_wait_until(rt: Runtime) -> Any:
    done = _lingers(rt)
    return None if "waitUntil" in done else "a waitUntil task was cancelled by the drain"


@scenario("drain_waits_for_tasks")
def _drain_tasks(rt: Runtime) -> Any:
    done = _lingers(rt)
    return "a plain task outlived the stateless drain" if "plain" in done else None


class Deliver2:
    pass


@scenario("deliver_twice")
def _deliver_twice(rt: Runtime) -> Any:
    _ctx, r = new_context(rt, 0)
    try:
        on(rt, 0, r.delivered)
        finding = "delivered() accepted a second call"
    except WorkerdError:
        finding = None
    drain(rt, r)
    return finding


@scenario("superseded_drain_not_cancelled", threads=1)
def _superseded(rt: Runtime) -> Any:
    ctx, r1 = new_context(rt, actor=True)
    gate = threading.Event()

    async def slow() -> None:
        while not gate.is_set():
            await asyncio.sleep(0.002)

    run_in(rt, ctx, lambda: ctx.add_wait_until(slow()))
    drain_future = rt.threads[0].submit(r1.drain())
    r2 = on(rt, 0, lambda: IncomingRequest(ctx))
    on(rt, 0, r2.delivered)
    try:
        drain_future.result(0.5)
        finding = None
    except TimeoutError:
        finding = "the superseded drain kept running"
    gate.set()
    drain_future.result(5)
    drain(rt, r2)
    return finding


class Cron:
    async def scheduled(self, controller, env, ctx):  # type: ignore[no-untyped-def]
        async def fail(err: BaseException, delay: float) -> None:
            await asyncio.sleep(delay)
            Cron.done.append(type(err).__name__)
            raise err

        ctx.wait_until(fail(JsError("first"), 0.01))
        ctx.wait_until(fail(ExceededCpu("second"), 0.03))

    done: ClassVar[list[str]] = []


@scenario("finish_scheduled_ignores_wait_until")
def _scheduled_waits(rt: Runtime) -> Any:
    Cron.done.clear()
    service(rt, "c", Cron)
    rt.scheduled("c")
    return None if len(Cron.done) == 2 else "finishScheduled returned before its waitUntil tasks"


@scenario("last_failure_wins")
def _first_failure(rt: Runtime) -> Any:
    Cron.done.clear()
    service(rt, "c", Cron)
    outcome = rt.scheduled("c").outcome
    return None if outcome == "exception" else f"outcome {outcome}; the first failure was an exception"


# ---- the entrypoint ---------------------------------------------------------------------------------------


class App:
    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        ctx.pass_through_on_exception()
        if request.url.endswith("stream"):
            async def body():  # type: ignore[no-untyped-def]
                yield b"first"
                raise JsError("stream broke")

            return Response(body())
        raise JsError("boom")


def _app(rt: Runtime) -> StaticService:
    fb = StaticService("fb", b"fallback")
    rt.add_service(fb)
    service(rt, "app", App, global_outbound="fb")
    return fb


@scenario("pass_through_ignored")
def _pass_through(rt: Runtime) -> Any:
    _app(rt)
    try:
        resp = rt.fetch("app", Request("GET", "http://x/throw"))
        finding = None if resp.body == b"fallback" else f"got {resp.status} {resp.body!r}"
    except JsError:
        finding = "the exception escaped although passThroughOnException() was called"
    rt.settle()
    return finding


def _stream(rt: Runtime) -> tuple[CollectingResponse, StaticService]:
    fb = _app(rt)
    sink = CollectingResponse()
    try:
        rt.threads[0].run(rt.services["app"].request(Request("GET", "http://x/stream"), sink))
    except JsError:
        pass
    rt.settle()
    return sink, fb


@scenario("fallback_after_headers")
def _fallback_late(rt: Runtime) -> Any:
    _sink, fb = _stream(rt)
    return "the fallback was asked after the headers were sent" if fb.received else None


@scenario("exception_after_headers_500")
def _late_500(rt: Runtime) -> Any:
    sink, _ = _stream(rt)
    ops = [e["op"].removeprefix("note.") for e in rt.trace.events]
    if "synthetic_status" in ops and ops.index("synthetic_status") > ops.index("response_sent"):
        return "a synthetic status after the response was sent"
    return "the truncated body was completed" if sink.ended else None


# ---- actors and locks -------------------------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.stream = None

    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        if self.stream is None:
            self.stream = ctx.create_stream()
        self.stream.write(b"x")
        return Response(self.stream.read())


class Front:
    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        return await env.NS.get("one").fetch(request)


@scenario("actor_new_context_per_request")
def _actor_context(rt: Runtime) -> Any:
    service(rt, "front", Front, durable_objects={"NS": Counter})
    try:
        rt.fetch("front", Request())
        rt.fetch("front", Request(), thread=1)
        finding = None
    except WorkerdError as e:
        finding = f"the actor's second request failed: {e}"
    rt.settle()
    actor_contexts = [c for c in rt.contexts if c.actor is not None]
    return finding or (None if len(actor_contexts) == 1 else f"{len(actor_contexts)} contexts for one actor")


@scenario("async_lock_lifo", threads=4)
def _lock_order(rt: Runtime) -> Any:
    from reference_impl import IsolateConfig
    from tests.test_reference_locks import Holder, _wait_until

    q = rt.isolate_for(IsolateConfig()).lock_queue
    order: list[str] = []
    first = Holder(rt, 0, q, order)
    assert first.granted.wait(5)
    waiters = []
    for i in (1, 2, 3):
        waiters.append(Holder(rt, i, q, order))
        _wait_until(lambda n=i: len(q.statistics().waiting) == n)
    first.release()
    pending = list(waiters)
    while pending:  # release each turn as soon as it is granted, whichever thread got it
        _wait_until(lambda: any(w.granted.is_set() for w in pending))
        w = next(w for w in pending if w.granted.is_set())
        w.release()
        pending.remove(w)
    expected = ["thread-0", "thread-1", "thread-2", "thread-3"]
    return None if order == expected else f"turns granted in order {order}"


# ---- interleaving-dependent faults: the controlled scheduler replays the unlucky schedule ----------------


def _replay_witness(fault: str, faults: set[str]) -> Any:
    """Replay the committed witness of ``fault`` (found by predictive checking of a lucky run)."""
    from pathlib import Path

    from reference_impl.scenarios import replay_schedule

    path = Path(__file__).parent / "data" / "schedules" / f"{fault}.witness.json"
    # the faulty run's replay follows the whole schedule: a second's stall must not make it give up as stuck
    res = replay_schedule(path, stuck=1.0 if fault not in faults else 5.0, faults=faults)
    # the reference takes the mutex the witness needs free: its replay cannot follow the schedule
    return None if res.violation is None else f"controlled replay: {res.violation}"


def _queue_race(fault: str) -> Callable[[Runtime], Any]:
    def run(rt: Runtime) -> Any:
        return _replay_witness(fault, rt.faults)

    return run


for _fault in ("queue_lock_skipped", "queue_closed_without_lock"):
    scenario(_fault)(_queue_race(_fault))


# ---- the tests -------------------------------------------------------------------------------------------


def test_every_fault_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == sorted(FAULTS)


def _run(name: str, faults: set[str]) -> list[str]:
    sc = SCENARIOS[name]
    direct = "new_context(" in inspect.getsource(sc.run)
    with runtime(threads=sc.threads, faults=faults, direct=direct, **(sc.kw or {})) as rt:
        finding = sc.run(rt)
        return sc.detect(rt, finding)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_the_reference_passes_the_scenario(name: str) -> None:
    assert _run(name, set()) == []


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_the_fault_is_caught(name: str) -> None:
    caught = _run(name, {name})
    assert caught, f"fault {name} was not caught ({FAULTS[name].shows_as})"


MONITOR_CAUGHT = {
    "delete_on_wrong_thread", "access_check_missing", "access_check_compares_threads", "deletion_after_death",
    "double_deletion", "deletion_without_queue_lock", "queue_processed_when_dead", "run_after_abort",
    "abort_last_reason_wins", "run_without_request",
}


@pytest.mark.parametrize("name", sorted(MONITOR_CAUGHT))
def test_the_models_catch_the_fault_in_the_trace(name: str) -> None:
    """Faults of rules whose models are in the catalog show up as forbidden steps or state mismatches."""
    caught = _run(name, {name})
    assert any(c.startswith(("monitor:", "statistics differ")) for c in caught), caught
