"""The WorkerEntrypoint model: the responses it predicts for each request flow, and its faults."""

from __future__ import annotations

import pytest

from model.catalog import get_model
from model.entrypoint import RESPONSES, Response
from model.faults import faults_for
from properties.explorer import explore
from tests.modelplay import enabled, play

FETCH = {"threads": 1, "contexts": 1, "requests": 1, "max_tasks": 1, "actors": 0, "nesting": 0}
PRODUCTION = {**FETCH, "tunnel_exceptions": 0, "production": 1}
ACTOR = {"threads": 1, "contexts": 1, "requests": 2, "max_tasks": 0, "actors": 1, "nesting": 0, "aborts": 0,
         "scheduled_events": 0}

START = ["create_context c=c0 t=t0 actor=false", "create_request r=r0 c=c0", "request r=r0", "deliver r=r0"]
RESPONDED = [*START, "enter c=c0 t=t0", "send_response r=r0", "exit c=c0 t=t0"]
THREW = [*START, "enter c=c0 t=t0", "exit c=c0 t=t0", "handler_threw r=r0", "drain r=r0"]
FAIL_OPEN = [*START, "enter c=c0 t=t0", "pass_through_on_exception c=c0", "exit c=c0 t=t0", "handler_threw r=r0",
             "drain r=r0"]


def test_every_response_is_documented() -> None:
    assert set(RESPONSES) == set(Response.members)


def test_handler_returns_the_workers_response() -> None:
    p = play("entrypoint", FETCH, [*RESPONDED, "handler_returned r=r0", "drain r=r0", "proxy_done r=r0 ok=true"])
    assert p.outputs() == {"response": "WORKER_RESPONSE"}
    assert p.state["ep_stage"]["r0"] == "COMPLETED" and p.state["phase"]["r0"] == "DRAINING"


def test_exception_before_headers_is_the_listeners_500() -> None:
    p = play("entrypoint", FETCH, [*THREW, "tunnel_exception r=r0"])
    assert p.outputs() == {"response": "LISTENER_500"}
    assert not enabled("entrypoint", FETCH, THREW, "send_synthetic_status r=r0")  # never in standalone workerd


def test_stream_failing_after_headers_truncates_and_never_fails_open() -> None:
    steps = [*START, "enter c=c0 t=t0", "pass_through_on_exception c=c0", "send_response r=r0", "exit c=c0 t=t0",
             "handler_returned r=r0", "drain r=r0", "proxy_done r=r0 ok=false"]
    assert not enabled("entrypoint", FETCH, steps, "fail_open r=r0")
    p = play("entrypoint", FETCH, [*steps, "tunnel_exception r=r0"])
    assert p.outputs() == {"response": "TRUNCATED"}
    assert not p.broken


def test_pass_through_on_exception_uses_the_fallback_first() -> None:
    assert not enabled("entrypoint", FETCH, FAIL_OPEN, "tunnel_exception r=r0")
    p = play("entrypoint", FETCH, [*FAIL_OPEN, "fail_open r=r0", "fallback_done r=r0 ok=true"])
    assert p.outputs() == {"response": "FALLBACK_RESPONSE"}
    p = play("entrypoint", FETCH, [*FAIL_OPEN, "fail_open r=r0", "fallback_done r=r0 ok=false"])
    assert p.outputs() == {"response": "FALLBACK_500_EMPTY"}


def test_pass_through_then_normal_return_is_the_normal_response() -> None:
    steps = [*START, "enter c=c0 t=t0", "pass_through_on_exception c=c0", "send_response r=r0", "exit c=c0 t=t0",
             "handler_returned r=r0", "drain r=r0", "proxy_done r=r0 ok=true"]
    assert play("entrypoint", FETCH, steps).outputs() == {"response": "WORKER_RESPONSE"}


def test_without_tunnelling_a_synthetic_500() -> None:
    p = play("entrypoint", PRODUCTION, [*THREW, "send_synthetic_status r=r0"])
    assert p.outputs() == {"response": "SYNTHETIC_500"}
    assert not enabled("entrypoint", PRODUCTION, THREW, "tunnel_exception r=r0")


def test_a_hang_is_a_500() -> None:
    steps = [*START, "enter c=c0 t=t0", "exit c=c0 t=t0", "abort_from_hang c=c0"]
    assert not enabled("entrypoint", FETCH, steps, "handler_returned r=r0")  # nothing was sent
    p = play("entrypoint", FETCH, [*steps, "handler_threw r=r0", "drain r=r0", "drain_aborted r=r0",
                                   "tunnel_exception r=r0"])
    assert p.outputs() == {"response": "LISTENER_500"}


def test_request_can_only_be_called_once() -> None:
    p = play("entrypoint", FETCH, [*START, "request_rejected r=r0"])
    assert p.outputs() == {"result": "ERR_CALLED_TWICE"}
    p = play("entrypoint", FETCH, [*START, "run_scheduled_rejected r=r0"])
    assert p.outputs() == {"result": "ERR_CALLED_TWICE"}


def test_every_delivered_request_is_drained() -> None:
    assert not enabled("entrypoint", FETCH, START, "drop_request r=r0")
    assert not enabled("entrypoint", FETCH, [*START, "enter c=c0 t=t0", "exit c=c0 t=t0"], "drain r=r0")
    p = play("entrypoint", FETCH, [*START, "request_canceled r=r0", "drain r=r0"])
    assert p.state["ep_stage"]["r0"] == "CANCELED" and p.state["phase"]["r0"] == "DRAINING"
    assert p.trace.steps[-2].outputs == {"response": "NO_RESPONSE"}


def test_run_scheduled_result_waits_for_the_handler_task() -> None:
    steps = ["create_context c=c0 t=t0 actor=false", "create_request r=r0 c=c0", "run_scheduled r=r0",
             "deliver r=r0"]
    assert not enabled("entrypoint", FETCH, steps, "finish_scheduled r=r0")  # the handler task comes first
    steps += ["add_wait_until c=c0", "finish_scheduled r=r0", "enter c=c0 t=t0", "set_no_retry c=c0",
              "exit c=c0 t=t0"]
    assert not enabled("entrypoint", FETCH, steps, "finish_scheduled_done r=r0")
    p = play("entrypoint", FETCH, [*steps, "wait_until_done c=c0 ok=false", "finish_scheduled_done r=r0"])
    assert p.outputs() == {"outcome": "EXCEPTION", "no_retry": "true"}
    assert p.state["ep_stage"]["r0"] == "SCHEDULED_DONE"


def test_actor_errors_go_to_the_caller_never_to_the_fallback() -> None:
    steps = ["create_context c=c0 t=t0 actor=true", "create_request r=r0 c=c0", "request r=r0", "deliver r=r0",
             "enter c=c0 t=t0", "pass_through_on_exception c=c0", "exit c=c0 t=t0", "handler_threw r=r0",
             "drain r=r0"]
    assert not enabled("entrypoint", ACTOR, steps, "fail_open r=r0")
    p = play("entrypoint", ACTOR, [*steps, "tunnel_to_actor_caller r=r0"])
    assert p.outputs() == {"response": "EXCEPTION_TO_ACTOR_CALLER"}
    assert not enabled("entrypoint", ACTOR, steps[:3], "run_scheduled r=r0")


@pytest.mark.parametrize("fault", faults_for("entrypoint"), ids=lambda f: f.name)
def test_fault_is_caught(fault) -> None:  # type: ignore[no-untyped-def]
    base = get_model("entrypoint")
    assert explore(base.config(**fault.bounds), stop_on_violation=False).ok
    res = explore(fault.variant(base).config(**fault.bounds), stop_on_violation=False)
    broken = {v.reason.split()[-2] for v in res.violations}
    assert broken & set(fault.breaks), f"{fault.name}: expected one of {fault.breaks}, got {sorted(broken)}"


def test_every_entrypoint_invariant_has_a_fault() -> None:
    covered = {name for f in faults_for("entrypoint") for name in f.breaks}
    own = {i.name for i in get_model("entrypoint").invariants} - {i.name for i in get_model("lifecycle").invariants}
    assert own <= covered, sorted(own - covered)
