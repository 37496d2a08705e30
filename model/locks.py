"""Isolate locks: the fair ``AsyncLockQueue`` (``Worker::AsyncLock``) and the synchronous ``Worker::Lock``.

Follows workerd's io/async-lock-scheduler.h and io/worker.{h,c++} at commit 6552d999:

* ``AsyncLockQueue<Isolate>::lock()`` (async-lock-scheduler.h:234-274) is `request_lock`.  It
  reads the thread's ``threadCurrentWaiter`` (h:158-159: **one waiter per thread across all
  isolates**) and takes one of three branches, which the model reports as the output
  ``joined`` (the same facts the ``Hooks`` report, h:80-94):

  - ``QUEUED``: the thread has no waiter; a new ``AsyncLockWaiter`` is linked at the *tail*
    of the isolate's list (h:169-200); it is ready at once if the list was empty;
  - ``COALESCED``: the thread's waiter is for this isolate; the request takes a reference to
    it and shares its turn (h:254-262), so nested requests never wait behind themselves;
  - ``BLOCKED``: the thread's waiter is for another isolate; the request waits for that
    waiter's ``releasePromise`` and then loops (h:263-272): head-of-line blocking.

  `retry_lock` is one such loop iteration after the release (the three branches again); a
  retry that finds the thread's waiter on yet another isolate blocks again and changes nothing.
* A queued or coalesced request resumes with an ``AsyncLock`` when its waiter's
  ``readyPromise`` fires, i.e. when nobody is ahead of it in the list: `grant`.
* ``~AsyncLockWaiter`` (h:202-230) runs when the last reference goes (`release_lock` of the last
  ``AsyncLock``, or `cancel_wait` of the last pending request): it unlinks the waiter and, if
  it was at the front, fulfils the next waiter's ``readyFulfiller`` (the turn handover; here
  the next waiter simply has nobody ahead any more) and clears ``threadCurrentWaiter``.
  Cancelling a request that is still waiting (`cancel_wait`, `cancel_blocked`) leaves no
  trace (async-lock-scheduler-test.c++:164-186).
* ``Worker::Lock(worker, asyncLock)`` (worker.c++:563-626, 2366-2413) is `take_sync_lock`:
  ``KJ_REQUIRE(&async->lock.getResource() == &isolate, "async lock was taken against a
  different isolate than the synchronous lock")`` (c++:577-578) and
  ``KJ_DASSERT(impl.currentLock == kj::none, "Isolate lock taken recursively")`` (c++:597).
  It is stack-allocated and synchronous: while it is held, the thread's event loop runs no
  continuation (no `grant`, `release`, `retry_lock` on that thread).  `release_sync_lock` is
  its destructor.

What the model abstracts: FIFO order is the relation ``ahead[a, b]`` among the waiters of
one isolate (no ordering ids, so thread ids stay symmetric); the thread's waiter is
``waiter[t]`` (its isolate); a waiter's references are counted (``pending`` requests not yet
resumed, ``held`` AsyncLocks granted and not yet dropped); requests blocked behind another
isolate are counted per (thread, isolate).  Each thread calls ``lock()`` at most
``lock_requests`` times in a run (``requested``): bounding the environment makes every run
finite, so the explorer's deadlock check shows progress (rule INV-L5) in the configurations
without cancellation (``cancels=false``); a monitor checking a long trace sets ``budget=false``
(no limit on calls; ``lock_requests`` then bounds only the requests outstanding at once).
``Worker::Lock::TakeSynchronously`` (the escape hatch that takes the V8 lock without an
AsyncLock) and the load gauge are not modelled.

Where the seed article and the source differ: the article says AsyncLock makes threads
"queue up fairly" when they want the same isolate; fairness holds *between threads* only.
Requests on one thread coalesce into a single turn (no per-request FIFO), and a thread
waiting for or holding one isolate cannot even queue for another (head-of-line blocking).
"""

from __future__ import annotations

from model.core import (
    BOOL,
    FALSE,
    NONE,
    TRUE,
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
    Post,
    Step,
)
from model.vocab import Isolate, Result, Thread

__all__ = ["ACTIONS", "MODEL", "Joined", "join_step", "request_step", "retry_step"]

Joined = Enum("Joined", "QUEUED COALESCED BLOCKED")
QUEUED, COALESCED, BLOCKED = Joined.QUEUED, Joined.COALESCED, Joined.BLOCKED

#: The trace events an implementation emits, with their parameters (see docs/trace-format.md).
ACTIONS = {
    "request_lock": ("t", "i"),
    "retry_lock": ("t", "i"),
    "grant": ("t", "i"),
    "release_lock": ("t", "i"),
    "cancel_wait": ("t", "i"),
    "cancel_blocked": ("t", "i"),
    "take_sync_lock": ("t", "i"),
    "release_sync_lock": ("t", "i"),
}

m = ModelBuilder("locks", __doc__ or "", bounds={"threads": 2, "isolates": 2, "lock_requests": 2})

Attempts = Int("Attempts", 0, "lock_requests")

waiter = m.func("waiter", Thread, Opt(Isolate), NONE,
                "threadCurrentWaiter: the isolate whose queue holds this thread's one waiter")
ahead = m.func("ahead", (Thread, Thread), BOOL, False,
               "ahead[a, b]: a's waiter is ahead of b's in the same isolate's list (FIFO order)")
pending = m.func("pending", Thread, Attempts, 0, "lock() requests sharing the thread's waiter, not yet resumed")
held = m.func("held", Thread, Attempts, 0, "AsyncLocks granted from the thread's waiter and not yet dropped")
blocked = m.func("blocked", (Thread, Isolate), Attempts, 0,
                 "lock() requests for an isolate waiting for the thread's waiter on another isolate to go")
requested = m.func("requested", Thread, Attempts, 0, "lock() calls the thread has made (the environment's budget)")
worker_lock = m.func("worker_lock", Thread, Opt(Isolate), NONE,
                     "the isolate whose Worker::Lock is on this thread's stack")

cancels = m.const("cancels", BOOL, True, "configurations may leave cancellation out (then progress is checkable)")
budget = m.const("budget", BOOL, True,
                 "each thread calls lock() at most lock_requests times; a monitor of a long trace turns this off")

second_waiter = m.var("second_waiter", BOOL, False, "a thread queued a waiter while it had one", ghost=True)
foreign_worker_lock = m.var("foreign_worker_lock", BOOL, False,
                            "a Worker::Lock was taken on an isolate other than its AsyncLock's", ghost=True)
nested_worker_lock = m.var("nested_worker_lock", BOOL, False,
                           "a Worker::Lock was taken while the thread held one", ghost=True)


def at_front(t: Expr) -> Expr:
    """Nobody is ahead of ``t``'s waiter: its ``readyPromise`` has fired (it holds the turn)."""
    return ~Exists(Thread, lambda u: ahead[u, t])


def join_step(t: Expr, i: Expr, *, coalesce: bool = True, block_other: bool = True,
              fifo: bool = True) -> tuple[dict, Expr]:
    """One iteration of ``lock()``'s loop (async-lock-scheduler.h:242-273): updates and the ``joined`` output.

    The keyword switches exist for the seeded faults (model/faults/locks.py): without
    ``coalesce`` or ``block_other`` a request for the same or another isolate queues a fresh
    waiter; without ``fifo`` a new waiter is linked at the head of the list.
    """
    none = waiter[t] == NONE
    same = waiter[t] == i
    queue = none | (FALSE if coalesce else same) | (FALSE if block_other else ~none & ~same)
    share = same if coalesce else FALSE
    goes_on = queue | share
    if fifo:  # the new waiter goes to the tail: every waiter already in i's list is ahead of it
        link = lambda a, b: Ite(queue & (b == t) & (a != t), waiter[a] == i, ahead[a, b])
    else:
        link = lambda a, b: Ite(queue & (a == t) & (b != t), waiter[b] == i,
                                Ite(queue & (b == t), False, ahead[a, b]))
    updates = {
        waiter[t]: Ite(queue, i, waiter[t]),
        ahead: link,
        pending[t]: Ite(goes_on, pending[t] + 1, pending[t]),
        second_waiter: second_waiter | (queue & ~none),
    }
    return updates, Ite(queue, QUEUED, Ite(share, COALESCED, BLOCKED))


def request_step(t: Expr, i: Expr, **policy: bool) -> Step:
    """`request_lock`'s step (``policy``: see `join_step`)."""
    updates, joined = join_step(t, i, **policy)
    return Step(
        guard=TRUE,
        updates={**updates, requested[t]: Ite(budget, requested[t] + 1, requested[t]),
                 blocked[t, i]: Ite(joined == BLOCKED, blocked[t, i] + 1, blocked[t, i])},
        outputs={"joined": joined},
    )


def retry_step(t: Expr, i: Expr, **policy: bool) -> Step:
    """`retry_lock`'s step (``policy``: see `join_step`)."""
    updates, joined = join_step(t, i, **policy)
    return Step(
        guard={"blocked_request": blocked[t, i] > 0, "event_loop_free": worker_lock[t] == NONE},
        updates={**updates, blocked[t, i]: Ite(joined == BLOCKED, blocked[t, i], blocked[t, i] - 1)},
        outputs={"joined": joined},
    )


def _unlink_if(last: Expr, t: Expr) -> dict:
    """``~AsyncLockWaiter``: unlink, hand the turn to the next waiter, clear threadCurrentWaiter."""
    return {
        waiter[t]: Ite(last, NONE, waiter[t]),
        ahead: lambda a, b: Ite(last & ((a == t) | (b == t)), False, ahead[a, b]),
    }


# ---- requesting a turn ----------------------------------------------------------------------------


@m.action(params={"t": Thread, "i": Isolate}, rules=("INV-L2", "INV-L3"),
          source=("io/async-lock-scheduler.h:234-274", "io/worker.c++:2814-2825"))
def request_lock(t: Expr, i: Expr) -> Step:
    """``takeAsyncLock``: queue a new waiter, share the thread's waiter, or wait for the thread's other isolate."""
    return request_step(t, i)


@m.action(params={"t": Thread, "i": Isolate}, rules=("INV-L2", "INV-L5"), source="io/async-lock-scheduler.h:263-272")
def retry_lock(t: Expr, i: Expr) -> Step:
    """A request blocked behind another isolate loops after that waiter's release: queue, share, or wait again."""
    return retry_step(t, i)


@m.action(params={"t": Thread, "i": Isolate}, rules=("INV-L1", "INV-L3"), source="io/async-lock-scheduler.h:252-262")
def grant(t: Expr, i: Expr) -> Step:
    """The waiter's ``readyPromise`` has fired (nobody ahead): one pending request resumes with an AsyncLock."""
    return Step(
        guard={"pending_request": pending[t] > 0, "queued_here": waiter[t] == i, "at_front": at_front(t),
               "event_loop_free": worker_lock[t] == NONE},
        updates={pending[t]: pending[t] - 1, held[t]: held[t] + 1},
    )


@m.action(params={"t": Thread, "i": Isolate}, rules=("INV-L1", "INV-L3"), source="io/async-lock-scheduler.h:202-230")
def release_lock(t: Expr, i: Expr) -> Step:
    """Drop an AsyncLock; the last reference destroys the waiter, handing the turn to the next one."""
    last = (held[t] == 1) & (pending[t] == 0)
    return Step(
        guard={"holds_async_lock": held[t] > 0, "queued_here": waiter[t] == i,
               "outside_worker_lock": worker_lock[t] == NONE},
        updates={held[t]: held[t] - 1, **_unlink_if(last, t)},
    )


@m.action(params={"t": Thread, "i": Isolate}, rules=("INV-L2", "INV-L3"),
          source=("io/async-lock-scheduler.h:202-230", "io/async-lock-scheduler-test.c++:164-186"))
def cancel_wait(t: Expr, i: Expr) -> Step:
    """A queued or coalesced request is dropped before it resumed; the last reference unlinks the waiter."""
    last = (pending[t] == 1) & (held[t] == 0)
    return Step(
        guard={"pending_request": pending[t] > 0, "queued_here": waiter[t] == i, "cancels_in_scope": cancels},
        updates={pending[t]: pending[t] - 1, **_unlink_if(last, t)},
    )


@m.action(params={"t": Thread, "i": Isolate}, rules=("INV-L2",), source="io/async-lock-scheduler-test.c++:164-186")
def cancel_blocked(t: Expr, i: Expr) -> Step:
    """A request still waiting for the thread's other isolate is dropped: it was never queued."""
    return Step(
        guard={"blocked_request": blocked[t, i] > 0, "cancels_in_scope": cancels},
        updates={blocked[t, i]: blocked[t, i] - 1},
    )


# ---- the synchronous lock --------------------------------------------------------------------------


@m.action(params={"t": Thread, "i": Isolate}, rules=("INV-L1", "INV-L4"), source="io/worker.c++:563-610")
def take_sync_lock(t: Expr, i: Expr) -> Step:
    """``Worker::Lock(worker of isolate i, asyncLock)``: only against the isolate of the AsyncLock held."""
    return Step(
        guard={"has_async_lock": held[t] > 0, "not_in_worker_lock": worker_lock[t] == NONE},
        checks=[("same_isolate", waiter[t] == i, Result.ERR_LOCK_OTHER_ISOLATE)],
        updates={
            worker_lock[t]: i,
            foreign_worker_lock: foreign_worker_lock | (waiter[t] != i),
            nested_worker_lock: nested_worker_lock | (worker_lock[t] != NONE),
        },
    )


@m.action(params={"t": Thread, "i": Isolate}, rules=("INV-L1",), source="io/worker.c++:611-626")
def release_sync_lock(t: Expr, i: Expr) -> Step:
    """``~Worker::Lock``: the V8 lock is released; the thread's event loop may run again."""
    return Step(guard={"holds_worker_lock": worker_lock[t] == i}, updates={worker_lock[t]: NONE})


# ---- invariants ------------------------------------------------------------------------------------


def _same_queue(a: Expr, b: Expr) -> Expr:
    return (waiter[a] != NONE) & (waiter[a] == waiter[b])


@m.invariant(rules=("INV-L1",), source="io/async-lock-scheduler.h:220-225")
def one_turn_per_isolate() -> Expr:
    """At most one thread holds AsyncLocks on an isolate."""
    return ForAll(Thread, lambda a: ForAll(Thread, lambda b: Implies(
        (a != b) & (held[a] > 0) & (held[b] > 0), waiter[a] != waiter[b])))


@m.invariant(rules=("INV-L1", "INV-L3"), source="io/async-lock-scheduler.h:182-190,220-225")
def turn_holder_is_at_front() -> Expr:
    """A thread holding AsyncLocks has a waiter with nobody ahead of it."""
    return ForAll(Thread, lambda t: Implies(held[t] > 0, (waiter[t] != NONE) & at_front(t)))


@m.invariant(rules=("INV-L1",), source="io/worker.c++:597")
def one_worker_lock_per_isolate() -> Expr:
    """At most one thread holds an isolate's Worker::Lock: threads never fight over the V8 lock."""
    return ForAll(Thread, lambda a: ForAll(Thread, lambda b: Implies(
        (a != b) & (worker_lock[a] != NONE), worker_lock[a] != worker_lock[b])))


@m.invariant(rules=("INV-L1", "INV-L4"), source=("io/worker.h:822-830", "io/worker.c++:576-580"))
def worker_lock_within_turn() -> Expr:
    """A Worker::Lock is held only inside the thread's turn on that isolate."""
    return ForAll(Thread, lambda t: Implies(
        worker_lock[t] != NONE, (held[t] > 0) & (waiter[t] == worker_lock[t])))


@m.invariant(rules=("INV-L4",), source="io/worker.c++:577-578")
def worker_lock_matches_async_lock() -> Expr:
    """No Worker::Lock was ever taken against an isolate other than the one of the AsyncLock passed to it."""
    return ~foreign_worker_lock


@m.invariant(rules=("INV-L1",), source="io/worker.c++:597")
def no_nested_worker_lock() -> Expr:
    """No thread took a Worker::Lock while it already held one: one at a time within the turn."""
    return ~nested_worker_lock


@m.invariant(rules=("INV-L2",), source="io/async-lock-scheduler.h:158-159,245-272")
def one_waiter_per_thread() -> Expr:
    """No thread ever queued a waiter while it had one (same isolate: coalesce; another: wait for release)."""
    return ~second_waiter


@m.invariant(rules=("INV-L3",), source="io/async-lock-scheduler.h:192-195")
def turns_in_request_order() -> Expr:
    """FIFO: the order of two waiters never changes, and a new waiter joins behind every waiter of its isolate."""
    def stays(t: Expr) -> Expr:
        return (waiter[t] != NONE) & (Post(waiter[t]) == waiter[t])

    return ForAll(Thread, lambda a: ForAll(Thread, lambda b: Implies(
        stays(a) & stays(b), Post(ahead[a, b]) == ahead[a, b])
        & Implies(stays(a) & (waiter[b] == NONE) & (Post(waiter[b]) == waiter[a]), Post(ahead[a, b]))))


@m.invariant(rules=("INV-L3", "INV-L5"), source="io/async-lock-scheduler.h:136-147,192-225", lemma=True)
def queue_is_a_strict_order() -> Expr:
    """Lemma: ``ahead`` totally orders each isolate's waiters (so every non-empty queue has a front)."""
    return ForAll(Thread, lambda a: ForAll(Thread, lambda b: Implies(
        ahead[a, b], (a != b) & _same_queue(a, b) & ~ahead[b, a])
        & Implies((a != b) & _same_queue(a, b), ahead[a, b] | ahead[b, a])
        & ForAll(Thread, lambda c: Implies(ahead[a, b] & ahead[b, c], ahead[a, c]))))


@m.invariant(rules=("INV-L2", "INV-L5"), source=("io/async-lock-scheduler.h:31-36,202-230",
                                                  "io/async-lock-scheduler-test.c++:164-186"), lemma=True)
def waiters_exist_while_referenced() -> Expr:
    """Lemma: a thread has a waiter exactly while a request or AsyncLock refers to it (cancelling leaves no trace)."""
    return ForAll(Thread, lambda t: Iff(waiter[t] != NONE, (pending[t] > 0) | (held[t] > 0)))


m.terminal(ForAll(Thread, lambda t: (waiter[t] == NONE) & (worker_lock[t] == NONE)
                  & ForAll(Isolate, lambda i: blocked[t, i] == 0)))

MODEL = m.build()
