"""IoContext core: a context pinned to one thread, the thread-local current context, abort, teardown.

Follows workerd's io/io-context.{h,c++} at commit 6552d999:

* ``IoContext::IoContext`` (c++:152-218) records ``threadId``: a context is *pinned* to the
  thread that created it (`create_context`).
* ``run()`` → ``runSingle`` → ``runInContextScope`` (h:1318-1397, c++:1293-1331) is `enter`:
  it refuses an aborted context first (``abortException`` is checked before and after the
  lock, h:1335-1339, 1358-1361), then ``KJ_REQUIRE(threadId == getThreadId(), "IoContext
  cannot switch threads")`` (c++:1302), then ``KJ_REQUIRE(currentLock == none)`` (no
  re-entry, c++:1307-1308).  It saves the previously current context and restores it on the
  way out, so *different* contexts nest (`exit`).
* ``isCurrent()`` (c++:1523-1531) is modelled as ``current[t] == c``; the isolate part of the
  condition (another isolate entered on top hides the context) is not modelled: every
  context here belongs to one isolate.
* ``abort(e)`` (c++:488-499) is idempotent and the first reason wins; it cancels nothing
  synchronously (h:391-395).
* Destruction (c++:700-721 plus member order) has two steps: `destroy_begin` (the destructor
  body: canceler, pending event, ReverseIoOwn validity) and `destroy_end` (the members; the
  DeleteQueue is closed last).  Models that extend this one refine both.

Who may destroy a context (its last IncomingRequest, or its Actor) is the lifecycle model's
business; here a context that is not entered may be destroyed at any time.
"""

from __future__ import annotations

from typing import Any

from model.core import BOOL, NONE, Enum, Exists, Expr, ForAll, Implies, Ite, ModelBuilder, Opt, Post, Step
from model.vocab import Ctx, Result, Thread

__all__ = ["MODEL", "AbortReason", "CtxState", "record_abort"]

CtxState = Enum("CtxState", "UNBORN ALIVE TEARDOWN DEAD")
AbortReason = Enum("AbortReason", "NOT_ABORTED REASON_A REASON_B")

UNBORN, ALIVE, TEARDOWN, DEAD = CtxState.UNBORN, CtxState.ALIVE, CtxState.TEARDOWN, CtxState.DEAD
NOT_ABORTED = AbortReason.NOT_ABORTED

m = ModelBuilder("context", __doc__ or "", bounds={"threads": 2, "contexts": 2})

ctx_state = m.func("ctx_state", Ctx, CtxState, "UNBORN", "lifecycle of each IoContext; ids are never reused")
ctx_thread = m.func("ctx_thread", Ctx, Opt(Thread), NONE, "the thread the context is pinned to")
ctx_actor = m.func("ctx_actor", Ctx, BOOL, False, "whether the context belongs to an actor (Durable Object)")
entered = m.func("entered", Ctx, BOOL, False, "currentLock is set: the context is in runInContextScope")
outer = m.func("outer", Ctx, Opt(Ctx), NONE, "the context that was current when this one was entered")
current = m.func("current", Thread, Opt(Ctx), NONE, "the thread-local threadLocalRequest")
abort_reason = m.func("abort_reason", Ctx, AbortReason, "NOT_ABORTED", "abortException (two reasons)")

nesting = m.const("nesting", BOOL, True, "configurations may forbid entering a context while another is current")
aborts = m.const("aborts", BOOL, True, "configurations may leave abort() out")
actors = m.const("actors", BOOL, True, "configurations may leave actor contexts out")


def record_abort(c: Expr, reason: Expr) -> dict[Any, Any]:
    """``abort(e)``'s one effect: the first reason is kept, later ones are ignored (c++:488-491).

    Shared with the models whose own actions abort a context (e.g. hang detection), so the
    rule is written once.
    """
    return {abort_reason[c]: Ite(abort_reason[c] == NOT_ABORTED, reason, abort_reason[c])}


wrong_thread_entry = m.var("wrong_thread_entry", BOOL, False, "a context ran on a foreign thread", ghost=True)
reentered = m.var("reentered", BOOL, False, "a context was entered while already entered", ghost=True)
ran_after_abort = m.var("ran_after_abort", BOOL, False, "JS ran in an aborted context", ghost=True)

@m.action(
    params={"c": Ctx, "t": Thread, "actor": BOOL},
    rules=("INV-C1", "INV-C6"),
    source="io/io-context.c++:152-218",
)
def create_context(c: Expr, t: Expr, actor: Expr) -> Step:
    """A new IoContext with a fresh id, pinned to the creating thread."""
    return Step(
        guard={"fresh_id": ctx_state[c] == UNBORN, "kind_in_scope": actors | ~actor},
        updates={ctx_state[c]: ALIVE, ctx_thread[c]: t, ctx_actor[c]: actor},
    )

@m.action(
    params={"c": Ctx, "t": Thread},
    rules=("INV-C1", "INV-C2", "INV-C3", "INV-A2"),
    source=("io/io-context.h:1335-1339", "io/io-context.c++:1302-1308"),
)
def enter(c: Expr, t: Expr) -> Step:
    """``run()``: refuse if aborted, check the thread and re-entry, then make ``c`` current on ``t``."""
    return Step(
        guard={"alive": ctx_state[c] == ALIVE, "nesting_in_scope": nesting | (current[t] == NONE)},
        checks=[
            ("not_aborted", abort_reason[c] == NOT_ABORTED, Result.ERR_ABORTED),
            ("pinned_thread", ctx_thread[c] == t, Result.ERR_WRONG_THREAD),
            ("not_entered", ~entered[c], Result.ERR_REENTERED),
        ],
        updates={
            entered[c]: True,
            outer[c]: current[t],
            current[t]: c,
            wrong_thread_entry: wrong_thread_entry | (ctx_thread[c] != t),
            reentered: reentered | entered[c],
            ran_after_abort: ran_after_abort | (abort_reason[c] != NOT_ABORTED),
        },
    )

@m.action(params={"c": Ctx, "t": Thread}, rules=("INV-C2", "INV-C3"), source="io/io-context.c++:1303-1309")
def exit(c: Expr, t: Expr) -> Step:
    """Leave the innermost context of ``t``; the previously current one becomes current again."""
    return Step(
        guard={"innermost": current[t] == c},
        updates={entered[c]: False, current[t]: outer[c], outer[c]: NONE},
    )

@m.action(params={"c": Ctx, "reason": AbortReason}, rules=("INV-A1", "INV-A3"), source="io/io-context.c++:488-499")
def abort(c: Expr, reason: Expr) -> Step:
    """``abort(e)``: record the first reason; later calls are ignored; nothing is cancelled here."""
    return Step(
        guard={"exists": (ctx_state[c] == ALIVE) | (ctx_state[c] == TEARDOWN), "a_reason": reason != NOT_ABORTED,
               "aborts_in_scope": aborts},
        updates=record_abort(c, reason),
    )

@m.action(params={"c": Ctx}, rules=("INV-C4", "INV-T4"), source="io/io-context.c++:700-721")
def destroy_begin(c: Expr) -> Step:
    """The destructor body runs: canceler cancelled, ReverseIoOwn validity cleared."""
    return Step(
        guard={"alive": ctx_state[c] == ALIVE, "not_running": ~entered[c]},
        updates={ctx_state[c]: TEARDOWN},
    )

@m.action(params={"c": Ctx}, rules=("INV-C4", "INV-O5"), source="io/io-context.h:1137-1152")
def destroy_end(c: Expr) -> Step:
    """The members are destroyed; the DeleteQueue is closed last."""
    return Step(guard={"tearing_down": ctx_state[c] == TEARDOWN}, updates={ctx_state[c]: DEAD})

# ---- invariants -----------------------------------------------------------------------
@m.invariant(rules=("INV-C1",), source="io/io-context.c++:1302")
def runs_on_pinned_thread() -> Expr:
    """No context was ever entered on a thread other than the one it is pinned to."""
    return ~wrong_thread_entry

@m.invariant(rules=("INV-C1", "INV-C3"), source="io/io-context.c++:1523-1531")
def current_is_pinned_here() -> Expr:
    """The context current on a thread is pinned to that thread and is entered."""
    return ForAll(Thread, lambda t: ForAll(Ctx, lambda c: Implies(
        current[t] == c, (ctx_thread[c] == t) & entered[c])))

@m.invariant(rules=("INV-C2",), source="io/io-context.c++:1307-1308")
def never_reentered() -> Expr:
    """No context was entered while it was already entered."""
    return ~reentered

@m.invariant(rules=("INV-C3",), source="io/io-context.c++:1293-1331")
def entered_is_on_a_stack() -> Expr:
    """An entered context is current on its thread or saved as the outer context of an entered one."""
    return ForAll(Ctx, lambda c: Implies(
        entered[c],
        (current[ctx_thread[c].some] == c) | Exists(Ctx, lambda d: entered[d] & (outer[d] == c))))

@m.invariant(rules=("INV-C6",), source="io/io-context.c++:1533-1537")
def ids_never_reused() -> Expr:
    """A context id that was used never becomes unborn again, and its thread never changes."""
    return ForAll(Ctx, lambda c: Implies(ctx_state[c] != UNBORN, Post(ctx_state[c]) != UNBORN)
                  & Implies(ctx_thread[c] != NONE, Post(ctx_thread[c]) == ctx_thread[c]))

@m.invariant(rules=("INV-A1",), source="io/io-context.c++:488-491")
def first_abort_reason_wins() -> Expr:
    """Once a context is aborted its reason never changes."""
    return ForAll(Ctx, lambda c: Implies(
        abort_reason[c] != NOT_ABORTED, Post(abort_reason[c]) == abort_reason[c]))

@m.invariant(rules=("INV-A2",), source="io/io-context.h:1358-1361")
def no_js_after_abort() -> Expr:
    """No context was entered to run JS after it was aborted."""
    return ~ran_after_abort

@m.invariant(rules=("INV-C3", "INV-C4"), source="io/io-context.c++:700-721", lemma=True)
def entered_contexts_are_alive() -> Expr:
    """Lemma: only live contexts are entered, and a live context has its thread."""
    return ForAll(Ctx, lambda c: Implies(entered[c], ctx_state[c] == ALIVE)
                  & Implies(ctx_state[c] != UNBORN, ctx_thread[c] != NONE)
                  & Implies(ctx_state[c] == UNBORN, ~entered[c] & (outer[c] == NONE)
                            & (abort_reason[c] == NOT_ABORTED)))

@m.invariant(rules=("INV-C2", "INV-C3"), source="io/io-context.c++:1303-1309", lemma=True)
def outer_contexts_are_entered() -> Expr:
    """Lemma: the saved outer context of an entered context is itself entered, on the same thread."""
    return ForAll(Ctx, lambda c: Implies(
        outer[c] != NONE,
        entered[c] & entered[outer[c].some] & (ctx_thread[outer[c].some] == ctx_thread[c])))

@m.invariant(rules=("INV-C6",), source="io/io-context.c++:152-218", lemma=True)
def unborn_contexts_are_unpinned() -> Expr:
    """Lemma: an id not yet used has no thread (so creating it is the only pinning)."""
    return ForAll(Ctx, lambda c: Implies(ctx_state[c] == UNBORN, ctx_thread[c] == NONE))

@m.invariant(rules=("INV-C3",), source="io/io-context.c++:1303-1309", lemma=True)
def saved_outer_is_unique() -> Expr:
    """Lemma: a context is the saved outer context of at most one other (the outer links do not branch)."""
    return ForAll(Ctx, lambda c: ForAll(Ctx, lambda d: Implies(
        (c != d) & (outer[c] != NONE), outer[d] != outer[c])))

@m.invariant(rules=("INV-C3",), source="io/io-context.c++:1303-1309", lemma=True)
def current_is_top_of_stack() -> Expr:
    """Lemma: a thread's current context is no context's saved outer one (it is the top of the stack)."""
    return ForAll(Thread, lambda t: ForAll(Ctx, lambda d: Implies(
        current[t] != NONE, outer[d] != current[t])))

m.terminal(ForAll(Ctx, lambda c: ctx_state[c] == DEAD))

MODEL = m.build()
