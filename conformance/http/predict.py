"""Model predictions for HTTP-level scenarios: each scenario's behaviour replayed through the models.

`predict(scenario)` runs a small discrete-event simulation of the scenario (virtual time; the
client sends the scenario's requests in order) in which every runtime decision is taken by the
models, stepped by a `properties.monitor.Monitor` over the entrypoint and actor models (which
between them extend the context, lifecycle and ownership models):

* each request is an entrypoint event: ``create_context`` (or the actor's one context,
  ``set_io_context``), ``create_request``, ``request``/``run_scheduled``, ``deliver``; the
  handler's JavaScript runs in segments, each one ``enter`` ... ``exit`` (a segment whose
  ``enter`` the model refuses, e.g. in an aborted or destroyed context, never runs);
* what the handler does inside a segment is the model action its behaviour implies
  (``send_response``, ``pass_through_on_exception``, ``abort``, ``set_timeout``, ``add_task``
  for awaited I/O, ``add_wait_until``, ``set_no_retry``, ``add_object`` and ``access`` for I/O
  objects, ``schedule_action`` for a promise settled from another context);
* between segments the event loop takes the steps the model enables: ``handler_returned`` /
  ``handler_threw``, ``drain``, ``proxy_done``, the one disposition the model enables
  (``tunnel_to_actor_caller``, ``fail_open`` + ``fallback_done``, ``tunnel_exception``),
  ``drain_done``/``drain_aborted``, ``finish_scheduled_done``, ``run_actions``, the context's
  destruction once nothing holds it, and ``abort_from_hang`` whenever the model allows it at the
  end of an instant (no JS running, no pending event).

The prediction is read off the models' outputs: the ``response`` output of each client
request (the wire shape from `model.entrypoint.RESPONSE_WIRE`, completed by the handler's own
status, headers and body), the result of an ownership check (workerd's message from
`model.vocab.MESSAGES`), the ``outcome``/``no_retry`` of a scheduled event, the warnings the
models output, and which ``record`` steps ran at all.  What the models do not decide (a value
such as a neutered request body, log texts, timing between concurrent steps, what an
unmodelled API object does) is left out of the prediction and named in `Prediction.not_covered`;
the scenario file pins those observations instead.  Timing comes only from the scenario's own
waits (``sleep``, ``delay_ms``): it orders steps, the models say what each step does.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from model.entrypoint import RESPONSE_WIRE
from model.vocab import IO_TYPE_SUFFIX, MESSAGES
from properties.monitor import Monitor

from .scenarios import Scenario
from .vocabulary import INTERNET, IO_OWNERSHIP, IO_VALUES, template_names, walk_steps

__all__ = ["MODELS", "Prediction", "Unknown", "predict"]

#: The models the replay runs (their union covers context, lifecycle, ownership, entrypoint and actor).
MODELS = ("entrypoint", "actor")
#: workerd's EventOutcome enumerant names (io/outcome.capnp) for the lifecycle model's Outcome.
EVENT_OUTCOME = {"OK": "ok", "EXCEPTION": "exception", "EXCEEDED_WALL_TIME": "exceededWallTime"}
THREAD = "t0"
_MAX_STEPS = 100_000


# ---------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Unknown:
    """A value the models do not decide; ``reason`` says why (one line)."""

    reason: str


@dataclass(frozen=True)
class Rx:
    """A value known up to a regular expression (e.g. a URL whose port the client chooses)."""

    pattern: str


Val = str | Rx | Unknown


def concat(*parts: Val) -> Val:
    unknown = next((p for p in parts if isinstance(p, Unknown)), None)
    if unknown is not None:
        return unknown
    if all(isinstance(p, str) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return Rx("".join(p.pattern if isinstance(p, Rx) else _escape(p) for p in parts if not isinstance(p, Unknown)))


def _escape(text: str) -> str:
    """A regex matching exactly ``text``, escaping only what must be (readable in scenario files and reports)."""
    return re.sub(r"[.^$*+?{}\[\]\\|()]", lambda m: "\\" + m.group(0), text).replace("\n", "\\n")


def as_match(value: Val) -> dict[str, str] | None:
    if isinstance(value, Unknown):
        return None
    if isinstance(value, Rx):
        return {"regex": "^" + value.pattern + "$"}
    return {"equals": value}


@dataclass(frozen=True)
class JsValue:
    """A thrown JavaScript value, described as the vocabulary's result strings do ('Name: message' for an Error)."""

    text: Val

    @staticmethod
    def error(name: str, message: Val) -> JsValue:
        return JsValue(concat(f"{name}: ", message))

    def result(self) -> Val:
        return concat("error: ", self.text)


class _Thrown(Exception):  # a JS throw travelling through a step generator
    def __init__(self, value: JsValue) -> None:
        super().__init__(str(value))
        self.value = value


# ---------------------------------------------------------------------------------------- waits


@dataclass
class _Sleep:
    ms: int


@dataclass
class _Forever:
    pass


@dataclass
class _Call:
    """Awaited I/O: ``start(done)`` begins it; ``done(ok, value)`` delivers its result later."""

    start: Callable[[Callable[[bool, Any], None]], None]


@dataclass
class _Record:
    event: str
    value: Val


@dataclass
class _Await:
    """Wait for a shared promise (or for nothing that will ever come: ``promise`` None), up to ``within_ms``."""

    promise: _Promise | None
    within_ms: int | None


# ---------------------------------------------------------------------------------------- simulation state


@dataclass(eq=False)
class _Ctx:
    name: str
    worker: str
    actor: bool
    slots: dict[str, _Saved] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)
    requests: list[_Req] = field(default_factory=list)
    actions: list[Callable[[], None]] = field(default_factory=list)
    uncertain: bool = False
    dead: bool = False


@dataclass
class _Http:
    method: str
    url: Val
    headers: dict[str, str]
    body: str


@dataclass(eq=False)
class _Req:
    name: str
    ctx: _Ctx
    kind: str  # fetch | scheduled
    http: _Http | None
    on_done: Callable[[Any], None]
    state: str = "running"  # running | draining | finishing | ended
    body_obj: str | None = None
    body_neutered: bool = False
    done: bool = False


@dataclass
class _Saved:
    kind: str
    owner: _Ctx
    obj: str | None
    value: Val
    request: _Req | None = None


@dataclass(eq=False)
class _Promise:
    owner: _Ctx
    waiter: _Task | None = None
    resolved: bool = False
    value: Val = ""


@dataclass
class _Resp:
    """The Response a fetch handler returned (or a stream it returned)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Val = ""
    stream: Mapping[str, Any] | None = None


@dataclass
class _NotResponse:
    value: Any


@dataclass(eq=False)
class _Task:
    gen: Generator[Any, Any, Any]
    ctx: _Ctx
    kind: str  # handler | scheduled | wait_until | timer
    req: _Req | None = None
    done: bool = False
    timer_armed: bool = False


@dataclass
class Outcome:
    """What one event produced: the model's ``response`` output and what completes its wire shape."""

    response: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Val | None = None
    stream: Mapping[str, Any] | None = None
    error: JsValue | None = None
    fallback: Outcome | None = None


@dataclass
class Prediction:
    """The models' expected observation for one scenario (expectation format, ``source: model``)."""

    scenario: str
    expect: dict[str, Any]
    not_covered: list[str]
    trace: list[dict[str, Any]]
    transitions: list[str]

    @property
    def covered(self) -> bool:
        """Whether the models predict anything observable in this scenario."""
        return any(key in self.expect for key in ("responses", "events", "events_absent", "logs"))

    def to_json(self) -> dict[str, Any]:
        return {"expect": self.expect, "not_covered": self.not_covered, "model_steps": len(self.trace)}


# ---------------------------------------------------------------------------------------- the simulation


@cache
def _monitor() -> Monitor:
    return Monitor(list(MODELS))


class _Simulation:
    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.workers = {w["name"]: w for w in scenario.workers}
        self.mon = _monitor()
        self.mon.reset()
        self.trace: list[dict[str, Any]] = []
        self.transitions: list[str] = []
        self.now = 0.0
        self.end = float("inf")
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.ids = {"ctx": itertools.count(1), "req": itertools.count(1), "obj": itertools.count(1),
                    "actor": itertools.count(1)}
        self.contexts: list[_Ctx] = []
        self.actors: dict[tuple[str, str], _Ctx] = {}
        self.globals: dict[str, dict[str, Any]] = {name: {} for name in self.workers}
        self.records: list[tuple[str, Val, bool]] = []
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.client: dict[str, dict[str, Any]] = {}
        self.outstanding = 0
        self.client_done = False
        self.steps = 0
        self.opaque: str | None = None  # set when the scenario leaves what the models cover: nothing is predicted

    # ---- the models ------------------------------------------------------------------------
    def emit(self, op: str, **args: Any) -> dict[str, str]:
        event = {"op": op, "args": args}
        predicted = self.mon.step(event, predict=True)
        self.trace.append({**event, **({"outputs": predicted} if predicted else {})})
        for model in self.mon.by_op[op]:
            self.transitions.append(f"{model.model.name}.{op}")
        warning = predicted.get("warning")
        if warning and warning != "NO_WARNING":
            key = warning if warning in MESSAGES else f"WARN_{warning}"
            if key in MESSAGES:
                self.warnings.append(key)
        return predicted

    def allowed(self, op: str, **args: Any) -> dict[str, str] | None:
        return self.mon.predict({"op": op, "args": args})

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # ---- time ----------------------------------------------------------------------------------
    def later(self, ms: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (self.now + ms, next(self.seq), fn))

    def run(self) -> None:
        self.later(0, lambda: self._client_next(0))
        while True:
            self._settle()
            if self._end_of_instant():
                continue
            if not self.queue or self.queue[0][0] > self.end:
                return
            t, _, fn = heapq.heappop(self.queue)
            self.now = max(self.now, t)
            self.steps += 1
            if self.steps > _MAX_STEPS:
                raise RuntimeError(f"scenario {self.s.id}: the simulation did not settle in {_MAX_STEPS} steps")
            fn()

    # ---- contexts and requests ---------------------------------------------------------------
    def _new_ctx(self, worker: str, *, actor: bool) -> _Ctx:
        ctx = _Ctx(f"c{next(self.ids['ctx'])}", worker, actor)
        self.contexts.append(ctx)
        self.emit("create_context", c=ctx.name, t=THREAD, actor=actor)
        return ctx

    def _actor_ctx(self, worker: str, instance: str) -> _Ctx:
        key = (worker, instance)
        if key not in self.actors:
            ctx = self._new_ctx(worker, actor=True)
            self.emit("set_io_context", a=f"a{next(self.ids['actor'])}", c=ctx.name)
            self.actors[key] = ctx
        return self.actors[key]

    def _new_req(self, ctx: _Ctx, kind: str, http: _Http | None, on_done: Callable[[Any], None]) -> _Req:
        req = _Req(f"r{next(self.ids['req'])}", ctx, kind, http, on_done)
        ctx.requests.append(req)
        self.emit("create_request", r=req.name, c=ctx.name)
        return req

    def _enter(self, ctx: _Ctx) -> bool:
        predicted = self.allowed("enter", c=ctx.name, t=THREAD)
        if predicted is None or predicted.get("result") != "OK":
            return False
        self.emit("enter", c=ctx.name, t=THREAD)
        return True

    def _exit(self, ctx: _Ctx) -> None:
        self.emit("exit", c=ctx.name, t=THREAD)

    def _task_settled(self, ctx: _Ctx, ok: bool = True) -> bool:
        """A timer fired or awaited I/O settled: whichever of the models' task ends is enabled (False: none)."""
        for op in ("task_done", "wait_until_done"):
            if self.allowed(op, c=ctx.name, ok=ok) is not None:
                self.emit(op, c=ctx.name, ok=ok)
                return True
        return False

    # ---- starting events ---------------------------------------------------------------------
    def start_fetch(self, worker: str, http: _Http, on_done: Callable[[Outcome], None], *,
                    instance: str | None = None) -> _Req:
        w = self.workers[worker]
        if instance is None:
            ctx = self._new_ctx(worker, actor=False)
            routes = w.get("routes", {})
        else:
            ctx = self._actor_ctx(worker, instance)
            routes = w["durable_object"]["routes"]
        req = self._new_req(ctx, "fetch", http, on_done)
        self.emit("request", r=req.name)
        self.emit("deliver", r=req.name)
        path = _path_of(http.url)
        steps = routes.get(path)
        if steps is None:
            steps = [{"op": "respond", "status": 404, "body": "no route"}]
        env = _Env(worker=worker, slots=ctx.slots if ctx.actor else None)
        task = _Task(self._steps(ctx, req, steps, env, "fetch"), ctx, "handler", req)
        self.later(0, lambda: self._segment(task, first=True))
        return req

    def start_scheduled(self, worker: str, on_done: Callable[[Any], None]) -> None:
        w = self.workers[worker]
        ctx = self._new_ctx(worker, actor=False)
        req = self._new_req(ctx, "scheduled", None, on_done)
        self.emit("run_scheduled", r=req.name)
        self.emit("deliver", r=req.name)
        self.emit("add_wait_until", c=ctx.name)  # the handler runs as a waitUntil task (worker-entrypoint.c++:811)
        self.emit("finish_scheduled", r=req.name)
        req.state = "finishing"
        if "scheduled" in w:
            gen = self._steps(ctx, req, w["scheduled"], _Env(worker=worker), "task")
        else:
            gen = self._missing_scheduled(ctx)
        task = _Task(gen, ctx, "scheduled", req)
        self.later(0, lambda: self._segment(task))

    def _missing_scheduled(self, ctx: _Ctx) -> Generator[Any, Any, Any]:
        """No scheduled export: ``setNoRetryScheduled()``, then the handler fails (api/global-scope.c++:525-564)."""
        self.emit("set_no_retry", c=ctx.name)
        raise _Thrown(JsValue.error("Error", "Handler does not export a scheduled() function"))
        yield  # a generator

    # ---- running JavaScript ------------------------------------------------------------------
    def _segment(self, task: _Task, send: Any = None, throw: BaseException | None = None, *,
                 first: bool = False, inline: bool = False) -> None:
        """Run the task's JavaScript up to its next wait, inside its context (``enter`` ... ``exit``)."""
        if task.done:
            return
        ctx = task.ctx
        if not inline and not self._enter(ctx):
            task.done = True  # the model refuses to run JS here (aborted or gone): the continuation never runs
            return
        if first and task.req is not None and task.req.http is not None and task.req.http.body:
            obj = self._new_object(ctx)  # the request body is an I/O object of its context
            task.req.body_obj = obj
        ok, value, wait = True, None, None
        try:
            wait = task.gen.send(send) if throw is None else task.gen.throw(throw)
        except StopIteration as stop:
            value = stop.value
        except _Thrown as thrown:
            ok, value = False, thrown.value
        if wait is not None:
            self._arm(task, wait)
        else:
            task.done = True
            if ok and task.kind == "handler" and isinstance(value, _Resp):
                assert task.req is not None
                self.emit("send_response", r=task.req.name)  # the headers go out while the handler's JS runs
        if not inline:
            self._exit(ctx)
        if wait is None:
            self.later(0, lambda: self._task_finished(task, ok, value))

    def _arm(self, task: _Task, wait: Any) -> None:
        """Inside the segment: what the wait registers with the context."""
        ctx = task.ctx
        if isinstance(wait, _Sleep):
            self.emit("set_timeout", c=ctx.name)
            self.later(wait.ms, lambda: self._resume_after_task(task, None))
        elif isinstance(wait, _Record):
            self.emit("add_task", c=ctx.name)  # the recorder call is a subrequest (awaitIo)
            self.records.append((wait.event, wait.value, not ctx.uncertain))
            self.later(0, lambda: self._resume_after_task(task, None))
        elif isinstance(wait, _Call):
            self.emit("add_task", c=ctx.name)

            def done(ok: bool, value: Any) -> None:
                self.later(0, lambda: self._resume_after_task(task, (ok, value), ok=ok))

            self.later(0, lambda: wait.start(done))
        elif isinstance(wait, _Await):
            if wait.promise is not None:
                wait.promise.waiter = task
            if wait.within_ms is not None:
                self.emit("set_timeout", c=ctx.name)
                task.timer_armed = True
                self.later(wait.within_ms, lambda: self._await_timed_out(task, wait))
        elif not isinstance(wait, _Forever):
            raise AssertionError(f"unknown wait {wait!r}")

    def _resume_after_task(self, task: _Task, value: Any, ok: bool = True) -> None:
        if task.done or task.ctx.dead:
            return
        if not self._task_settled(task.ctx, ok):
            task.done = True
            return
        self._segment(task, value)

    def _await_timed_out(self, task: _Task, wait: _Await) -> None:
        if task.done or not task.timer_armed:
            return
        task.timer_armed = False
        if wait.promise is not None:
            wait.promise.waiter = None
        self._resume_after_task(task, "pending")

    def _promise_settled(self, promise: _Promise) -> None:
        """The promise's reaction runs in its owner (now, or via the owner's signal task)."""
        task = promise.waiter
        if task is None or task.done:
            return
        promise.waiter = None
        if task.timer_armed:  # clearTimeout: the race's timer ends with it
            task.timer_armed = False
            self._task_settled(task.ctx)
        self.later(0, lambda: self._segment(task, concat("ok: ", promise.value)))

    def _task_finished(self, task: _Task, ok: bool, value: Any) -> None:
        """After the segment that ended the task: what its end means to the models."""
        if task.kind in ("wait_until", "scheduled"):
            if self.allowed("wait_until_done", c=task.ctx.name, ok=ok) is not None:
                self.emit("wait_until_done", c=task.ctx.name, ok=ok)
            return
        if task.kind != "handler":
            return
        req = task.req
        assert req is not None
        if ok and isinstance(value, _Resp):
            self._handler_returned(req, value)
        else:
            error = value if isinstance(value, JsValue) else JsValue.error(
                "TypeError", "Incorrect type for Promise: the Promise did not resolve to 'Response'.")
            self._handler_threw(req, error)

    # ---- the entrypoint's stages 2-4 ----------------------------------------------------------
    def _handler_returned(self, req: _Req, resp: _Resp) -> None:
        if req.done:
            return
        self.emit("handler_returned", r=req.name)
        self.emit("drain", r=req.name)
        req.state = "draining"
        if resp.stream is None:
            out = self.emit("proxy_done", r=req.name, ok=True)
            req.body_neutered = True
            self._finish(req, Outcome(out["response"], resp.status, resp.headers, body=resp.body))
            return
        stream = resp.stream
        failed = stream["then"] == "error"

        def pumped() -> None:
            out = self.emit("proxy_done", r=req.name, ok=not failed)
            req.body_neutered = True
            if not failed:
                self._finish(req, Outcome(out["response"], resp.status, resp.headers, body=resp.body, stream=stream))
            else:
                self._dispose(req, JsValue.error("Error", stream.get("message", "stream failed")),
                              Outcome("", resp.status, resp.headers, stream=stream))

        self.later(stream.get("after_ms", 0), pumped)

    def _handler_threw(self, req: _Req, error: JsValue) -> None:
        if req.done or req.state != "running":
            return
        self.emit("handler_threw", r=req.name)
        self.emit("drain", r=req.name)
        req.state = "draining"
        req.body_neutered = True
        self._dispose(req, error, None)

    def _dispose(self, req: _Req, error: JsValue, started: Outcome | None) -> None:
        """Stage 4: exactly one disposition, the one the model enables."""
        ops = [op for op in ("tunnel_to_actor_caller", "fail_open", "tunnel_exception", "send_synthetic_status")
               if self.allowed(op, r=req.name) is not None]
        if len(ops) != 1:
            raise AssertionError(f"{self.s.id}: dispositions enabled for {req.name}: {ops}")
        out = self.emit(ops[0], r=req.name)
        if ops[0] != "fail_open":
            base = started or Outcome("")
            self._finish(req, Outcome(out["response"], status=base.status, headers=base.headers,
                                      stream=base.stream, error=error))
            return
        fallback = self.workers[req.ctx.worker].get("fallback", INTERNET)

        def fallback_done(outcome: Outcome | None) -> None:
            ok = outcome is not None and outcome.error is None and outcome.response in (
                "WORKER_RESPONSE", "FALLBACK_RESPONSE")
            out = self.emit("fallback_done", r=req.name, ok=ok)
            self._finish(req, Outcome(out["response"], fallback=outcome if ok else None, error=error))

        assert req.http is not None
        if fallback == INTERNET:  # refuses loopback: the fallback fails
            self.later(0, lambda: fallback_done(None))
        else:
            http = req.http

            def start() -> None:
                self.start_fetch(fallback, http, lambda o: self.later(0, lambda: fallback_done(o)))

            self.later(0, start)

    def _finish(self, req: _Req, outcome: Outcome) -> None:
        req.done = True
        req.on_done(outcome)

    # ---- the event loop between segments -------------------------------------------------------
    def _settle(self) -> None:
        changed = True
        while changed:
            changed = False
            for ctx in list(self.contexts):
                if ctx.dead:
                    continue
                for req in list(ctx.requests):
                    changed |= self._end_waits(req)
                if ctx.actions and self.allowed("run_actions", c=ctx.name, t=THREAD) is not None:
                    self.emit("run_actions", c=ctx.name, t=THREAD)
                    actions, ctx.actions = ctx.actions, []
                    for action in actions:  # each resumes JS in ctx, which the model refuses if ctx was aborted
                        action()
                    changed = True
                if not ctx.actor and not any(r.state != "ended" for r in ctx.requests) and ctx.requests:
                    self._destroy(ctx)
                    changed = True

    def _end_waits(self, req: _Req) -> bool:
        """A drain or finishScheduled whose wait the model lets end now."""
        if req.state == "draining":
            for op in ("drain_done", "drain_aborted", "drain_superseded", "drain_shutdown"):
                if self.allowed(op, r=req.name) is not None:
                    self.emit(op, r=req.name)
                    req.state = "ended"
                    return True
        if req.state == "finishing":
            for op in ("finish_scheduled_done", "finish_scheduled_aborted"):
                if self.allowed(op, r=req.name) is not None:
                    out = self.emit(op, r=req.name)
                    req.state = "ended"
                    req.done = True
                    req.on_done((EVENT_OUTCOME[out["outcome"]], out["no_retry"]))
                    return True
        return False

    def _destroy(self, ctx: _Ctx) -> None:
        self.emit("destroy_begin", c=ctx.name)
        for obj in reversed(ctx.objects):
            if self.allowed("teardown_free", o=obj) is not None:
                self.emit("teardown_free", o=obj)
        self.emit("destroy_end", c=ctx.name)
        ctx.dead = True

    def _end_of_instant(self) -> bool:
        """The thread is idle: hang detection aborts every stateless context the model allows it to."""
        if self.queue and self.queue[0][0] <= self.now:
            return False
        aborted = False
        for ctx in self.contexts:
            if not ctx.dead and not ctx.actor and self.allowed("abort_from_hang", c=ctx.name) is not None:
                self.emit("abort_from_hang", c=ctx.name)
                self._context_aborted(ctx, JsValue.error("Error", MESSAGES["HANG"]))
                aborted = True
        return aborted

    def _context_aborted(self, ctx: _Ctx, error: JsValue) -> None:
        """An aborted context's running handlers reject with the abort reason (awaitJs joins onAbort)."""
        for req in ctx.requests:
            if req.kind == "fetch" and req.state == "running":
                self.later(0, functools.partial(self._handler_threw, req, error))

    # ---- objects -------------------------------------------------------------------------------
    def _new_object(self, ctx: _Ctx) -> str:
        obj = f"o{next(self.ids['obj'])}"
        out = self.emit("add_object", o=obj, c=ctx.name, t=THREAD, kind="IO_OWN")
        if out.get("result") != "OK":
            raise AssertionError(f"{self.s.id}: add_object refused: {out}")
        ctx.objects.append(obj)
        return obj

    def _access(self, obj: str, io_type: str) -> JsValue | None:
        """``checkFarGet`` by the ownership model: None if the current context may use the object."""
        result = self.emit("access", o=obj, t=THREAD)["result"]
        if result == "OK":
            return None
        text = MESSAGES[result] + (IO_TYPE_SUFFIX.format(io_type=io_type)
                                   if result in ("ERR_DIFFERENT_REQUEST", "ERR_DIFFERENT_DO") else "")
        return JsValue.error("Error", text)

    def _read_body(self, req: _Req | None) -> Val | JsValue:
        """``request.text()`` in the current context."""
        if req is None or req.http is None or not req.http.body:
            return ""
        if req.body_obj is not None:
            error = self._access(req.body_obj, _io_type("request"))
            if error is not None:
                return error
        if req.body_neutered:
            self.note("a request body read after its request's response: workerd neuters it (api/global-scope.c++:"
                      "440-480); no model covers neutering")
            return Unknown("neutered request body")
        return req.http.body

    # ---- the behaviour vocabulary ----------------------------------------------------------------
    def _steps(self, ctx: _Ctx, req: _Req | None, steps: Sequence[Mapping[str, Any]], env: _Env,
               body: str) -> Generator[Any, Any, Any]:
        local = env.local
        for step in steps:
            op = step["op"]
            if op == "respond":
                body_text = self._template(step.get("body", ""), local)
                return _Resp(step.get("status", 200), dict(step.get("headers", {})), body_text)
            if op == "respond_stream":
                chunks = [self._template(c, local) for c in step["chunks"]]
                return _Resp(200, {}, concat(*chunks), stream={**step, "values": chunks})
            if op == "throw":
                raise _Thrown(_thrown_value(step))
            if op == "reject":
                raise _Thrown(JsValue.error("Error", step.get("message", "boom")))
            if op == "return_value":
                return _NotResponse(step["value"])
            if op == "pass_through_on_exception":
                self.emit("pass_through_on_exception", c=ctx.name)
            elif op == "abort":
                self.emit("abort", c=ctx.name, reason="REASON_A")
                error = JsValue.error("Error", step.get("message", "aborted"))
                self.later(0, lambda: self._context_aborted(ctx, error))
                yield _Forever()
            elif op == "sleep":
                yield _Sleep(step["ms"])
            elif op == "hang":
                yield _Forever()
            elif op == "save_io":
                saved = yield from self._save_io(ctx, req, step, env)
                env.slots_for(step, self.globals)[step["slot"]] = saved
            elif op == "use_io":
                local[step["as"]] = yield from self._use_io(ctx, step, env)
            elif op == "read_body":
                value = self._read_body(req)
                local[step["as"]] = value.result() if isinstance(value, JsValue) else concat("ok: ", value)
            elif op == "describe_request":
                local[step["as"]] = self._describe(req)
            elif op == "wait_until":
                self.emit("add_wait_until", c=ctx.name)
                child = _Task(self._steps(ctx, req, step["steps"], env.child(), "task"), ctx, "wait_until", req)
                self._segment(child, inline=True)  # the async function runs synchronously up to its first await
            elif op == "set_timeout":
                self.emit("set_timeout", c=ctx.name)
                timer = _Task(self._steps(ctx, req, step["steps"], env.child(), "task"), ctx, "timer", req)
                self.later(step["ms"], functools.partial(self._resume_after_task, timer, None))
            elif op == "record":
                yield _Record(step["event"], self._template(step.get("value", ""), local))
            elif op == "no_retry":
                self.emit("set_no_retry", c=ctx.name)
            elif op == "call_scheduled":
                local[step["as"]] = yield from self._call_scheduled(ctx, step)
            elif op in ("fetch_service", "fetch_durable_object"):
                result = yield from self._subrequest(ctx, step, local)
                if "as" in step:
                    local[step["as"]] = result
            elif op == "await_shared_promise":
                promise = _Promise(ctx)
                self.globals[ctx.worker][step["slot"]] = promise
                local[step["as"]] = yield _Await(promise, step.get("within_ms"))
            elif op == "resolve_shared_promise":
                outcome = self._resolve(ctx, step, local)
                if "as" in step:
                    local[step["as"]] = outcome
            else:
                raise AssertionError(f"predict has no meaning for op {op!r}")
        if body == "fetch":
            return _Resp()
        return None

    def _template(self, template: str, local: Mapping[str, Val]) -> Val:
        parts: list[Val] = []
        rest = template
        for name in template_names(template):
            before, _, rest = rest.partition("{" + name + "}")
            parts += [before, local[name]]
        parts.append(rest)
        return concat(*parts)

    def _describe(self, req: _Req | None) -> Val:
        assert req is not None and req.http is not None
        http = req.http
        lines: list[Val] = [concat(f"{http.method} ", http.url)]
        for name in sorted(n.lower() for n in http.headers if n.lower().startswith("x-")):
            value = next(v for k, v in http.headers.items() if k.lower() == name)
            lines.append(f"{name}: {value}")
        body = self._read_body(req)
        if isinstance(body, JsValue):
            return body.result()
        joined: list[Val] = []
        for line in lines:
            joined += [line, "\n"]
        return concat("ok: ", *joined[:-1], "\n\n", body)

    def _save_io(self, ctx: _Ctx, req: _Req | None, step: Mapping[str, Any], env: _Env
                 ) -> Generator[Any, Any, _Saved]:
        kind = step["kind"]
        ownership = IO_OWNERSHIP[kind]
        if kind == "request":
            assert req is not None and req.http is not None
            return _Saved(kind, ctx, req.body_obj, req.http.body, request=req)
        if kind == "text":
            value = self._read_body(req)
            if isinstance(value, JsValue):
                raise _Thrown(value)
            return _Saved(kind, ctx, None, value)
        if kind == "subrequest_response":
            ok, result = yield _Call(lambda done: self._fetch_binding(ctx, step, "", done))
            if not ok:
                raise _Thrown(result)
            return _Saved(kind, ctx, self._new_object(ctx), result[1])
        if kind == "fetch_promise":
            self.emit("add_task", c=ctx.name)

            def settled(ok: bool, value: Any) -> None:
                if not ctx.dead:
                    self._task_settled(ctx, ok)

            self.later(0, lambda: self._fetch_binding(ctx, step, "", settled))
            return _Saved(kind, ctx, None, Unknown(ownership))
        if ownership.startswith("io_own:"):
            return _Saved(kind, ctx, self._new_object(ctx), IO_VALUES[kind])
        return _Saved(kind, ctx, None, IO_VALUES.get(kind, Unknown(ownership)))

    def _use_io(self, ctx: _Ctx, step: Mapping[str, Any], env: _Env) -> Generator[Any, Any, Val]:
        saved = env.slots_for(step, self.globals).get(step["slot"])
        if not isinstance(saved, _Saved):
            self.note(f"use_io of an empty slot {step['slot']!r} is not predicted")
            return Unknown("empty slot")
        ownership = IO_OWNERSHIP[saved.kind]
        if ownership.startswith("unmodelled:"):
            self.note(f"{saved.kind}: {ownership.partition(': ')[2]}")
            return Unknown(ownership)
        if saved.kind == "request":  # its body (checked when the request has one)
            body = self._read_body(saved.request)
            return body.result() if isinstance(body, JsValue) else concat("ok: ", body)
        if ownership.startswith("io_own:") and saved.obj is not None:
            error = self._access(saved.obj, ownership.partition(":")[2])
            if error is not None:
                return error.result()
        if ownership == "promises" and saved.owner is not ctx:
            # writing settles a promise the creating context made: a cross-context action (io-own.c++:22-55)
            out = self.emit("schedule_action", c=saved.owner.name, t=THREAD)
            if saved.owner.dead:  # the action is dropped: the read never settles
                pending: Val = yield _Await(None, step.get("within_ms"))
                return pending
            self.note(f"{saved.kind} used while its creating context is alive: the models do not say when the "
                      f"read settles ({out})")
            return Unknown("cross-context stream")
        return concat("ok: ", saved.value)

    def _resolve(self, ctx: _Ctx, step: Mapping[str, Any], local: Mapping[str, Val]) -> Val:
        promise = self.globals[ctx.worker].get(step["slot"])
        if not isinstance(promise, _Promise):
            self.note(f"resolve_shared_promise of an empty slot {step['slot']!r} is not predicted")
            return Unknown("empty slot")
        promise.resolved, promise.value = True, self._template(step.get("value", ""), local)
        if promise.owner is ctx:
            self._promise_settled(promise)
        else:
            self.emit("schedule_action", c=promise.owner.name, t=THREAD)
            if not promise.owner.dead:
                promise.owner.actions.append(lambda: self._promise_settled(promise))
        return "ok: "

    # ---- subrequests -----------------------------------------------------------------------------
    def _fetch_binding(self, ctx: _Ctx, step: Mapping[str, Any], body: Val, done: Callable[[bool, Any], None]
                       ) -> None:
        binding = step["binding"]
        target = self.workers[ctx.worker]["bindings"][binding]
        http = _Http(step.get("method", "GET"), f"http://{binding.lower()}{step.get('path', '/')}", {},
                     body if isinstance(body, str) else "")
        self.start_fetch(target, http, lambda outcome: done(*_as_call_result(outcome)))

    def _subrequest(self, ctx: _Ctx, step: Mapping[str, Any], local: Mapping[str, Val]) -> Generator[Any, Any, Val]:
        body = self._template(step.get("body", ""), local)
        if step["op"] == "fetch_service":
            ok, result = yield _Call(lambda done: self._fetch_binding(ctx, step, body, done))
        else:
            http = _Http(step.get("method", "GET"), f"http://do{step['path']}", {}, body if isinstance(body, str)
                         else "")

            def start(done: Callable[[bool, Any], None]) -> None:
                self.start_fetch(ctx.worker, http, lambda outcome: done(*_as_call_result(outcome)),
                                 instance=step["instance"])

            ok, result = yield _Call(start)
        if not ok:
            if "as" not in step:
                raise _Thrown(result)
            return result.result() if isinstance(result, JsValue) else result
        return concat("ok: ", str(result[0]), " ", result[1])

    def _call_scheduled(self, ctx: _Ctx, step: Mapping[str, Any]) -> Generator[Any, Any, Val]:
        caller = self.workers[ctx.worker]
        if "service_binding_extra_handlers" not in caller.get("compatibility_flags", []):
            self.opaque = ("scheduled() on a binding without service_binding_extra_handlers is a JS RPC call, which "
                           "no model covers")
            yield _Forever()
        target = caller["bindings"][step["binding"]]

        def start(done: Callable[[bool, Any], None]) -> None:
            self.start_scheduled(target, lambda result: done(True, result))

        _, (outcome, no_retry) = yield _Call(start)
        return f"ok: outcome={outcome} noRetry={no_retry}"

    # ---- the client ------------------------------------------------------------------------------
    def _client_next(self, index: int) -> None:
        requests = self.s.requests
        if index >= len(requests):
            self.client_done = True
            self._maybe_end()
            return
        request = requests[index]
        self.later(request.get("delay_ms", 0), lambda: self._send(index))

    def _send(self, index: int) -> None:
        request = self.s.requests[index]
        rid = request["id"]
        state: dict[str, Any] = {"sent": self.now}
        self.client[rid] = state
        self.outstanding += 1
        headers = {"host": "127.0.0.1:PORT", **{k: v for k, v in request.get("headers", {}).items()}}
        http = _Http(request.get("method", "GET"), Rx(r"http://127\.0\.0\.1:[0-9]+" + _escape(request["path"])),
                     headers, request.get("body", ""))
        go_on = request.get("wait", "response") == "none"

        def finished(result: Any) -> None:
            if "result" in state:
                return
            state["result"] = result
            state["at"] = self.now
            self.outstanding -= 1
            if not go_on:
                self._client_next(index + 1)
            self._maybe_end()

        req = self.start_fetch(request["worker"], http, finished)
        if "disconnect_after_ms" in request:
            req.ctx.uncertain = True
            self.note("a client that disconnects: whether the runtime cancels the request is not decided by the "
                      "models (request_canceled is allowed, not required)")
            self.later(request["disconnect_after_ms"], lambda: finished("client_disconnected"))
        self.later(request.get("timeout_ms", 5000), lambda: finished("timeout"))
        if go_on:
            self._client_next(index + 1)

    def _maybe_end(self) -> None:
        if self.client_done and self.outstanding == 0:
            self.end = self.now + self.s.observe_ms + 50

    # ---- the prediction ----------------------------------------------------------------------------
    def expectation(self) -> dict[str, Any]:
        expect: dict[str, Any] = {"source": "model"}
        responses = {}
        for request in self.s.requests:
            state = self.client.get(request["id"], {})
            wire = self._wire(state.get("result"))
            if wire:
                responses[request["id"]] = wire
        if responses:
            expect["responses"] = responses
        names_in_scenario = sorted({n for w in self.s.workers for n in _record_names(w)})
        certain = [(e, v) for e, v, sure in self.records if sure]
        uncertain_names = {e for e, _, sure in self.records if not sure}
        if certain:
            events = []
            for name, value in certain:
                entry: dict[str, Any] = {"event": name}
                match = as_match(value)
                if match is not None:
                    entry["value"] = match
                events.append(entry)
            expect["events"] = events
        recorded = {e for e, _ in certain}
        absent = [n for n in names_in_scenario if n not in recorded and n not in uncertain_names]
        if absent:
            expect["events_absent"] = absent
        if names_in_scenario and not uncertain_names:
            expect["events_exact"] = True
        if self.s.level != "MUST" and self.warnings:
            expect["logs"] = [{"contains": "{msg:" + key + "}"} for key in dict.fromkeys(self.warnings)]
        elif self.warnings:
            self.note("log lines are SHOULD-level observations: the models' warnings "
                      f"({', '.join(dict.fromkeys(self.warnings))}) are not part of a MUST prediction")
        return expect

    def _wire(self, result: Any) -> dict[str, Any] | None:
        if result is None:
            return None
        if result in ("timeout", "client_disconnected"):
            return {"outcome": result}
        assert isinstance(result, Outcome)
        return self._outcome_wire(result)

    def _outcome_wire(self, outcome: Outcome) -> dict[str, Any] | None:
        shape = RESPONSE_WIRE.get(outcome.response)
        if shape is None:
            return None
        wire: dict[str, Any] = dict(shape)
        if outcome.response == "FALLBACK_RESPONSE":
            assert outcome.fallback is not None
            wire.update(self._outcome_wire(outcome.fallback) or {})
            return wire
        if outcome.response not in ("WORKER_RESPONSE", "TRUNCATED"):
            return wire
        wire["status"] = outcome.status
        if outcome.headers:
            wire["headers"] = dict(outcome.headers)
        stream = outcome.stream
        wire["chunked"] = stream is not None
        if outcome.response == "WORKER_RESPONSE":
            body = as_match(outcome.body) if outcome.body is not None else None
            if body is not None:
                wire["body"] = body
            return wire
        assert stream is not None
        if stream.get("after_ms", 0) == 0:
            # The same turn: ReadableStream.error() drops the queued chunks before the pump reads any, and kj
            # writes the status line with the first body bytes, so the wire may show no status line at all.
            self.note("a stream that fails in the turn it started: the model predicts TRUNCATED (no 500, no "
                      "fail-open); whether a status line reaches the wire first is the HTTP layer's buffering, "
                      "which no model covers")
            return {"connection": "closed"}
        first = as_match(stream["values"][0])
        if first is not None:
            wire["body"] = first  # the first chunk went out before the failure; the rest was dropped with it
        return wire


@dataclass
class _Env:
    """Where a step list's names live: its locals, the worker's globals, the actor's instance slots."""

    worker: str
    slots: dict[str, Any] | None = None
    local: dict[str, Val] = field(default_factory=dict)

    def child(self) -> _Env:
        return _Env(self.worker, self.slots, dict(self.local))

    def slots_for(self, step: Mapping[str, Any], globals_: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        if step.get("scope", "global") == "instance":
            assert self.slots is not None
            return self.slots
        return globals_[self.worker]


def _thrown_value(step: Mapping[str, Any]) -> JsValue:
    message = step.get("message", "boom")
    kind = step.get("value", "error")
    if kind == "error":
        return JsValue.error("Error", message)
    if kind == "type_error":
        return JsValue.error("TypeError", message)
    return JsValue({"string": message, "object": "[object Object]", "null": "null"}[kind])


def _as_call_result(outcome: Outcome) -> tuple[bool, Any]:
    """What a caller's ``await env.X.fetch()`` (or stub.fetch()) gets from the callee's outcome."""
    if outcome.response in ("WORKER_RESPONSE", "FALLBACK_RESPONSE"):
        final = outcome.fallback if outcome.response == "FALLBACK_RESPONSE" and outcome.fallback else outcome
        return True, (final.status, final.body if final.body is not None else Unknown("body"))
    if outcome.response in ("LISTENER_500", "EXCEPTION_TO_ACTOR_CALLER") and outcome.error is not None:
        return False, outcome.error  # the tunnelled exception reaches the caller with its name and message
    return False, JsValue(Unknown(f"a subrequest whose response is {outcome.response}"))


def _path_of(url: Val) -> str:
    if isinstance(url, str):
        return "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
    assert isinstance(url, Rx)
    tail = url.pattern.split("[0-9]+", 1)[1]
    return re.sub(r"\\(.)", r"\1", tail)


def _io_type(kind: str) -> str:
    return IO_OWNERSHIP[kind].partition(":")[2]


def _record_names(worker: Mapping[str, Any]) -> set[str]:
    lists = [*worker.get("routes", {}).values(), *worker.get("durable_object", {}).get("routes", {}).values()]
    if "scheduled" in worker:
        lists.append(worker["scheduled"])
    return {step["event"] for steps in lists for step in walk_steps(steps) if step["op"] == "record"}


def predict(scenario: Scenario) -> Prediction:
    """Replay the scenario's behaviour through the models; see the module docstring."""
    if scenario.startup_only:
        return Prediction(scenario.id, {"source": "model"},
                          ["a runtime that refuses to start is a configuration check of workerd's, not in a model"],
                          [], [])
    sim = _Simulation(scenario)
    sim.run()
    if sim.opaque is not None:
        return Prediction(scenario.id, {"source": "model"}, [sim.opaque], sim.trace, sorted(set(sim.transitions)))
    expect = sim.expectation()
    return Prediction(scenario.id, expect, sim.notes, sim.trace, sorted(set(sim.transitions)))
