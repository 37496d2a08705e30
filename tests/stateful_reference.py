"""A hypothesis state machine that drives the reference implementation, with the models as the oracle.

`ReferenceMachine` runs random programs on a real `reference_impl.Runtime` (three runtime
threads with their event loops, plus the GC thread): contexts (stateless and actor) are
created on random threads, objects are added, accessed from random contexts, dropped in
their owner or finalised on the GC thread, contexts are entered, aborted (twice, with
different reasons), drained, destroyed undrained, and requests are delivered again.  It
follows workerd's io/io-context.{h,c++} and io/io-own.{h,c++} through the reference
implementation, and checks it against the ``context``, ``ownership``, ``lifecycle``,
``actor`` and ``locks`` models (the runtime's `TRACE_MODELS` without ``entrypoint``, since
the machine builds contexts by hand).

The oracle is the models, never a restated rule:

* every event the runtime emits goes through the live monitor (`reference_impl.monitoring`),
  which evaluates the model's guards, checks and invariants from their definitions;
* before a step whose outcome the models decide (``access``, ``enter``, ``deliver``), the
  machine asks the live monitor what the models *predict* for the event the step is about to
  emit (`properties.monitor.Monitor.predict`), performs the step, and compares the observed
  outcome (a value, or workerd's error with workerd's exact message) with the prediction;
* after every step, the runtime's read-only views (`statistics()`) must equal the model state
  (`reference_impl.monitoring.compare_with_model`, plus each object's node and handle).

A failure message carries the seed line hypothesis prints, the rule ids, and the run's trace
as NDJSON (after shrinking: a minimal replayable trace; ``iospec check-trace`` reads it).
"""

from __future__ import annotations

import collections
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

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

from reference_impl import IncomingRequest, IoContext, JsError, Runtime, WorkerdError
from reference_impl.errors import message_for
from reference_impl.io_own import IoOwn
from reference_impl.monitoring import LiveMonitor, compare_with_model, monitor_consts
from reference_impl.runtime import TRACE_MODELS
from reference_impl.service import WorkerService
from reference_impl.trace import CallbackSink
from reference_impl.worker import Actor

__all__ = ["PROFILES", "THREADS", "ReferenceMachine", "machine_with_faults", "profile"]

THREADS = 3
#: models the machine's trace is for: it builds contexts by hand, so no WorkerEntrypoint events
MODELS = [m for m in TRACE_MODELS if m != "entrypoint"]
TIMEOUT = 10.0

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               print_blob=True)
#: settings profiles; choose with IOSPEC_HYPOTHESIS_PROFILE (default ``dev``)
PROFILES: dict[str, settings] = {
    "dev": settings(max_examples=30, stateful_step_count=30, **_common),  # type: ignore[arg-type]
    "ci": settings(max_examples=100, stateful_step_count=50, **_common),  # type: ignore[arg-type]
    # 14,000 programs of up to 100 steps (74 on average, measured): just over a million steps
    # (IOSPEC_SOAK_EXAMPLES overrides)
    "soak": settings(max_examples=int(os.environ.get("IOSPEC_SOAK_EXAMPLES", "14000")), stateful_step_count=100,
                     **_common),  # type: ignore[arg-type]
}


def profile(name: str | None = None) -> settings:
    name = name or os.environ.get("IOSPEC_HYPOTHESIS_PROFILE", "dev")
    if name not in PROFILES:
        raise ValueError(f"IOSPEC_HYPOTHESIS_PROFILE={name!r}: known profiles are {', '.join(PROFILES)}")
    return PROFILES[name]


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
class Ctx:
    """The machine's handle on one context and its one IncomingRequest."""

    context: IoContext
    request: IncomingRequest
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


#: steps run (every step is followed by the state comparison), over every machine run in this process
STEPS: collections.Counter[str] = collections.Counter()
#: outcomes and model states reached, over every machine run in this process
COVERAGE: collections.Counter[str] = collections.Counter()

_MONITORS: dict[tuple[tuple[str, ...], tuple[tuple[str, int], ...]], LiveMonitor] = {}


def fresh_live_monitor(rt: Runtime) -> LiveMonitor:
    """`attach_monitor` with the compiled models reused: building the monitor compiles every model (about a second)."""
    models = list(rt.recorder.header["models"])
    consts = monitor_consts(rt)
    key = (tuple(models), tuple(sorted(consts.items())))
    live = _MONITORS.get(key)
    if live is None:
        live = _MONITORS[key] = LiveMonitor(models, consts)
    live.monitor.reset()
    live.violation, live.events = None, 0
    rt.recorder.add_sink(CallbackSink(live.on_event))
    return live


class ReferenceMachine(RuleBasedStateMachine):
    """Random programs against the reference implementation; see the module docstring."""

    #: faulty variants switched on (`reference_impl.faults`); subclasses set it
    FAULTS: ClassVar[frozenset[str]] = frozenset()
    #: runtime threads (rules draw a thread number and take it modulo this)
    THREADS: ClassVar[int] = THREADS

    contexts = Bundle("contexts")
    objects = Bundle("objects")

    def __init__(self) -> None:
        super().__init__()
        self.rt = Runtime(threads=self.THREADS, monitor=False, models=MODELS, faults=self.FAULTS)
        self.rt.monitor = fresh_live_monitor(self.rt)
        self.svc = self.rt.add_worker("w", Empty)
        assert isinstance(self.svc, WorkerService)
        self.all_contexts: list[Ctx] = []
        self.all_objects: list[Obj] = []
        self.steps = 0

    # ---- helpers ------------------------------------------------------------------------------------------------
    @property
    def monitor(self) -> Any:
        return self.rt.monitor

    def on(self, thread: int, fn: Callable[[], Any]) -> Any:
        return self.rt.threads[thread].call(fn).result(TIMEOUT)

    def run_in(self, c: Ctx, fn: Callable[[], Any]) -> Any:
        return c.context.thread.run(c.context.run(fn), timeout=TIMEOUT)

    def predict(self, op: str, args: dict[str, Any]) -> str:
        """What the models predict for the event ``op(args)`` now (call under the recorder lock)."""
        predicted = self.monitor.monitor.predict({"op": op, "args": args})
        self.expect(predicted is not None, f"the models do not allow {op}({args}) here")
        return str(predicted.get("result", "OK"))

    def cover(self, label: str) -> None:
        """Count an outcome (shown by ``pytest --hypothesis-show-statistics`` and kept in `COVERAGE`)."""
        COVERAGE[label] += 1
        if currently_in_test_context():
            event(label)

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            raise AssertionError(self.failure(what))

    def failure(self, what: str) -> str:
        lines = [what]
        v = self.monitor.violation
        if v is not None:
            lines.append(v.report())
        lines.append("trace (NDJSON; `iospec check-trace FILE` replays it):")
        lines.append(json.dumps(self.rt.recorder.header, separators=(",", ":")))
        lines.extend(json.dumps(e, separators=(",", ":")) for e in list(self.rt.trace.events))  # type: ignore[union-attr]
        return "\n".join(lines)

    def alive(self, c: Ctx) -> bool:
        return c.context.state == "ALIVE"

    def runnable(self, c: Ctx) -> bool:
        """JS runs in a context only while one of its requests exists (workerd's callers guarantee it)."""
        return self.alive(c) and not c.request.destroyed

    # ---- rules ---------------------------------------------------------------------------------------------------
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
        c = Ctx(ctx, req, thread)
        self.all_contexts.append(c)
        return c

    @initialize(target=contexts, threads=st.lists(st.integers(0, 7), min_size=2, max_size=2),
                actor=st.booleans())
    def first_contexts(self, threads: list[int], actor: bool) -> Any:
        """Two contexts to start with (a uniform rule mix would spend the first steps creating them)."""
        return multiple(self.create_context(threads[0], False), self.create_context(threads[1], actor))  # type: ignore[arg-type]

    @rule(target=objects, c=contexts)
    def add_object(self, c: Ctx) -> Obj:
        """``addObject`` while the context is current (inside ``run``); an aborted context refuses to run."""
        if not self.runnable(c) or c.context.abort_exception is not None:
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
        if o.handle is None or not o.handle.alive or not self.runnable(c) or c.context.abort_exception is not None:
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
        if o.handle is None or not o.handle.alive or not self.runnable(o.owner) or o.owner.context.abort_exception:
            return
        self.run_in(o.owner, o.handle.drop)

    @rule(o=consumes(objects))
    def gc_drop(self, o: Obj) -> None:
        """The GC thread finalises the wrapper (the deletion is queued, or ignored if the owner is dead)."""
        if o.handle is None or not o.handle.alive:
            return
        self.rt.gc.collect(o.handle.drop, timeout=TIMEOUT)

    @rule(c=contexts)
    def enter(self, c: Ctx) -> None:
        """``run()`` on the context's thread: the models predict OK or ERR_ABORTED; queued deletions run."""
        if not self.runnable(c):
            return
        with self.rt.recorder.atomic():
            predicted = self.predict("enter", {"c": c.context.name, "t": c.context.thread.name})
        try:
            self.run_in(c, lambda: None)
            observed = "OK"
        except WorkerdError as e:
            observed = e.result
        except JsError as e:
            observed = "ERR_ABORTED" if e is c.context.abort_exception else f"JsError {e}"
        self.cover(f"enter -> {predicted}")
        self.expect(observed == predicted, f"enter({c}): observed {observed}, the models predict {predicted}")

    @rule(c=contexts, second=st.booleans())
    def abort(self, c: Ctx, second: bool) -> None:
        """``abort(e)`` with one of two reasons (the first reason must win)."""
        if not self.alive(c):
            return
        reason = c.reasons[1 if second else 0]
        self.on(c.thread, lambda: c.context.abort(reason))

    @rule(c=contexts)
    def deliver_again(self, c: Ctx) -> None:
        """``delivered()`` a second time: the models predict the result."""
        if c.request.destroyed:
            return
        outcome: dict[str, str] = {}

        def deliver() -> None:
            with self.rt.recorder.atomic():
                outcome["predicted"] = self.predict("deliver", {"r": c.request.name})
                try:
                    c.request.delivered()
                    outcome["observed"] = "OK"
                except WorkerdError as e:
                    outcome["observed"] = e.result

        self.on(c.thread, deliver)
        self.expect(outcome["observed"] == outcome["predicted"],
                    f"deliver({c.request.name}) again: observed {outcome['observed']}, "
                    f"the models predict {outcome['predicted']}")

    @precondition(lambda self: any(not c.request.destroyed for c in self.all_contexts))
    @rule(data=st.data())
    def drain(self, data: st.DataObject) -> None:
        """The response is done: release the pending I/O and ``drain()`` (a stateless context then dies)."""
        c = data.draw(st.sampled_from([c for c in self.all_contexts if not c.request.destroyed]), label="ctx")
        self._release(c)
        c.context.thread.run(c.request.drain(), timeout=TIMEOUT)

    @precondition(lambda self: any(not c.request.destroyed for c in self.all_contexts))
    @rule(data=st.data())
    def destroy_undrained(self, data: st.DataObject) -> None:
        """``~IncomingRequest`` without a drain (``drop_request``)."""
        c = data.draw(st.sampled_from([c for c in self.all_contexts if not c.request.destroyed]), label="ctx")
        self._release(c)
        self.on(c.thread, c.request.destroy)

    def _release(self, c: Ctx) -> None:
        def release() -> None:
            if c.kept_alive:
                c.kept_alive = False
                c.context._io_pending -= 1

        self.on(c.thread, release)

    # ---- the oracle after every step -------------------------------------------------------------------------------
    @invariant()
    def implementation_matches_the_models(self) -> None:
        self.steps += 1
        STEPS["steps"] += 1
        self.expect(self.monitor.ok, "the live monitor flagged the run")
        with self.rt.recorder.atomic():
            model = self.monitor.monitor.state("ownership")
            diffs = compare_with_model(self.rt, state=model)
            node, handle = model["node"], model["handle"]
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
        self.expect(not diffs, "the runtime's state differs from the models': " + "; ".join(diffs))

    def teardown(self) -> None:
        try:
            if self.monitor.ok:
                for c in self.all_contexts:
                    if not c.request.destroyed:
                        self._release(c)
                        c.context.thread.run(c.request.drain(), timeout=TIMEOUT)
                self.expect(self.monitor.ok, "the live monitor flagged the run's teardown")
                broken = self.monitor.monitor.check_all()
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
            self.rt.close()
        left = [t.name for t in self.rt.threads if t._thread.is_alive()]
        self.expect(not left, f"runtime threads still running after close: {left}")


def machine_with_faults(faults: Iterable[str], threads: int = THREADS) -> type[ReferenceMachine]:
    """A `ReferenceMachine` subclass running the faulty variants ``faults`` on ``threads`` runtime threads."""
    fs = frozenset(faults)
    name = f"ReferenceMachine_{'_'.join(sorted(fs)) or 'clean'}_{threads}"
    return type(name, (ReferenceMachine,), {"FAULTS": fs, "THREADS": threads})


