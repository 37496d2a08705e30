"""The IncomingRequest lifecycle: delivery, the current request, drain, finishScheduled, tasks and waitUntil.

Extends the IoContext core (`model.context`).  Follows workerd's io/io-context.{h,c++} at
commit 6552d999:

* ``new IncomingRequest(context)`` (c++:220-233) holds a strong reference to its context
  (`create_request`); a stateless context gets exactly one, an actor context many
  (worker-entrypoint.c++:292-302).  Destroying an undelivered request (`cancel_request`) is
  "canceled before delivery" (c++:312-318, h:92-98).
* ``delivered()`` (c++:253-297, `deliver`) refuses a second call ("delivered() can only be
  called once"), fulfils the old head's ``drainFulfiller`` (actor drains) and puts the request
  at the front of ``incomingRequests``.  *Current* is positional: the newest delivered request
  that still exists (h:1259-1277).  The order of delivery is the relation ``newer``.
* ``drain()`` (c++:597-650) always consumes the request: a request that is not the head is
  destroyed at once (`drain` -> DRAIN_SKIPPED); the head waits (DRAINING) for the first of
  ``waitUntilTasks.onEmpty()`` (`drain_done`), the limit (`drain_timeout`: stateless, the
  production limit enforcer only), ``onAbort()`` (`drain_aborted`) and, for actors, the
  ``drainFulfiller`` a newer delivery fulfils (`drain_superseded`) or the actor's shutdown
  (model.actor).  Actors have no drain limit.
* ``finishScheduled()`` (c++:652-689): stateless only; resolves with ``waitUntilStatus()``
  once the waitUntil set is empty (`finish_scheduled_done`), ``EXCEEDED_WALL_TIME`` at the
  production scheduled limit (`finish_scheduled_timeout`), or the abort's outcome
  (`finish_scheduled_aborted`); ``retry = shouldRetryScheduled()`` (cleared by `set_no_retry`).
* ``~IncomingRequest`` (c++:311-368): the next newest request becomes current; the head
  destroyed without drain while waitUntil tasks remain logs "failed to invoke drain() ..."
  (`drop_request`); a shared, aborted context has its tasks cleared.
* Tasks (c++:513-553, 1257-1273): ``addTask`` in an actor is ``addWaitUntil``; a stateless
  timer is like a plain task (a PendingEvent holder the drain does not wait for), an actor
  timer adds a waitUntil (c++:939-946); the first failure sets ``waitUntilStatus``; every
  failure is logged once (ASYNC_TASK).  ``~IoContext`` cancels every task (`destroy_end`).
* Hang detection (c++:723-772, 1583-1594, `abort_from_hang`): stateless only, with no
  PendingEvent (no JS running, no plain task or timer) and an idle thread.
* The context core's actions are refined: a context is destroyed only when no request holds
  it and (for an actor context) its Actor has dropped it (`drop_actor_context`); JS runs only
  with a live delivered request ("the IoContext has no current IncomingRequest",
  h:1273-1277); an abort needs an owner (a dying context is not aborted).

A stateless context dies with its request: once no request holds it, no action of it is
enabled but ``destroy_begin`` (invariant `unowned_contexts_run_nothing`).  Steps that KJ runs
from the event loop (a promise settling, a drain or scheduled wait ending, a request dropped)
need an idle thread: no JS runs on the context's thread meanwhile.

Tasks are counted, not named (a task's identity does not matter to any rule here).  A
timer firing, an awaitIo continuation and a waitUntil promise settling are all reported as
`task_done` / `wait_until_done` with ``ok``.

Where the seed article's state diagram and the source differ:

* The article's ``Timeout`` (from FinishScheduled) exists only with a production limit
  enforcer: standalone workerd's ``limitDrain()`` and ``limitScheduled()`` never fire
  (server/server.c++:4563-4568), so with ``production=false`` (the default) TIMED_OUT is
  unreachable.  In production a *drain* can time out too (the article shows no such edge).
* The article's ``Delivered`` is two positional phases here: CURRENT (the head) and
  SUPERSEDED (a newer request was delivered to the same actor context); a superseded
  request becomes CURRENT again when every newer one is gone.
* The article's ``Superseded`` (from Draining) is DRAIN_SUPERSEDED.  Draining a request that
  is already superseded returns at once (DRAIN_SKIPPED), which the article does not show.
* Aborts end drains and scheduled waits (ABORTED), and a delivered request can be destroyed
  without drain (DROPPED, with a warning): neither is in the article.

Phases and the article's states: CREATED = Created; CURRENT, SUPERSEDED = Delivered;
CANCELED = Canceled; DRAINING = Draining; FINISHING_SCHEDULED = FinishScheduled;
DONE = Done; DRAIN_SUPERSEDED = Superseded; TIMED_OUT = Timeout.
"""

from __future__ import annotations

from typing import Any

from model.context import (
    ALIVE,
    DEAD,
    NOT_ABORTED,
    AbortReason,
    abort_reason,
    ctx_actor,
    ctx_state,
    ctx_thread,
    current,
    entered,
    outer,
    record_abort,
)
from model.context import MODEL as CONTEXT
from model.context import (
    UNBORN as CTX_UNBORN,
)
from model.core import (
    BOOL,
    NONE,
    TRUE,
    And,
    Enum,
    Exists,
    Expr,
    ForAll,
    Iff,
    Implies,
    Int,
    Ite,
    ModelBuilder,
    Opt,
    Or,
    Post,
    Some,
    Step,
)
from model.vocab import Ctx, Req, Result

__all__ = [
    "ENDED",
    "HELD",
    "MODEL",
    "LifecycleWarning",
    "Outcome",
    "Phase",
    "TaskLog",
    "actor_holds",
    "alive_request",
    "delivered",
    "end_listed_requests",
    "end_request",
    "event_loop_turn",
    "handed_over",
    "is_front",
    "linked",
    "newer",
    "owned",
    "phase",
    "req_ctx",
    "retry",
    "tasks",
    "wait_until",
    "waited",
    "wu_status",
]

Phase = Enum(
    "Phase",
    "UNBORN CREATED CURRENT SUPERSEDED DRAINING FINISHING_SCHEDULED "
    "CANCELED DROPPED DRAIN_SKIPPED DONE DRAIN_SUPERSEDED TIMED_OUT ABORTED SHUT_DOWN",
)
#: The subset of workerd's EventOutcome (io/outcome.capnp) the model produces.
Outcome = Enum("Outcome", "OK EXCEPTION EXCEEDED_WALL_TIME")
LifecycleWarning = Enum("LifecycleWarning", "NO_WARNING DRAIN_FORGOTTEN DRAIN_TIMEOUT TASK_WITHOUT_REQUEST")
TaskLog = Enum("TaskLog", "NO_LOG ASYNC_TASK")

UNBORN, CREATED, CURRENT, SUPERSEDED = Phase.UNBORN, Phase.CREATED, Phase.CURRENT, Phase.SUPERSEDED
DRAINING, FINISHING_SCHEDULED = Phase.DRAINING, Phase.FINISHING_SCHEDULED
CANCELED, DROPPED, DRAIN_SKIPPED, DONE = Phase.CANCELED, Phase.DROPPED, Phase.DRAIN_SKIPPED, Phase.DONE
DRAIN_SUPERSEDED, TIMED_OUT, ABORTED, SHUT_DOWN = (
    Phase.DRAIN_SUPERSEDED, Phase.TIMED_OUT, Phase.ABORTED, Phase.SHUT_DOWN)

#: Phases in which the caller still holds the ``Own<IncomingRequest>`` (before drain/finishScheduled).
HELD = ("CREATED", "CURRENT", "SUPERSEDED")
#: Phases of a destroyed request: how it ended.
ENDED = ("CANCELED", "DROPPED", "DRAIN_SKIPPED", "DONE", "DRAIN_SUPERSEDED", "TIMED_OUT", "ABORTED", "SHUT_DOWN")
#: Phases of a request that is in its context's ``incomingRequests`` list.
LISTED = ("CURRENT", "SUPERSEDED", "DRAINING", "FINISHING_SCHEDULED")

m = ModelBuilder("lifecycle", __doc__ or "", extends=CONTEXT,
                 bounds={"threads": 1, "contexts": 1, "requests": 2, "max_tasks": 1})

Count = Int("Count", 0, "max_tasks")

req_ctx = m.func("req_ctx", Req, Opt(Ctx), NONE, "the context the request holds (IncomingRequest::context)")
phase = m.func("phase", Req, Phase, "UNBORN", "where the request is in its lifecycle (see the module docstring)")
delivered = m.func("delivered", Req, BOOL, False, "wasDelivered")
waited = m.func("waited", Req, BOOL, False, "waitedForWaitUntil: drain() or finishScheduled() was called")
linked = m.func("linked", Req, BOOL, False, "the request is in its context's incomingRequests list")
newer = m.func("newer", (Req, Req), BOOL, False, "newer[a, b]: both are listed in one context, a delivered after b")
handed_over = m.func("handed_over", Req, BOOL, False,
                     "the actor drain's drainFulfiller was fulfilled by a newer delivery")
tasks = m.func("tasks", Ctx, Count, 0,
               "plain tasks and stateless timers: PendingEvent holders the drain does not wait for")
wait_until = m.func("wait_until", Ctx, Count, 0, "waitUntilTasks (in an actor: every task and timer)")
wu_status = m.func("wu_status", Ctx, Outcome, "OK", "waitUntilStatusValue: the first failure's outcome")
retry = m.func("retry", Ctx, BOOL, True, "retryScheduled (cleared by setNoRetryScheduled)")
actor_holds = m.func("actor_holds", Ctx, BOOL, False, "Worker::Actor::Impl::ioContext refers to this context")

production = m.const("production", BOOL, False,
                     "a production limit enforcer: limitDrain()/limitScheduled() fire (never in standalone workerd)")

delivered_twice = m.var("delivered_twice", BOOL, False, "delivered() succeeded on a delivered request", ghost=True)
ran_without_request = m.var("ran_without_request", BOOL, False, "JS ran in a context with no live delivered request",
                            ghost=True)
bad_hang_abort = m.var("bad_hang_abort", BOOL, False,
                       "a hang abort of an actor, or while JS ran or a PendingEvent existed", ghost=True)


# ---- derived predicates -------------------------------------------------------------------------


def _in(e: Expr, members: tuple[str, ...]) -> Expr:
    return Or(*(e == getattr(Phase, name) for name in members))


def alive_request(r: Expr) -> Expr:
    """The request exists (created, not yet destroyed) and so holds its context."""
    return (phase[r] != UNBORN) & ~_in(phase[r], ENDED)


def _same_ctx(a: Expr, b: Expr) -> Expr:
    return (req_ctx[a] == req_ctx[b]) & (req_ctx[a] != NONE)


def is_front(r: Expr) -> Expr:
    """``&context->incomingRequests.front() == this``: listed, and no listed request of its context is newer."""
    return linked[r] & ~Exists(Req, lambda z: linked[z] & _same_ctx(z, r) & newer[z, r])


def _listed_in(c: Expr) -> Expr:
    return Exists(Req, lambda x: linked[x] & (req_ctx[x] == c))


def owned(c: Expr) -> Expr:
    """Someone holds the context: a live request, or its Actor (io-context.h:220-222)."""
    return Exists(Req, lambda x: alive_request(x) & (req_ctx[x] == c)) | actor_holds[c]


def _aborted(c: Expr) -> Expr:
    return abort_reason[c] != NOT_ABORTED


def _ctx(r: Expr) -> Expr:
    return req_ctx[r].some


def event_loop_turn(c: Expr) -> Expr:
    """A KJ event of ``c`` (a promise settling, a drain ending) runs only when no JS runs on ``c``'s thread."""
    return current[ctx_thread[c].some] == NONE


def end_request(r: Expr, final: Expr, when: Expr = TRUE, otherwise: Expr | None = None) -> dict[Any, Any]:
    """``~IncomingRequest`` for ``r`` (io-context.c++:311-368), if ``when``: its phase becomes ``final``.

    It leaves the list; if it was the head, the next newest listed request of its context
    becomes current (SUPERSEDED -> CURRENT); if the context is still shared (another request
    or the Actor holds it) and aborted, its tasks and waitUntil tasks are cleared.  If not
    ``when``, ``r``'s phase becomes ``otherwise``.
    """
    c = _ctx(r)
    was_front = when & is_front(r)

    def promoted(x: Expr) -> Expr:
        return (was_front & linked[x] & _same_ctx(x, r) & (x != r) & (phase[x] == SUPERSEDED)
                & ~Exists(Req, lambda z: (z != r) & linked[z] & _same_ctx(z, r) & newer[z, x]))

    shared = Exists(Req, lambda x: (x != r) & alive_request(x) & _same_ctx(x, r)) | actor_holds[c]
    clear = when & delivered[r] & shared & _aborted(c)
    return {
        phase: lambda x: Ite(x == r, Ite(when, final, otherwise if otherwise is not None else phase[r]),
                             Ite(promoted(x), CURRENT, phase[x])),
        linked[r]: linked[r] & ~when,
        handed_over[r]: handed_over[r] & ~when,
        newer: lambda a, b: newer[a, b] & ~(when & ((a == r) | (b == r))),
        tasks[c]: Ite(clear, 0, tasks[c]),
        wait_until[c]: Ite(clear, 0, wait_until[c]),
    }


def end_listed_requests(c: Expr, final: Expr, when: Expr = TRUE) -> dict[Any, Any]:
    """If ``when``: every listed request of ``c`` has its drain (or event) cancelled and is destroyed, at once.

    ``Actor::abort`` cancels its abortCanceler until empty (worker.c++:4048-4055): every
    in-flight event's KJ_DEFER drains, the drain is cancelled too, and each request's
    destructor runs while the Actor still holds the (aborted) context, so the context's tasks
    are cleared (io-context.c++:344-363).  No request is left to become current.
    """
    mine = lambda x: when & linked[x] & (req_ctx[x] == c)
    return {
        phase: lambda x: Ite(mine(x), final, phase[x]),
        waited: lambda x: waited[x] | mine(x),
        linked: lambda x: linked[x] & ~mine(x),
        handed_over: lambda x: handed_over[x] & ~mine(x),
        newer: lambda a, b: newer[a, b] & ~mine(a) & ~mine(b),
        tasks[c]: Ite(when & _listed_in(c) & _aborted(c), 0, tasks[c]),
        wait_until[c]: Ite(when & _listed_in(c) & _aborted(c), 0, wait_until[c]),
    }


def _fail(c: Expr, ok: Expr) -> dict[Any, Any]:
    """``taskFailed``: the first failure sets waitUntilStatus (c++:1257-1264)."""
    return {wu_status[c]: Ite(~ok & (wu_status[c] == Outcome.OK), Outcome.EXCEPTION, wu_status[c])}


# ---- requests -----------------------------------------------------------------------------------


@m.action(params={"r": Req, "c": Ctx}, rules=("G5", "INV-R4", "INV-C4"),
          source=("io/io-context.c++:220-233", "io/worker-entrypoint.c++:277-308"))
def create_request(r: Expr, c: Expr) -> Step:
    """``new IncomingRequest(context)``: a stateless context gets one; an actor's context is reused."""
    return Step(
        guard={"fresh_request": phase[r] == UNBORN, "context_alive": ctx_state[c] == ALIVE,
               "stateless_gets_one": ctx_actor[c] | ~Exists(Req, lambda x: req_ctx[x] == c),
               "actor_still_holds_it": ~ctx_actor[c] | actor_holds[c]},
        updates={phase[r]: CREATED, req_ctx[r]: c},
    )


@m.action(params={"r": Req}, rules=("G1", "INV-R1", "INV-R3", "INV-R5"), source="io/io-context.c++:253-297")
def deliver(r: Expr) -> Step:
    """``delivered()``: once only; the old head's actor drain is handed over; ``r`` becomes current."""
    old_front = lambda x: (x != r) & is_front(x) & _same_ctx(x, r)
    return Step(
        guard={"held": _in(phase[r], HELD)},
        checks=[("not_delivered", ~delivered[r], Result.ERR_DELIVERED_TWICE)],
        updates={
            delivered[r]: True,
            linked[r]: True,
            phase: lambda x: Ite(x == r, CURRENT, Ite(old_front(x) & (phase[x] == CURRENT), SUPERSEDED, phase[x])),
            handed_over: lambda x: handed_over[x] | (old_front(x) & (phase[x] == DRAINING) & ctx_actor[_ctx(x)]),
            newer: lambda a, b: newer[a, b] | ((a == r) & (b != r) & linked[b] & _same_ctx(b, r)),
            delivered_twice: delivered_twice | delivered[r],
        },
    )


@m.action(params={"r": Req}, rules=("G3", "INV-R2"), source=("io/io-context.c++:312-318", "io/io-context.h:92-98"))
def cancel_request(r: Expr) -> Step:
    """The undelivered request is destroyed: the event was canceled before delivery; no JS ran."""
    return Step(guard={"undelivered": phase[r] == CREATED}, updates=end_request(r, CANCELED))


@m.action(params={"r": Req}, rules=("G4", "INV-R7", "G3", "INV-R2"), source="io/io-context.c++:320-367")
def drop_request(r: Expr) -> Step:
    """A delivered request is destroyed without drain(): a warning if it was the head and waitUntil tasks remain."""
    forgot = is_front(r) & ~waited[r] & (wait_until[_ctx(r)] > 0)
    return Step(
        guard={"delivered_and_held": (phase[r] == CURRENT) | (phase[r] == SUPERSEDED),
               "event_loop_turn": event_loop_turn(_ctx(r))},
        updates=end_request(r, DROPPED),
        outputs={"warning": Ite(forgot, LifecycleWarning.DRAIN_FORGOTTEN, LifecycleWarning.NO_WARNING)},
    )


# ---- drain ------------------------------------------------------------------------------------------


@m.action(params={"r": Req}, rules=("G2", "G7", "INV-R5", "INV-R6"), source="io/io-context.c++:597-650")
def drain(r: Expr) -> Step:
    """``drain(self)``: consumes ``r``; not the head -> destroyed at once; the head waits (DRAINING)."""
    front = is_front(r)
    return Step(
        guard={"delivered_and_held": (phase[r] == CURRENT) | (phase[r] == SUPERSEDED)},
        updates={waited[r]: True, **end_request(r, DRAIN_SKIPPED, when=~front, otherwise=DRAINING)},
    )


def _draining(r: Expr) -> dict[str, Expr]:
    return {"draining": phase[r] == DRAINING, "not_handed_over": ~handed_over[r],
            "event_loop_turn": event_loop_turn(_ctx(r))}


@m.action(params={"r": Req}, rules=("INV-T5", "INV-T1", "INV-R5"), source="io/io-context.c++:632-636")
def drain_done(r: Expr) -> Step:
    """``waitUntilTasks.onEmpty()`` won: every waitUntil task finished (in an actor: every task)."""
    return Step(guard={**_draining(r), "wait_until_empty": wait_until[_ctx(r)] == 0}, updates=end_request(r, DONE))


@m.action(params={"r": Req}, rules=("INV-S2",), source=("io/io-context.c++:621-631", "server/server.c++:4563-4565"))
def drain_timeout(r: Expr) -> Step:
    """``limitDrain()`` won (stateless, production only): warn; the context's death cancels the rest."""
    return Step(
        guard={**_draining(r), "production_limits": production, "stateless": ~ctx_actor[_ctx(r)],
               "tasks_left": wait_until[_ctx(r)] > 0},
        updates=end_request(r, TIMED_OUT),
        outputs={"warning": LifecycleWarning.DRAIN_TIMEOUT},
    )


@m.action(params={"r": Req}, rules=("INV-A4",), source="io/io-context.c++:632-647")
def drain_aborted(r: Expr) -> Step:
    """``onAbort()`` won: an abort ends the drain (the error is swallowed)."""
    return Step(guard={**_draining(r), "aborted": _aborted(_ctx(r))}, updates=end_request(r, ABORTED))


@m.action(params={"r": Req}, rules=("INV-R5",), source=("io/io-context.c++:610-620", "io/io-context.c++:261-265"))
def drain_superseded(r: Expr) -> Step:
    """The actor drain's ``drainFulfiller`` was fulfilled by a newer delivery: the newer request takes over."""
    return Step(guard={"draining": phase[r] == DRAINING, "handed_over": handed_over[r],
                       "event_loop_turn": event_loop_turn(_ctx(r))},
                updates=end_request(r, DRAIN_SUPERSEDED))


# ---- finishScheduled ----------------------------------------------------------------------------------


@m.action(params={"r": Req}, rules=("G6", "G7", "INV-R9", "INV-R6"), source="io/io-context.c++:652-664")
def finish_scheduled(r: Expr) -> Step:
    """``finishScheduled(self)``: stateless only (KJ_ASSERT); waits for the waitUntil tasks."""
    return Step(
        guard={"current": phase[r] == CURRENT, "not_actor": ~ctx_actor[_ctx(r)]},
        updates={waited[r]: True, phase[r]: FINISHING_SCHEDULED},
    )


def _scheduled_result(r: Expr, outcome: Expr) -> dict[str, Expr]:
    return {"outcome": outcome, "no_retry": ~retry[_ctx(r)]}


@m.action(params={"r": Req}, rules=("INV-S1", "INV-T2"), source="io/io-context.c++:666-689")
def finish_scheduled_done(r: Expr) -> Step:
    """The waitUntil set is empty: the outcome is ``waitUntilStatus()`` (first failure wins)."""
    c = _ctx(r)
    return Step(
        guard={"finishing": phase[r] == FINISHING_SCHEDULED, "event_loop_turn": event_loop_turn(c),
               "wait_until_empty": wait_until[c] == 0},
        updates=end_request(r, DONE),
        outputs=_scheduled_result(r, wu_status[c]),
    )


@m.action(params={"r": Req}, rules=("INV-S1",), source=("io/io-context.c++:666-667", "server/server.c++:4566-4568"))
def finish_scheduled_timeout(r: Expr) -> Step:
    """``limitScheduled()`` won (production only): ``EXCEEDED_WALL_TIME``."""
    return Step(
        guard={"finishing": phase[r] == FINISHING_SCHEDULED, "event_loop_turn": event_loop_turn(_ctx(r)),
               "production_limits": production,
               "tasks_left": wait_until[_ctx(r)] > 0},
        updates=end_request(r, TIMED_OUT),
        outputs=_scheduled_result(r, Outcome.EXCEEDED_WALL_TIME),
    )


@m.action(params={"r": Req}, rules=("INV-A4", "INV-S1"), source="io/io-context.c++:670-681")
def finish_scheduled_aborted(r: Expr) -> Step:
    """``onAbort()`` won: the outcome is ``outcomeFromException`` of the reason (here: EXCEPTION)."""
    return Step(
        guard={"finishing": phase[r] == FINISHING_SCHEDULED, "event_loop_turn": event_loop_turn(_ctx(r)),
               "aborted": _aborted(_ctx(r))},
        updates=end_request(r, ABORTED),
        outputs=_scheduled_result(r, Outcome.EXCEPTION),
    )


@m.action(params={"c": Ctx}, rules=("INV-S1",), source=("io/io-context.h:806-813", "api/global-scope.c++:525-564"))
def set_no_retry(c: Expr) -> Step:
    """``setNoRetryScheduled()`` (``controller.noRetry()`` in JS, or a missing scheduled handler); never in actors."""
    return Step(guard={"js_running": entered[c], "scheduled_handler": ~ctx_actor[c]}, updates={retry[c]: False})


# ---- tasks and waitUntil ------------------------------------------------------------------------------


def _add_task(c: Expr) -> dict[Any, Any]:
    return {tasks[c]: Ite(ctx_actor[c], tasks[c], tasks[c] + 1),
            wait_until[c]: Ite(ctx_actor[c], wait_until[c] + 1, wait_until[c])}


@m.action(params={"c": Ctx}, rules=("INV-T1",), source="io/io-context.c++:513-535")
def add_task(c: Expr) -> Step:
    """``addTask`` (awaitIo and friends, from JS): in an actor it is ``addWaitUntil``."""
    return Step(guard={"js_running": entered[c]}, updates=_add_task(c))


@m.action(params={"c": Ctx}, rules=("INV-T6", "INV-T1"), source=("io/io-context.c++:915", "io/io-context.c++:939-946"))
def set_timeout(c: Expr) -> Step:
    """``setTimeout``: an armed timer holds a PendingEvent; in an actor it also holds a waitUntil task."""
    return Step(guard={"js_running": entered[c]}, updates=_add_task(c))


@m.action(params={"c": Ctx}, rules=("INV-T5", "INV-T7"), source="io/io-context.c++:537-553")
def add_wait_until(c: Expr) -> Step:
    """``addWaitUntil`` (``ctx.waitUntil`` or C++); warns if the context has no current IncomingRequest."""
    return Step(
        guard={"context_alive": ctx_state[c] == ALIVE, "owned": owned(c)},
        updates={wait_until[c]: wait_until[c] + 1},
        outputs={"warning": Ite(_listed_in(c), LifecycleWarning.NO_WARNING, LifecycleWarning.TASK_WITHOUT_REQUEST)},
    )


def _task_ends(c: Expr) -> dict[str, Expr]:
    return {"context_alive": ctx_state[c] == ALIVE, "owned": owned(c), "event_loop_turn": event_loop_turn(c)}


@m.action(params={"c": Ctx, "ok": BOOL}, rules=("INV-T2", "INV-T3"), source="io/io-context.c++:1257-1273")
def task_done(c: Expr, ok: Expr) -> Step:
    """A plain task (or a stateless timer) settles; a failure sets the status if it is the first, and is logged."""
    return Step(
        guard={**_task_ends(c), "pending": tasks[c] > 0},
        updates={tasks[c]: tasks[c] - 1, **_fail(c, ok)},
        outputs={"log": Ite(ok, TaskLog.NO_LOG, TaskLog.ASYNC_TASK)},
    )


@m.action(params={"c": Ctx, "ok": BOOL}, rules=("INV-T2", "INV-T3"), source="io/io-context.c++:1257-1273")
def wait_until_done(c: Expr, ok: Expr) -> Step:
    """A waitUntil task settles; a failure sets the status if it is the first, and is logged."""
    return Step(
        guard={**_task_ends(c), "pending": wait_until[c] > 0},
        updates={wait_until[c]: wait_until[c] - 1, **_fail(c, ok)},
        outputs={"log": Ite(ok, TaskLog.NO_LOG, TaskLog.ASYNC_TASK)},
    )


@m.action(params={"c": Ctx}, rules=("INV-A5", "INV-H1"),
          source=("io/io-context.c++:723-749", "io/io-context.c++:1583-1594"))
def abort_from_hang(c: Expr) -> Step:
    """No PendingEvent and an idle thread: a stateless context is aborted with the hang message."""
    pending_event = entered[c] | (tasks[c] > 0)
    return Step(
        guard={"context_alive": ctx_state[c] == ALIVE, "owned": owned(c), "stateless": ~ctx_actor[c],
               "no_pending_event": ~pending_event, "thread_idle": event_loop_turn(c)},
        updates={**record_abort(c, AbortReason.REASON_A),
                 bad_hang_abort: bad_hang_abort | ctx_actor[c] | pending_event},
    )


@m.action(params={"c": Ctx}, rules=("INV-C4",), source=("io/worker.c++:4058-4067", "io/worker.c++:4364-4375"))
def drop_actor_context(c: Expr) -> Step:
    """The Actor drops its IoContext (``impl->ioContext = none``) once no delivered request is listed."""
    return Step(guard={"actor_holds": actor_holds[c], "no_listed_request": ~_listed_in(c),
                       "event_loop_turn": event_loop_turn(c)},
                updates={actor_holds[c]: False})


# ---- refinements of the context core ---------------------------------------------------------------


@m.refine("create_context", rules=("INV-C4",), source="io/worker-entrypoint.c++:277-300")
def _actor_holds_its_context(c: Expr, t: Expr, actor: Expr) -> Step:
    """An actor context is held by its Actor (``setIoContext``); a stateless one only by its request."""
    return Step(guard=TRUE, updates={actor_holds[c]: actor})


@m.refine("enter", rules=("INV-R8",), source=("io/io-context.h:1273-1277", "io/io-context.h:1351-1353"))
def _js_needs_a_request(c: Expr, t: Expr) -> Step:
    """``run()`` reads the current request's metrics and timer: a live delivered request is required."""
    return Step(guard={"has_request": _listed_in(c)},
                updates={ran_without_request: ran_without_request | ~_listed_in(c)})


@m.refine("abort", rules=("INV-C4",), source="io/io-context.c++:488-499")
def _abort_needs_an_owner(c: Expr, reason: Expr) -> Step:
    """Nothing aborts a context whose last owner is gone: it is being destroyed."""
    return Step(guard={"owned": (ctx_state[c] != ALIVE) | owned(c)})


@m.refine("destroy_begin", rules=("INV-C4",), source=("io/io-context.h:220-222", "io/worker.c++:4058-4067"))
def _destroyed_when_unowned(c: Expr) -> Step:
    """``~IoContext`` runs when the last reference goes: no request holds it and its Actor dropped it."""
    return Step(guard={"unowned": ~owned(c)})


@m.refine("destroy_end", rules=("INV-T4",), source="io/io-context.h:1102-1199")
def _teardown_cancels_tasks(c: Expr) -> Step:
    """The members ``tasks`` and ``waitUntilTasks`` are destroyed: every task is cancelled."""
    return Step(guard=TRUE, updates={tasks[c]: 0, wait_until[c]: 0})


# ---- invariants -----------------------------------------------------------------------------------------


@m.invariant(rules=("INV-R1", "G1"), source="io/io-context.c++:254")
def delivered_at_most_once() -> Expr:
    """No request was delivered twice, and wasDelivered never goes back to false."""
    return ~delivered_twice & ForAll(Req, lambda r: Implies(delivered[r], Post(delivered[r])))


@m.invariant(rules=("INV-R2", "G3"), source="io/io-context.c++:268,312-318,367")
def listed_iff_delivered_and_alive() -> Expr:
    """A request is in its context's list iff it was delivered and has not been destroyed."""
    return ForAll(Req, lambda r: Iff(linked[r], delivered[r] & alive_request(r)))


@m.invariant(rules=("INV-R3", "INV-R5"), source=("io/io-context.c++:268", "io/io-context.h:1259-1277"))
def current_is_newest_delivered() -> Expr:
    """CURRENT is the head of its context's list; SUPERSEDED is not; a head still held by its caller is CURRENT."""
    return ForAll(Req, lambda r: And(
        Implies(phase[r] == CURRENT, is_front(r)),
        Implies(phase[r] == SUPERSEDED, ~is_front(r)),
        Implies(is_front(r) & _in(phase[r], HELD), phase[r] == CURRENT),
    ))


@m.invariant(rules=("INV-R4", "G5"), source="io/worker-entrypoint.c++:292-302")
def stateless_context_has_one_request() -> Expr:
    """A stateless context is held by at most one IncomingRequest, ever."""
    return ForAll(Ctx, lambda c: Implies(~ctx_actor[c], ForAll(Req, lambda a: ForAll(Req, lambda b: Implies(
        (req_ctx[a] == c) & (req_ctx[b] == c), a == b)))))


@m.invariant(rules=("INV-R5",), source=("io/io-context.c++:261-265", "io/io-context.c++:604-620"))
def single_drainer() -> Expr:
    """A drain still waiting for work belongs to its context's head; only actor drains are handed over."""
    return ForAll(Req, lambda r: And(
        Implies((phase[r] == DRAINING) & ~handed_over[r], is_front(r)),
        Implies(handed_over[r], (phase[r] == DRAINING) & ctx_actor[_ctx(r)]),
    ))


@m.invariant(rules=("INV-R6", "G7", "G2"), source=("io/io-context.c++:601", "io/io-context.h:90-99"))
def drain_consumes_the_request() -> Expr:
    """After drain() or finishScheduled() the caller no longer holds the request, which had been delivered."""
    return ForAll(Req, lambda r: Implies(waited[r], delivered[r] & ~_in(phase[r], HELD)))


@m.invariant(rules=("INV-R8",), source="io/io-context.h:1273-1277")
def js_runs_with_a_request() -> Expr:
    """No context was entered without a live delivered request."""
    return ~ran_without_request


@m.invariant(rules=("INV-R9", "G6"), source="io/io-context.c++:660-661")
def scheduled_never_in_actors() -> Expr:
    """No actor context has a request in finishScheduled()."""
    return ForAll(Req, lambda r: Implies(phase[r] == FINISHING_SCHEDULED, ~ctx_actor[_ctx(r)]))


@m.invariant(rules=("INV-C4",), source="io/io-context.h:220-222")
def requests_keep_their_context_alive() -> Expr:
    """A live request's context is alive (the request holds a strong reference)."""
    return ForAll(Req, lambda r: Implies(alive_request(r), (req_ctx[r] != NONE) & (ctx_state[_ctx(r)] == ALIVE)))


@m.invariant(rules=("INV-C4",), source=("io/io-context.h:220-222", "io/io-context.c++:700-721"))
def unowned_contexts_run_nothing() -> Expr:
    """A live context nobody holds any more (its last request just died) runs no JS: its destruction is next."""
    return ForAll(Ctx, lambda c: Implies((ctx_state[c] == ALIVE) & ~owned(c), ~entered[c]))


@m.invariant(rules=("INV-T1", "INV-T6"), source=("io/io-context.c++:516-521", "io/io-context.c++:939-946"))
def actors_have_no_plain_tasks() -> Expr:
    """In an actor context every task and timer is a waitUntil task."""
    return ForAll(Ctx, lambda c: Implies(ctx_actor[c], tasks[c] == 0))


@m.invariant(rules=("INV-T2",), source="io/io-context.c++:1258-1264")
def first_failure_wins() -> Expr:
    """waitUntilStatus changes at most once, from OK to the first failure's outcome."""
    return ForAll(Ctx, lambda c: Implies(wu_status[c] != Outcome.OK, Post(wu_status[c]) == wu_status[c]))


@m.invariant(rules=("INV-T4",), source="io/io-context.c++:700-721")
def destruction_cancels_all() -> Expr:
    """A destroyed context has no task and no waitUntil task left."""
    return ForAll(Ctx, lambda c: Implies(ctx_state[c] == DEAD, (tasks[c] == 0) & (wait_until[c] == 0)))


@m.invariant(rules=("INV-T5", "INV-S1"), source=("io/io-context.c++:632-634", "io/io-context.c++:666-668"))
def done_only_when_wait_until_empty() -> Expr:
    """A drain or finishScheduled ends DONE only when its context has no waitUntil task left."""
    return ForAll(Req, lambda r: Implies(
        ((phase[r] == DRAINING) | (phase[r] == FINISHING_SCHEDULED)) & (Post(phase[r]) == DONE),
        wait_until[_ctx(r)] == 0))


@m.invariant(rules=("INV-A3",), source=("io/io-context.h:391-395", "io/io-context.c++:488-499"))
def abort_cancels_nothing_synchronously() -> Expr:
    """The step that aborts a context cancels no task and ends no request."""
    return ForAll(Ctx, lambda c: Implies(
        (abort_reason[c] == NOT_ABORTED) & (Post(abort_reason[c]) != NOT_ABORTED),
        (Post(tasks[c]) == tasks[c]) & (Post(wait_until[c]) == wait_until[c])
        & ForAll(Req, lambda r: Implies(req_ctx[r] == c, Post(phase[r]) == phase[r]))))


@m.invariant(rules=("INV-A5", "INV-H1"), source=("io/io-context.c++:751-756", "io/io-context.c++:1583-1585"))
def hang_abort_only_when_idle_and_stateless() -> Expr:
    """No actor was hang-aborted, and no context was hang-aborted while JS ran or a PendingEvent existed."""
    return ~bad_hang_abort


@m.invariant(rules=("INV-S2",), source=("io/io-context.c++:608-631", "server/server.c++:4555-4589"))
def no_timeouts_in_standalone_workerd() -> Expr:
    """Without production limits nothing times out; actor drains never time out."""
    return ForAll(Req, lambda r: Implies(phase[r] == TIMED_OUT, production & ~ctx_actor[_ctx(r)]))


@m.invariant(rules=("INV-R2", "INV-R6", "INV-C4"), source="io/io-context.c++:253-368", lemma=True)
def phase_matches_fields() -> Expr:
    """Lemma: each phase fixes wasDelivered, waitedForWaitUntil and list membership; requests keep their context."""
    return ForAll(Req, lambda r: And(
        Iff(phase[r] == UNBORN, req_ctx[r] == NONE),
        Implies(_in(phase[r], ("UNBORN", "CREATED", "CANCELED")), ~delivered[r] & ~waited[r]),
        Implies((phase[r] == CURRENT) | (phase[r] == SUPERSEDED) | (phase[r] == DROPPED), delivered[r] & ~waited[r]),
        Implies(_in(phase[r], ("DRAINING", "FINISHING_SCHEDULED", "DRAIN_SKIPPED", "DONE", "DRAIN_SUPERSEDED",
                               "TIMED_OUT", "ABORTED", "SHUT_DOWN")), delivered[r] & waited[r]),
        Iff(linked[r], _in(phase[r], LISTED)),
        Implies(req_ctx[r] != NONE, ctx_state[_ctx(r)] != CTX_UNBORN),
    ))


@m.invariant(rules=("INV-R3",), source="io/io-context.c++:268", lemma=True)
def newer_orders_each_list() -> Expr:
    """Lemma: ``newer`` is a strict total order on the listed requests of each context, and nothing else."""
    return ForAll(Req, lambda a: ForAll(Req, lambda b: And(
        Implies(newer[a, b], linked[a] & linked[b] & _same_ctx(a, b) & ~newer[b, a]),
        Implies(linked[a] & linked[b] & _same_ctx(a, b) & (a != b), newer[a, b] | newer[b, a]),
        ForAll(Req, lambda z: Implies(newer[a, b] & newer[b, z], newer[a, z])),
    )))


@m.invariant(rules=("INV-T4", "INV-C6"), source=("io/io-context.c++:152-218", "io/io-context.c++:537-553"), lemma=True)
def unborn_contexts_have_no_tasks() -> Expr:
    """Lemma: a context not yet created has no task, no waitUntil task and no Actor holding it
    (tasks are added only from JS or by an owner of a live context)."""
    return ForAll(Ctx, lambda c: Implies(ctx_state[c] == CTX_UNBORN,
                                         (tasks[c] == 0) & (wait_until[c] == 0) & ~actor_holds[c]))


@m.invariant(rules=("INV-C3",), source="io/io-context.c++:1303-1309", lemma=True)
def no_context_is_its_own_outer() -> Expr:
    """Lemma: a context's saved outer context is another context (entry refuses re-entry)."""
    return ForAll(Ctx, lambda c: (outer[c] == NONE) | (outer[c] != Some(c)))


@m.invariant(rules=("INV-C3",), source=("io/io-context.c++:1293-1331", "io/io-context.c++:1303-1309"), lemma=True)
def threads_with_entered_contexts_are_busy() -> Expr:
    """Lemma: while a context is entered, its thread has a current context (so no KJ event of it runs).

    Inductive on its own when a thread has one context, with `no_context_is_its_own_outer` when it
    has two; with more, the argument follows the chain of saved outer contexts (a cycle of them
    must be excluded: see docs/verification.md)."""
    return ForAll(Ctx, lambda c: Implies(entered[c], current[ctx_thread[c].some] != NONE))


@m.invariant(rules=("INV-R8", "INV-C4"), source=("io/io-context.h:1273-1277", "io/io-context.c++:320-367"), lemma=True)
def entered_contexts_have_a_request() -> Expr:
    """Lemma: while JS runs in a context, a delivered request is listed in it: every step that ends a
    listed request is a KJ event (it needs an idle thread), and drain() of the head keeps it listed."""
    return ForAll(Ctx, lambda c: Implies(entered[c], _listed_in(c)))


m.terminal(ForAll(Req, lambda r: (phase[r] == UNBORN) | _in(phase[r], ENDED)))

MODEL = m.build()
