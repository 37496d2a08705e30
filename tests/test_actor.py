"""The actor model: one IoContext per actor shared by its requests, shutdown and abort, and its faults."""

from __future__ import annotations

import pytest

from model.catalog import get_model
from model.faults import faults_for
from properties.explorer import explore
from tests.modelplay import enabled, play

ONE = {"threads": 1, "contexts": 1, "requests": 2, "max_tasks": 1, "objects": 1, "max_actions": 0,
       "durable_objects": 1, "nesting": 0, "all_kinds": 0}
TWO = {**ONE, "contexts": 2, "durable_objects": 2}

ACTOR_A = ["create_context c=c0 t=t0 actor=true", "set_io_context a=a0 c=c0"]
OBJECT_IN_R0 = [*ACTOR_A, "create_request r=r0 c=c0", "deliver r=r0", "enter c=c0 t=t0",
                "add_object o=o0 c=c0 t=t0 kind=IO_OWN", "exit c=c0 t=t0"]


def test_io_object_of_one_request_is_usable_by_the_next_request_of_the_actor() -> None:
    steps = [*OBJECT_IN_R0, "drain r=r0", "drain_done r=r0",
             "create_request r=r1 c=c0", "deliver r=r1", "enter c=c0 t=t0", "access o=o0 t=t0"]
    p = play("actor", ONE, steps)
    assert p.outputs() == {"result": "OK"}
    assert p.state["phase"] == {"r0": "DONE", "r1": "CURRENT"} and not p.broken


def test_concurrent_requests_share_the_object_too() -> None:
    steps = [*OBJECT_IN_R0, "create_request r=r1 c=c0", "deliver r=r1", "enter c=c0 t=t0", "access o=o0 t=t0"]
    assert play("actor", ONE, steps).outputs() == {"result": "OK"}


def test_another_actor_gets_the_different_durable_object_error() -> None:
    steps = [*OBJECT_IN_R0, "create_context c=c1 t=t0 actor=true", "set_io_context a=a1 c=c1",
             "create_request r=r1 c=c1", "deliver r=r1", "enter c=c1 t=t0"]
    assert not enabled("actor", TWO, steps, "access o=o0 t=t0")
    p = play("actor", TWO, [*steps, "access_rejected o=o0 t=t0"])
    assert p.outputs() == {"result": "ERR_DIFFERENT_DO"}


def test_an_actor_gets_one_context_in_its_life() -> None:
    steps = [*ACTOR_A, "create_context c=c1 t=t0 actor=true"]
    assert not enabled("actor", TWO, steps, "set_io_context a=a0 c=c1")
    # a new request reuses the actor's context; a context no actor set takes no request
    assert enabled("actor", TWO, steps, "create_request r=r0 c=c0")
    assert not enabled("actor", TWO, steps, "create_request r=r0 c=c1")


def test_timers_and_tasks_are_wait_until_tasks_in_actors() -> None:
    steps = [*ACTOR_A, "create_request r=r0 c=c0", "deliver r=r0", "enter c=c0 t=t0", "set_timeout c=c0",
             "exit c=c0 t=t0", "drain r=r0"]
    assert play("actor", ONE, steps).state["wait_until"]["c0"] == "1"
    assert not enabled("actor", ONE, steps, "drain_done r=r0")  # the drain waits for the timer
    assert enabled("actor", ONE, [*steps, "wait_until_done c=c0 ok=true"], "drain_done r=r0")


def test_shutdown_ends_an_actor_drain() -> None:
    steps = [*ACTOR_A, "create_request r=r0 c=c0", "deliver r=r0", "enter c=c0 t=t0", "add_task c=c0",
             "exit c=c0 t=t0", "drain r=r0"]
    assert not enabled("actor", ONE, steps, "drain_shutdown r=r0")
    p = play("actor", ONE, [*steps, "actor_shutdown a=a0", "drain_shutdown r=r0", "drop_actor_context c=c0",
                            "destroy_begin c=c0", "destroy_end c=c0"])
    assert p.state["phase"]["r0"] == "SHUT_DOWN" and p.state["ctx_state"]["c0"] == "DEAD"
    assert p.state["wait_until"]["c0"] == "0" and not p.broken


def test_actor_abort_cancels_every_event_and_drain() -> None:
    steps = [*ACTOR_A, "create_request r=r0 c=c0", "create_request r=r1 c=c0", "deliver r=r0", "drain r=r0",
             "deliver r=r1", "abort c=c0 reason=REASON_A"]
    assert play("actor", ONE, steps).state["phase"] == {"r0": "DRAINING", "r1": "CURRENT"}  # abort is lazy
    p = play("actor", ONE, [*steps, "actor_abort a=a0"])
    assert p.state["phase"] == {"r0": "ABORTED", "r1": "ABORTED"}
    assert p.state["actor_state"]["a0"] == "BROKEN"
    assert not enabled("actor", ONE, [*steps, "actor_abort a=a0"], "create_request r=r1 c=c0")
    p = play("actor", ONE, [*steps, "actor_abort a=a0", "drop_actor_context c=c0", "destroy_begin c=c0"])
    assert p.state["actor_ctx"]["a0"] == "none"


def test_actors_are_never_hang_aborted() -> None:
    assert not enabled("actor", ONE, [*ACTOR_A, "create_request r=r0 c=c0", "deliver r=r0"], "abort_from_hang c=c0")


@pytest.mark.parametrize("fault", faults_for("actor"), ids=lambda f: f.name)
def test_fault_is_caught(fault) -> None:  # type: ignore[no-untyped-def]
    base = get_model("actor")
    assert explore(base.config(**fault.bounds), stop_on_violation=False).ok
    res = explore(fault.variant(base).config(**fault.bounds), stop_on_violation=False)
    broken = {v.reason.split()[-2] for v in res.violations}
    assert broken & set(fault.breaks), f"{fault.name}: expected one of {fault.breaks}, got {sorted(broken)}"


def test_every_actor_invariant_has_a_fault() -> None:
    covered = {name for f in faults_for("actor") for name in f.breaks}
    inherited = {i.name for base in ("lifecycle", "ownership") for i in get_model(base).invariants}
    own = {i.name for i in get_model("actor").invariants} - inherited
    assert own <= covered, sorted(own - covered)
