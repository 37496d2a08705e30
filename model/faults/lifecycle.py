"""Seeded faults for the IncomingRequest lifecycle (model.lifecycle): each is a bug workerd could have."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from model.core import FALSE, Action, Expr, Ite, Model
from model.core.model import FuncAssign
from model.faults import Fault
from model.faults._edit import set_update
from model.lifecycle import (
    CREATED,
    CURRENT,
    DRAIN_SKIPPED,
    DRAINING,
    SUPERSEDED,
    Outcome,
    end_request,
    is_front,
    phase,
    tasks,
    wait_until,
    wu_status,
)

#: One stateless context and its request.
STATELESS = {"threads": 1, "contexts": 1, "requests": 1, "max_tasks": 1, "actors": 0, "nesting": 0}
#: One actor context and two requests.
ACTOR = {"threads": 1, "contexts": 1, "requests": 2, "max_tasks": 1, "actors": 1, "nesting": 0, "aborts": 0}


def replace_func_update(action: Action, func_name: str, body: Callable[..., Expr]) -> Action:
    """``action`` with its whole-function update of ``func_name`` replaced by ``body(*params, *indices)``."""
    found = [u for u in action.updates if isinstance(u, FuncAssign) and u.func.name == func_name]
    if not found:
        raise ValueError(f"action {action.name} has no whole-function update of {func_name!r}")
    params = action.param_refs()
    kept: list[Any] = [u for u in action.updates if u not in found]
    return action.with_updates([*kept, (found[0].func, lambda *idx: body(*params, *idx))])


def replace_guard(action: Action, label: str, cond: Expr) -> Action:
    """``action`` with guard conjunct ``label`` replaced in place (later conjuncts may rely on earlier ones)."""
    if label not in dict(action.guard):
        raise ValueError(f"action {action.name} has no guard {label!r}")
    return replace(action, guard=tuple((k, cond if k == label else g) for k, g in action.guard))


def _deliver_twice(m: Model) -> list[Action]:
    return [m.action("deliver").without_guard("not_delivered")]


def _destructor_keeps_link(m: Model) -> list[Action]:
    from model.lifecycle import linked

    return [set_update(m.action("drain_done"), "linked", lambda r, *_: linked[r])]


def _no_demotion(m: Model) -> list[Action]:
    return [replace_func_update(m.action("deliver"), "phase", lambda r, x: Ite(x == r, CURRENT, phase[x]))]


def _second_request(m: Model) -> list[Action]:
    return [m.action("create_request").without_guard("stateless_gets_one")]


def _old_drain_kept(m: Model) -> list[Action]:
    return [m.action("deliver").without_update("handed_over")]


def _drain_leaks_superseded(m: Model) -> list[Action]:
    a = m.action("drain")
    (r,) = a.param_refs()
    leak = end_request(r, DRAIN_SKIPPED, when=FALSE, otherwise=Ite(is_front(r), DRAINING, phase[r]))
    kept: list[Any] = [u for u in a.updates if u.decl.name == "waited"]
    return [a.with_updates([*kept, *leak.items()])]


def _drain_undelivered(m: Model) -> list[Action]:
    a = m.action("drain")
    (r,) = a.param_refs()
    return [replace_guard(a, "delivered_and_held", (phase[r] == CURRENT) | (phase[r] == CREATED)
                          | (phase[r] == SUPERSEDED))]


def _enter_without_request(m: Model) -> list[Action]:
    return [m.action("enter").without_guard("has_request")]


def _scheduled_to_actor(m: Model) -> list[Action]:
    return [m.action("finish_scheduled").without_guard("not_actor")]


def _destroy_context_with_request(m: Model) -> list[Action]:
    return [m.action("destroy_begin").without_guard("unowned")]


def _actor_task_not_routed(m: Model) -> list[Action]:
    a = set_update(m.action("add_task"), "tasks", lambda c, *_: tasks[c] + 1)
    return [set_update(a, "wait_until", lambda c, *_: wait_until[c])]


def _last_result_wins(m: Model) -> list[Action]:
    return [set_update(m.action("wait_until_done"), "wu_status",
                       lambda c, ok, *_: Ite(ok, Outcome.OK, Outcome.EXCEPTION))]


def _teardown_keeps_tasks(m: Model) -> list[Action]:
    return [m.action("destroy_end").without_update("wait_until")]


def _drain_done_early(m: Model) -> list[Action]:
    return [m.action("drain_done").without_guard("wait_until_empty")]


def _abort_clears_tasks(m: Model) -> list[Action]:
    a = m.action("abort")
    c, _reason = a.param_refs()
    extra: list[Any] = [(tasks[c], 0), (wait_until[c], 0)]
    return [a.with_updates([*a.updates, *extra])]


def _hang_abort_actor(m: Model) -> list[Action]:
    return [m.action("abort_from_hang").without_guard("stateless")]


def _drain_limit_in_standalone(m: Model) -> list[Action]:
    return [m.action("drain_timeout").without_guard("production_limits")]


def _cancel_delivered(m: Model) -> list[Action]:
    a = m.action("cancel_request")
    (r,) = a.param_refs()
    return [replace_guard(a, "undelivered", (phase[r] == CREATED) | (phase[r] == CURRENT))]


def _drain_ends_inside_js(m: Model) -> list[Action]:
    return [m.action("drain_done").without_guard("event_loop_turn")]


def _wait_until_before_creation(m: Model) -> list[Action]:
    return [m.action("add_wait_until").without_guard("context_alive").without_guard("owned")]


def _exit_stays_entered(m: Model) -> list[Action]:
    return [m.action("exit").without_update("entered")]


def _reenter_saves_itself(m: Model) -> list[Action]:
    return [m.action("enter").without_guard("not_entered")]


def _order_not_recorded(m: Model) -> list[Action]:
    return [m.action("deliver").without_update("newer")]


FAULTS = [
    Fault("deliver_twice", "lifecycle", "delivered() does not refuse a second call",
          ("delivered_at_most_once",), _deliver_twice, STATELESS),
    Fault("destructor_keeps_link", "lifecycle", "~IncomingRequest leaves the request in incomingRequests",
          ("listed_iff_delivered_and_alive",), _destructor_keeps_link, STATELESS),
    Fault("no_demotion", "lifecycle", "delivered() leaves the previous head current",
          ("current_is_newest_delivered",), _no_demotion, ACTOR),
    Fault("second_request_in_stateless_context", "lifecycle", "init() reuses a stateless context for a second request",
          ("stateless_context_has_one_request",), _second_request, {**STATELESS, "requests": 2}),
    Fault("new_delivery_keeps_old_drain", "lifecycle", "delivered() does not fulfil the old head's drainFulfiller",
          ("single_drainer",), _old_drain_kept, ACTOR),
    Fault("drain_leaks_superseded_request", "lifecycle",
          "drain() of a superseded request returns without consuming it (incoming-request-test.c++:100)",
          ("drain_consumes_the_request",), _drain_leaks_superseded, ACTOR),
    Fault("drain_undelivered", "lifecycle", "drain() is called on a request that was never delivered",
          ("drain_consumes_the_request",), _drain_undelivered, STATELESS),
    Fault("enter_without_request", "lifecycle", "run() does not need a current IncomingRequest",
          ("js_runs_with_a_request",), _enter_without_request, STATELESS),
    Fault("scheduled_to_actor", "lifecycle", "finishScheduled() does not assert a stateless context",
          ("scheduled_never_in_actors",), _scheduled_to_actor, {**ACTOR, "requests": 1}),
    Fault("destroy_context_with_request", "lifecycle", "the IoContext is destroyed while a request holds it",
          ("requests_keep_their_context_alive",), _destroy_context_with_request, STATELESS),
    Fault("actor_task_not_routed", "lifecycle", "addTask in an actor goes to tasks instead of waitUntilTasks",
          ("actors_have_no_plain_tasks",), _actor_task_not_routed, {**ACTOR, "requests": 1}),
    Fault("last_result_wins", "lifecycle", "every settled waitUntil task overwrites waitUntilStatus",
          ("first_failure_wins",), _last_result_wins, STATELESS),
    Fault("teardown_keeps_tasks", "lifecycle", "~IoContext does not cancel the waitUntil tasks",
          ("destruction_cancels_all",), _teardown_keeps_tasks, STATELESS),
    Fault("drain_done_early", "lifecycle", "the drain ends before the waitUntil set is empty",
          ("done_only_when_wait_until_empty",), _drain_done_early, STATELESS),
    Fault("abort_clears_tasks", "lifecycle", "abort() cancels the tasks synchronously",
          ("abort_cancels_nothing_synchronously",), _abort_clears_tasks, STATELESS),
    Fault("hang_abort_actor", "lifecycle", "hang detection also aborts actors",
          ("hang_abort_only_when_idle_and_stateless",), _hang_abort_actor, {**ACTOR, "requests": 1}),
    Fault("drain_limit_in_standalone", "lifecycle", "limitDrain() fires without a production limit enforcer",
          ("no_timeouts_in_standalone_workerd",), _drain_limit_in_standalone, STATELESS),
    Fault("cancel_delivered_request", "lifecycle", "a delivered request is treated as canceled before delivery",
          ("phase_matches_fields",), _cancel_delivered, STATELESS),
    Fault("drain_ends_inside_js", "lifecycle", "a drain completes (and destroys the request) while its context runs JS",
          ("entered_contexts_have_a_request", "unowned_contexts_run_nothing"), _drain_ends_inside_js, STATELESS),
    Fault("exit_stays_entered", "lifecycle", "leaving runInContextScope does not clear the context's entered flag",
          ("threads_with_entered_contexts_are_busy",), _exit_stays_entered, STATELESS),
    Fault("reenter_saves_itself", "lifecycle", "a re-entered context saves itself as its own outer context",
          ("no_context_is_its_own_outer",), _reenter_saves_itself, {**STATELESS, "nesting": 1}),
    Fault("wait_until_before_creation", "lifecycle",
          "addWaitUntil reaches an IoContext that was never constructed (a dangling or early reference)",
          ("unborn_contexts_have_no_tasks",), _wait_until_before_creation, STATELESS),
    Fault("delivery_order_not_recorded", "lifecycle", "delivered() does not put the request at the list's front",
          ("newer_orders_each_list", "current_is_newest_delivered"), _order_not_recorded, ACTOR),
]

_ = wu_status
