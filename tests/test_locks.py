"""The isolate-lock model (model.locks): behaviours of AsyncLockQueue and Worker::Lock, replayed step by step,
its standard configurations, and its seeded faults (each must be caught).

The replayed behaviours are the ones workerd's own characterization tests pin down
(io/async-lock-scheduler-test.c++): uncontended grant, same-thread coalescing, head-of-line
blocking across isolates, cancellation leaving no trace, FIFO turns across threads, mutual
exclusion, and the Worker::Lock isolate check (worker.c++:577-578).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import pytest

from model.catalog import get_model, standard_configs
from model.core import ConfigError
from model.faults import faults_for
from model.faults.locks import DEADLOCK
from model.locks import ACTIONS
from properties.explorer import explore, replay

LOCKS = get_model("locks")


def cfg(**bounds: int) -> Any:
    return LOCKS.config(**{"threads": 2, "isolates": 2, "lock_requests": 2, **bounds})


def step(action: str, t: str, i: str) -> dict[str, Any]:
    return {"action": action, "args": {"t": t, "i": i}}


def run(steps: list[tuple[str, str, str]], **bounds: int) -> Any:
    trace, broken = replay(cfg(**bounds), [step(*s) for s in steps])
    assert broken == [], f"a valid behaviour broke {broken}"
    return trace


def state(trace: Any, k: int = -1) -> dict[str, Any]:
    from model.core import compile_dense

    return compile_dense(trace.config).decode(trace.states[k])


def not_enabled(steps: list[tuple[str, str, str]], **bounds: int) -> str:
    with pytest.raises(ConfigError) as e:
        replay(cfg(**bounds), [step(*s) for s in steps])
    return str(e.value)


# ---- behaviours -------------------------------------------------------------------------------------


def test_uncontended_lock_is_granted_at_once() -> None:
    tr = run([("request_lock", "t0", "i0"), ("grant", "t0", "i0")])
    assert tr.steps[0].outputs == {"joined": "QUEUED"}
    assert state(tr)["held"]["t0"] == "1"


def test_same_thread_same_isolate_coalesces_into_one_turn() -> None:
    twice = [("request_lock", "t0", "i0"), ("grant", "t0", "i0"),
             ("request_lock", "t0", "i0"), ("grant", "t0", "i0"), ("release_lock", "t0", "i0")]
    tr = run(twice)
    assert tr.steps[2].outputs == {"joined": "COALESCED"}
    # one waiter, still alive after the first release: the second AsyncLock keeps the turn
    assert state(tr)["waiter"]["t0"] == "i0"
    tr = run([*twice, ("release_lock", "t0", "i0")])
    assert state(tr)["waiter"]["t0"] == "none"


def test_another_isolate_waits_for_release_head_of_line() -> None:
    held_i0 = [("request_lock", "t0", "i0"), ("grant", "t0", "i0"), ("request_lock", "t0", "i1")]
    tr = run(held_i0)
    assert tr.steps[-1].outputs == {"joined": "BLOCKED"}
    assert state(tr)["blocked"]["t0,i1"] == "1"
    # the retry finds the thread's waiter still on i0 and waits again (no change)
    tr = run([*held_i0, ("retry_lock", "t0", "i1")])
    assert tr.steps[-1].outputs == {"joined": "BLOCKED"} and tr.states[-1] == tr.states[-2]
    assert "queued_here" in not_enabled([*held_i0, ("grant", "t0", "i1")])
    tr = run([*held_i0, ("release_lock", "t0", "i0"), ("retry_lock", "t0", "i1"), ("grant", "t0", "i1")])
    assert tr.steps[-2].outputs == {"joined": "QUEUED"}
    assert state(tr)["waiter"]["t0"] == "i1"


def _without_budget(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k != "requested"}


@pytest.mark.parametrize("pending", [
    [("request_lock", "t1", "i0"), ("cancel_wait", "t1", "i0")],
    [("request_lock", "t0", "i1"), ("cancel_blocked", "t0", "i1")],
    [("request_lock", "t0", "i0"), ("cancel_wait", "t0", "i0")],  # a coalesced request
], ids=["queued", "blocked", "coalesced"])
def test_cancelling_a_pending_request_leaves_no_trace(pending: list[tuple[str, str, str]]) -> None:
    before = [("request_lock", "t0", "i0"), ("grant", "t0", "i0")]
    tr = run(before + pending)
    assert _without_budget(state(tr)) == _without_budget(state(tr, len(before)))


def test_cancelling_the_front_waiter_hands_the_turn_over() -> None:
    tr = run([("request_lock", "t0", "i0"), ("request_lock", "t1", "i0"), ("cancel_wait", "t0", "i0"),
              ("grant", "t1", "i0")])
    assert state(tr)["held"]["t1"] == "1"


def test_turns_are_granted_across_threads_in_request_order() -> None:
    queue = [("request_lock", "t0", "i0"), ("grant", "t0", "i0"),
             ("request_lock", "t2", "i0"), ("request_lock", "t1", "i0"), ("release_lock", "t0", "i0")]
    assert "guard at_front" in not_enabled([*queue, ("grant", "t1", "i0")], threads=3)
    tr = run([*queue, ("grant", "t2", "i0"), ("release_lock", "t2", "i0"), ("grant", "t1", "i0")], threads=3)
    assert state(tr)["held"]["t1"] == "1"


def test_only_one_thread_holds_an_isolate() -> None:
    both = [("request_lock", "t0", "i0"), ("request_lock", "t1", "i0"), ("grant", "t0", "i0")]
    assert "guard at_front" in not_enabled([*both, ("grant", "t1", "i0")])
    # another isolate is independent
    run([*both, ("request_lock", "t1", "i1")])


def test_worker_lock_only_against_the_async_lock_isolate() -> None:
    holding = [("request_lock", "t0", "i0"), ("grant", "t0", "i0")]
    assert "guard same_isolate" in not_enabled([*holding, ("take_sync_lock", "t0", "i1")])
    tr = run([*holding, ("take_sync_lock_rejected", "t0", "i1")])
    assert tr.steps[-1].outputs == {"result": "ERR_LOCK_OTHER_ISOLATE"}
    tr = run([*holding, ("take_sync_lock", "t0", "i0")])
    assert tr.steps[-1].outputs == {"result": "OK"}
    assert "guard has_async_lock" in not_enabled([("take_sync_lock", "t1", "i0")])


def test_worker_lock_is_synchronous_one_at_a_time() -> None:
    inside = [("request_lock", "t0", "i0"), ("grant", "t0", "i0"), ("request_lock", "t0", "i0"),
              ("take_sync_lock", "t0", "i0")]
    # no second Worker::Lock, and no continuation (grant, release) runs on the thread meanwhile
    assert "not_in_worker_lock" in not_enabled([*inside, ("take_sync_lock", "t0", "i0")])
    assert "event_loop_free" in not_enabled([*inside, ("grant", "t0", "i0")])
    assert "outside_worker_lock" in not_enabled([*inside, ("release_lock", "t0", "i0")])
    run([*inside, ("release_sync_lock", "t0", "i0"), ("grant", "t0", "i0"), ("take_sync_lock", "t0", "i0")])


def test_trace_event_names_are_the_model_actions() -> None:
    """The names the reference implementation emits (docs/trace-format.md) stay stable."""
    names = {a.operation for a in LOCKS.actions}
    assert names == set(ACTIONS)
    for a in LOCKS.actions:
        assert tuple(p.name for p in a.params) == ACTIONS[a.operation]


# ---- standard configurations ---------------------------------------------------------------------


LOCK_CONFIGS = [sc for sc in standard_configs() if sc.model_name == "locks"]


@pytest.mark.parametrize("sc", LOCK_CONFIGS, ids=[sc.name for sc in LOCK_CONFIGS])
def test_standard_configuration(sc: Any) -> None:
    res = explore(sc.config(), symmetry=sc.symmetry)
    assert res.ok, res.summary()
    got = {"distinct": res.distinct, "transitions": res.transitions, "depth": res.depth}
    assert got == sc.expected


def test_every_request_can_still_finish() -> None:
    """Progress (INV-L5), stronger than no deadlock: from every reachable state all requests can end."""
    res = explore(cfg(cancels=0), graph=True)
    g = res.graph
    assert g is not None
    from model.core import compile_dense

    dm = compile_dense(res.config)
    done = [s for s in g.nodes if dm.terminal(s)]
    can_finish = set(done)
    for s in done:
        can_finish |= nx.ancestors(g, s)
    assert can_finish == set(g.nodes)


# ---- seeded faults ----------------------------------------------------------------------------------


FAULTS = faults_for("locks")


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_caught(fault: Any) -> None:
    variant = fault.variant(LOCKS)
    res = explore(variant.config(**fault.bounds), stop_on_violation=False)
    found = {t.reason.split(" ")[-2] for t in res.violations}
    if fault.breaks == (DEADLOCK,):
        assert not found and res.deadlocks > 0 and res.deadlock_trace is not None
    else:
        assert set(fault.breaks) <= found, f"{fault.name}: expected {fault.breaks}, found {sorted(found)}"
        # the shortest counterexample replays and breaks what it says
        tr = res.violations[0]
        _, broken = replay(tr.config, tr.to_json()["steps"])
        assert broken


def test_every_invariant_is_broken_by_some_fault() -> None:
    broken = {name for f in FAULTS for name in f.breaks}
    assert {i.name for i in LOCKS.invariants} <= broken
    assert DEADLOCK in broken  # the progress check can fail too


def test_lost_wakeup_passes_the_invariants_but_not_progress() -> None:
    (fault,) = [f for f in FAULTS if f.name == "lost_wakeup"]
    res = explore(fault.variant(LOCKS).config(**fault.bounds), graph=True)
    assert not res.violations and res.deadlocks
    assert res.deadlock_trace is not None
    names = [s.instance.action.name for s in res.deadlock_trace.steps]
    assert "request_lock" in names and "release_lock" in names


def test_without_budget_a_long_trace_replays() -> None:
    """Monitors of long implementation traces turn the environment's budget off."""
    turn = [("request_lock", "t0", "i0"), ("grant", "t0", "i0"), ("release_lock", "t0", "i0")]
    assert "is not enabled" in not_enabled(turn * 3)  # the default budget: two lock() calls per thread
    tr = run(turn * 50, budget=0)
    assert state(tr)["requested"]["t0"] == "0" and state(tr)["waiter"]["t0"] == "none"
