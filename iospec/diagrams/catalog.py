"""The diagrams ``iospec diagrams`` generates: which model, which configuration, which cells or milestones.

Each entry is data; the drawing is derived from the model every time (see
`iospec.diagrams.project`).  A diagram whose model is not in `model.catalog.MODELS` is
*pending*: it is listed as such and skipped, not faked.

The sequence diagrams' arrow tables map every action of the model to the participants it
goes between (``{t}``-style fields are the action's arguments); tests/test_diagrams.py checks
that each table covers every action of its model, so that a new action cannot silently
disappear from a drawing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from model.catalog import MODELS

from .project import Arrow

__all__ = ["DIAGRAMS", "DOCS", "PENDING", "ProjectionSpec", "SequenceSpec", "available", "spec"]

#: the repository's docs/ directory (the seed diagram and its mapping table live there)
DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass(frozen=True)
class ProjectionSpec:
    """A state diagram (or flowchart) of ``cells`` over every reachable state of ``model`` under ``bounds``."""

    name: str
    title: str
    model: str
    cells: tuple[str, ...]
    bounds: Mapping[str, int] = field(default_factory=dict)
    style: str = "state"  # "state" (stateDiagram-v2) or "flowchart"
    labels: Mapping[str, str] = field(default_factory=dict)
    about: str = ""
    #: compare with the seed article through this mapping table (a file under docs/)
    seed_mapping: str | None = None


@dataclass(frozen=True)
class SequenceSpec:
    """A sequence diagram of the shortest run of ``model`` passing ``milestones`` in order."""

    name: str
    title: str
    model: str
    milestones: tuple[str, ...]
    arrows: Mapping[str, Arrow]
    bounds: Mapping[str, int] = field(default_factory=dict)
    participants: tuple[str, ...] = ()
    about: str = ""


Spec = ProjectionSpec | SequenceSpec

# ---- arrow tables ----------------------------------------------------------------------------------

_THREAD = "thread {t}"
_CTX = "IoContext {c}"
_QUEUE = "DeleteQueue"

#: model.ownership (and the context core it extends)
OWNERSHIP_ARROWS: dict[str, Arrow] = {
    "create_context": Arrow(_THREAD, _CTX, "new IoContext (actor={actor})"),
    "enter": Arrow(_THREAD, _CTX, "run() enters, frees queued objects"),
    "enter_rejected": Arrow(_THREAD, _CTX, "run() refused"),
    "exit": Arrow(_CTX, _THREAD, "leave", reply=True),
    "abort": Arrow("another task", _CTX, "abort({reason})"),
    "destroy_begin": Arrow("owner of {c}", _CTX, "~IoContext body"),
    "destroy_end": Arrow(_CTX, _QUEUE, "members destroyed; queue closed"),
    "add_object": Arrow(_CTX, "object {o}", "addObject as {kind}"),
    "add_object_rejected": Arrow(_CTX, "object {o}", "addObject refused"),
    "add_reverse": Arrow(_CTX, "object {o}", "addObjectReverse"),
    "access": Arrow(_THREAD, "object {o}", "use"),
    "access_rejected": Arrow(_THREAD, "object {o}", "use refused"),
    "release": Arrow(_THREAD, "object {o}", "release to Own"),
    "release_rejected": Arrow(_THREAD, "object {o}", "release refused"),
    "access_reverse": Arrow(_THREAD, "object {o}", "use ReverseIoOwn"),
    "access_reverse_rejected": Arrow(_THREAD, "object {o}", "use ReverseIoOwn refused"),
    "drop_in_owner": Arrow(_THREAD, "object {o}", "drop IoOwn in its owner, delete now"),
    "drop_elsewhere": Arrow(_THREAD, _QUEUE, "drop IoOwn {o} elsewhere, lock the queue"),
    "push_deletion": Arrow(_THREAD, _QUEUE, "push the pointer (if open), unlock"),
    "defer_gc": Arrow(_THREAD, "object {o}", "deferGcToContext"),
    "drop_ptr": Arrow(_THREAD, "object {o}", "drop IoPtr"),
    "drop_reverse": Arrow(_THREAD, "object {o}", "drop ReverseIoOwn"),
    "teardown_free": Arrow("dying owner", "object {o}", "~OwnedObjectList frees it"),
    "schedule_action": Arrow(_THREAD, _QUEUE, "scheduleAction for {c}"),
    "run_actions": Arrow(_QUEUE, _CTX, "signal task runs actions, frees queued objects"),
}

_LT = "thread {t}"
_LQ = "AsyncLockQueue {i}"

#: model.locks
LOCKS_ARROWS: dict[str, Arrow] = {
    "request_lock": Arrow(_LT, _LQ, "takeAsyncLock()"),
    "retry_lock": Arrow(_LT, _LQ, "lock() loops after the release"),
    "grant": Arrow(_LQ, _LT, "readyPromise fires, AsyncLock", reply=True),
    "release_lock": Arrow(_LT, _LQ, "drop AsyncLock"),
    "cancel_wait": Arrow(_LT, _LQ, "cancel a queued request"),
    "cancel_blocked": Arrow(_LT, _LQ, "cancel a blocked request"),
    "take_sync_lock": Arrow(_LT, "Worker::Lock {i}", "Worker::Lock(asyncLock)"),
    "take_sync_lock_rejected": Arrow(_LT, "Worker::Lock {i}", "Worker::Lock refused"),
    "release_sync_lock": Arrow(_LT, "Worker::Lock {i}", "~Worker::Lock"),
}

_WE = "WorkerEntrypoint"
_IR = "IncomingRequest {r}"
_JS = "JS handler"

#: model.lifecycle (and the context core it extends); the caller of the request methods is
#: drawn as the WorkerEntrypoint, which is who calls them in workerd (worker-entrypoint.c++:361-634)
LIFECYCLE_ARROWS: dict[str, Arrow] = {
    "create_context": Arrow(_WE, _CTX, "new IoContext on thread {t} (actor={actor})"),
    "enter": Arrow(_CTX, _JS, "run() enters the context"),
    "enter_rejected": Arrow(_CTX, _JS, "run() refused"),
    "exit": Arrow(_JS, _CTX, "returns", reply=True),
    "abort": Arrow("another task", _CTX, "abort({reason})"),
    "destroy_begin": Arrow(_CTX, _CTX, "~IoContext cancels everything left"),
    "destroy_end": Arrow(_CTX, _CTX, "members destroyed"),
    "create_request": Arrow(_WE, _IR, "new IncomingRequest in {c}"),
    "deliver": Arrow(_WE, _IR, "delivered()"),
    "deliver_rejected": Arrow(_WE, _IR, "delivered() again refused"),
    "cancel_request": Arrow(_WE, _IR, "destroyed before delivery"),
    "drop_request": Arrow(_WE, _IR, "destroyed without drain()"),
    "drain": Arrow(_WE, _IR, "drain()"),
    "drain_done": Arrow(_IR, _WE, "drain resolves, waitUntil set empty", reply=True),
    "drain_timeout": Arrow(_IR, _WE, "drain limit reached", reply=True),
    "drain_aborted": Arrow(_IR, _WE, "drain ends, context aborted", reply=True),
    "drain_superseded": Arrow(_IR, _WE, "drain handed over to a newer request", reply=True),
    "finish_scheduled": Arrow(_WE, _IR, "finishScheduled()"),
    "finish_scheduled_done": Arrow(_IR, _WE, "scheduled result", reply=True),
    "finish_scheduled_timeout": Arrow(_IR, _WE, "scheduled time limit reached", reply=True),
    "finish_scheduled_aborted": Arrow(_IR, _WE, "scheduled wait ends, context aborted", reply=True),
    "set_no_retry": Arrow(_JS, _CTX, "controller.noRetry()"),
    "add_task": Arrow(_JS, _CTX, "addTask"),
    "set_timeout": Arrow(_JS, _CTX, "setTimeout"),
    "add_wait_until": Arrow(_JS, _CTX, "ctx.waitUntil(promise)"),
    "task_done": Arrow("event loop", _CTX, "a task settles (ok={ok})"),
    "wait_until_done": Arrow("event loop", _CTX, "a waitUntil promise settles (ok={ok})"),
    "abort_from_hang": Arrow("event loop", _CTX, "hang detected, abort"),
    "drop_actor_context": Arrow("Worker::Actor", _CTX, "the actor drops its context"),
}

#: model.entrypoint (extends the lifecycle model): WorkerEntrypoint::request's own steps
ENTRYPOINT_ARROWS: dict[str, Arrow] = {
    **LIFECYCLE_ARROWS,
    "request": Arrow("client", _WE, "request()"),
    "request_rejected": Arrow("client", _WE, "request() again refused"),
    "run_scheduled": Arrow("cron", _WE, "runScheduled()"),
    "run_scheduled_rejected": Arrow("cron", _WE, "runScheduled() again refused"),
    "send_response": Arrow(_JS, "client", "response headers sent"),
    "pass_through_on_exception": Arrow(_JS, _WE, "ctx.passThroughOnException()"),
    "handler_returned": Arrow(_JS, _WE, "handler returns", reply=True),
    "handler_threw": Arrow(_JS, _WE, "handler throws", reply=True),
    "request_canceled": Arrow("client", _WE, "client disconnects"),
    "proxy_done": Arrow(_WE, "client", "response body streamed"),
    "tunnel_to_actor_caller": Arrow(_WE, "client", "exception tunnelled to the actor's caller"),
    "fail_open": Arrow(_WE, "fallback service", "request forwarded (passThroughOnException)"),
    "fallback_done": Arrow("fallback service", "client", "the fallback's response"),
    "tunnel_exception": Arrow(_WE, "client", "exception rethrown: the listener answers 500"),
    "send_synthetic_status": Arrow(_WE, "client", "synthetic 500"),
}

# ---- the diagrams -----------------------------------------------------------------------------------

DIAGRAMS: list[Spec] = [
    ProjectionSpec(
        name="lifecycle",
        title="IncomingRequest lifecycle",
        model="lifecycle",
        cells=("phase[r0]",),
        bounds={"threads": 1, "contexts": 1, "requests": 2},
        about="The phases one IncomingRequest (``r0``) goes through in standalone workerd, and the model action "
              "behind each move: every reachable state of the lifecycle model (one context, stateless or an "
              "actor's, and a second request that can supersede ``r0``), projected onto ``phase[r0]``.  "
              "A move marked *another Req* is caused by the other request's action.",
        seed_mapping="seed-lifecycle-mapping.json",
    ),
    ProjectionSpec(
        name="lifecycle-production",
        title="IncomingRequest lifecycle with production limits",
        model="lifecycle",
        cells=("phase[r0]",),
        bounds={"threads": 1, "contexts": 1, "requests": 2, "production": 1},
        about="The same projection with a production limit enforcer (``production=true``): a drain or a "
              "finishScheduled() can also time out (TIMED_OUT), which standalone workerd never does.",
    ),
    ProjectionSpec(
        name="context",
        title="IoContext lifecycle",
        model="context",
        cells=("ctx_state[c0]",),
        bounds={"threads": 1, "contexts": 1},
        about="One IoContext (``c0``): created pinned to a thread, destroyed in two steps (the destructor "
              "body, then its members; the DeleteQueue is closed last).",
    ),
    ProjectionSpec(
        name="ownership",
        title="An IoOwn and the DeleteQueue",
        model="ownership",
        cells=("node[o0]", "handle[o0]", "queued[o0]"),
        bounds={"threads": 2, "contexts": 1, "objects": 1, "max_actions": 0, "all_kinds": 0},
        style="flowchart",
        labels={"handle=NONE": "", "UNBORN": "not created", "LINKED": "linked", "FREED": "freed",
                "RELEASED": "released to Own", "handle=LIVE": "handle live", "handle=GONE": "handle dropped",
                "queued=true": "queued for deletion"},
        about="One IoOwn (``o0``): its node in the owner's list, its JS handle, and whether a pointer to it "
              "waits in the owner's DeleteQueue.  A handle dropped outside its owner is queued and freed at "
              "the owner's next entry (or at teardown); a pointer pushed after the node was freed is dropped "
              "unread when the queue closes.",
    ),
    SequenceSpec(
        name="request-sequence",
        title="A request that completes with a waitUntil drain",
        model="lifecycle",
        milestones=("phase[r0]=CURRENT & entered[c0]=true & wait_until[c0]=1",
                    "phase[r0]=DRAINING & wait_until[c0]=1",
                    "phase[r0]=DONE & ctx_state[c0]=DEAD & wu_status[c0]=OK"),
        arrows=LIFECYCLE_ARROWS,
        bounds={"threads": 1, "contexts": 1, "requests": 1, "actors": 0},
        participants=(_WE, "IncomingRequest r0", "IoContext c0", _JS, "event loop"),
        about="The shortest run of the lifecycle model in which a stateless request's handler calls "
              "``ctx.waitUntil()``, the request is drained, the drain ends when the waitUntil set is empty, and "
              "the context dies with its request.",
    ),
    SequenceSpec(
        name="entrypoint-sequence",
        title="passThroughOnException: a handler that throws is answered by the fallback service",
        model="entrypoint",
        milestones=("fail_open_requested[c0]=true", "ep_stage[r0]=HANDLER_THREW",
                    "response[r0]=FALLBACK_RESPONSE"),
        arrows=ENTRYPOINT_ARROWS,
        bounds={"threads": 1, "contexts": 1, "requests": 1, "max_tasks": 0, "actors": 0, "nesting": 0},
        participants=("client", _WE, "IncomingRequest r0", "IoContext c0", _JS, "fallback service"),
        about="The shortest run of the entrypoint model in which the handler calls "
              "``ctx.passThroughOnException()`` and then throws before sending headers: the request goes to "
              "the fallback service, whose response the client gets.",
    ),
    SequenceSpec(
        name="deletequeue-sequence",
        title="Cross-thread deletion through the DeleteQueue",
        model="ownership",
        milestones=("pushing[t1]=o0", "queued[o0]=true", "node[o0]=FREED & ctx_state[c0]=ALIVE"),
        arrows=OWNERSHIP_ARROWS,
        bounds={"threads": 2, "contexts": 1, "objects": 1, "max_actions": 0, "all_kinds": 0, "nesting": 0,
                "aborts": 0, "actors": 0},
        participants=("thread t0", "IoContext c0", "object o0", "DeleteQueue", "thread t1"),
        about="The shortest run in which an IoOwn is dropped on another thread, its pointer is queued, and "
              "the owner frees it: nothing wakes the context; the deletion runs at its next entry.",
    ),
    SequenceSpec(
        name="locks-sequence",
        title="AsyncLock: head-of-line blocking and the turn handover",
        model="locks",
        milestones=("held[t0]=1 & waiter[t0]=i0 & pending[t1]=1 & waiter[t1]=i0 & blocked[t0,i1]=1",
                    "held[t1]=1 & waiter[t1]=i0 & held[t0]=1 & waiter[t0]=i1"),
        arrows=LOCKS_ARROWS,
        bounds={"threads": 2, "isolates": 2, "lock_requests": 2, "cancels": 0},
        participants=("thread t0", "AsyncLockQueue i0", "AsyncLockQueue i1", "thread t1"),
        about="Thread t0 holds isolate i0 while t1 waits for it; t0's request for i1 cannot even queue until "
              "t0 releases i0, which hands i0's turn to t1.",
    ),
]

#: diagrams that cannot be generated yet, with what they wait for
PENDING: dict[str, str] = {}


def available(s: Spec) -> bool:
    return s.model in MODELS


def spec(name: str) -> Spec:
    for s in DIAGRAMS:
        if s.name == name:
            return s
    raise KeyError(name)
