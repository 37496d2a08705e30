"""WorkerEntrypoint: the request() and runScheduled() flows, error disposition, what the client observes.

Extends the lifecycle model (`model.lifecycle`): each WorkerEntrypoint serves exactly one
event, so an entrypoint is identified by its IncomingRequest (the ``Req`` sort).  Follows
io/worker-entrypoint.c++ at commit 6552d999:

* Every event method starts with ``KJ_REQUIRE_NONNULL(incomingRequest, "<m>() can only be
  called once")`` and moves the request out (`request`, `run_scheduled`; INV-E1).
* ``requestImpl`` (361-634).  Stage 1: take the request, ``delivered()`` (`deliver`, INV-E2).
  Stage 2: run the handler in the context (`enter`/`exit`; the Response's headers go out
  through ``ResponseSentTracker::send``, `send_response`; ``ctx.passThroughOnException()``
  sets the context's failOpen flag, `pass_through_on_exception`); the handler's promise
  resolves (`handler_returned`), rejects (`handler_threw`, which includes an aborted or
  hung context) or is cancelled (`request_canceled`).  Leaving stage 2 on *every* path runs
  the KJ_DEFER that captures the fail-open service (if failOpen) and calls ``drain()``
  (`drain`, INV-E3).  Stage 3: the deferred proxy streams the body (`proxy_done`; a failure
  after the headers went out goes to stage 4).  Stage 4: exactly one disposition, in
  priority order (INV-E4): actor -> rethrow to the caller (`tunnel_to_actor_caller`);
  fail-open service and no response started -> re-issue the request to the NEXT channel,
  i.e. ``globalOutbound`` (`fail_open`, then `fallback_done`); ``tunnelExceptions`` ->
  rethrow (`tunnel_exception`); else a synthetic 5xx (`send_synthetic_status`).  Once a
  response was started no status is sent again and fail-open is off (INV-E5).
* Standalone workerd always passes ``tunnelExceptions = true`` (server/server.c++:3938): the
  constant ``tunnel_exceptions`` (default true) can be cleared to explore the production
  branch 4.  A tunnelled exception reaches the HTTP listener, whose
  ``handleApplicationError`` (server/server.c++:6581-6591) sends its own 500 if no response
  was started (`LISTENER_500`), else closes the connection (`TRUNCATED`).
* ``runScheduled`` (790-832): stateless only (KJ_ASSERT); ``delivered()``; the whole handler
  runs as a waitUntil task (`add_wait_until`); then ``finishScheduled()``, whose result
  (outcome, ``noRetry = !retry``) is the event's result.

Outputs predict what an HTTP client observes (`Response`, documented in `RESPONSES`) and,
for a scheduled event, the ``{outcome, noRetry}`` result (the lifecycle's outputs).

Not modelled: the output gate before an actor's error egress (INV-E6, see model.rules
LEFT_OUT), OVERLOADED exceptions (503 in branch 4, which standalone workerd never takes),
DISCONNECTED exceptions (the listener closes without a response), the ``request.signal``
abort on cancellation (experimental flag), service-worker default forwarding, connect(),
alarms, test() and custom events.  Where the seed article differs: it says the
entrypoint "converts [an exception] to an HTTP 500" and then checks passThroughOnException;
in the source fail-open is checked *first* and the 500 is the listener's, after the
exception was tunnelled out of the entrypoint.
"""

from __future__ import annotations

from typing import Any

from model.context import ctx_actor, ctx_thread, current, entered
from model.core import BOOL, FALSE, NONE, And, Enum, Expr, ForAll, Implies, Ite, ModelBuilder, Or, Step
from model.lifecycle import (
    FINISHING_SCHEDULED,
    Phase,
    alive_request,
    delivered,
    phase,
    req_ctx,
    waited,
)
from model.lifecycle import (
    MODEL as LIFECYCLE,
)
from model.vocab import Ctx, Req, Result

__all__ = ["MODEL", "RESPONSES", "RESPONSE_WIRE", "EpStage", "Response", "ep_stage", "response", "sent"]

EpStage = Enum(
    "EpStage",
    "IDLE FETCH_STARTED HANDLER_RUNNING HANDLER_RETURNED HANDLER_THREW HANDLER_CANCELED PROXYING FAILED "
    "FALLBACK SCHEDULED_STARTED SCHEDULED_DELIVERED SCHEDULED_RUNNING SCHEDULED_FINISHING "
    "COMPLETED RETHROWN CANCELED SCHEDULED_DONE DISCARDED",
)

#: What the client of one request observes.
Response = Enum(
    "Response",
    "PENDING WORKER_RESPONSE TRUNCATED LISTENER_500 FALLBACK_RESPONSE FALLBACK_500_EMPTY SYNTHETIC_500 "
    "EXCEPTION_TO_ACTOR_CALLER NO_RESPONSE",
)

#: The observation each `Response` stands for (workerd-semantics.md section 8, workerd-observed.md).
RESPONSES: dict[str, str] = {
    "PENDING": "no response decided by this step",
    "WORKER_RESPONSE": "the handler's own response (status, headers and the complete body)",
    "TRUNCATED": "the handler's status and headers, then the connection closes before the body is complete "
    "(chunked: no terminating chunk)",
    "LISTENER_500": "standalone workerd's HTTP listener: 'HTTP/1.1 500 Internal Server Error', headers only "
    "'Connection: close' and 'Content-Length: 21', body 'Internal Server Error'; the connection is closed. "
    "A worker calling over a service binding sees its fetch() reject with the tunnelled error instead",
    "FALLBACK_RESPONSE": "the response of globalOutbound (the NEXT channel) to the same method, URL, headers "
    "and body",
    "FALLBACK_500_EMPTY": "the fallback failed: '500 Internal Server Error' with an empty body "
    "('Content-Length: 0'), the connection kept open",
    "SYNTHETIC_500": "tunnelExceptions=false only (never in standalone workerd): 500 with an empty body",
    "EXCEPTION_TO_ACTOR_CALLER": "the Durable Object's exception propagates to the caller's stub.fetch(), which "
    "rejects with e.remote === true",
    "NO_RESPONSE": "the request was cancelled: no response on this request",
}

#: `RESPONSES` in machine-readable form: the wire observation (the conformance suite's expectation format,
#: conformance/http/scenario.schema.json ``expect.responses``) each `Response` fixes on its own.  The
#: handler's (or fallback's) own status, headers and body complete WORKER_RESPONSE, TRUNCATED and
#: FALLBACK_RESPONSE; EXCEPTION_TO_ACTOR_CALLER and PENDING are not HTTP responses of their own (the caller's
#: stub.fetch() rejects; no response was decided).  SYNTHETIC_500 is never sent by standalone workerd.
RESPONSE_WIRE: dict[str, dict[str, Any] | None] = {
    "PENDING": None,
    "WORKER_RESPONSE": {"outcome": "response", "complete": True, "connection": "kept"},
    "TRUNCATED": {"outcome": "response", "complete": False, "connection": "closed"},
    "LISTENER_500": {"outcome": "response", "status": 500, "headers": {"connection": "close", "content-length": "21"},
                     "headers_exact": True, "body": {"equals": "{msg:LISTENER_500_BODY}"}, "connection": "closed"},
    "FALLBACK_RESPONSE": {"outcome": "response"},
    "FALLBACK_500_EMPTY": {"outcome": "response", "status": 500, "headers": {"content-length": "0"},
                           "headers_exact": True, "body": {"equals": ""}, "connection": "kept"},
    "SYNTHETIC_500": {"outcome": "response", "status": 500, "body": {"equals": ""}},
    "EXCEPTION_TO_ACTOR_CALLER": None,
    "NO_RESPONSE": {"outcome": "no_response"},
}

FETCH_STARTED, HANDLER_RUNNING = EpStage.FETCH_STARTED, EpStage.HANDLER_RUNNING
HANDLER_RETURNED, HANDLER_THREW = EpStage.HANDLER_RETURNED, EpStage.HANDLER_THREW
HANDLER_CANCELED = EpStage.HANDLER_CANCELED
PROXYING, FAILED, FALLBACK = EpStage.PROXYING, EpStage.FAILED, EpStage.FALLBACK
SCHEDULED_STARTED, SCHEDULED_DELIVERED = EpStage.SCHEDULED_STARTED, EpStage.SCHEDULED_DELIVERED
SCHEDULED_RUNNING, SCHEDULED_FINISHING = EpStage.SCHEDULED_RUNNING, EpStage.SCHEDULED_FINISHING
COMPLETED, RETHROWN, CANCELED = EpStage.COMPLETED, EpStage.RETHROWN, EpStage.CANCELED
SCHEDULED_DONE = EpStage.SCHEDULED_DONE
DISCARDED = EpStage.DISCARDED

#: Stages in which the event has ended.
FINISHED = ("COMPLETED", "RETHROWN", "CANCELED", "SCHEDULED_DONE", "DISCARDED")
#: Stages after ``delivered()``.
AFTER_DELIVERY = ("HANDLER_RUNNING", "HANDLER_RETURNED", "HANDLER_THREW", "HANDLER_CANCELED", "PROXYING", "FAILED",
                  "FALLBACK", "SCHEDULED_DELIVERED", "SCHEDULED_RUNNING", "SCHEDULED_FINISHING", "COMPLETED",
                  "RETHROWN", "CANCELED", "SCHEDULED_DONE")
#: Stages after the KJ_DEFER drained the request (stage 3 and 4 and their ends).
AFTER_DRAIN = ("PROXYING", "FAILED", "FALLBACK", "COMPLETED", "RETHROWN", "CANCELED")

m = ModelBuilder("entrypoint", __doc__ or "", extends=LIFECYCLE, bounds={"requests": 1})

ep_stage = m.func("ep_stage", Req, EpStage, "IDLE", "where the WorkerEntrypoint's event is (requestImpl stages)")
sent = m.func("sent", Req, BOOL, False, "ResponseSentTracker::sent: a status line went out for this request")
fail_open_requested = m.func("fail_open_requested", Ctx, BOOL, False,
                             "IoContext::failOpen (set by passThroughOnException); never reset")
fail_open_service = m.func("fail_open_service", Req, BOOL, False, "failOpenService was captured by the KJ_DEFER")
response = m.func("response", Req, Response, "PENDING", "what the client observes (decided at the end of the flow)")

tunnel_exceptions = m.const("tunnel_exceptions", BOOL, True,
                            "WorkerEntrypoint's tunnelExceptions; standalone workerd always passes true")

scheduled_events = m.const("scheduled_events", BOOL, True, "configurations may leave runScheduled() out")

status_sent_twice = m.var("status_sent_twice", BOOL, False, "a status line was sent after one had gone out",
                          ghost=True)


def _st(r: Expr, *names: str) -> Expr:
    return Or(*(ep_stage[r] == getattr(EpStage, n) for n in names))


def _ctx(r: Expr) -> Expr:
    return req_ctx[r].some


def _actor(r: Expr) -> Expr:
    """The request's context is an actor's (false for an entrypoint that does not exist yet)."""
    return (req_ctx[r] != NONE) & ctx_actor[_ctx(r)]


def _event_loop(r: Expr) -> Expr:
    """The entrypoint's coroutine resumes in an event-loop turn: no JS runs on its context's thread."""
    return current[ctx_thread[_ctx(r)].some] == NONE


def _send_status(r: Expr, when: Expr) -> dict[Any, Any]:
    """``wrappedResponse->send(...)`` if ``when``: record that a status line went out (and whether twice)."""
    return {sent[r]: sent[r] | when, status_sent_twice: status_sent_twice | (when & sent[r])}


def _exists(r: Expr) -> Expr:
    return (phase[r] != Phase.UNBORN) & (ep_stage[r] != DISCARDED)


# ---- starting an event -----------------------------------------------------------------------------


@m.action(params={"r": Req}, rules=("INV-E1",), source="io/worker-entrypoint.c++:377-381")
def request(r: Expr) -> Step:
    """``request()``: take the IncomingRequest (once only) to run a fetch event."""
    return Step(
        guard={"entrypoint_exists": _exists(r)},
        checks=[("called_once", ep_stage[r] == EpStage.IDLE, Result.ERR_CALLED_TWICE)],
        updates={ep_stage[r]: FETCH_STARTED},
    )


@m.action(params={"r": Req}, rules=("INV-E1", "INV-R9", "G6"), source="io/worker-entrypoint.c++:790-798")
def run_scheduled(r: Expr) -> Step:
    """``runScheduled()``: take the IncomingRequest (once only); never for an actor (KJ_ASSERT)."""
    return Step(
        guard={"entrypoint_exists": _exists(r), "not_actor": ~_actor(r), "scheduled_in_scope": scheduled_events},
        checks=[("called_once", ep_stage[r] == EpStage.IDLE, Result.ERR_CALLED_TWICE)],
        updates={ep_stage[r]: SCHEDULED_STARTED},
    )


@m.refine("deliver", rules=("INV-E2",), source=("io/worker-entrypoint.c++:396", "io/worker-entrypoint.c++:809"))
def _delivered_by_the_event(r: Expr) -> Step:
    """The event delivers its request before any of its JS runs."""
    return Step(guard={"event_started": _st(r, "FETCH_STARTED", "SCHEDULED_STARTED")},
                updates={ep_stage[r]: Ite(ep_stage[r] == FETCH_STARTED, HANDLER_RUNNING, SCHEDULED_DELIVERED)})


@m.refine("cancel_request", rules=("INV-E2",), source="io/worker-entrypoint.c++:774-788")
def _entrypoint_dropped_unused(r: Expr) -> Step:
    """An entrypoint dropped before any event method ran destroys its undelivered request."""
    return Step(guard={"no_event": ep_stage[r] == EpStage.IDLE}, updates={ep_stage[r]: DISCARDED})


@m.refine("drop_request", rules=("INV-E3",), source="io/worker-entrypoint.c++:418-444")
def _entrypoint_always_drains(r: Expr) -> Step:
    """Every delivered event path ends in drain() or finishScheduled(): a delivered request is never just dropped."""
    return Step(guard={"entrypoint_always_drains": FALSE})


# ---- stage 2: the handler ------------------------------------------------------------------------------


@m.action(params={"r": Req}, rules=("INV-E5",), source="io/worker-entrypoint.c++:174-181")
def send_response(r: Expr) -> Step:
    """The handler's Response goes out: ``ResponseSentTracker::send`` (status and headers)."""
    return Step(
        guard={"handler_running": ep_stage[r] == HANDLER_RUNNING, "js_running": entered[_ctx(r)],
               "not_sent": ~sent[r]},
        updates=_send_status(r, ~sent[r]),
    )


@m.action(params={"c": Ctx}, rules=("INV-E4",), source=("io/io-context.h:404-410", "api/global-scope.c++:71-73"))
def pass_through_on_exception(c: Expr) -> Step:
    """``ctx.passThroughOnException()``: set the context's failOpen flag (never reset)."""
    return Step(guard={"js_running": entered[c]}, updates={fail_open_requested[c]: True})


@m.action(params={"r": Req}, rules=("INV-E3",), source="io/worker-entrypoint.c++:448-486")
def handler_returned(r: Expr) -> Step:
    """``context.run(handler)`` resolved: the Response was sent; its body may still be streaming."""
    return Step(
        guard={"handler_running": ep_stage[r] == HANDLER_RUNNING, "event_loop_turn": _event_loop(r),
               "response_sent": sent[r]},
        updates={ep_stage[r]: HANDLER_RETURNED},
    )


@m.action(params={"r": Req}, rules=("INV-E3",), source="io/worker-entrypoint.c++:487-512")
def handler_threw(r: Expr) -> Step:
    """``context.run(handler)`` rejected: the handler threw, or the context was aborted (ctx.abort, hang)."""
    return Step(
        guard={"handler_running": ep_stage[r] == HANDLER_RUNNING, "event_loop_turn": _event_loop(r)},
        updates={ep_stage[r]: HANDLER_THREW},
    )


@m.action(params={"r": Req}, rules=("INV-E3",), source=("io/worker-entrypoint.c++:361-366",
                                                        "io/worker-entrypoint.c++:413-444"))
def request_canceled(r: Expr) -> Step:
    """The request's promise is cancelled during stage 2 (caller gone, actor abort): no response."""
    return Step(
        guard={"handler_running": ep_stage[r] == HANDLER_RUNNING, "event_loop_turn": _event_loop(r)},
        updates={ep_stage[r]: HANDLER_CANCELED, response[r]: Response.NO_RESPONSE},
        outputs={"response": Response.NO_RESPONSE},
    )


@m.refine("drain", rules=("INV-E3", "INV-E4"), source="io/worker-entrypoint.c++:418-444")
def _drain_when_stage_two_ends(r: Expr) -> Step:
    """The KJ_DEFER leaving stage 2: capture the fail-open service if failOpen is set, then drain."""
    return Step(
        guard={"stage_two_ended": _st(r, "HANDLER_RETURNED", "HANDLER_THREW", "HANDLER_CANCELED"),
               "event_loop_turn": _event_loop(r)},
        updates={
            fail_open_service[r]: fail_open_requested[_ctx(r)],
            ep_stage[r]: Ite(ep_stage[r] == HANDLER_RETURNED, PROXYING,
                             Ite(ep_stage[r] == HANDLER_THREW, FAILED, CANCELED)),
        },
    )


# ---- stage 3: the deferred proxy ------------------------------------------------------------------------


@m.action(params={"r": Req, "ok": BOOL}, rules=("INV-E5",), source="io/worker-entrypoint.c++:515-534")
def proxy_done(r: Expr, ok: Expr) -> Step:
    """The body finished streaming (the response is complete), or failed after the headers went out."""
    return Step(
        guard={"proxying": ep_stage[r] == PROXYING, "event_loop_turn": _event_loop(r)},
        updates={ep_stage[r]: Ite(ok, COMPLETED, FAILED),
                 response[r]: Ite(ok, Response.WORKER_RESPONSE, response[r])},
        outputs={"response": Ite(ok, Response.WORKER_RESPONSE, Response.PENDING)},
    )


# ---- stage 4: exactly one disposition -------------------------------------------------------------------


def _failed(r: Expr) -> dict[str, Expr]:
    return {"failed": ep_stage[r] == FAILED, "event_loop_turn": _event_loop(r)}


def _fail_open_usable(r: Expr) -> Expr:
    """``failOpenService`` survives the ``isSent()`` check (554-556)."""
    return fail_open_service[r] & ~sent[r]


@m.action(params={"r": Req}, rules=("INV-E4",), source="io/worker-entrypoint.c++:574-591")
def tunnel_to_actor_caller(r: Expr) -> Step:
    """Branch 1, actor: the exception is rethrown to the caller of the Durable Object."""
    outcome = Ite(sent[r], Response.TRUNCATED, Response.EXCEPTION_TO_ACTOR_CALLER)
    return Step(
        guard={**_failed(r), "actor": _actor(r)},
        updates={ep_stage[r]: RETHROWN, response[r]: outcome},
        outputs={"response": outcome},
    )


@m.action(params={"r": Req}, rules=("INV-E4", "INV-E5"), source=("io/worker-entrypoint.c++:554-556",
                                                                  "io/worker-entrypoint.c++:593-600"))
def fail_open(r: Expr) -> Step:
    """Branch 2: re-issue the original request to the NEXT channel (globalOutbound)."""
    return Step(
        guard={**_failed(r), "not_actor": ~_actor(r), "fail_open_service": fail_open_service[r],
               "response_not_started": ~sent[r]},
        updates={ep_stage[r]: FALLBACK},
    )


@m.action(params={"r": Req, "ok": BOOL}, rules=("INV-E4", "INV-E5"), source="io/worker-entrypoint.c++:600-614")
def fallback_done(r: Expr, ok: Expr) -> Step:
    """The fallback responded (its response is the client's), or failed: ``sendSyntheticStatus(500)``."""
    outcome = Ite(ok, Response.FALLBACK_RESPONSE, Ite(sent[r], Response.TRUNCATED, Response.FALLBACK_500_EMPTY))
    return Step(
        guard={"fallback": ep_stage[r] == FALLBACK, "event_loop_turn": _event_loop(r)},
        updates={ep_stage[r]: COMPLETED, response[r]: outcome, **_send_status(r, ok | ~sent[r])},
        outputs={"response": outcome},
    )


@m.action(params={"r": Req}, rules=("INV-E4", "INV-E5", "INV-E7"),
          source=("io/worker-entrypoint.c++:616-623", "server/server.c++:6581-6591"))
def tunnel_exception(r: Expr) -> Step:
    """Branch 3, tunnelExceptions: rethrow; standalone workerd's listener sends its 500 unless a response started."""
    outcome = Ite(sent[r], Response.TRUNCATED, Response.LISTENER_500)
    return Step(
        guard={**_failed(r), "not_actor": ~_actor(r), "fail_open_first": ~_fail_open_usable(r),
               "tunnel_exceptions": tunnel_exceptions},
        updates={ep_stage[r]: RETHROWN, response[r]: outcome, **_send_status(r, ~sent[r])},
        outputs={"response": outcome},
    )


@m.action(params={"r": Req}, rules=("INV-E4", "INV-E5"), source=("io/worker-entrypoint.c++:559-566",
                                                                  "io/worker-entrypoint.c++:625-632"))
def send_synthetic_status(r: Expr) -> Step:
    """Branch 4 (tunnelExceptions=false): ``sendSyntheticStatus(500)``, which does nothing once a response started."""
    outcome = Ite(sent[r], Response.TRUNCATED, Response.SYNTHETIC_500)
    return Step(
        guard={**_failed(r), "not_actor": ~_actor(r), "fail_open_first": ~_fail_open_usable(r),
               "no_tunnel": ~tunnel_exceptions},
        updates={ep_stage[r]: COMPLETED, response[r]: outcome, **_send_status(r, ~sent[r])},
        outputs={"response": outcome},
    )


# ---- runScheduled ----------------------------------------------------------------------------------------


@m.refine("add_wait_until", rules=("INV-S1",), source="io/worker-entrypoint.c++:811-823")
def _scheduled_handler_is_a_wait_until(c: Expr) -> Step:
    """``context.addWaitUntil(context.run(handler))``: the scheduled handler runs entirely as a waitUntil task."""
    return Step(guard=True, updates={ep_stage: lambda x: Ite(
        (req_ctx[x] == c) & (ep_stage[x] == SCHEDULED_DELIVERED), SCHEDULED_RUNNING, ep_stage[x])})


@m.refine("finish_scheduled", rules=("INV-S1",), source="io/worker-entrypoint.c++:825-831")
def _finish_after_the_handler_task(r: Expr) -> Step:
    """``finishScheduled()`` once the handler's waitUntil task was added."""
    return Step(guard={"handler_task_added": ep_stage[r] == SCHEDULED_RUNNING},
                updates={ep_stage[r]: SCHEDULED_FINISHING})


def _scheduled_result(name: str) -> None:
    @m.refine(name, rules=("INV-S1",), source="io/worker-entrypoint.c++:825-831")
    def _result(r: Expr) -> Step:
        """The scheduled event's result is finishScheduled()'s outcome and noRetry."""
        return Step(guard=True, updates={ep_stage[r]: SCHEDULED_DONE})


for _name in ("finish_scheduled_done", "finish_scheduled_timeout", "finish_scheduled_aborted"):
    _scheduled_result(_name)


# ---- invariants ----------------------------------------------------------------------------------------


@m.invariant(rules=("INV-E1",), source="io/worker-entrypoint.c++:377-381")
def one_event_per_entrypoint() -> Expr:
    """An event that has just started holds a request nobody delivered yet: no entrypoint starts a second event."""
    return ForAll(Req, lambda r: Implies(_st(r, "FETCH_STARTED", "SCHEDULED_STARTED"),
                                         phase[r] == Phase.CREATED))


@m.invariant(rules=("INV-E2",), source="io/worker-entrypoint.c++:396")
def delivered_before_the_handler() -> Expr:
    """Every stage from the handler on belongs to a delivered request."""
    return ForAll(Req, lambda r: Implies(_st(r, *AFTER_DELIVERY), delivered[r]))


@m.invariant(rules=("INV-E3",), source="io/worker-entrypoint.c++:418-444")
def drained_on_every_exit() -> Expr:
    """A delivered request that is gone was drained or finishScheduled; stages 3 and 4 come after the drain."""
    return ForAll(Req, lambda r: And(
        Implies(delivered[r] & ~alive_request(r), waited[r]),
        Implies(_st(r, *AFTER_DRAIN), waited[r]),
    ))


@m.invariant(rules=("INV-E4", "INV-E7"), source="io/worker-entrypoint.c++:568-633")
def one_disposition_in_priority_order() -> Expr:
    """Actor errors go to the caller; fail-open beats every 500 it can; the 500's kind follows tunnelExceptions."""
    R = Response
    return ForAll(Req, lambda r: And(
        Implies(_actor(r), Or(*(response[r] == v for v in (R.PENDING, R.WORKER_RESPONSE, R.TRUNCATED,
                                                             R.EXCEPTION_TO_ACTOR_CALLER, R.NO_RESPONSE)))),
        Implies(response[r] == R.EXCEPTION_TO_ACTOR_CALLER, _actor(r)),
        Implies((response[r] == R.FALLBACK_RESPONSE) | (response[r] == R.FALLBACK_500_EMPTY),
                fail_open_service[r] & ~_actor(r)),
        Implies(fail_open_service[r] & ~_actor(r), (response[r] != R.LISTENER_500) & (response[r] != R.SYNTHETIC_500)),
        Implies(response[r] == R.LISTENER_500, tunnel_exceptions),
        Implies(response[r] == R.SYNTHETIC_500, ~tunnel_exceptions),
    ))


@m.invariant(rules=("INV-E5",), source="io/worker-entrypoint.c++:554-566")
def no_late_status() -> Expr:
    """No status line was ever sent after a response had started."""
    return ~status_sent_twice


@m.invariant(rules=("INV-E1", "INV-E3", "INV-R6"), source="io/worker-entrypoint.c++:361-634", lemma=True)
def stages_match_the_request() -> Expr:
    """Lemma: the entrypoint's stage fixes its request's phase (and back: finishScheduled only from
    runScheduled; an idle entrypoint's request is undelivered); responses come only from fetch flows;
    the fallback runs only with a captured fail-open service and no response started."""
    P = Phase
    return ForAll(Req, lambda r: And(
        Implies(_st(r, "HANDLER_RUNNING", "HANDLER_RETURNED", "HANDLER_THREW", "HANDLER_CANCELED",
                    "SCHEDULED_DELIVERED", "SCHEDULED_RUNNING"),
                (phase[r] == P.CURRENT) | (phase[r] == P.SUPERSEDED)),
        Implies(ep_stage[r] == SCHEDULED_FINISHING, phase[r] == FINISHING_SCHEDULED),
        Implies(_st(r, "IDLE", "DISCARDED"), ~delivered[r]),
        Implies(sent[r], _st(r, "HANDLER_RUNNING", "HANDLER_RETURNED", "HANDLER_THREW", "HANDLER_CANCELED",
                             "PROXYING", "FAILED", "FALLBACK", "COMPLETED", "RETHROWN", "CANCELED")),
        Implies(response[r] != Response.PENDING, _st(r, "HANDLER_CANCELED", "COMPLETED", "RETHROWN", "CANCELED")),
        Implies(fail_open_service[r], _st(r, *AFTER_DRAIN)),
        Implies(ep_stage[r] == EpStage.IDLE, (phase[r] == P.UNBORN) | (phase[r] == P.CREATED)),
        Implies(phase[r] == FINISHING_SCHEDULED, ep_stage[r] == SCHEDULED_FINISHING),
        Implies(ep_stage[r] == FALLBACK, fail_open_service[r] & ~sent[r] & ~_actor(r)),
        Implies(ep_stage[r] == HANDLER_CANCELED, response[r] == Response.NO_RESPONSE),
    ))


m.terminal(ForAll(Req, lambda r: (phase[r] == Phase.UNBORN) | _st(r, *FINISHED)))

MODEL = m.build()
