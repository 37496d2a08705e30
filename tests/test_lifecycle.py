"""The IncomingRequest lifecycle model: specific behaviours replayed, faults caught, diagrams possible."""

from __future__ import annotations

import pytest

from model.catalog import get_model
from model.core import compile_dense
from model.faults import faults_for
from model.lifecycle import ENDED, Phase, phase
from properties.explorer import explore
from tests.modelplay import enabled, play

STATELESS = {"threads": 1, "contexts": 1, "requests": 1, "max_tasks": 2, "actors": 0, "nesting": 0}
ACTOR = {"threads": 1, "contexts": 1, "requests": 2, "max_tasks": 1, "actors": 1, "nesting": 0}

STATELESS_START = ["create_context c=c0 t=t0 actor=false", "create_request r=r0 c=c0", "deliver r=r0"]
ACTOR_TWO = ["create_context c=c0 t=t0 actor=true", "create_request r=r0 c=c0", "create_request r=r1 c=c0",
             "deliver r=r0", "deliver r=r1"]


def test_delivered_twice_is_rejected_with_workerds_message() -> None:
    assert not enabled("lifecycle", STATELESS, STATELESS_START, "deliver r=r0")
    p = play("lifecycle", STATELESS, [*STATELESS_START, "deliver_rejected r=r0"])
    assert p.outputs() == {"result": "ERR_DELIVERED_TWICE"}
    assert p.state["phase"]["r0"] == "CURRENT"


def test_current_is_the_newest_delivered_request_and_positional() -> None:
    p = play("lifecycle", ACTOR, ACTOR_TWO)
    assert p.state["phase"] == {"r0": "SUPERSEDED", "r1": "CURRENT"}
    # the head goes (destroyed without drain): the older request is current again
    p = play("lifecycle", ACTOR, [*ACTOR_TWO, "drop_request r=r1"])
    assert p.state["phase"] == {"r0": "CURRENT", "r1": "DROPPED"}


def test_draining_a_superseded_request_returns_at_once() -> None:
    p = play("lifecycle", ACTOR, [*ACTOR_TWO, "drain r=r0"])
    assert p.state["phase"] == {"r0": "DRAIN_SKIPPED", "r1": "CURRENT"}
    assert p.state["linked"]["r0"] == "false"


def test_a_new_delivery_takes_over_an_actor_drain() -> None:
    steps = ["create_context c=c0 t=t0 actor=true", "create_request r=r0 c=c0", "create_request r=r1 c=c0",
             "deliver r=r0", "enter c=c0 t=t0", "add_task c=c0", "exit c=c0 t=t0", "drain r=r0"]
    assert play("lifecycle", ACTOR, steps).state["wait_until"]["c0"] == "1"  # addTask is addWaitUntil in actors
    assert not enabled("lifecycle", ACTOR, steps, "drain_done r=r0")
    p = play("lifecycle", ACTOR, [*steps, "deliver r=r1", "drain_superseded r=r0"])
    assert p.state["phase"] == {"r0": "DRAIN_SUPERSEDED", "r1": "CURRENT"}
    assert p.state["wait_until"]["c0"] == "1"  # the task is now the new request's to wait for


def test_stateless_drain_waits_for_wait_until_but_not_for_tasks() -> None:
    steps = [*STATELESS_START, "enter c=c0 t=t0", "add_task c=c0", "add_wait_until c=c0", "exit c=c0 t=t0",
             "drain r=r0"]
    assert not enabled("lifecycle", STATELESS, steps, "drain_done r=r0")
    steps.append("wait_until_done c=c0 ok=true")
    p = play("lifecycle", STATELESS, [*steps, "drain_done r=r0"])
    assert p.state["tasks"]["c0"] == "1"  # the plain task did not hold the drain
    # the request was the context's only owner: the context dies and cancels the task
    p = play("lifecycle", STATELESS, [*steps, "drain_done r=r0", "destroy_begin c=c0", "destroy_end c=c0"])
    assert p.state["tasks"]["c0"] == "0" and p.state["ctx_state"]["c0"] == "DEAD"
    assert not p.broken


def test_a_stateless_context_outlives_its_request_by_nothing() -> None:
    steps = [*STATELESS_START, "drain r=r0", "drain_done r=r0"]
    for action in ("enter c=c0 t=t0", "add_wait_until c=c0", "abort c=c0 reason=REASON_A"):
        assert not enabled("lifecycle", STATELESS, steps, action), action
    assert enabled("lifecycle", STATELESS, steps, "destroy_begin c=c0")
    assert not enabled("lifecycle", STATELESS, STATELESS_START, "destroy_begin c=c0")


def test_scheduled_outcome_first_failure_wins_and_no_retry() -> None:
    steps = [*STATELESS_START, "add_wait_until c=c0", "add_wait_until c=c0", "finish_scheduled r=r0",
             "wait_until_done c=c0 ok=false", "wait_until_done c=c0 ok=true"]
    p = play("lifecycle", STATELESS, [*steps, "finish_scheduled_done r=r0"])
    assert p.outputs() == {"outcome": "EXCEPTION", "no_retry": "false"}
    assert p.trace.steps[-3].outputs == {"log": "ASYNC_TASK"}  # the failure is logged
    p = play("lifecycle", STATELESS, [*STATELESS_START, "add_wait_until c=c0", "finish_scheduled r=r0",
                                      "enter c=c0 t=t0", "set_no_retry c=c0", "exit c=c0 t=t0",
                                      "wait_until_done c=c0 ok=true", "finish_scheduled_done r=r0"])
    assert p.outputs() == {"outcome": "OK", "no_retry": "true"}


def test_finish_scheduled_waits_for_every_wait_until_task() -> None:
    steps = [*STATELESS_START, "add_wait_until c=c0", "finish_scheduled r=r0"]
    assert not enabled("lifecycle", STATELESS, steps, "finish_scheduled_done r=r0")
    # standalone workerd: limitScheduled() never fires
    assert not enabled("lifecycle", STATELESS, steps, "finish_scheduled_timeout r=r0")
    p = play("lifecycle", {**STATELESS, "production": 1}, [*steps, "finish_scheduled_timeout r=r0"])
    assert p.outputs() == {"outcome": "EXCEEDED_WALL_TIME", "no_retry": "false"}
    assert p.state["phase"]["r0"] == "TIMED_OUT"


def test_finish_scheduled_never_for_actors() -> None:
    steps = ["create_context c=c0 t=t0 actor=true", "create_request r=r0 c=c0", "deliver r=r0"]
    assert not enabled("lifecycle", ACTOR, steps, "finish_scheduled r=r0")


def test_abort_cancels_nothing_but_ends_the_drain() -> None:
    steps = [*STATELESS_START, "add_wait_until c=c0", "drain r=r0", "abort c=c0 reason=REASON_A"]
    p = play("lifecycle", STATELESS, steps)
    assert p.state["wait_until"]["c0"] == "1" and p.state["phase"]["r0"] == "DRAINING"
    p = play("lifecycle", STATELESS, [*steps, "drain_aborted r=r0"])
    assert p.state["phase"]["r0"] == "ABORTED"


def test_drain_limit_only_with_production_limits() -> None:
    steps = [*STATELESS_START, "add_wait_until c=c0", "drain r=r0"]
    assert not enabled("lifecycle", STATELESS, steps, "drain_timeout r=r0")
    p = play("lifecycle", {**STATELESS, "production": 1}, [*steps, "drain_timeout r=r0"])
    assert p.outputs() == {"warning": "DRAIN_TIMEOUT"}


def test_forgetting_drain_only_warns() -> None:
    p = play("lifecycle", STATELESS, [*STATELESS_START, "add_wait_until c=c0", "drop_request r=r0"])
    assert p.outputs() == {"warning": "DRAIN_FORGOTTEN"}
    assert p.state["phase"]["r0"] == "DROPPED" and not p.broken


def test_hang_detection_only_for_stateless_contexts() -> None:
    assert enabled("lifecycle", STATELESS, STATELESS_START, "abort_from_hang c=c0")
    # a PendingEvent (a plain task) blocks it
    busy = [*STATELESS_START, "enter c=c0 t=t0", "add_task c=c0", "exit c=c0 t=t0"]
    assert not enabled("lifecycle", STATELESS, busy, "abort_from_hang c=c0")
    assert not enabled("lifecycle", ACTOR, ["create_context c=c0 t=t0 actor=true", "create_request r=r0 c=c0",
                                            "deliver r=r0"], "abort_from_hang c=c0")


def test_js_needs_a_delivered_request() -> None:
    assert not enabled("lifecycle", STATELESS, ["create_context c=c0 t=t0 actor=false", "create_request r=r0 c=c0"],
                       "enter c=c0 t=t0")


def _phase_edges(bounds: dict[str, int]) -> set[tuple[str, str]]:
    """Project the explored state graph onto ``phase[r0]``: the edges of the lifecycle diagram."""
    res = explore(get_model("lifecycle").config(**bounds), graph=True)
    assert res.ok and res.graph is not None
    slot = compile_dense(res.config).layout.slot(phase, (0,))
    return {(Phase.render(s[slot]), Phase.render(t[slot])) for s, t in res.graph.edges if s[slot] != t[slot]}


def test_phase_graph_has_the_articles_states() -> None:
    edges = _phase_edges({**ACTOR, "production": 1, "aborts": 0})
    for edge in [("UNBORN", "CREATED"), ("CREATED", "CURRENT"), ("CREATED", "CANCELED"), ("CURRENT", "DRAINING"),
                 ("CURRENT", "FINISHING_SCHEDULED"), ("DRAINING", "DONE"), ("DRAINING", "DRAIN_SUPERSEDED"),
                 ("FINISHING_SCHEDULED", "DONE"), ("FINISHING_SCHEDULED", "TIMED_OUT"), ("DRAINING", "TIMED_OUT"),
                 ("CURRENT", "SUPERSEDED"), ("SUPERSEDED", "CURRENT"), ("SUPERSEDED", "DRAIN_SKIPPED")]:
        assert edge in edges, edge
    assert not any(a in ENDED for a, _ in edges)  # how a request ended is final
    # standalone workerd: the article's Timeout is unreachable
    assert not any(b == "TIMED_OUT" for _, b in _phase_edges(STATELESS))


@pytest.mark.parametrize("fault", faults_for("lifecycle"), ids=lambda f: f.name)
def test_fault_is_caught(fault) -> None:  # type: ignore[no-untyped-def]
    base = get_model("lifecycle")
    clean = explore(base.config(**fault.bounds), stop_on_violation=False)
    assert clean.ok, f"the base model is not clean in {fault.bounds}"
    res = explore(fault.variant(base).config(**fault.bounds), stop_on_violation=False)
    broken = {v.reason.split()[-2] for v in res.violations}
    assert broken & set(fault.breaks), f"{fault.name}: expected one of {fault.breaks}, got {sorted(broken)}"


def test_every_lifecycle_invariant_has_a_fault() -> None:
    covered = {name for f in faults_for("lifecycle") for name in f.breaks}
    own = {i.name for i in get_model("lifecycle").invariants} - {i.name for i in get_model("context").invariants}
    assert own <= covered, sorted(own - covered)
