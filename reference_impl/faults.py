"""Faulty variants of the reference implementation: each breaks exactly ONE rule.

A fault is switched on per runtime instance: ``Runtime(faults={"delete_on_wrong_thread"})``.
The runtime asks ``runtime.fault(name)`` at the one place where the rule is implemented, so
a variant differs from the reference implementation in that place only.  Each entry says
which rule it breaks and how the trace shows it: a step the models forbid (a failed guard)
or a result the models contradict.  The conformance suite and the live monitor must catch
every one of them (tests/test_reference_faults.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAULTS", "RuntimeFault", "check_faults", "fault_names"]


@dataclass(frozen=True)
class RuntimeFault:
    name: str
    rule: str  # rule id in model/rules.py
    description: str
    #: how the fault shows in a trace (the forbidden step or the wrong result)
    shows_as: str
    #: shows only in an unlucky schedule: caught by predictive checking and the controlled
    #: scheduler (tests/test_predict.py), not by a conformance scenario's one run
    interleaving_only: bool = False


_FAULTS = [
    RuntimeFault("delete_on_wrong_thread", "INV-O10",
                 "dropping an IoOwn frees the object at once on whatever thread drops it",
                 "drop_in_owner on a thread where the owner is not current (guard owner_current)"),
    RuntimeFault("access_check_missing", "INV-O2",
                 "IoOwn/IoPtr access skips checkFarGet",
                 "access with result OK where the model predicts ERR_DIFFERENT_REQUEST/DO"),
    RuntimeFault("access_check_compares_threads", "INV-O2",
                 "checkFarGet compares the accessing thread with the owner's thread instead of the contexts",
                 "access with result OK from another context on the owner's thread"),
    RuntimeFault("deletion_after_death", "INV-O5",
                 "a deletion for a closed queue is executed at once instead of being ignored",
                 "drop_in_owner for an object whose owner is dead (guard owner_current)"),
    RuntimeFault("double_deletion", "INV-O4",
                 "a handle dropped in its owner is freed at once AND queued",
                 "drop_elsewhere after drop_in_owner of the same handle (guard held)"),
    RuntimeFault("deletion_without_queue_lock", "INV-O6",
                 "scheduleDeletion pushes without taking the DeleteQueue mutex",
                 "push_deletion with no drop_elsewhere (the locked section) before it (guard pushing)"),
    # Interleaving-dependent: the trace of a lucky run is clean; predictive checking finds the schedule
    # (docs/predictive-checking.md).
    RuntimeFault("queue_lock_skipped", "INV-O6",
                 "scheduleDeletion records its locked section but never takes the DeleteQueue mutex",
                 "only in an unlucky schedule: the owner's enter between drop_elsewhere and push_deletion "
                 "(guard queue_mutex_free)", interleaving_only=True),
    RuntimeFault("queue_closed_without_lock", "INV-O5",
                 "~IoContext closes the DeleteQueue without taking its mutex",
                 "only in an unlucky schedule: destroy_end between a GC thread's drop_elsewhere and push_deletion "
                 "(guard queue_mutex_free)", interleaving_only=True),
    RuntimeFault("queue_processed_when_dead", "INV-O5",
                 "the DeleteQueue signal task is not cancelled at teardown and runs without checking the context",
                 "run_actions for a context that is no longer alive (guard alive): at once when the action is "
                 "scheduled and the context destroyed in one turn; otherwise only when the teardown task's step "
                 "runs before the signal task's on their loop (predictive checking, scenario signal_vs_teardown)"),
    RuntimeFault("drain_ignores_wait_until", "INV-T5",
                 "a stateless drain ends at once instead of waiting for waitUntil tasks",
                 "the request is destroyed while waitUntil tasks are pending; they are cancelled"),
    RuntimeFault("drain_waits_for_tasks", "INV-T5",
                 "a stateless drain also waits for plain tasks (and so timers' work)",
                 "a plain task completes after the drain should have ended (observed side effect)"),
    RuntimeFault("pass_through_ignored", "INV-E4",
                 "passThroughOnException() is recorded but the fail-open branch is never taken",
                 "tunnel_exception although the context is fail-open and nothing was sent"),
    RuntimeFault("fallback_after_headers", "INV-E5",
                 "fail-open is still taken after the response headers were sent",
                 "fail_open after response_sent"),
    RuntimeFault("exception_after_headers_500", "INV-E5",
                 "an exception after the headers were sent produces a synthetic 500",
                 "synthetic_status after response_sent"),
    RuntimeFault("async_lock_lifo", "INV-L3",
                 "the AsyncLock grants the newest waiter instead of the oldest",
                 "lock_grant to a thread that is not the longest waiting"),
    RuntimeFault("actor_new_context_per_request", "INV-C5",
                 "an actor gets a new IoContext for every request",
                 "set_io_context for an actor that already has a context (guard fresh_actor)"),
    RuntimeFault("superseded_drain_not_cancelled", "INV-R5",
                 "delivering a new actor request does not cancel the previous front request's drain",
                 "the superseded drain keeps running (its request is destroyed late)"),
    RuntimeFault("deliver_twice", "G1",
                 "delivered() accepts a second call",
                 "deliver with result OK where the model predicts ERR_DELIVERED_TWICE"),
    RuntimeFault("run_without_request", "INV-R8",
                 "run() does not require a current IncomingRequest (an actor context outlives its requests)",
                 "enter in a context with no delivered request left (guard has_request)"),
    RuntimeFault("run_after_abort", "INV-A2",
                 "run() does not refuse an aborted context",
                 "enter with result OK where the model predicts ERR_ABORTED"),
    RuntimeFault("finish_scheduled_ignores_wait_until", "INV-S1",
                 "finishScheduled() returns without waiting for waitUntil tasks",
                 "scheduled_result while waitUntil tasks are pending"),
    RuntimeFault("last_failure_wins", "INV-T2",
                 "every failing task overwrites the waitUntil status (the first failure should win)",
                 "scheduled_result outcome differs from the first failure's"),
    RuntimeFault("abort_last_reason_wins", "INV-A1",
                 "abort() overwrites an earlier abort reason",
                 "the abort reason seen by later steps is the second one"),
]

FAULTS: dict[str, RuntimeFault] = {f.name: f for f in _FAULTS}


def fault_names(*, interleaving_only: bool | None = None) -> list[str]:
    """Every fault's name, or only those that do (True) / do not (False) need an unlucky schedule."""
    return sorted(n for n, f in FAULTS.items() if interleaving_only is None or f.interleaving_only == interleaving_only)


def check_faults(names: set[str] | frozenset[str] | list[str] | tuple[str, ...]) -> frozenset[str]:
    """Validate fault names; ValueError (one line) naming the unknown ones."""
    unknown = sorted(set(names) - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(fault_names())}")
    return frozenset(names)
