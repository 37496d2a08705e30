"""Seeded faults for the isolate locks (model.locks): each breaks one rule of AsyncLockQueue or Worker::Lock.

A fault whose ``breaks`` is ``("deadlock",)`` keeps every invariant and is caught by the
explorer's deadlock check (rule INV-L5) in a configuration without cancellation.
"""

from __future__ import annotations

from dataclasses import replace

from model.core import FALSE, Action, Expr, Model, Step
from model.faults import Fault
from model.locks import request_step, retry_step

SMALL = {"threads": 2, "isolates": 2, "lock_requests": 2}
#: three threads, one isolate: the smallest queue with a waiter behind another waiter
QUEUE = {"threads": 3, "isolates": 1, "lock_requests": 1}
#: no cancellation, so that a request that can never progress shows as a deadlock
NO_CANCEL = {**SMALL, "cancels": 0}

#: the pseudo-invariant name of the explorer's deadlock check
DEADLOCK = "deadlock"


def _from_step(act: Action, step: Step) -> Action:
    """``act`` with the updates and outputs of ``step`` (same guard)."""
    outputs = tuple((k, v) for k, v in step.outputs.items() if isinstance(v, Expr))
    return replace(act.with_updates(step.updates), outputs=outputs)


def _join_policy(m: Model, **policy: bool) -> list[Action]:
    """``request_lock`` and ``retry_lock`` with a different branch policy of ``lock()``'s loop."""
    req, retry = m.action("request_lock"), m.action("retry_lock")
    t, i = req.param_refs()
    u, j = retry.param_refs()
    return [_from_step(req, request_step(t, i, **policy)), _from_step(retry, retry_step(u, j, **policy))]


def _lifo(m: Model) -> list[Action]:
    return _join_policy(m, fifo=False)


def _no_coalescing(m: Model) -> list[Action]:
    return _join_policy(m, coalesce=False)


def _no_head_of_line_blocking(m: Model) -> list[Action]:
    return _join_policy(m, block_other=False)


def _grant_while_held(m: Model) -> list[Action]:
    return [m.action("grant").without_guard("at_front")]


def _sync_lock_other_isolate(m: Model) -> list[Action]:
    rejected = m.action("take_sync_lock_rejected").with_guard("some_check_fails", FALSE)
    return [m.action("take_sync_lock").without_guard("same_isolate"), rejected]


def _nested_worker_lock(m: Model) -> list[Action]:
    return [m.action("take_sync_lock").without_guard("not_in_worker_lock")]


def _sync_lock_without_async_lock(m: Model) -> list[Action]:
    return [m.action("take_sync_lock").without_guard("has_async_lock")]


def _release_inside_worker_lock(m: Model) -> list[Action]:
    return [m.action("release_lock").without_guard("outside_worker_lock")]


def _cancel_keeps_waiter(m: Model) -> list[Action]:
    return [m.action("cancel_wait").without_update("waiter").without_update("ahead")]


def _release_keeps_links(m: Model) -> list[Action]:
    return [m.action("release_lock").without_update("ahead")]


def _lost_wakeup(m: Model) -> list[Action]:
    # ~AsyncLockWaiter never fulfils releasePromise: a request blocked behind it never loops again
    return [m.action("retry_lock").with_guard("release_promise_fulfilled", FALSE)]


FAULTS: list[Fault] = [
    Fault("lifo_queue", "locks", "a new waiter is linked at the head of the list, not the tail",
          ("turns_in_request_order", "turn_holder_is_at_front"), _lifo, QUEUE),
    Fault("grant_while_held", "locks", "a waiter is granted while another waiter is ahead of it",
          ("one_turn_per_isolate", "turn_holder_is_at_front"), _grant_while_held, SMALL),
    Fault("no_coalescing", "locks", "a thread's second request for the same isolate queues its own waiter",
          ("one_waiter_per_thread",), _no_coalescing, SMALL),
    Fault("two_waiters_per_thread", "locks",
          "a request for another isolate queues at once instead of waiting for the thread's waiter to go",
          ("one_waiter_per_thread",), _no_head_of_line_blocking, SMALL),
    Fault("sync_lock_other_isolate", "locks", "Worker::Lock does not check the AsyncLock's isolate",
          ("worker_lock_matches_async_lock", "worker_lock_within_turn"), _sync_lock_other_isolate, SMALL),
    Fault("nested_worker_lock", "locks", "a second Worker::Lock is taken while the thread holds one",
          ("no_nested_worker_lock",), _nested_worker_lock, SMALL),
    Fault("sync_lock_without_async_lock", "locks", "Worker::Lock is taken without an AsyncLock (no turn)",
          ("one_worker_lock_per_isolate", "worker_lock_within_turn"), _sync_lock_without_async_lock, SMALL),
    Fault("release_inside_worker_lock", "locks", "the AsyncLock is dropped while its Worker::Lock is still held",
          ("worker_lock_within_turn",), _release_inside_worker_lock, SMALL),
    Fault("cancel_keeps_waiter", "locks", "cancelling the last pending request leaves its waiter in the list",
          ("waiters_exist_while_referenced",), _cancel_keeps_waiter, SMALL),
    Fault("release_keeps_links", "locks", "the last release clears threadCurrentWaiter but does not unlink the waiter",
          ("queue_is_a_strict_order",), _release_keeps_links, SMALL),
    Fault("lost_wakeup", "locks", "a release never fulfils releasePromise: a blocked request waits forever",
          (DEADLOCK,), _lost_wakeup, NO_CANCEL),
]
