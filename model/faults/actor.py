"""Seeded faults for the actor model (model.actor)."""

from __future__ import annotations

from model.core import Action, Model
from model.faults import Fault

#: One actor, one context, two requests, one I/O object.
ONE_ACTOR = {"threads": 1, "contexts": 1, "requests": 2, "max_tasks": 0, "objects": 1, "max_actions": 0,
             "durable_objects": 1, "nesting": 0, "all_kinds": 0, "aborts": 0}


def _second_context(m: Model) -> list[Action]:
    return [m.action("set_io_context").without_guard("fresh_actor").without_guard("no_context_yet")]


def _request_to_unset_context(m: Model) -> list[Action]:
    return [m.action("create_request").without_guard("running_actor")]


def _drain_ends_without_shutdown(m: Model) -> list[Action]:
    return [m.action("drain_shutdown").without_guard("actor_shut_down")]


def _abort_keeps_drains(m: Model) -> list[Action]:
    a = m.action("actor_abort")
    return [a.with_updates([u for u in a.updates if u.decl.name == "actor_state"])]


def _drop_keeps_link(m: Model) -> list[Action]:
    return [m.action("drop_actor_context").without_update("actor_ctx")]


def _context_set_before_creation(m: Model) -> list[Action]:
    return [m.action("set_io_context").without_guard("new_actor_context")]


FAULTS = [
    Fault("second_context_for_actor", "actor", "setIoContext() accepts a second context for an actor",
          ("one_context_per_actor",), _second_context, {**ONE_ACTOR, "contexts": 2, "requests": 1}),
    Fault("request_to_unset_context", "actor", "a request runs in an actor context no actor has set",
          ("requests_run_in_their_actors_context",), _request_to_unset_context, {**ONE_ACTOR, "requests": 1}),
    Fault("drain_ends_without_shutdown", "actor", "an actor drain ends as if the actor had shut down",
          ("drains_end_at_shutdown_only_when_shut_down",), _drain_ends_without_shutdown, {**ONE_ACTOR, "requests": 1}),
    Fault("abort_keeps_drains", "actor", "Actor::abort does not cancel the in-flight events and drains",
          ("actor_abort_cancels_every_event",), _abort_keeps_drains, {**ONE_ACTOR, "requests": 1, "aborts": 1}),
    Fault("drop_keeps_link", "actor", "the actor drops its IoContext but keeps referring to it",
          ("actor_links_agree",), _drop_keeps_link, {**ONE_ACTOR, "requests": 1}),
    Fault("context_set_before_creation", "actor", "setIoContext() accepts an IoContext that was never constructed",
          ("actor_links_agree",), _context_set_before_creation, {**ONE_ACTOR, "requests": 1}),
]
