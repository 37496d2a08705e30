"""A hypothesis state machine that drives the reference implementation, with the models as the oracle.

`ReferenceMachine` runs random programs on two real `reference_impl.Runtime` objects (runtime threads
with their event loops, plus a GC thread each).  It follows workerd's
io/io-context.{h,c++}, io/io-own.{h,c++} and io/worker-entrypoint.c++ through the reference
implementation:

* the *contexts* runtime (``self.rt``, three threads): contexts (stateless and actor) built by hand
  on random threads, objects added, accessed from random contexts, dropped in their owner or finalised on
  the GC thread; contexts entered, aborted (twice, with different reasons), drained, destroyed
  undrained; requests delivered again, new requests to actor contexts (delivered or not),
  waitUntil tasks (JS coroutines or native promises, each waiting on an I/O the machine later
  completes or fails; a JS one may resume in an actor context that lost its last request, and
  must then fail: INV-R8), ``setNoRetryScheduled``, ``finishScheduled()``, aborts while a drain
  or finishScheduled waits, a new delivery superseding an actor's drain, actor shutdown and the
  actor dropping its context, and two threads contending for the isolate lock.  Checked
  against the ``context``, ``ownership``, ``lifecycle``, ``actor`` and ``locks`` models (the
  runtime's `TRACE_MODELS` without ``entrypoint``, since these contexts have no entrypoint);
* the *events* runtime (``self.events``, one thread, built on first use): whole events through
  ``WorkerEntrypoint`` (every model of `TRACE_MODELS`, ``entrypoint`` included): fetch events to
  stateless workers and to actors, whose handler returns, throws before the headers or throws
  after them, with or without ``passThroughOnException()``, towards a working fallback
  (``globalOutbound``) or a failing one, adding waitUntil tasks the machine later completes or
  fails; scheduled events (``runScheduled`` -> ``finishScheduled``) with ``noRetry`` or not.

The oracle is the models, never a restated rule:

* every event a runtime emits goes through its live monitor (`reference_impl.monitoring`),
  which evaluates the model's guards, checks, outputs and invariants from their definitions;
* before a step whose result the models decide (``access``, ``enter``, ``deliver``), the
  machine asks the live monitor what the models *predict* for the event the step is about to
  emit (`properties.monitor.Monitor.predict`), performs the step, and compares the observed
  outcome (a value, or workerd's error with workerd's exact message) with the prediction;
* a fetch event's observed response (what the client got: status, body, an exception) must be
  the model's ``response`` for that request; a scheduled event's ``{outcome, noRetry}`` (the
  value ``finishScheduled()`` returned to its caller) must be what the models predicted when
  its ``finish_scheduled_*`` event was checked;
* after every step, the runtimes' read-only views (``statistics()`` of contexts and requests)
  must equal the model state: context state, entered, abort reason, queued deletions, every
  object's node and handle, every request's phase, waitUntil and task counts, the waitUntil
  status, retryScheduled and the fail-open flag.

Coverage: `COVERAGE` counts outcomes, `STEPS` counts steps and rules (``rule:<name>`` when the
rule acted, ``noop:<name>`` when its target could not take the step), and `STATES` counts, for
each tracked model function (`TRACKED`), the values it held after each model event (so
transient states count).  `coverage_table` renders them; `missing_states` lists the values of
`REQUIRED_STATES` never reached.

A failure message carries the seed line hypothesis prints, the rule ids, and the runs' traces
as NDJSON (after shrinking: a minimal replayable trace; ``iospec check-trace`` reads each).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import functools
import itertools
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from model.catalog import get_model
from model.core.sorts import BoolSort, EnumSort, IdSort, IntSort, OptSort
from reference_impl import IncomingRequest, IoContext, JsError, Request, Response, Runtime, WorkerdError
from reference_impl.api import CollectingResponse, ExecutionContext, ScheduledController
from reference_impl.errors import message_for
from reference_impl.io_context import ScheduledResult, _model_outcome
from reference_impl.io_own import IoOwn
from reference_impl.loop import RuntimeThread, ThreadPool
from reference_impl.monitoring import LiveMonitor, compare_with_model, feed_monitor, monitor_consts
from reference_impl.runtime import TRACE_MODELS
from reference_impl.service import FailingService, StaticService, WorkerService
from reference_impl.worker import Actor

__all__ = [
    "COVERAGE",
    "EVENT_RULES",
    "ORACLE_ENGINE",
    "PROFILES",
    "REQUIRED_STATES",
    "STATES",
    "STEPS",
    "THREADS",
    "TRACKED",
    "ReferenceMachine",
    "coverage_table",
    "machine_with_faults",
    "missing_states",
    "profile",
]

T = TypeVar("T")

THREADS = 3
#: models the contexts runtime's trace is for: it builds contexts by hand, so no WorkerEntrypoint events
MODELS = [m for m in TRACE_MODELS if m != "entrypoint"]
TIMEOUT = 10.0
#: whole events (fetch or scheduled) per program: each costs a few dozen model events over six models, and
#: the events runtime is built for the first one (steps/s: benchmarks/bench_monitor.py)
EVENTS_PER_PROGRAM = 4
#: per-program budgets of rules whose precondition is nearly always true: without one, hypothesis spends a
#: large share of the steps repeating them (each runs JS: seven model events of lock traffic and entry)
BUDGETS = {"contend": 2, "set_no_retry": 2, "new_actor_request": 4, "deliver_again": 6,
           "run_without_request": 2}
#: the engine the oracle reads (``IOSPEC_ORACLE_ENGINE``): ``c``, the compiled engine (its state, predictions and
#: coverage counts come from the C while it checks every event on its own thread; without a C compiler, or once
#: the C leaves a read to Python, the Python monitor answers), or ``python``, the Python monitor steps every event
ORACLE_ENGINE = os.environ.get("IOSPEC_ORACLE_ENGINE", "c")
if ORACLE_ENGINE not in ("c", "python"):
    raise ValueError(f"IOSPEC_ORACLE_ENGINE={ORACLE_ENGINE!r}: known engines are c, python")
#: runtime threads of the events runtime: one (the contexts runtime covers threads; a thread per runtime
#: costs a start and a join per program)
EVENT_THREADS = 1

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               print_blob=True)
#: settings profiles; choose with IOSPEC_HYPOTHESIS_PROFILE (default ``dev``)
PROFILES: dict[str, settings] = {
    "dev": settings(max_examples=30, stateful_step_count=30, **_common),  # type: ignore[arg-type]
    "ci": settings(max_examples=100, stateful_step_count=50, **_common),  # type: ignore[arg-type]
    # one batch of the soak campaign, which runs batches until IOSPEC_SOAK_STEPS steps
    # (IOSPEC_SOAK_EXAMPLES sizes a batch)
    "soak": settings(max_examples=int(os.environ.get("IOSPEC_SOAK_EXAMPLES", "1000")), stateful_step_count=100,
                     **_common),  # type: ignore[arg-type]
}


def profile(name: str | None = None) -> settings:
    name = name or os.environ.get("IOSPEC_HYPOTHESIS_PROFILE", "dev")
    if name not in PROFILES:
        raise ValueError(f"IOSPEC_HYPOTHESIS_PROFILE={name!r}: known profiles are {', '.join(PROFILES)}")
    return PROFILES[name]


# ---- coverage of model states ------------------------------------------------------------------------------------

#: model functions whose values are counted after every model event: label -> (model, function)
TRACKED: dict[str, tuple[str, str]] = {
    "ctx_state": ("context", "ctx_state"),
    "abort_reason": ("context", "abort_reason"),
    "node": ("ownership", "node"),
    "handle": ("ownership", "handle"),
    "queued": ("ownership", "queued"),
    "phase": ("lifecycle", "phase"),
    "wait_until": ("lifecycle", "wait_until"),
    "tasks": ("lifecycle", "tasks"),
    "wu_status": ("lifecycle", "wu_status"),
    "retry": ("lifecycle", "retry"),
    "actor_state": ("actor", "actor_state"),
    "ep_stage": ("entrypoint", "ep_stage"),
    "response": ("entrypoint", "response"),
    "fail_open_service": ("entrypoint", "fail_open_service"),
    "lock_waiter": ("locks", "waiter"),
    "lock_pending": ("locks", "pending"),
    "lock_held": ("locks", "held"),
    "lock_ahead": ("locks", "ahead"),
    "worker_lock": ("locks", "worker_lock"),
}

#: values no program of this machine can reach, and why (they are left out of `REQUIRED_STATES`)
UNREACHABLE: dict[str, str] = {
    "abort_reason=REASON_B": "the runtime names the first reason a context is aborted with REASON_A, and the first "
                             "reason wins (INV-A1): REASON_B is only ever a losing second reason",
    "phase=TIMED_OUT": "needs the production limit enforcer; both runtimes run workerd-serve limits",
    "wu_status=EXCEEDED_WALL_TIME": "needs the production limit enforcer",
    "ep_stage=HANDLER_CANCELED": "the machine never cancels an event's promise (the caller going away)",
    "ep_stage=CANCELED": "the machine never cancels an event's promise",
    "ep_stage=DISCARDED": "the machine never drops a WorkerEntrypoint before its event method",
    "response=NO_RESPONSE": "the machine never cancels an event's promise",
    "response=SYNTHETIC_500": "tunnelExceptions=false: never in standalone workerd (server.c++:3938)",
    "node=UNTRACKED": "IoPtr objects are not driven (only IoOwn)",
    "node=RELEASED": "ReverseIoOwn objects are not driven (only IoOwn)",
    "actor_state=BROKEN": "Actor::abort is not driven (an aborted actor context stays ACTIVE here)",
}


def _values(model: str, func: str) -> list[str]:
    """The values `STATES` distinguishes for a tracked function (counts: 0 / >0; identities: none / some)."""
    sort = get_model(model).decl(func).value_sort  # type: ignore[union-attr]
    if isinstance(sort, (EnumSort, BoolSort)):
        return [str(sort.render(v)) for v in sort.values({})]
    if isinstance(sort, IntSort):
        return ["0", ">0"]
    return ["none", "some"]


def _default(model: str, func: str) -> str:
    decl: Any = get_model(model).decl(func)
    return _label(decl.value_sort, decl.init)


def _label(sort: Any, v: int) -> str:
    if isinstance(sort, (IdSort, OptSort)):
        return "none" if v < 0 else "some"
    if isinstance(sort, IntSort):
        return "0" if v == 0 else ">0"
    return str(sort.render(v))


#: every (non-initial) value of every tracked function, but the `UNREACHABLE` ones
REQUIRED_STATES: list[str] = [
    f"{label}={v}" for label, (m, f) in TRACKED.items() for v in _values(m, f)
    if v != _default(m, f) and f"{label}={v}" not in UNREACHABLE
]

#: steps run (every step is followed by the state comparison) and rules, over every machine run in this process
STEPS: collections.Counter[str] = collections.Counter()
#: outcomes, over every machine run in this process
COVERAGE: collections.Counter[str] = collections.Counter()
#: ``label=value`` -> model events after which some identity's tracked function held that value
STATES: collections.Counter[str] = collections.Counter()


def tracked_of(models: Iterable[str]) -> list[str]:
    """The labels of `TRACKED` whose model is one of ``models`` or a base of one."""
    known = set(models) | {b for m in models for b in get_model(m).bases}
    return [label for label, (model, _) in TRACKED.items() if model in known]


def count_states(labels: list[str], counts: list[dict[int, int]]) -> None:
    """Add the compiled engine's per-event counts of the ``labels``' functions' values (`LiveMonitor.count_held`,
    in the order of ``labels``) to `STATES`."""
    for label, per_value in zip(labels, counts):
        model, func = TRACKED[label]
        sort = get_model(model).decl(func).value_sort  # type: ignore[union-attr]
        for v, n in per_value.items():
            STATES[f"{label}={_label(sort, v)}"] += n


class StateSampler:
    """After each model event, count the values the tracked functions hold (reads the monitor's cells only).

    The set of values a function holds changes only when an action writes it: the values are read again only for
    the tracked functions the event's actions update (their declared updates), and kept for the others.
    """

    def __init__(self, live: LiveMonitor) -> None:
        #: watched model -> its tracked functions (label, the cells' dict name, value sort)
        self.tracks: dict[int, list[tuple[str, str, Any]]] = collections.defaultdict(list)
        for label, (model, func) in TRACKED.items():
            for w in live.monitor.watched:
                if model != w.model.name and model not in w.model.bases:
                    continue
                decl = w.model.decl(func)
                self.tracks[id(w)].append((label, f"D{w.sm.func_index[decl]}", decl.value_sort))
                break
        self.by_op = live.monitor.by_op
        #: (watched model, op) -> the labels of the tracked functions the op's actions (or rejected twins) update
        self.writes: dict[tuple[int, str], frozenset[str]] = {}
        for w in live.monitor.watched:
            tracked = {f"D{w.sm.func_index[w.model.decl(TRACKED[label][1])]}": label
                       for label, _, _ in self.tracks.get(id(w), ())}
            for op, operation in w.ops.items():
                acts = [a for a in (operation.action, operation.rejected) if a is not None]
                keys = {f"D{w.sm.func_index[u.decl]}" for a in acts for u in a.updates if u.decl in w.sm.func_index}
                self.writes[(id(w), op)] = frozenset(tracked[k] for k in keys if k in tracked)
        self.cache: dict[tuple[str, int], str] = {}
        #: label -> the values' names its function holds now (as of the last event that wrote it)
        self.held: dict[str, list[str]] = {}

    def clear(self) -> None:
        """A new program: every function holds its initial value only (no cell)."""
        self.held.clear()

    def __call__(self, event: Mapping[str, Any], _predicted: dict[str, str]) -> None:
        """Only the models that stepped on ``event`` can have changed: sample their tracked functions."""
        cache, held = self.cache, self.held
        op = event["op"]
        for w in self.by_op.get(op, ()):
            ns = w.sm.ns
            written = self.writes.get((id(w), op))
            for label, key, sort in self.tracks.get(id(w), ()):
                names = held.get(label)
                if names is None or written is None or label in written:
                    names = held[label] = self._names(label, sort, ns[key], cache)
                for name in names:
                    STATES[name] += 1

    @staticmethod
    def _names(label: str, sort: Any, cells: dict[Any, int], cache: dict[tuple[str, int], str]) -> list[str]:
        out = []
        for v in set(cells.values()):
            name = cache.get((label, v))
            if name is None:
                name = cache[(label, v)] = f"{label}={_label(sort, v)}"
            out.append(name)
        return out


def missing_states(reached: Mapping[str, int] | None = None) -> list[str]:
    """`REQUIRED_STATES` never reached (by the machine runs of this process, or in ``reached``)."""
    counts = STATES if reached is None else reached
    return [s for s in REQUIRED_STATES if not counts.get(s)]


def coverage_table() -> str:
    """Per-rule and per-model-state coverage of the machine runs of this process, as text."""
    lines = [f"steps: {STEPS['steps']:,}", "rules (acted / could not act):"]
    rules = sorted({k.split(":", 1)[1] for k in STEPS if ":" in k})
    for r in rules:
        lines.append(f"  {r:<24} {STEPS['rule:' + r]:>8,} {STEPS['noop:' + r]:>8,}")
    lines.append("model states (model events after which some identity held the value):")
    for label, (m, f) in TRACKED.items():
        cells = []
        for v in _values(m, f):
            key = f"{label}={v}"
            mark = "" if key in REQUIRED_STATES or v == _default(m, f) else " (unreachable)"
            cells.append(f"{v}:{STATES[key]:,}{mark}")
        lines.append(f"  {m}.{f}: " + ", ".join(cells))
    lines.append("outcomes: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(COVERAGE.items())))
    missing = missing_states()
    lines.append(f"required model states reached: {len(REQUIRED_STATES) - len(missing)}/{len(REQUIRED_STATES)}"
                 + (f"; never reached: {', '.join(missing)}" if missing else ""))
    return "\n".join(lines)


# ---- the workers and objects the machine uses ----------------------------------------------------------------------

class Empty:
    """The worker whose contexts the machine builds by hand (its fetch handler is never called)."""

    async def fetch(self, request: Any, env: Any, ctx: Any) -> Any:  # pragma: no cover - not called
        return None


class Resource:
    """An I/O object; records every destruction and the thread it ran on (its ``close``)."""

    def __init__(self) -> None:
        self.closed_on: list[str] = []

    def close(self) -> None:
        self.closed_on.append(threading.current_thread().name)


@dataclass(eq=False)
class Gate:
    """An I/O the machine completes (or fails) later; a waitUntil task waits for it."""

    context: IoContext
    future: asyncio.Future[None]
    settled: bool = False

    def __repr__(self) -> str:
        return f"gate of {self.context.name}"


@dataclass(eq=False)
class Ctx:
    """The machine's handle on one hand-built context and its IncomingRequests (oldest first)."""

    context: IoContext
    requests: list[IncomingRequest]
    thread: int
    reasons: tuple[JsError, JsError] = field(default_factory=lambda: (JsError("reason A"), JsError("reason B")))
    kept_alive: bool = True

    def __repr__(self) -> str:
        return f"{self.context.name}@thread-{self.thread}{' actor' if self.context.actor else ''}"


@dataclass(eq=False)
class Obj:
    handle: IoOwn[Resource]
    resource: Resource
    owner: Ctx

    def __repr__(self) -> str:
        return self.handle.name


@dataclass(eq=False)
class Plan:
    """What one event's handler does (and, filled in by the handler, what it ran in)."""

    outcome: str  # return | throw | throw_after_headers
    pass_through: bool = False
    wait_until: tuple[bool, ...] = ()  # one gate each; True: a JS coroutine awaits it, False: the native promise
    no_retry: bool = False
    machine: Any = None
    context: IoContext | None = None
    request: IncomingRequest | None = None


#: plans by request URL (fetch) or cron string (scheduled); the handler takes its own
PLANS: dict[str, Plan] = {}
_plan_ids = itertools.count()


async def _js_wait(io: Any) -> None:
    """A JS waitUntil promise chain: resumes in its context when the I/O settles (rethrows its failure)."""
    await io


def _start_plan(plan: Plan, ectx: ExecutionContext) -> None:
    """The common part of a planned handler: record the context and request, pass-through, waitUntil tasks."""
    ctx = IoContext.current()
    plan.context, plan.request = ctx, ctx.front
    if plan.pass_through:
        ectx.pass_through_on_exception()
    for js in plan.wait_until:
        gate = Gate(ctx, ctx.loop.create_future())
        io = ctx.await_io(gate.future)
        ectx.wait_until(_js_wait(io) if js else io)
        plan.machine.gates.append(gate)


async def _failing_body() -> Any:
    yield b"partial"
    raise JsError("planned failure after the headers")


class Planned:
    """A worker (and Durable Object class) whose handlers follow the `Plan` the machine left for them."""

    async def fetch(self, request: Request, env: Any, ctx: ExecutionContext) -> Response:
        plan = PLANS.pop(request.url)
        _start_plan(plan, ctx)
        if plan.outcome == "throw":
            raise JsError("planned failure")
        if plan.outcome == "throw_after_headers":
            return Response(body=_failing_body())
        return Response(body=b"ok")

    async def scheduled(self, controller: ScheduledController, env: Any, ctx: ExecutionContext) -> None:
        plan = PLANS.pop(controller.cron)
        _start_plan(plan, ctx)
        if plan.no_retry:
            controller.no_retry()
        if plan.outcome == "throw":
            raise JsError("planned failure")


def observed_response(sink: CollectingResponse, raised: BaseException | None, actor: bool) -> str:
    """What the client of a fetch event saw, as the entrypoint model's ``Response``."""
    if raised is not None:
        if sink.status is not None:
            return "TRUNCATED"
        return "EXCEPTION_TO_ACTOR_CALLER" if actor else "LISTENER_500"
    if not sink.ended:
        return "TRUNCATED"
    if sink.body == b"fallback":
        return "FALLBACK_RESPONSE"
    if sink.status == 500 and sink.body == b"":
        return "FALLBACK_500_EMPTY"
    if sink.status == 200 and sink.body == b"ok":
        return "WORKER_RESPONSE"
    return f"unexpected response {sink.status} {sink.body!r}"


#: the runtime threads (and GC threads) every program's runtimes borrow: a program builds two runtimes, and starting
#: and joining their threads cost more than a short program's steps.  A runtime gives its threads back with every
#: task cancelled and its callbacks and timers dropped (`ThreadPool.give_back`; the teardown requires that nothing
#: was left on them); `close_pool` stops them (the soak campaign checks that none is left running)
POOL = ThreadPool()
atexit.register(POOL.close)


def close_pool() -> list[str]:
    """Stop the pooled threads; the names of those still running."""
    return POOL.close()


_MONITORS: dict[tuple[str, tuple[str, ...], tuple[tuple[str, int], ...]], LiveMonitor] = {}
_SAMPLERS: dict[int, StateSampler] = {}


def fresh_live_monitor(rt: Runtime, engine: str = "python") -> LiveMonitor:
    """`attach_monitor` with the monitor reused (`LiveMonitor.reset`): building one compiles every model (about a
    second; the compiled engine's library is loaded once and started again)."""
    models = list(rt.recorder.header["models"])
    consts = monitor_consts(rt)
    key = (engine, tuple(models), tuple(sorted(consts.items())))
    live = _MONITORS.get(key)
    if live is None:
        live = _MONITORS[key] = LiveMonitor(models, consts, engine=engine)
    live.reset()
    reader = _READERS.get(id(live))
    if reader is not None:
        reader.clear()  # the event count starts again at 0
    sampler = _SAMPLERS.get(id(live))
    if sampler is not None:
        sampler.clear()
    feed_monitor(rt, live)
    return live


def _sampler(live: LiveMonitor) -> StateSampler:
    s = _SAMPLERS.get(id(live))
    if s is None:
        s = _SAMPLERS[id(live)] = StateSampler(live)
    return s


class CellReader:
    """Read single model functions of a live monitor (`LiveMonitor.cells`: from the compiled engine while it runs).

    `Monitor.state` renders every variable of a model; the machine compares a few functions after
    every step, so it reads only those (a read of the monitor, never of the runtime).
    """

    def __init__(self, live: LiveMonitor) -> None:
        self.live = live
        #: func -> (the monitor's event count when rendered, the rendering): a model function changes only when
        #: the monitor steps, and most steps send no event to one of the two runtimes (`clear` at a new program)
        self.rendered: dict[str, tuple[int, dict[Any, str]]] = {}
        #: the monitor's event count while no event can be recorded (`pinned_cells`), so one pass of the oracle
        #: reads it once, not once per function (a read of the compiled engine waits for its thread)
        self.pinned: int | None = None
        #: func -> the first of the monitor's models declaring it (with one index)
        self.where: dict[str, str] = {}
        for name in live.models:
            for d in get_model(name).state:
                if hasattr(d, "index_sorts") and len(d.index_sorts) == 1:
                    self.where.setdefault(d.name, name)

    def __call__(self, func: str) -> dict[Any, str]:
        """``{identity name: rendered value}`` for the cells of ``func`` that differ from its initial value
        (the caller only reads it)."""
        version = self.pinned if self.pinned is not None else self.live.events
        hit = self.rendered.get(func)
        if hit is not None and hit[0] == version:
            return hit[1]
        out = self.rendered[func] = (version, self._render(func))
        return out[1]

    def clear(self) -> None:
        self.rendered.clear()

    def _render(self, func: str) -> dict[Any, str]:
        return self.live.cells(self.where[func], func)


_READERS: dict[int, CellReader] = {}


def _reader(live: LiveMonitor) -> CellReader:
    r = _READERS.get(id(live))
    if r is None:
        r = _READERS[id(live)] = CellReader(live)
    return r


def cells(live: LiveMonitor, func: str) -> dict[Any, str]:
    return _reader(live)(func)


@contextlib.contextmanager
def pinned_cells(live: LiveMonitor) -> Iterator[None]:
    """`cells` of ``live`` read its event count once (call under its recorder's ``atomic()``: no event is recorded,
    so the count cannot change)."""
    r = _reader(live)
    r.pinned = live.events
    try:
        yield
    finally:
        r.pinned = None


#: the functions `compare_with_model` reads
_COMPARED = ("ctx_state", "entered", "abort_reason", "ctx_actor", "queued", "owner")


async def _idle() -> None:
    """Wait until the calling runtime thread has nothing left to run (every callback of the step ran)."""
    thread = RuntimeThread.current()
    assert thread is not None
    await thread.when_idle()


def per_step(method: Callable[..., T]) -> Callable[..., T]:
    """Keep a machine helper's result until the end of the step: hypothesis evaluates the preconditions of many
    rules before each step (and the chosen rule draws from the same lists), and between two steps the runtime's
    state stands still (every rule waits until the threads it used are idle)."""
    name = method.__name__

    @functools.wraps(method)
    def kept(self: ReferenceMachine, *args: Any, **kw: Any) -> T:
        memo = self._memo
        if memo is None:
            return method(self, *args, **kw)
        key = (name, args + tuple(sorted(kw.items())))
        if key not in memo:
            memo[key] = method(self, *args, **kw)
        return memo[key]  # type: ignore[no-any-return]

    return kept


class ReferenceMachine(RuleBasedStateMachine):
    """Random programs against the reference implementation; see the module docstring."""

    #: faulty variants switched on (`reference_impl.faults`); subclasses set it
    FAULTS: ClassVar[frozenset[str]] = frozenset()
    #: runtime threads (rules draw a thread number and take it modulo this)
    THREADS: ClassVar[int] = THREADS
    #: the engine the oracle reads (`ORACLE_ENGINE`)
    ORACLE: ClassVar[str] = ORACLE_ENGINE

    contexts = Bundle("contexts")
    objects = Bundle("objects")

    def __init__(self) -> None:
        super().__init__()
        #: what the models predicted for each request's finish_scheduled_* event (its outputs)
        self.predicted_results: dict[tuple[int, str], dict[str, str]] = {}
        #: live monitors whose compiled engine counts the tracked functions' values per event (`count_states` at
        #: the teardown); the others count with `after_step`
        self.counted: list[LiveMonitor] = []
        #: per counting live monitor (``id``): the labels it counts, in order
        self.counted_labels: dict[int, list[str]] = {}
        #: per runtime (``id``): the trace events already read for finish_scheduled_* outputs (`_scheduled_ends`)
        self.trace_read: dict[int, int] = {}
        self.rt = Runtime(threads=self.THREADS, monitor=False, models=MODELS, faults=self.FAULTS, pool=POOL)
        self.rt.monitor = self._watch(self.rt)
        self.svc = self.rt.add_worker("w", Empty)
        assert isinstance(self.svc, WorkerService)
        self.events: Runtime | None = None
        self.event_count = 0
        #: how often each budgeted rule acted in this program (`BUDGETS`)
        self.used: collections.Counter[str] = collections.Counter()
        #: dead contexts already compared with the model (ids; a dead context's state never changes again)
        self.compared_dead: set[int] = set()
        #: drains the machine started and does not wait for
        self.background: list[asyncio.Future[None]] = []
        self.all_contexts: list[Ctx] = []
        self.all_objects: list[Obj] = []
        self.gates: list[Gate] = []
        #: requests whose statistics() are compared with the model: hand-built ones and those events ran
        self.requests: list[IncomingRequest] = []
        #: finishScheduled() calls not yet returned: (runtime, request name, its result, the thread it runs on)
        self.scheduled: list[tuple[Runtime, str, asyncio.Future[ScheduledResult], RuntimeThread]] = []
        self.steps = 0
        #: `per_step` results, dropped after every step (None: not kept, e.g. during the teardown)
        self._memo: dict[tuple[str, tuple[Any, ...]], Any] | None = {}

    def _watch(self, rt: Runtime) -> LiveMonitor:
        """The runtime's live monitor, with coverage counted per model event: in the compiled engine (no Python
        call per event), or by `after_step`, which also keeps the finish_scheduled_* predictions."""
        live = fresh_live_monitor(rt, self.ORACLE)
        labels = tracked_of(live.models)
        if live.count_held([TRACKED[label] for label in labels]):
            self.counted.append(live)
            self.counted_labels[id(live)] = labels
            return live
        sample = _sampler(live)
        predicted = self.predicted_results

        def after_step(event: Mapping[str, Any], prediction: dict[str, str]) -> None:
            STEPS["model events"] += 1
            sample(event, prediction)
            op = event["op"]
            if op.startswith("finish_scheduled_"):
                predicted[(id(rt), event["args"]["r"])] = prediction

        live.after_step = after_step
        return live

    def _count_after_take_over(self) -> None:
        """A compiled engine that left its run to the Python monitor stopped counting: `after_step` counts the
        later events (the events between the take-over and this call are not counted)."""
        for live in self.counted:
            if live.engine == "python" and live.after_step is None:
                live.after_step = _sampler(live)

    def _scheduled_ends(self, rt: Runtime) -> None:
        """With the compiled engine (no `after_step`): the outputs of the finish_scheduled_* events recorded since
        the last look, which the monitor accepted, so they are what the models predict (it compares every
        reported output with the model's)."""
        if rt.monitor not in self.counted:
            return  # its after_step keeps the models' own predictions
        self.expect(rt.monitor.ok, "the live monitor flagged the run")
        assert rt.trace is not None
        with rt.recorder.atomic():
            events = rt.trace.events
            start, self.trace_read[id(rt)] = self.trace_read.get(id(rt), 0), len(events)
            for e in events[start:]:
                if e["op"].startswith("finish_scheduled_"):
                    self.predicted_results[(id(rt), e["args"]["r"])] = dict(e.get("outputs") or {})

    # ---- helpers ------------------------------------------------------------------------------------------------
    @property
    def monitor(self) -> Any:
        return self.rt.monitor

    def on(self, thread: int, fn: Callable[[], Any]) -> Any:
        return self.rt.threads[thread].call(fn).result(TIMEOUT)

    def settled_on(self, thread: RuntimeThread, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` on ``thread``, then wait until everything it set off there has run."""
        async def go() -> Any:
            out = fn()
            await _idle()
            return out

        return thread.run(go(), timeout=TIMEOUT)

    def run_in(self, c: Ctx, fn: Callable[[], Any]) -> Any:
        return c.context.thread.run(c.context.run(fn), timeout=TIMEOUT)

    def predict(self, op: str, args: dict[str, Any], live: LiveMonitor | None = None) -> str:
        """What the models predict for the event ``op(args)`` now (call under the recorder lock)."""
        predicted = (live or self.monitor).predict({"op": op, "args": args})
        self.expect(predicted is not None, f"the models do not allow {op}({args}) here")
        return str(predicted.get("result", "OK"))

    def cover(self, label: str) -> None:
        """Count an outcome (shown by ``pytest --hypothesis-show-statistics`` and kept in `COVERAGE`)."""
        COVERAGE[label] += 1
        if currently_in_test_context():
            event(label)

    def acted(self, name: str, did: bool = True) -> bool:
        """Count a rule that took its step (``rule:``) or whose target could not (``noop:``)."""
        STEPS[("rule:" if did else "noop:") + name] += 1
        if did:
            self.used[name] += 1
        return did

    def budget_left(self, rule: str) -> bool:
        return self.used[rule] < BUDGETS[rule]

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            raise AssertionError(self.failure(what))

    def failure(self, what: str) -> str:
        lines = [what]
        for rt in (self.rt, self.events):
            if rt is None:
                continue
            v = rt.monitor.violation
            if v is not None:
                lines.append(v.report())
        for rt, name in ((self.rt, "contexts"), (self.events, "events")):
            if rt is None:
                continue
            lines.append(f"trace (NDJSON; `iospec check-trace FILE` replays it) of the {name} runtime:")
            lines.append(json.dumps(rt.recorder.header, separators=(",", ":")))
            lines.extend(json.dumps(e, separators=(",", ":")) for e in list(rt.trace.events))  # type: ignore[union-attr]
        return "\n".join(lines)

    def alive(self, c: Ctx) -> bool:
        return c.context.state == "ALIVE"

    def runnable(self, c: Ctx) -> bool:
        """JS runs in a context only while a delivered request of it exists (workerd's callers guarantee it)."""
        return self.alive(c) and any(r.was_delivered and not r.destroyed for r in c.requests)

    def usable(self, c: Ctx) -> bool:
        return self.runnable(c) and c.context.abort_exception is None

    @per_step
    def held(self) -> list[tuple[Ctx, IncomingRequest]]:
        """Requests their caller still holds (created or delivered, neither drained nor destroyed)."""
        return [(c, r) for c in self.all_contexts for r in c.requests if not r.waited and not r.destroyed]

    # ---- contexts, objects, access ------------------------------------------------------------------------------
    @rule(target=contexts, thread=st.integers(0, 7), actor=st.booleans())
    def create_context(self, thread: int, actor: bool) -> Ctx:
        """A context (stateless or an actor's) with one delivered IncomingRequest, created on ``thread``."""
        svc = self.svc
        thread %= self.THREADS

        def make() -> tuple[IoContext, IncomingRequest]:
            a = None
            if actor:
                n = len(self.rt.contexts)
                a = Actor(worker=svc.worker, actor_id=f"a{n}", thread=self.rt.threads[thread], name=f"NS:a{n}",
                          namespace="NS")
            ctx = IoContext(self.rt, svc.worker, svc, actor=a)
            if a is not None:
                a.set_io_context(ctx)
            r = IncomingRequest(ctx)
            r.delivered()
            # an in-flight I/O keeps the context from hang-aborting while the machine drives it
            ctx._io_pending += 1
            return ctx, r

        ctx, req = self.on(thread, make)
        c = Ctx(ctx, [req], thread)
        self.all_contexts.append(c)
        self.requests.append(req)
        self.acted("create_context")
        return c

    @initialize(target=contexts, threads=st.lists(st.integers(0, 7), min_size=2, max_size=2),
                actor=st.booleans())
    def first_contexts(self, threads: list[int], actor: bool) -> Any:
        """Two contexts to start with (a uniform rule mix would spend the first steps creating them)."""
        return multiple(self.create_context(threads[0], False), self.create_context(threads[1], actor))  # type: ignore[arg-type]

    @rule(target=objects, c=contexts)
    def add_object(self, c: Ctx) -> Obj:
        """``addObject`` while the context is current (inside ``run``); an aborted context refuses to run."""
        if not self.acted("add_object", self.usable(c)):
            return self._no_object(c)
        res = Resource()
        handle = self.run_in(c, lambda: c.context.add_object(res, "Resource"))
        o = Obj(handle, res, c)
        self.all_objects.append(o)
        return o

    def _no_object(self, c: Ctx) -> Obj:
        """A placeholder for a step that could not create an object (its handle is never live)."""
        o = Obj.__new__(Obj)
        o.handle, o.resource, o.owner = None, Resource(), c  # type: ignore[assignment]
        return o

    @rule(o=objects, c=contexts)
    def access(self, o: Obj, c: Ctx) -> None:
        """Use an object from context ``c``: the models predict OK or which error, with workerd's message."""
        if not self.acted("access", o.handle is not None and o.handle.alive and self.usable(c)):
            return
        thread = c.context.thread.name
        outcome: dict[str, Any] = {}

        def use() -> None:
            with self.rt.recorder.atomic():  # nothing else may step the models between prediction and access
                outcome["predicted"] = self.predict("access", {"o": o.handle.name, "t": thread})
                try:
                    outcome["value"] = o.handle.get()
                    outcome["observed"] = "OK"
                except WorkerdError as e:
                    outcome["observed"], outcome["message"] = e.result, str(e)

        self.run_in(c, use)
        predicted = outcome["predicted"]
        self.cover(f"access -> {predicted}")
        self.expect(outcome["observed"] == predicted,
                    f"access({o}) from {c}: observed {outcome['observed']}, the models predict {predicted}")
        if predicted == "OK":
            self.expect(outcome["value"] is o.resource, f"access({o}) returned another object")
        else:
            want = message_for(predicted, io_type="Resource")
            self.expect(outcome["message"] == want,
                        f"access({o}): message {outcome['message']!r}, workerd's is {want!r}")

    @rule(o=consumes(objects))
    def drop_in_owner(self, o: Obj) -> None:
        """The wrapper is collected while its owner is current (deleted at once)."""
        if not self.acted("drop_in_owner", o.handle is not None and o.handle.alive and self.usable(o.owner)):
            return
        self.run_in(o.owner, o.handle.drop)

    @rule(o=consumes(objects))
    def gc_drop(self, o: Obj) -> None:
        """The GC thread finalises the wrapper (the deletion is queued, or ignored if the owner is dead)."""
        if not self.acted("gc_drop", o.handle is not None and o.handle.alive):
            return
        self.rt.gc.collect(o.handle.drop, timeout=TIMEOUT)

    @rule(c=contexts)
    def enter(self, c: Ctx) -> None:
        """``run()`` on the context's thread: the models predict OK or ERR_ABORTED; queued deletions run."""
        if not self.acted("enter", self.runnable(c)):
            return
        with self.rt.recorder.atomic():
            predicted = self.predict("enter", {"c": c.context.name, "t": c.context.thread.name})
        observed = self.observed_run(c)
        self.cover(f"enter -> {predicted}")
        self.expect(observed == predicted, f"enter({c}): observed {observed}, the models predict {predicted}")

    def observed_run(self, c: Ctx) -> str:
        """``run()`` of nothing in ``c``: OK, the refusal's result, or ERR_ABORTED for the context's abort."""
        try:
            self.run_in(c, lambda: None)
            return "OK"
        except WorkerdError as e:
            return e.result
        except JsError as e:
            return "ERR_ABORTED" if e is c.context.abort_exception else f"JsError {e}"

    @per_step
    def requestless(self) -> list[Ctx]:
        """Live, unaborted contexts none of whose requests is delivered any more (an actor's, after its last one)."""
        return [c for c in self.all_contexts
                if self.alive(c) and not self.runnable(c) and c.context.abort_exception is None]

    @precondition(lambda self: self.budget_left("run_without_request") and self.requestless())
    @rule(data=st.data())
    def run_without_request(self, data: st.DataObject) -> None:
        """``run()`` on a context with no delivered request: refused with "no current IncomingRequest" before
        anything is entered (INV-R8).  The models have no such step (their ``enter`` guard requires a request)."""
        c = data.draw(st.sampled_from(self.requestless()), label="context")
        self.acted("run_without_request")
        observed = self.observed_run(c)
        self.cover(f"run without request -> {observed}")
        self.expect(observed == "NO_CURRENT_INCOMING_REQUEST",
                    f"run({c}) with no delivered request: observed {observed}, workerd refuses it")

    @rule(c=contexts, second=st.booleans())
    def abort(self, c: Ctx, second: bool) -> None:
        """``abort(e)`` with one of two reasons (the first reason must win)."""
        if not self.acted("abort", self.alive(c)):
            return
        reason = c.reasons[1 if second else 0]
        self.settled_on(c.context.thread, lambda: c.context.abort(reason))

    @precondition(lambda self: self.budget_left("deliver_again") and any(True for _ in self.held()))
    @rule(data=st.data())
    def deliver_again(self, data: st.DataObject) -> None:
        """``delivered()`` on a held request (a second time, or the first for a new actor request)."""
        c, r = data.draw(st.sampled_from(self.held()), label="request")
        self.acted("deliver_again")
        outcome: dict[str, str] = {}

        def deliver() -> None:
            with self.rt.recorder.atomic():
                outcome["predicted"] = self.predict("deliver", {"r": r.name})
                try:
                    r.delivered()
                    outcome["observed"] = "OK"
                except WorkerdError as e:
                    outcome["observed"] = e.result

        self.settled_on(c.context.thread, deliver)
        self.cover(f"deliver -> {outcome['predicted']}")
        self.expect(outcome["observed"] == outcome["predicted"],
                    f"deliver({r.name}): observed {outcome['observed']}, the models predict {outcome['predicted']}")

    @per_step
    def running_actors(self) -> list[Ctx]:
        return [c for c in self.all_contexts
                if c.context.actor is not None and self.alive(c) and not c.context.actor.shut_down]

    @precondition(lambda self: self.budget_left("new_actor_request") and self.running_actors())
    @rule(data=st.data(), deliver=st.booleans())
    def new_actor_request(self, data: st.DataObject, deliver: bool) -> None:
        """Another IncomingRequest for a running actor's context, delivered at once or left undelivered."""
        c = data.draw(st.sampled_from(self.running_actors()), label="actor")
        self.acted("new_actor_request")

        def make() -> IncomingRequest:
            r = IncomingRequest(c.context)
            if deliver:
                r.delivered()
            return r

        r = self.settled_on(c.context.thread, make)
        c.requests.append(r)
        self.requests.append(r)

    @per_step
    def drains_that_would_wait(self) -> list[tuple[Ctx, IncomingRequest]]:
        """Held front requests of contexts with a waitUntil task waiting for a gate: their drain would wait."""
        waiting_on = {id(g.context) for g in self.gates if not g.settled}
        return [(c, r) for c, r in self.held()
                if r.was_delivered and r.is_current and id(c.context) in waiting_on]

    @precondition(lambda self: any(True for _ in self.held()))
    @rule(data=st.data())
    def drain(self, data: st.DataObject) -> None:
        """The response is done: release the pending I/O and ``drain()`` (it waits for the waitUntil tasks)."""
        self._drain(*data.draw(st.sampled_from([(c, r) for c, r in self.held() if r.was_delivered] or self.held()),
                               label="request"))

    @precondition(lambda self: self.drains_that_would_wait())
    @rule(data=st.data())
    def drain_that_waits(self, data: st.DataObject) -> None:
        """`drain` of a request whose drain waits for a waitUntil task: a rule of its own, because only the front
        request of a context with a task waits, and an actor's drain that waits is what its SHUT_DOWN,
        DRAIN_SUPERSEDED and ABORTED ends need (with `drain` alone SHUT_DOWN was reached in under 1% of programs)."""
        self._drain(*data.draw(st.sampled_from(self.drains_that_would_wait()), label="request"))

    def _drain(self, c: Ctx, r: IncomingRequest) -> None:
        if not self.acted("drain", r.was_delivered):
            return

        def start() -> None:
            self._release_here(c)
            self.background.append(asyncio.ensure_future(r.drain()))

        self.settled_on(c.context.thread, start)

    @precondition(lambda self: any(True for _ in self.held()))
    @rule(data=st.data())
    def destroy_undrained(self, data: st.DataObject) -> None:
        """``~IncomingRequest`` without a drain (``cancel_request`` or ``drop_request``)."""
        c, r = data.draw(st.sampled_from(self.held()), label="request")
        self.acted("destroy_undrained")

        def destroy() -> None:
            if c.context.actor is None:
                self._release_here(c)
            r.destroy()

        self.settled_on(c.context.thread, destroy)

    async def _finish_held(self, held: list[tuple[Ctx, IncomingRequest]]) -> None:
        drains = []
        for c, r in held:
            if r.destroyed or r.waited:
                continue
            if not r.was_delivered:
                r.destroy()
                continue
            self._release_here(c)
            drains.append(r.drain())
        await asyncio.gather(*drains)
        await _idle()

    def _release_here(self, c: Ctx) -> None:
        """Release the I/O that kept the context from hang-aborting (on the context's thread)."""
        if c.kept_alive:
            c.kept_alive = False
            c.context._io_pending -= 1

    def _release(self, c: Ctx) -> None:
        self.on(c.thread, lambda: self._release_here(c))

    # ---- waitUntil, finishScheduled, the actor's end, lock contention ------------------------------------------
    @per_step
    def usable_contexts(self, stateless: bool = False) -> list[Ctx]:
        return [c for c in self.all_contexts if self.usable(c) and not (stateless and c.context.actor is not None)]

    @precondition(lambda self: self.usable_contexts())
    @rule(data=st.data(), js=st.booleans())
    def wait_until(self, data: st.DataObject, js: bool) -> None:
        """``ctx.waitUntil(io)`` with an I/O the machine completes later (a JS chain awaiting it, or the promise).

        A JS chain in an actor context whose last request was dropped meanwhile cannot resume: ``run()``
        throws "the IoContext has no current IncomingRequest" and the task fails (INV-R8).
        """
        c = data.draw(st.sampled_from(self.usable_contexts()), label="context")
        self.acted("wait_until")

        def add() -> Gate:
            ctx = c.context
            gate = Gate(ctx, ctx.loop.create_future())
            io = ctx.await_io(gate.future)
            ctx.add_wait_until(_js_wait(io) if js else io)
            return gate

        self.gates.append(self.run_in(c, add))

    @precondition(lambda self: any(not g.settled for g in self.gates))
    @rule(data=st.data(), ok=st.booleans())
    def settle(self, data: st.DataObject, ok: bool) -> None:
        """An I/O a waitUntil task waits for completes (``ok``) or fails; the drain or finishScheduled may end."""
        gate = data.draw(st.sampled_from([g for g in self.gates if not g.settled]), label="gate")
        gate.settled = True
        if not self.acted("settle", gate.context.state == "ALIVE"):
            return  # cancelled with its context

        def fire() -> None:
            if not gate.future.done():
                if ok:
                    gate.future.set_result(None)
                else:
                    gate.future.set_exception(JsError("the I/O failed"))

        self.settled_on(gate.context.thread, fire)
        self.cover(f"waitUntil I/O {'completed' if ok else 'failed'}")
        self.check_scheduled_results()

    @precondition(lambda self: self.budget_left("set_no_retry") and self.usable_contexts(stateless=True))
    @rule(data=st.data())
    def set_no_retry(self, data: st.DataObject) -> None:
        """``controller.noRetry()`` from JS in a stateless context (``setNoRetryScheduled``)."""
        c = data.draw(st.sampled_from(self.usable_contexts(stateless=True)), label="context")
        self.acted("set_no_retry")
        self.run_in(c, c.context.set_no_retry)

    @precondition(lambda self: any(c.context.actor is None for c, _ in self.held()))
    @rule(data=st.data())
    def finish_scheduled(self, data: st.DataObject) -> None:
        """``finishScheduled()`` on a stateless context's current request: its result follows the waitUntil tasks."""
        c, r = data.draw(st.sampled_from([(c, r) for c, r in self.held() if c.context.actor is None]), label="request")
        if not self.acted("finish_scheduled", r.was_delivered and r.is_current):
            return

        def start() -> asyncio.Future[ScheduledResult]:
            self._release_here(c)
            return asyncio.ensure_future(r.finish_scheduled())

        result = self.settled_on(c.context.thread, start)
        self.scheduled.append((self.rt, r.name, result, c.context.thread))
        self.check_scheduled_results()

    @precondition(lambda self: self.running_actors())
    @rule(data=st.data())
    def shutdown_actor(self, data: st.DataObject) -> None:
        """``Actor::shutdown`` (eviction): a waiting actor drain ends (SHUT_DOWN)."""
        self._shutdown(data.draw(st.sampled_from(self.running_actors()), label="actor"))

    def _shutdown(self, c: Ctx) -> None:
        actor = c.context.actor
        assert actor is not None
        self.acted("shutdown_actor")
        self.settled_on(c.context.thread, actor.shutdown)

    @precondition(lambda self: self.draining_actors())
    @rule(data=st.data())
    def shutdown_draining_actor(self, data: st.DataObject) -> None:
        """`shutdown_actor` of an actor whose drain waits (SHUT_DOWN): a rule of its own, so the eviction competes
        with the drain's other ends (settle, supersede, abort) on equal terms while the drain waits."""
        self._shutdown(data.draw(st.sampled_from(self.draining_actors()), label="actor"))

    @per_step
    def waiting(self) -> list[tuple[Ctx, IncomingRequest]]:
        """Requests whose drain or finishScheduled waits (for waitUntil tasks) in a live context."""
        return [(c, r) for c in self.all_contexts if self.alive(c) for r in c.requests
                if r.state in ("DRAINING", "FINISHING_SCHEDULED")]

    @precondition(lambda self: self.waiting())
    @rule(data=st.data())
    def abort_while_waiting(self, data: st.DataObject) -> None:
        """``abort()`` while a drain or finishScheduled waits: ``onAbort()`` wins the race (ABORTED)."""
        c, _ = data.draw(st.sampled_from(self.waiting()), label="request")
        self.acted("abort_while_waiting")
        self.settled_on(c.context.thread, lambda: c.context.abort(c.reasons[0]))

    @per_step
    def draining_actors(self) -> list[Ctx]:
        return [c for c, r in self.waiting() if r.state == "DRAINING" and c in self.running_actors()]

    @precondition(lambda self: self.draining_actors())
    @rule(data=st.data())
    def supersede_drain(self, data: st.DataObject) -> None:
        """A new request delivered to an actor whose current request is draining takes the drain over."""
        c = data.draw(st.sampled_from(self.draining_actors()), label="actor")
        self.acted("supersede_drain")

        def deliver() -> IncomingRequest:
            r = IncomingRequest(c.context)
            r.delivered()
            return r

        r = self.settled_on(c.context.thread, deliver)
        c.requests.append(r)
        self.requests.append(r)

    @per_step
    def idle_shut_down_actors(self) -> list[Ctx]:
        return [c for c in self.all_contexts
                if c.context.actor is not None and c.context.actor.shut_down and c.context.actor.io_context is c.context
                and all(r.destroyed for r in c.requests)]

    @precondition(lambda self: self.idle_shut_down_actors())
    @rule(data=st.data())
    def drop_actor_context(self, data: st.DataObject) -> None:
        """A shut-down actor with no request left drops its context (which then dies)."""
        c = data.draw(st.sampled_from(self.idle_shut_down_actors()), label="actor")
        actor = c.context.actor
        assert actor is not None
        self.acted("drop_actor_context")
        self.settled_on(c.context.thread, actor.drop_io_context)

    @per_step
    def contenders(self) -> list[tuple[Ctx, Ctx]]:
        usable = self.usable_contexts()
        return [(a, b) for a in usable for b in usable if a.thread != b.thread]

    @precondition(lambda self: self.budget_left("contend") and self.contenders())
    @rule(data=st.data())
    def contend(self, data: st.DataObject) -> None:
        """Two threads want the isolate lock: ``second`` queues while ``first`` runs JS (a fair FIFO turn)."""
        first, second = data.draw(st.sampled_from(self.contenders()), label="contexts")
        self.acted("contend")
        running, go = threading.Event(), threading.Event()

        def hold() -> None:
            running.set()
            go.wait(TIMEOUT)

        held = asyncio.run_coroutine_threadsafe(first.context.run(hold), first.context.loop)
        try:
            running.wait(TIMEOUT)
            queue = first.context.worker.isolate.lock_queue
            waiter = asyncio.run_coroutine_threadsafe(second.context.run(lambda: None), second.context.loop)
            for _ in range(2000):  # until the second thread's turn is queued behind the first
                if queue.statistics().waiting:
                    break
                threading.Event().wait(0.0005)
            self.cover("lock contention" if queue.statistics().waiting else "lock contention missed")
        finally:
            go.set()
        held.result(TIMEOUT)
        waiter.result(TIMEOUT)
        self.settled_on(second.context.thread, lambda: None)

    def check_scheduled_results(self) -> None:
        """Each finishScheduled() that returned gave its caller what the models predicted at its end event."""
        left = []
        looked: set[int] = set()
        for rt, name, result, thread in self.scheduled:
            if not result.done():
                left.append((rt, name, result, thread))
                continue
            if id(rt) not in looked:
                looked.add(id(rt))
                self._scheduled_ends(rt)
            got: ScheduledResult = result.result()
            want = self.predicted_results.get((id(rt), name))
            seen = {"outcome": _model_outcome(got.outcome), "no_retry": str(got.no_retry).lower()}
            self.cover(f"finishScheduled -> {seen['outcome']} no_retry={seen['no_retry']}")
            self.expect(want is not None and all(want.get(k) == v for k, v in seen.items()),
                        f"finishScheduled({name}) returned {got}, the models predicted {want}")
        self.scheduled = left

    # ---- whole events through WorkerEntrypoint (the events runtime) -----------------------------------------------
    def events_runtime(self) -> Runtime:
        if self.events is None:
            rt = self.events = Runtime(threads=EVENT_THREADS, monitor=False, faults=self.FAULTS, pool=POOL)
            rt.monitor = self._watch(rt)
            rt.add_service(StaticService("fallback"))
            rt.add_service(FailingService("fallback-down"))
            rt.add_worker("app", Planned, global_outbound="fallback", durable_objects={"NS": Planned})
            rt.add_worker("app-down", Planned, global_outbound="fallback-down", durable_objects={"NS": Planned})
        return self.events

    def new_plan(self, **kw: Any) -> tuple[str, Plan]:
        key = f"http://machine.test/{next(_plan_ids)}"
        plan = Plan(machine=self, **kw)
        PLANS[key] = plan
        return key, plan

    def events_left(self) -> bool:
        return self.event_count < EVENTS_PER_PROGRAM

    @precondition(events_left)
    @rule(actor=st.sampled_from([None, "a"]), outcome=st.sampled_from(["return", "throw", "throw_after_headers"]),
          wait_until=st.lists(st.booleans(), max_size=2))
    def fetch_event(self, actor: str | None, outcome: str, wait_until: list[bool]) -> None:
        """A fetch event (stateless, or to actor ``a``); the client's response must be the model's."""
        self.acted("fetch_event")
        self._fetch(actor, "none", outcome, wait_until)

    @precondition(events_left)
    # weighted towards what pass-through is about: a stateless handler that throws before its headers
    @rule(actor=st.sampled_from([None, None, "a"]), fallback_works=st.booleans(),
          outcome=st.sampled_from(["throw", "throw", "throw_after_headers", "return"]),
          wait_until=st.lists(st.booleans(), max_size=2))
    def fetch_with_pass_through(self, actor: str | None, fallback_works: bool, outcome: str,
                                wait_until: list[bool]) -> None:
        """A fetch event whose handler calls ``passThroughOnException()``, towards a working or a failing fallback."""
        self.acted("fetch_with_pass_through")
        self._fetch(actor, "works" if fallback_works else "down", outcome, wait_until)

    def _fetch(self, actor: str | None, fallback: str, outcome: str, wait_until: list[bool]) -> None:
        """Send one fetch event; ``fallback``: no pass-through, or one to a working / failing ``globalOutbound``."""
        self.event_count += 1
        rt = self.events_runtime()
        pass_through = fallback != "none"
        svc = rt.services["app-down" if fallback == "down" else "app"]
        assert isinstance(svc, WorkerService)
        url, plan = self.new_plan(outcome=outcome, pass_through=pass_through, wait_until=tuple(wait_until))
        sink = CollectingResponse()
        raised: BaseException | None = None
        caller = rt.threads[0]

        async def fetch() -> None:
            try:
                if actor is None:
                    await svc.request(Request("GET", url), sink)
                else:
                    await svc.actor_request("NS", actor, Request("GET", url), sink)
            finally:
                await _idle()

        try:
            caller.run(fetch(), timeout=TIMEOUT)
        except (JsError, WorkerdError) as e:
            raised = e
        PLANS.pop(url, None)
        self.expect(plan.context is not None and plan.request is not None, f"the handler of {url} never ran")
        assert plan.context is not None and plan.request is not None
        if plan.context.thread is not caller:
            self.settled_on(plan.context.thread, lambda: None)
        self.requests.append(plan.request)
        seen = observed_response(sink, raised, actor is not None)
        with rt.recorder.atomic():
            model = cells(rt.monitor, "response").get(plan.request.name, "PENDING")
        self.cover(f"fetch {'actor' if actor else 'stateless'} -> {seen}")
        self.expect(seen == model, f"fetch {url} ({plan}): the client saw {seen}, the model's response is {model}")

    @precondition(events_left)
    @rule(no_retry=st.booleans(), outcome=st.sampled_from(["return", "throw"]),
          wait_until=st.lists(st.booleans(), max_size=2))
    def scheduled_event(self, no_retry: bool, outcome: str, wait_until: list[bool]) -> None:
        """A scheduled event; ``finishScheduled()``'s ``{outcome, noRetry}`` must be what the models predict."""
        self.acted("scheduled_event")
        self.event_count += 1
        rt = self.events_runtime()
        svc = rt.services["app"]
        assert isinstance(svc, WorkerService)
        cron, plan = self.new_plan(outcome=outcome, no_retry=no_retry, wait_until=tuple(wait_until))
        caller = rt.threads[0]
        result = self.settled_on(caller, lambda: asyncio.ensure_future(svc.scheduled(cron)))
        PLANS.pop(cron, None)
        self.expect(plan.context is not None and plan.request is not None, f"the scheduled handler {cron} never ran")
        assert plan.request is not None
        self.requests.append(plan.request)
        self.scheduled.append((rt, plan.request.name, result, caller))
        self.check_scheduled_results()

    # ---- the oracle after every step -------------------------------------------------------------------------------
    @invariant()
    def implementation_matches_the_models(self) -> None:
        if self._memo is not None:
            self._memo.clear()  # the step changed the runtime's state (preconditions of the next step read it)
        self.steps += 1
        STEPS["steps"] += 1
        if self.counted:
            self._count_after_take_over()
        for rt in (self.rt, self.events):
            if rt is not None:
                self.expect(rt.monitor.ok, "the live monitor flagged the run")
        diffs: list[str] = []
        with self.rt.recorder.atomic(), pinned_cells(self.monitor):
            live = self.monitor
            contexts = self.unsettled(self.rt)
            stats = {id(c): c.statistics() for c in contexts}  # read once for both comparisons
            diffs += compare_with_model(self.rt, state={f: cells(live, f) for f in _COMPARED},
                                        contexts=contexts, stats=stats)
            node, handle = cells(live, "node"), cells(live, "handle")
            for o in self.all_objects:
                name = o.handle.name
                model_node = node.get(name, "UNBORN")
                closed = len(o.resource.closed_on)
                if closed != (1 if model_node == "FREED" else 0):
                    diffs.append(f"{name}: destroyed {closed} time(s) on {o.resource.closed_on}, "
                                 f"model node={model_node}")
                model_handle = handle.get(name, "NONE")
                if o.handle.alive != (model_handle == "LIVE"):
                    diffs.append(f"{name}: runtime handle alive={o.handle.alive}, model handle={model_handle}")
            diffs += self._lifecycle_diffs(self.rt, stats)
        if self.events is not None:
            live = self.events.monitor
            with self.events.recorder.atomic(), pinned_cells(live):
                contexts = self.unsettled(self.events)
                stats = {id(c): c.statistics() for c in contexts}
                diffs += compare_with_model(self.events, state={f: cells(live, f) for f in _COMPARED},
                                            contexts=contexts, stats=stats)
                diffs += self._lifecycle_diffs(self.events, stats)
                fail_open = cells(live, "fail_open_requested")
                for ctx in self.events.contexts:
                    if ctx.state != "DEAD" and ctx.fail_open != (fail_open.get(ctx.name, "false") == "true"):
                        diffs.append(f"{ctx.name}: runtime fail_open={ctx.fail_open}, model "
                                     f"fail_open_requested={fail_open.get(ctx.name, 'false')}")
        self.expect(not diffs, "the runtime's state differs from the models': " + "; ".join(diffs))

    def unsettled(self, rt: Runtime) -> list[IoContext]:
        """The contexts to compare: every live one, and each dead one once (nothing changes after death)."""
        out = [c for c in rt.contexts if id(c) not in self.compared_dead]
        self.compared_dead.update(id(c) for c in out if c.state == "DEAD")
        return out

    def _lifecycle_diffs(self, rt: Runtime, stats: Mapping[int, Any]) -> list[str]:
        """Requests' phases and contexts' task counts, waitUntil status and retry flag vs the lifecycle model
        (``stats``: the `statistics()` of the contexts not yet compared dead, by ``id``)."""
        live = rt.monitor
        out = []
        phase = cells(live, "phase")
        ended = []
        for r in self.requests:
            if r.context.runtime is not rt:
                continue
            got = r.statistics().state
            want = phase.get(r.name, "UNBORN")
            if got != want:
                out.append(f"{r.name}: runtime state {got}, model phase {want}")
            elif r.destroyed:
                ended.append(r)  # a destroyed request's phase never changes again: compared once is enough
        if ended and not out:
            self.requests = [r for r in self.requests if r not in ended]
        wait_until, tasks = cells(live, "wait_until"), cells(live, "tasks")
        status, retry = cells(live, "wu_status"), cells(live, "retry")
        for ctx in rt.contexts:
            if ctx.state == "DEAD":
                continue
            s = stats.get(id(ctx)) or ctx.statistics()
            kj = s.io_in_flight + s.timers
            got_wu, got_tasks = (s.wait_until_tasks + kj, 0) if s.actor else (s.wait_until_tasks, kj)
            for var, got, want in (("wait_until", str(got_wu), wait_until.get(s.name, "0")),
                                   ("tasks", str(got_tasks), tasks.get(s.name, "0")),
                                   ("wu_status", _model_outcome(s.wait_until_status), status.get(s.name, "OK")),
                                   ("retry", str(s.retry_scheduled).lower(), retry.get(s.name, "true"))):
                if got != want:
                    out.append(f"{s.name}: runtime {var}={got}, model {var}={want}")
        return out

    def teardown(self) -> None:
        self._memo = None  # the teardown changes the state between its reads
        try:
            if self.monitor.ok and (self.events is None or self.events.monitor.ok):
                for gate in self.gates:  # every I/O completes, so every drain and finishScheduled can end
                    if not gate.settled and gate.context.state == "ALIVE":
                        gate.settled = True
                        self.settled_on(gate.context.thread,
                                        lambda g=gate: None if g.future.done() else g.future.set_result(None))
                for _, _, result, thread in self.scheduled:
                    thread.run(asyncio.wait([result], timeout=TIMEOUT), timeout=TIMEOUT)
                self.check_scheduled_results()
                by_thread: dict[int, list[tuple[Ctx, IncomingRequest]]] = collections.defaultdict(list)
                for c, r in self.held():
                    by_thread[c.thread].append((c, r))
                runtimes = [rt for rt in (self.rt, self.events) if rt is not None]
                # every held request of each thread ends (destroyed undelivered, or drained), then the thread idles;
                # the threads finish together (their contexts are independent), not one after another
                finishing = [t.submit(self._finish_held(by_thread[i] if rt is self.rt else []))
                             for rt in runtimes for i, t in enumerate(rt.threads)]
                for f in finishing:
                    f.result(TIMEOUT)
                for rt in runtimes:
                    self.expect(rt.monitor.ok, "the live monitor flagged the run's teardown")
                    broken = rt.monitor.check_all()
                    self.expect(not broken, f"invariants broken at the end: {[(m, i.name) for m, i in broken]}")
                for o in self.all_objects:
                    # a dead context destroyed everything it owned exactly once; an actor's objects live on with it
                    want = (1,) if o.owner.context.state == "DEAD" else (0, 1)
                    self.expect(len(o.resource.closed_on) in want,
                                f"{o} of {o.owner} destroyed {len(o.resource.closed_on)} times")
                for c in self.all_contexts:
                    q = c.context.delete_queue.statistics()
                    self.expect(not q.mutex_held, f"{c}: the DeleteQueue mutex is still held")
                    self.expect(c.context.state != "DEAD" or not q.queued_deletions,
                                f"{c}: a dead context's queue still holds {q.queued_deletions}")
        finally:
            for live in self.counted:
                count_states(self.counted_labels[id(live)], live.held_counts())
                STEPS["model events"] += live.events
            self.rt.close()
            if self.events is not None:
                self.events.close()
        for rt in (self.rt, self.events):
            if rt is not None:
                # the threads go back to the pool: every task of the runtime ended or was cancelled, no AsyncLock
                # waiter or finaliser is left (close_pool stops them; the soak campaign checks none is left running)
                self.expect(not rt.left_on_threads, f"the runtime's threads were not left clean: {rt.left_on_threads}")


#: the rules that send whole events through WorkerEntrypoint (the events runtime)
EVENT_RULES = ("fetch_event", "fetch_with_pass_through", "scheduled_event")

#: rules not needed to reach an ownership failure (left out of the shrinking test, of the search
#: for the contexts' core faults, and of the core machine's figure in benchmarks/bench_monitor.py)
LIFECYCLE_RULES = ("wait_until", "settle", "set_no_retry", "finish_scheduled", "new_actor_request", "shutdown_actor",
                   "shutdown_draining_actor", "drain_that_waits", "drop_actor_context", "contend",
                   "abort_while_waiting", "supersede_drain", "run_without_request")


def machine_with_faults(faults: Iterable[str], threads: int = THREADS,
                        without: Iterable[str] = (), oracle: str | None = None) -> type[ReferenceMachine]:
    """A `ReferenceMachine` subclass running the faulty variants ``faults`` on ``threads`` runtime threads.

    ``without``: rules the subclass leaves out (e.g. `EVENT_RULES`, for a program about contexts only);
    ``oracle``: the engine its oracle reads (default `ORACLE_ENGINE`).
    """
    fs = frozenset(faults)
    off = sorted(without)
    engine = oracle or ORACLE_ENGINE
    name = (f"ReferenceMachine_{'_'.join(sorted(fs)) or 'clean'}_{threads}" + "".join(f"_no_{r}" for r in off)
            + f"_{engine}")
    return type(name, (ReferenceMachine,), {"FAULTS": fs, "THREADS": threads, "ORACLE": engine,
                                            **dict.fromkeys(off)})
