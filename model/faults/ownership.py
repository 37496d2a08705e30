"""Seeded faults for the I/O ownership model (model.ownership)."""

from __future__ import annotations

from model.context import ALIVE, DEAD, ctx_state, ctx_thread, current
from model.core import NONE, TRUE, Model
from model.faults import Fault
from model.faults._edit import set_update
from model.ownership import LINKED, LIVE, owner

SMALL = {"threads": 2, "contexts": 2, "objects": 1, "max_actions": 0}
TINY = {"threads": 1, "contexts": 1, "objects": 1, "max_actions": 0}


def _create_not_current(m: Model) -> list:
    return [m.action("add_object").without_guard("context_current")]


def _compare_threads(m: Model) -> list:
    a = m.action("access")
    o, t = a.param_refs()
    same_thread = (current[t] != NONE) & (ctx_thread[current[t].some] == ctx_thread[owner[o].some])
    return [a.with_guard("same_context", same_thread)]


def _no_access_check(m: Model) -> list:
    return [m.action("access").without_guard("has_current").without_guard("same_context")]


def _delete_on_wrong_thread(m: Model) -> list:
    return [m.action("drop_in_owner").without_guard("owner_current")]


def _push_after_death(m: Model) -> list:
    return [set_update(m.action("push_deletion"), "queued", lambda t, *_: TRUE)]


def _reverse_frees_when_invalid(m: Model) -> list:
    from model.ownership import FREED, double_free, node

    a = set_update(m.action("drop_reverse"), "node", lambda o, t, *_: FREED)
    return [set_update(a, "double_free", lambda o, t, *_: double_free | (node[o] != LINKED))]


def _leak_at_death(m: Model) -> list:
    return [m.action("destroy_end").without_guard("objects_freed")]


def _push_without_mutex(m: Model) -> list:
    a = m.action("drop_elsewhere").without_guard("take_mutex").without_update("queue_lock")
    return [a]


def _schedule_without_signal(m: Model) -> list:
    return [m.action("schedule_action").without_update("signaled")]


def _free_while_alive(m: Model) -> list:
    return [m.action("teardown_free").without_guard("owner_tearing_down")]


def _destroy_while_current(m: Model) -> list:
    return [m.action("destroy_begin").without_guard("not_running")]


def _queue_not_cleared(m: Model) -> list:
    from dataclasses import replace

    from model.core.model import FuncAssign

    a = m.action("enter")
    kept = tuple(u for u in a.updates if not (isinstance(u, FuncAssign) and u.func.name == "queued"))
    return [replace(a, updates=kept)]


def _release_keeps_handle(m: Model) -> list:
    return [m.action("release").without_update("handle")]


def _push_keeps_mutex(m: Model) -> list:
    return [m.action("push_deletion").without_update("queue_lock")]


def _release_any_kind(m: Model) -> list:
    return [m.action("release").without_guard("io_own")]


def _schedule_before_creation(m: Model) -> list:
    return [m.action("schedule_action").without_guard("queue_exists")]


def _drop_ptr_schedules_deletion(m: Model) -> list:
    return [m.action("drop_elsewhere").without_guard("io_own")]


FAULTS = [
    Fault("create_without_current", "ownership", "addObject does not require the context to be current",
          ("created_in_current_context",), _create_not_current, SMALL),
    Fault("access_compares_threads", "ownership",
          "checkFarGet compares threads instead of queues (contexts)",
          ("io_only_in_owning_context",), _compare_threads, {**SMALL, "threads": 1}),
    Fault("access_check_missing", "ownership", "IoOwn access is not checked at all",
          ("io_only_in_owning_context",), _no_access_check, SMALL),
    Fault("delete_on_wrong_thread", "ownership", "scheduleDeletion deletes at once on any thread",
          ("freed_on_owner_thread",), _delete_on_wrong_thread, SMALL),
    Fault("push_after_death", "ownership", "scheduleDeletion pushes into a dead context's queue",
          ("dead_queues_are_empty",), _push_after_death, SMALL),
    Fault("reverse_frees_when_invalid", "ownership",
          "~ReverseIoOwn frees the node even after the context was torn down",
          ("freed_at_most_once",), _reverse_frees_when_invalid, TINY),
    Fault("leak_at_death", "ownership", "the context dies without freeing its owned objects",
          ("nothing_outlives_its_context",), _leak_at_death, TINY),
    Fault("push_without_mutex", "ownership", "scheduleDeletion writes the queue without its mutex",
          ("queue_written_under_mutex",), _push_without_mutex, SMALL),
    Fault("schedule_without_signal", "ownership", "scheduleAction does not fulfil the cross-thread signal",
          ("pending_actions_are_signaled",), _schedule_without_signal, {**TINY, "max_actions": 1}),
    Fault("free_while_alive", "ownership", "owned objects are freed while the context is still valid",
          ("reverse_handles_to_freed_nodes_are_invalid",), _free_while_alive, TINY),
    Fault("destroy_while_current", "ownership", "a context is destroyed while current on its thread",
          ("dead_contexts_are_never_current",), _destroy_while_current, TINY),
    Fault("queue_not_cleared", "ownership", "processing the queue frees the nodes but leaves the pointers",
          ("queued_nodes_are_linked_while_alive",), _queue_not_cleared, SMALL),
    Fault("release_keeps_handle", "ownership", "releasing an IoOwn leaves its handle live",
          ("handles_point_into_their_owner",), _release_keeps_handle, TINY),
    Fault("push_keeps_mutex", "ownership", "scheduleDeletion forgets to unlock the queue",
          ("mutex_held_only_by_pushers",), _push_keeps_mutex, SMALL),
    Fault("release_any_kind", "ownership", "an IoPtr or ReverseIoOwn can be released into a plain Own",
          ("node_matches_kind",), _release_any_kind, TINY),
    Fault("schedule_before_creation", "ownership", "scheduleAction queues into a context that does not exist yet",
          ("unborn_contexts_have_empty_queues",), _schedule_before_creation, {**TINY, "max_actions": 1}),
    Fault("drop_ptr_schedules_deletion", "ownership", "dropping an IoPtr elsewhere schedules a deletion of its pointee",
          ("pushers_dropped_an_io_own",), _drop_ptr_schedules_deletion, SMALL),
]

_ = (ALIVE, DEAD, LIVE, ctx_state)
