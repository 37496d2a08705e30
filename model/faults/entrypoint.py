"""Seeded faults for the WorkerEntrypoint flows (model.entrypoint)."""

from __future__ import annotations

from model.core import Action, Model, Or
from model.entrypoint import (
    HANDLER_RUNNING,
    SCHEDULED_DELIVERED,
    SCHEDULED_FINISHING,
    SCHEDULED_RUNNING,
    ep_stage,
    sent,
    status_sent_twice,
)
from model.faults import Fault
from model.faults._edit import set_update
from model.faults.lifecycle import replace_guard

#: One stateless request through one context.
FETCH = {"threads": 1, "contexts": 1, "requests": 1, "max_tasks": 1, "actors": 0, "nesting": 0}
#: One request to an actor.
ACTOR_FETCH = {"threads": 1, "contexts": 1, "requests": 1, "max_tasks": 0, "actors": 1, "nesting": 0, "aborts": 0,
               "scheduled_events": 0}


def _request_twice(m: Model) -> list[Action]:
    return [m.action("request").without_guard("called_once")]


def _handler_before_delivery(m: Model) -> list[Action]:
    return [set_update(m.action("request"), "ep_stage", lambda r, *_: HANDLER_RUNNING)]


def _drops_request(m: Model) -> list[Action]:
    return [m.action("drop_request").without_guard("entrypoint_always_drains")]


def _tunnel_before_fail_open(m: Model) -> list[Action]:
    return [m.action("tunnel_exception").without_guard("fail_open_first")]


def _actor_fails_open(m: Model) -> list[Action]:
    return [m.action("fail_open").without_guard("not_actor")]


def _listener_500_after_headers(m: Model) -> list[Action]:
    return [set_update(m.action("tunnel_exception"), "status_sent_twice", lambda r, *_: status_sent_twice | sent[r])]


def _fail_open_after_headers(m: Model) -> list[Action]:
    return [m.action("fail_open").without_guard("response_not_started")]


def _respond_outside_fetch(m: Model) -> list[Action]:
    a = m.action("send_response")
    (r,) = a.param_refs()
    return [replace_guard(a, "handler_running", Or(*(ep_stage[r] == s for s in (
        HANDLER_RUNNING, SCHEDULED_DELIVERED, SCHEDULED_RUNNING, SCHEDULED_FINISHING))))]


def _cancel_leaves_entrypoint_idle(m: Model) -> list[Action]:
    return [m.action("cancel_request").without_update("ep_stage")]


def _finish_before_handler_task(m: Model) -> list[Action]:
    return [m.action("finish_scheduled").without_guard("handler_task_added")]


def _canceled_handler_keeps_response_pending(m: Model) -> list[Action]:
    return [m.action("request_canceled").without_update("response")]


FAULTS = [
    Fault("request_callable_twice", "entrypoint", "request() does not refuse a second event",
          ("one_event_per_entrypoint",), _request_twice, FETCH),
    Fault("handler_before_delivery", "entrypoint", "the handler starts before delivered()",
          ("delivered_before_the_handler",), _handler_before_delivery, FETCH),
    Fault("exception_path_drops_request", "entrypoint",
          "a delivered request is destroyed without drain() (no KJ_DEFER on some path)",
          ("drained_on_every_exit",), _drops_request, FETCH),
    Fault("tunnel_before_fail_open", "entrypoint", "tunnelExceptions is checked before the fail-open service",
          ("one_disposition_in_priority_order",), _tunnel_before_fail_open, FETCH),
    Fault("actor_fails_open", "entrypoint", "an actor's exception goes to the fail-open service",
          ("one_disposition_in_priority_order", "stages_match_the_request"), _actor_fails_open, ACTOR_FETCH),
    Fault("listener_500_after_headers", "entrypoint", "a 500 is sent although the response had started",
          ("no_late_status",), _listener_500_after_headers, FETCH),
    Fault("fail_open_after_headers", "entrypoint", "fail-open is used after the response had started",
          ("no_late_status", "stages_match_the_request"), _fail_open_after_headers, FETCH),
    Fault("respond_outside_fetch", "entrypoint", "a Response is sent from a scheduled handler",
          ("stages_match_the_request",), _respond_outside_fetch, FETCH),
    Fault("cancel_leaves_entrypoint_idle", "entrypoint",
          "an entrypoint whose request was canceled before delivery still accepts an event",
          ("stages_match_the_request", "one_event_per_entrypoint"), _cancel_leaves_entrypoint_idle, FETCH),
    Fault("finish_before_handler_task", "entrypoint",
          "finishScheduled() runs before the scheduled handler was added as a waitUntil task",
          ("stages_match_the_request",), _finish_before_handler_task, FETCH),
    Fault("canceled_handler_keeps_response_pending", "entrypoint",
          "a canceled fetch reports no outcome (the client's disconnect is not recorded)",
          ("stages_match_the_request",), _canceled_handler_keeps_response_pending, FETCH),
]
