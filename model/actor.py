"""Actors (Durable Objects): one IoContext shared by every request of an actor, actor drains, shutdown, abort.

Composes the lifecycle model (`model.lifecycle`) with I/O ownership (`model.ownership`); both
extend the IoContext core, which the composition keeps once, and their refinements of
``enter``, ``destroy_begin`` and ``destroy_end`` are synchronised.  Follows io/worker.c++,
io/worker-entrypoint.c++ and io/io-context.c++ at commit 6552d999:

* ``WorkerEntrypoint::init`` (worker-entrypoint.c++:277-308): for an actor, reuse
  ``actor.getIoContext()``; otherwise create a context and ``actor.setIoContext()`` it
  (`set_io_context`), which requires that none is set (worker.c++:4364-4375, INV-C5).  So
  all requests of one actor run in one context: I/O objects created under one request are
  usable under another (the ownership model's ``checkFarGet`` compares contexts), and an
  object of another actor fails with the "different Durable Object" error (the accessing
  context is an actor's).
* Several IncomingRequests share the context; *current* is the newest delivered one; a new
  delivery hands the old head's drain over (the lifecycle model's `drain_superseded`).
  ``addTask`` and armed timers are waitUntil tasks (`add_task`, `set_timeout`): an actor
  drain waits for them.  Actors have no hang detection and no drain limit.
* ``Actor::shutdown`` (worker.c++:4013-4029, `actor_shutdown`) fulfils ``onShutdown()``,
  which ends actor drains (`drain_shutdown`).
* ``Actor::abort`` (worker.c++:4039-4068) is three events here: ``ctx->abort(e)`` (the core's
  `abort`), the abortCanceler loop (`actor_abort`: every in-flight event and drain is
  cancelled and its request destroyed, ABORTED), then ``impl->ioContext = none`` if no
  request is listed (the lifecycle's `drop_actor_context`).  Requests created but not yet
  delivered are not wrapped in the canceler and survive (they still hold the context).
* In workerd an idle actor is evicted: shut down, then the Actor (and its context) dropped
  (server/server.c++:1036-1075): `actor_shutdown` then `drop_actor_context`.

Not modelled: the input and output gates, the actor cache, the constructor (run as a
waitUntil task at the first delivery), hibernation.  The seed article mentions only that
"multiple IncomingRequests share a single IoContext"; the rest is from the source.
"""

from __future__ import annotations

from model.context import NOT_ABORTED, abort_reason, ctx_actor, ctx_state
from model.context import UNBORN as CTX_UNBORN
from model.core import BOOL, NONE, And, Enum, Exists, Expr, ForAll, Implies, Ite, ModelBuilder, Opt, Post, Step
from model.lifecycle import (
    DRAINING,
    Phase,
    actor_holds,
    alive_request,
    end_listed_requests,
    end_request,
    event_loop_turn,
    handed_over,
    linked,
    phase,
    req_ctx,
)
from model.lifecycle import (
    MODEL as LIFECYCLE,
)
from model.ownership import MODEL as OWNERSHIP
from model.vocab import Actor, Ctx, Req

__all__ = ["MODEL", "ActorState", "actor_ctx", "actor_state", "ctx_owner"]

ActorState = Enum("ActorState", "UNBORN ACTIVE SHUT_DOWN BROKEN")
UNBORN, ACTIVE, SHUT_DOWN, BROKEN = ActorState.UNBORN, ActorState.ACTIVE, ActorState.SHUT_DOWN, ActorState.BROKEN

m = ModelBuilder("actor", __doc__ or "", extends=[LIFECYCLE, OWNERSHIP],
                 bounds={"threads": 1, "contexts": 1, "objects": 1, "max_actions": 1, "max_tasks": 1,
                         "durable_objects": 1})

actor_state = m.func("actor_state", Actor, ActorState, "UNBORN", "the Worker::Actor: running, shut down, or aborted")
actor_ctx = m.func("actor_ctx", Actor, Opt(Ctx), NONE, "Worker::Actor::Impl::ioContext")
ctx_owner = m.func("ctx_owner", Ctx, Opt(Actor), NONE, "IoContext::actor: the actor a context was set on")


def _owner_of(c: Expr) -> Expr:
    return ctx_owner[c].some


def _owner_state(c: Expr) -> Expr:
    return actor_state[_owner_of(c)]


@m.action(params={"a": Actor, "c": Ctx}, rules=("INV-C5",),
          source=("io/worker.c++:4364-4375", "io/worker-entrypoint.c++:292-299"))
def set_io_context(a: Expr, c: Expr) -> Step:
    """``actor.setIoContext(context)`` for a new actor context; an actor gets one context in its life."""
    return Step(
        guard={"fresh_actor": actor_state[a] == UNBORN, "no_context_yet": actor_ctx[a] == NONE,
               "new_actor_context": ctx_actor[c] & actor_holds[c] & (ctx_owner[c] == NONE)},
        updates={actor_state[a]: ACTIVE, actor_ctx[a]: c, ctx_owner[c]: a},
    )


@m.refine("create_request", rules=("INV-C5",), source="io/worker-entrypoint.c++:292-299")
def _requests_reuse_the_actors_context(r: Expr, c: Expr) -> Step:
    """A request to an actor reuses the running actor's context (``actor.getIoContext()``)."""
    return Step(guard={"running_actor": ~ctx_actor[c] | ((ctx_owner[c] != NONE) & (_owner_state(c) == ACTIVE))})


@m.action(params={"a": Actor}, rules=("INV-R11",), source="io/worker.c++:4013-4029")
def actor_shutdown(a: Expr) -> Step:
    """``Actor::shutdown``: fulfil ``onShutdown()`` (eviction, deletion); actor drains end."""
    return Step(guard={"running": actor_state[a] == ACTIVE}, updates={actor_state[a]: SHUT_DOWN})


@m.action(params={"r": Req}, rules=("INV-R11",), source="io/io-context.c++:608-620")
def drain_shutdown(r: Expr) -> Step:
    """``actor.onShutdown()`` won the actor drain's race: the request is destroyed."""
    c = req_ctx[r].some
    return Step(
        guard={"draining": phase[r] == DRAINING, "not_handed_over": ~handed_over[r],
               "event_loop_turn": event_loop_turn(c), "actor": ctx_actor[c],
               "actor_shut_down": (ctx_owner[c] != NONE) & (_owner_state(c) != ACTIVE)},
        updates=end_request(r, Phase.SHUT_DOWN),
    )


@m.action(params={"a": Actor}, rules=("INV-A6", "INV-R11", "INV-A3"), source="io/worker.c++:4039-4068")
def actor_abort(a: Expr) -> Step:
    """``Actor::abort`` after ``ctx->abort(e)``: shut down, and cancel every event and drain (ABORTED)."""
    c = actor_ctx[a].some
    return Step(
        guard={"has_context": actor_ctx[a] != NONE, "event_loop_turn": event_loop_turn(c),
               "context_aborted": abort_reason[c] != NOT_ABORTED,
               "not_yet": actor_state[a] != BROKEN},
        updates={actor_state[a]: BROKEN, **end_listed_requests(c, Phase.ABORTED)},
    )


@m.refine("drop_actor_context", rules=("INV-C5", "INV-A6"), source=("io/worker.c++:4058-4067",
                                                                     "server/server.c++:1036-1075"))
def _actor_releases_its_context(c: Expr) -> Step:
    """An aborted actor drops its context at once; a shut-down one when no request refers to it (eviction)."""
    idle = ~Exists(Req, lambda r: alive_request(r) & (req_ctx[r] == c))
    return Step(
        guard={"actor_done": (ctx_owner[c] == NONE) | (_owner_state(c) == BROKEN)
               | ((_owner_state(c) == SHUT_DOWN) & idle)},
        updates={actor_ctx: lambda a: Ite(actor_ctx[a] == c, NONE, actor_ctx[a])},
    )


# ---- invariants ------------------------------------------------------------------------------------------


@m.invariant(rules=("INV-C5",), source="io/worker.c++:4364-4375")
def one_context_per_actor() -> Expr:
    """No two contexts belong to one actor; an actor's context names it as its actor."""
    return And(
        ForAll(Ctx, lambda c: ForAll(Ctx, lambda d: Implies((ctx_owner[c] != NONE) & (ctx_owner[c] == ctx_owner[d]),
                                                              c == d))),
        ForAll(Actor, lambda a: Implies(actor_ctx[a] != NONE, ctx_owner[actor_ctx[a].some] == a)),
    )


@m.invariant(rules=("INV-C5",), source="io/worker-entrypoint.c++:292-299")
def requests_run_in_their_actors_context() -> Expr:
    """Every live request of an actor context belongs to an actor that set that context."""
    return ForAll(Req, lambda r: Implies(alive_request(r) & ctx_actor[req_ctx[r].some],
                                         ctx_owner[req_ctx[r].some] != NONE))


@m.invariant(rules=("INV-R11",), source="io/io-context.c++:608-620")
def drains_end_at_shutdown_only_when_shut_down() -> Expr:
    """A request ended by shutdown belongs to an actor that was shut down or aborted."""
    return ForAll(Req, lambda r: Implies(phase[r] == Phase.SHUT_DOWN,
                                         ctx_actor[req_ctx[r].some] & (ctx_owner[req_ctx[r].some] != NONE)
                                         & (_owner_state(req_ctx[r].some) != ACTIVE)))


@m.invariant(rules=("INV-A6",), source="io/worker.c++:4048-4055")
def actor_abort_cancels_every_event() -> Expr:
    """Right after Actor::abort no request of its context is listed (every event and drain was cancelled)."""
    return ForAll(Actor, lambda a: Implies(
        (actor_state[a] != BROKEN) & (Post(actor_state[a]) == BROKEN),
        ForAll(Req, lambda r: Implies(req_ctx[r] == actor_ctx[a], ~Post(linked[r])))))


@m.invariant(rules=("INV-C5", "INV-C4"), source="io/worker.c++:4355-4375", lemma=True)
def actor_links_agree() -> Expr:
    """Lemma: an actor holding a context holds it as its Actor; a linked context is an actor context;
    a context not yet created belongs to no actor."""
    return And(
        ForAll(Actor, lambda a: Implies(actor_ctx[a] != NONE,
                                        actor_holds[actor_ctx[a].some] & (actor_state[a] != UNBORN))),
        ForAll(Ctx, lambda c: Implies(ctx_owner[c] != NONE, ctx_actor[c] & (actor_state[_owner_of(c)] != UNBORN))),
        ForAll(Ctx, lambda c: Implies(actor_holds[c] & (ctx_owner[c] != NONE), actor_ctx[_owner_of(c)] == c)),
        ForAll(Ctx, lambda c: Implies(ctx_state[c] == CTX_UNBORN, ctx_owner[c] == NONE)),
    )


MODEL = m.build()

_ = BOOL
