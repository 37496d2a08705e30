"""The operation table: what each adapter operation means in the models (the one mapping the suite uses).

A scenario is a list of *operations* an implementation performs (create a context, enter it
on a thread, drop an object's handle on another thread, drain a request, run a fetch
handler...).  The models speak of *actions* (``drop_in_owner``, ``drop_elsewhere``,
``push_deletion``).  This table maps every operation to the model actions it stands for, and
the harness derives every prediction from it by running the model (`conformance.model_run`):

* An operation has one or more **alternatives**, each a sequence of `Call`\\ s of model actions.
  With ``choice="first"`` the harness takes the first alternative whose first action is
  enabled *by the model's guards* (dropping an IoOwn is ``drop_in_owner`` when the owner is
  current on that thread, else ``drop_elsewhere`` then ``push_deletion``, else ``drop_ptr``,
  else ``drop_reverse``: the guards make at most one applicable).  With ``choice="observed"``
  the implementation decides (a drain ends DONE, ABORTED, DRAIN_SUPERSEDED, ...): every
  enabled alternative is allowed, and the implementation's observation must match one of them.
* An action with checks (``enter``, ``access``, ``deliver``...) stands for both twins; the
  model predicts which (``OK`` or the first failing check's error, with workerd's message).
* `Call` arguments name the operation's parameters (``"o"``), a bookkeeping attribute the
  harness tracks (``"h.ctx"``: the context a handle belongs to), a model cell read in the
  current state (``"ctx_thread[c]"``), or a literal (``True``, ``"'REASON_A'"``).
* ``optional`` calls are skipped when the predicting model has no such action (a lifecycle
  scenario's actor has no ``set_io_context``); ``each`` repeats a call for every identity
  of that parameter's sort for which it is enabled (teardown frees every object still linked).
* ``observe`` lists what the adapter reports and the harness compares: ``result`` (and the
  exact message), the model outputs named there (``warning``, ``log``, ``joined``,
  ``outcome``, ``no_retry``, ``response``), or state projections (``phase``, ``node``...).
* ``environment`` operations are things an implementation does by itself (a drain ending,
  the DeleteQueue's signal task running, a lock turn being granted): the step says that the
  scenario waits for it.

The entrypoint's handler programs (`fetch`, `scheduled`) expand through `handler_calls`
into calls of the same kind.  `markdown_table` renders the whole table for docs/conformance.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Call",
    "Group",
    "HANDLER_STEPS",
    "KINDS",
    "OPS",
    "Op",
    "handler_calls",
    "markdown_table",
    "resume_calls",
]

#: parameter kinds: model identity sorts, harness handles, and plain values
KINDS: dict[str, str] = {
    "Thread": "a thread: t0, t1, ... are the implementation's worker threads; gc is a thread that is not one "
              "(the garbage collector)",
    "Ctx": "an IoContext",
    "Req": "an IncomingRequest (for fetch/scheduled: the event's request, one per WorkerEntrypoint)",
    "Obj": "an I/O object (IoOwn, IoPtr or ReverseIoOwn)",
    "Actor": "a Durable Object instance (Worker::Actor)",
    "Isolate": "an isolate (its AsyncLock queue)",
    "Handle": "a harness handle: a task, timer, waitUntil promise or lock request the scenario settles later",
    "bool": "true or false",
    "reason": "an abort reason: REASON_A or REASON_B (adapters use two distinct errors)",
    "kind": "IO_OWN or IO_PTR",
    "text": "free text",
    "int": "a non-negative integer",
    "program": "a handler program (see HANDLER_STEPS)",
    "fallback": "what passThroughOnException falls back to: ok (answers), fail (throws) or none (not configured)",
}

Choice = Literal["first", "observed"]


@dataclass(frozen=True)
class Call:
    """One model action with its arguments (see the module docstring for the argument syntax)."""

    action: str
    args: Mapping[str, Any] = field(default_factory=dict)
    optional: bool = False
    each: str | None = None

    def render(self) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.args.items())
        text = f"{self.action}({args})"
        if self.each:
            text = f"{text} for every {self.each} enabled"
        return f"[{text}]" if self.optional else text


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    return str(v).strip("'")


@dataclass(frozen=True)
class Op:
    """One adapter operation: its parameters, what it means in the models, and what is observed."""

    name: str
    params: Mapping[str, str]
    doc: str
    alternatives: tuple[tuple[Call, ...], ...]
    choice: Choice = "first"
    observe: tuple[str, ...] = ()
    capability: str = "contexts"
    environment: bool = False
    #: parameters that are optional, with their default
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: the handle kind this operation creates (``"task"``, ``"timer"``, ``"wait_until"``, ``"lock"``), if any
    creates: str | None = None
    #: the handle kinds this operation accepts for ``h``
    handle_kinds: tuple[str, ...] = ()

    def actions(self) -> Iterator[str]:
        for alt in self.alternatives:
            for c in alt:
                yield c.action


def _op(name: str, params: Mapping[str, str], doc: str, *alternatives: tuple[Call, ...] | Call, **kw: Any) -> Op:
    alts = tuple(a if isinstance(a, tuple) else (a,) for a in alternatives if a != ())
    return Op(name, dict(params), doc, alts, **kw)


C = Call

_OPS: list[Op] = [
    # ---- IoContext (model.context) ------------------------------------------------------------
    _op("create_context", {"c": "Ctx", "t": "Thread"},
        "Create a stateless IoContext on thread t (it is pinned there).",
        C("create_context", {"c": "c", "t": "t", "actor": False})),
    _op("create_actor", {"a": "Actor", "c": "Ctx", "t": "Thread"},
        "Create Durable Object a living on thread t, with its one IoContext c (setIoContext).",
        (C("create_context", {"c": "c", "t": "t", "actor": True}), C("set_io_context", {"a": "a", "c": "c"},
                                                                        optional=True)),
        capability="actors"),
    _op("enter", {"c": "Ctx", "t": "Thread"},
        "Run code in context c on thread t (IoContext::run), staying inside until the matching exit; "
        "operations on t in between run inside c (a JS turn).",
        C("enter", {"c": "c", "t": "t"}), observe=("result",)),
    _op("exit", {"c": "Ctx", "t": "Thread"},
        "Leave the innermost context entered on thread t (it must be c).",
        C("exit", {"c": "c", "t": "t"})),
    _op("abort", {"c": "Ctx", "reason": "reason"},
        "ctx.abort(reason) from c's thread (inside the innermost context entered there, if any).",
        C("abort", {"c": "c", "reason": "reason"})),
    _op("destroy_context", {"c": "Ctx"},
        "Context c is destroyed: the adapter destroys it if nothing holds it (or waits until the "
        "implementation has, after its last request ended); every object it still owns is freed.",
        (C("destroy_begin", {"c": "c"}), C("teardown_free", {"o": "o"}, optional=True, each="o"),
         C("destroy_end", {"c": "c"})),
        observe=("state",)),
    _op("inspect_context", {"c": "Ctx"},
        "Observe context c: its state (ALIVE, TEARDOWN, DEAD) and whether it was aborted.",
        (), observe=("state", "aborted"), capability="inspect"),
    # ---- I/O objects (model.ownership) --------------------------------------------------------
    _op("add_object", {"o": "Obj", "c": "Ctx", "t": "Thread", "kind": "kind", "io_type": "text"},
        "addObject on thread t: wrap a new object as an IoOwn (or IoPtr) of context c.",
        C("add_object", {"o": "o", "c": "c", "t": "t", "kind": "kind"}),
        observe=("result",), capability="objects", defaults={"kind": "IO_OWN", "io_type": "TestObject"}),
    _op("add_reverse", {"o": "Obj", "c": "Ctx", "t": "Thread"},
        "addObjectReverse on thread t (c's thread): a ReverseIoOwn held by runtime code.",
        C("add_reverse", {"o": "o", "c": "c", "t": "t"}), capability="objects"),
    _op("access", {"o": "Obj", "t": "Thread"},
        "Use object o on thread t (operator-> of its IoOwn/IoPtr, or of a ReverseIoOwn).",
        C("access", {"o": "o", "t": "t"}), C("access_reverse", {"o": "o", "t": "t"}),
        observe=("result",), capability="objects"),
    _op("release", {"o": "Obj", "t": "Thread"},
        "Move the object out of its IoOwn on thread t (IoOwn -> Own<T>): checked like an access.",
        C("release", {"o": "o", "t": "t"}), observe=("result",), capability="objects"),
    _op("drop", {"o": "Obj", "t": "Thread"},
        "Destroy o's handle on thread t (the GC finalising its wrapper, or code dropping it).",
        C("drop_in_owner", {"o": "o", "t": "t"}),
        (C("drop_elsewhere", {"o": "o", "t": "t"}), C("push_deletion", {"t": "t"})),
        C("drop_ptr", {"o": "o", "t": "t"}),
        C("drop_reverse", {"o": "o", "t": "t"}),
        capability="objects"),
    _op("defer_gc", {"o": "Obj", "t": "Thread"},
        "deferGcToContext: null o's handle without scheduling a deletion (the context frees it).",
        C("defer_gc", {"o": "o", "t": "t"}), capability="objects"),
    _op("inspect_object", {"o": "Obj"},
        "Observe object o: node (LINKED, UNTRACKED, FREED, RELEASED), whether a deletion is queued, "
        "how often and on which thread it was destroyed.",
        (), observe=("node", "queued", "destroyed_on", "destructions"), capability="inspect"),
    _op("schedule_action", {"c": "Ctx", "t": "Thread"},
        "scheduleAction for context c from thread t (a cross-request promise settling).",
        C("schedule_action", {"c": "c", "t": "t"}), observe=("warning",), capability="objects"),
    _op("await_actions", {"c": "Ctx"},
        "Wait until c's DeleteQueue signal task has run the queued actions (on c's thread).",
        C("run_actions", {"c": "c", "t": "ctx_thread[c]"}), capability="objects", environment=True),
    # ---- requests (model.lifecycle) -------------------------------------------------------------
    _op("create_request", {"r": "Req", "c": "Ctx"},
        "new IncomingRequest(c) on c's thread.",
        C("create_request", {"r": "r", "c": "c"}), capability="requests"),
    _op("deliver", {"r": "Req"}, "r.delivered().",
        C("deliver", {"r": "r"}), observe=("result",), capability="requests"),
    _op("destroy_request", {"r": "Req"},
        "Destroy r without drain(): canceled before delivery, or dropped (a warning if it was current "
        "and waitUntil tasks remain).",
        C("cancel_request", {"r": "r"}), C("drop_request", {"r": "r"}),
        observe=("warning",), capability="requests"),
    _op("drain", {"r": "Req"},
        "r.drain(): consumes r; a request that is not current is destroyed at once (DRAIN_SKIPPED), "
        "the current one waits (DRAINING).",
        C("drain", {"r": "r"}), observe=("phase",), capability="requests"),
    _op("await_drain", {"r": "Req"},
        "Wait for r's drain to end; the implementation's ending must be one the model allows.",
        C("drain_done", {"r": "r"}), C("drain_aborted", {"r": "r"}), C("drain_superseded", {"r": "r"}),
        C("drain_shutdown", {"r": "r"}), C("drain_timeout", {"r": "r"}),
        choice="observed", observe=("phase", "warning"), capability="requests", environment=True),
    _op("finish_scheduled", {"r": "Req"}, "r.finishScheduled() (stateless contexts only).",
        C("finish_scheduled", {"r": "r"}), capability="requests"),
    _op("await_scheduled", {"r": "Req"},
        "Wait for finishScheduled()'s result: the event outcome and noRetry.",
        C("finish_scheduled_done", {"r": "r"}), C("finish_scheduled_aborted", {"r": "r"}),
        C("finish_scheduled_timeout", {"r": "r"}),
        choice="observed", observe=("outcome", "no_retry"), capability="requests", environment=True),
    _op("inspect_request", {"r": "Req"}, "Observe r's phase (CREATED, CURRENT, SUPERSEDED, DRAINING, DONE, ...).",
        (), observe=("phase",), capability="inspect"),
    _op("no_retry", {"c": "Ctx"}, "controller.noRetry() (JS running in c).",
        C("set_no_retry", {"c": "c"}), capability="requests"),
    _op("task", {"c": "Ctx", "h": "Handle"},
        "JS running in c starts an I/O the harness completes later (awaitIo; in an actor a waitUntil task).",
        C("add_task", {"c": "c"}), capability="requests", creates="task"),
    _op("timer", {"c": "Ctx", "h": "Handle", "ms": "int"},
        "JS running in c arms a timer (setTimeout) that fires after ms milliseconds.",
        C("set_timeout", {"c": "c"}), capability="requests", creates="timer", defaults={"ms": 0}),
    _op("wait_until", {"c": "Ctx", "h": "Handle"},
        "ctx.waitUntil(promise) in c (on c's thread) with a promise the harness settles later.",
        C("add_wait_until", {"c": "c"}), observe=("warning",), capability="requests", creates="wait_until"),
    _op("complete_task", {"h": "Handle", "ok": "bool"},
        "Complete the I/O of task h (successfully or with an error).",
        C("task_done", {"c": "h.ctx", "ok": "ok"}), C("wait_until_done", {"c": "h.ctx", "ok": "ok"}),
        capability="requests", defaults={"ok": True}, handle_kinds=("task",)),
    _op("await_timer", {"h": "Handle"}, "Wait until timer h has fired.",
        C("task_done", {"c": "h.ctx", "ok": True}), C("wait_until_done", {"c": "h.ctx", "ok": True}),
        capability="requests", environment=True, handle_kinds=("timer",)),
    _op("complete_wait_until", {"h": "Handle", "ok": "bool"},
        "Settle waitUntil promise h (resolve, or reject: logged, and the first failure sets the status).",
        C("wait_until_done", {"c": "h.ctx", "ok": "ok"}),
        observe=("log",), capability="requests", defaults={"ok": True}, handle_kinds=("wait_until",)),
    _op("await_hang", {"c": "Ctx"},
        "Let c's thread go idle with nothing pending: the hang detector aborts a stateless context "
        "(adapters keep it from firing until a scenario asks).",
        C("abort_from_hang", {"c": "c"}), capability="hang"),
    # ---- actors (model.actor) ---------------------------------------------------------------------
    _op("shutdown_actor", {"a": "Actor"}, "Actor::shutdown (eviction or deletion starts): actor drains end.",
        C("actor_shutdown", {"a": "a"}, optional=True), capability="actors"),
    _op("evict_actor", {"a": "Actor"}, "The actor drops its IoContext (after shutdown, once no request is listed).",
        C("drop_actor_context", {"c": "a.ctx"}), capability="actors"),
    _op("abort_actor", {"a": "Actor", "reason": "reason"},
        "Actor::abort(reason): abort the context, cancel every event and drain, drop the context.",
        (C("abort", {"c": "a.ctx", "reason": "reason"}), C("actor_abort", {"a": "a"}),
         C("drop_actor_context", {"c": "a.ctx"})),
        capability="actor_abort"),
    # ---- the entrypoint (model.entrypoint) ----------------------------------------------------------
    _op("fetch", {"r": "Req", "c": "Ctx", "t": "Thread", "handler": "program", "fallback": "fallback",
                  "actor": "Actor"},
        "A fetch event on thread t: WorkerEntrypoint::request() with a new context c (or, with actor, the "
        "actor's context c) running the handler program; the response the client sees is observed.",
        (), observe=("response",), capability="fetch", defaults={"fallback": "none", "actor": None}),
    _op("fetch_again", {"r": "Req"}, "Call request() a second time on r's WorkerEntrypoint.",
        C("request", {"r": "r"}), observe=("result",), capability="fetch"),
    _op("cancel_fetch", {"r": "Req"}, "The client goes away while r's handler waits for I/O: the event is canceled.",
        (C("request_canceled", {"r": "r"}), C("drain", {"r": "r"})), observe=("response",), capability="fetch"),
    _op("scheduled", {"r": "Req", "c": "Ctx", "t": "Thread", "handler": "program"},
        "A scheduled event on thread t: runScheduled() with a new context c; the handler runs as a waitUntil "
        "task, then finishScheduled() is called (await_scheduled gives its result).",
        (), observe=("log",), capability="scheduled"),
    _op("scheduled_again", {"r": "Req"}, "Call runScheduled() a second time on r's WorkerEntrypoint.",
        C("run_scheduled", {"r": "r"}), observe=("result",), capability="scheduled"),
    # ---- locks (model.locks) ------------------------------------------------------------------------------
    _op("lock", {"t": "Thread", "i": "Isolate", "h": "Handle"},
        "Thread t asks for isolate i's AsyncLock (request h): queued, coalesced with t's turn, or blocked "
        "behind t's turn on another isolate.",
        C("request_lock", {"t": "t", "i": "i"}), observe=("joined",), capability="locks", creates="lock"),
    _op("await_retry", {"h": "Handle"},
        "Blocked request h loops after its thread's other turn ended: queued, coalesced or blocked again.",
        C("retry_lock", {"t": "h.thread", "i": "h.isolate"}), observe=("joined",), capability="locks",
        environment=True, handle_kinds=("lock",)),
    _op("await_grant", {"h": "Handle"}, "Request h resumes with the turn (nobody is ahead of its thread).",
        C("grant", {"t": "h.thread", "i": "h.isolate"}), capability="locks", environment=True,
        handle_kinds=("lock",)),
    _op("unlock", {"h": "Handle"}, "Drop the AsyncLock request h was granted (the last one hands the turn on).",
        C("release_lock", {"t": "h.thread", "i": "h.isolate"}), capability="locks", handle_kinds=("lock",)),
    _op("cancel_lock", {"h": "Handle"}, "Cancel request h before it was granted.",
        C("cancel_wait", {"t": "h.thread", "i": "h.isolate"}), C("cancel_blocked", {"t": "h.thread", "i": "h.isolate"}),
        capability="locks", handle_kinds=("lock",)),
    _op("sync_lock", {"h": "Handle", "i": "Isolate"},
        "Take Worker::Lock of isolate i on h's thread with h's AsyncLock.",
        C("take_sync_lock", {"t": "h.thread", "i": "i"}), observe=("result",), capability="locks",
        handle_kinds=("lock",)),
    _op("sync_unlock", {"h": "Handle", "i": "Isolate"}, "Release the Worker::Lock of isolate i on h's thread.",
        C("release_sync_lock", {"t": "h.thread", "i": "i"}), capability="locks", handle_kinds=("lock",)),
]

OPS: dict[str, Op] = {op.name: op for op in _OPS}

# ---- handler programs ----------------------------------------------------------------------------------

#: The steps of a handler program (``{"do": ...}``) and what each is in the models.
HANDLER_STEPS: dict[str, str] = {
    "respond": "return a Response with body `body` (send_response: the status and headers go out)",
    "respond_stream": "return a streamed Response: status, headers and `chunks`, then the body fails "
                      "(must be followed by throw)",
    "throw": "throw an Error with `message` (handler_threw); ends the program",
    "pass_through_on_exception": "ctx.passThroughOnException() (pass_through_on_exception)",
    "wait_until": "ctx.waitUntil(promise h) (add_wait_until); settle it with complete_wait_until",
    "await_io": "await an I/O the harness completes with complete_task h (add_task; the handler is suspended)",
    "no_retry": "controller.noRetry() (scheduled handlers; set_no_retry)",
}


def _step_calls(step: Mapping[str, Any], r: str, c: str) -> list[Call]:
    do = step["do"]
    if do in ("respond", "respond_stream"):
        return [C("send_response", {"r": r})]
    if do == "pass_through_on_exception":
        return [C("pass_through_on_exception", {"c": c})]
    if do == "wait_until":
        return [C("add_wait_until", {"c": c})]
    if do == "await_io":
        return [C("add_task", {"c": c})]
    if do == "no_retry":
        return [C("set_no_retry", {"c": c})]
    return []


#: one step of an expansion: alternatives (each a sequence of calls), the first enabled one is taken
Group = tuple[tuple[Call, ...], ...]


def _lit(name: str) -> str:
    """An identity name as a literal call argument."""
    return f"'{name}'"


def _one(call: Call) -> Group:
    return ((call,),)


def _run_program(program: list[Mapping[str, Any]], start: int, r: str, c: str,
                 t: str) -> tuple[list[Group], int | None, bool]:
    """Groups for the program from ``start`` to its end or its next ``await_io``.

    Returns (groups, the index after the await_io or None if the program ended, whether it threw).
    """
    out: list[Group] = [_one(C("enter", {"c": c, "t": t}))]
    threw = False
    for k in range(start, len(program)):
        step = program[k]
        out += [_one(call) for call in _step_calls(step, r, c)]
        if step["do"] == "throw":
            threw = True
            break
        if step["do"] == "await_io":
            out.append(_one(C("exit", {"c": c, "t": t})))
            return out, k + 1, False
    out.append(_one(C("exit", {"c": c, "t": t})))
    return out, None, threw


def _ending(r: str, threw: bool, fallback: str) -> list[Group]:
    """After the handler: stage 2 ends, the KJ_DEFER drains, then exactly one disposition.

    The dispositions are listed in worker-entrypoint.c++'s priority order; the model's guards
    make exactly one of them enabled.
    """
    return [
        _one(C("handler_threw" if threw else "handler_returned", {"r": r})),
        _one(C("drain", {"r": r})),
        ((C("proxy_done", {"r": r, "ok": True}),),
         (C("tunnel_to_actor_caller", {"r": r}),),
         (C("fail_open", {"r": r}), C("fallback_done", {"r": r, "ok": fallback == "ok"})),
         (C("tunnel_exception", {"r": r}),),
         (C("send_synthetic_status", {"r": r}),)),
    ]


def handler_calls(op: str, args: Mapping[str, Any]) -> tuple[list[Group], int | None]:
    """The groups of a ``fetch`` or ``scheduled`` operation.

    Returns the groups and, if the handler is suspended at an ``await_io``, where it resumes.
    """
    r, c, t = _lit(args["r"]), _lit(args["c"]), _lit(args["t"])
    program = list(args["handler"])
    groups: list[Group] = []
    if op == "fetch":
        if args.get("actor") is None:
            groups.append(_one(C("create_context", {"c": c, "t": t, "actor": False})))
        groups += [_one(C("create_request", {"r": r, "c": c})), _one(C("request", {"r": r})),
                   _one(C("deliver", {"r": r}))]
        body, resume, threw = _run_program(program, 0, r, c, t)
        groups += body
        if resume is None:
            groups += _ending(r, threw, args.get("fallback", "none"))
        return groups, resume
    groups += [_one(C("create_context", {"c": c, "t": t, "actor": False})), _one(C("create_request", {"r": r, "c": c})),
               _one(C("run_scheduled", {"r": r})), _one(C("deliver", {"r": r})), _one(C("add_wait_until", {"c": c})),
               _one(C("finish_scheduled", {"r": r}))]
    body, _, threw = _run_program(program, 0, r, c, t)
    groups += body
    groups.append(_one(C("wait_until_done", {"c": c, "ok": not threw})))
    return groups, None


def resume_calls(args: Mapping[str, Any], resume: int) -> tuple[list[Group], int | None]:
    """The groups when a suspended fetch handler resumes after its I/O completed."""
    program = list(args["handler"])
    r = _lit(args["r"])
    body, again, threw = _run_program(program, resume, r, _lit(args["c"]), _lit(args["t"]))
    if again is None:
        body += _ending(r, threw, args.get("fallback", "none"))
    return body, again


def markdown_table() -> str:
    """The operation table as Markdown (docs/conformance.md embeds it; tests keep it current)."""
    lines = ["| operation | parameters | model actions (alternatives, in order) | choice | observed |",
             "|---|---|---|---|---|"]
    for op in OPS.values():
        params = ", ".join(f"{k}: {v}" for k, v in op.params.items())
        if op.alternatives:
            alts = " \\| ".join(" ; ".join(c.render() for c in alt) for alt in op.alternatives)
        elif op.name in ("fetch", "scheduled"):
            alts = "the handler program's calls (see below)"
        else:
            alts = "(none: reads the model state)"
        choice = op.choice + (" (environment)" if op.environment else "")
        lines.append(f"| `{op.name}` | {params} | {alts} | {choice} | {', '.join(op.observe) or '-'} |")
    return "\n".join(lines) + "\n"
