"""The sparse engine and the monitors agree with the dense compiler and the reference semantics.

Random walks of a model's bounded configuration (dense compiler) are replayed as trace events
through a `Monitor` of the same model: every step must be allowed, every predicted result
must match, and the monitor's state must equal the dense state after every step.  Walks of
seeded-fault variants, replayed through a monitor of the correct model, must be flagged.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest

from model.catalog import MODELS, get_model
from model.core import Model, compile_dense
from model.core.dense import DenseModel, Instance
from model.core.model import Func, StateVar
from model.faults import faults_for
from properties.monitor import Monitor, MonitorViolation

SMALL = {
    "context": {"threads": 2, "contexts": 2},
    "ownership": {"threads": 2, "contexts": 2, "objects": 2, "max_actions": 1},
}


def event_for(dm: DenseModel, s: tuple[int, ...], inst: Instance) -> dict[str, Any]:
    """The trace event an implementation would record for ``inst`` taken in state ``s``."""
    a = inst.action
    args: dict[str, Any] = {}
    for p, v in zip(a.params, inst.args):
        ids = p.sort.id_sort()
        args[p.name] = f"{ids.name.lower()}-{v}" if ids is not None else p.sort.render(v)
        if p.sort.name == "Bool":
            args[p.name] = bool(v)
    ev: dict[str, Any] = {"op": a.operation or a.name, "args": args}
    if a.checks or any(b.name == f"{a.name}_rejected" for b in dm.model.actions):
        ev["result"] = dm.outputs(s, inst).get("result", "OK")
    return ev


def dense_as_external(dm: DenseModel, s: tuple[int, ...]) -> dict[str, Any]:
    """The dense state with identities named as in `event_for`, non-default cells only."""
    out: dict[str, Any] = {}
    dec = dm.decode(s)
    for d in dm.model.state:
        if isinstance(d, StateVar):
            v = dec[d.name]
            ids = d.sort.id_sort()
            out[d.name] = v if ids is None or v == "none" else f"{ids.name.lower()}-{v[1:]}"
        else:
            assert isinstance(d, Func)
            init = d.value_sort.render(d.init)
            cells = {}
            for key, v in dec[d.name].items():
                if v == init:
                    continue
                parts = key.split(",")
                ext = ",".join(
                    f"{srt.name.lower()}-{k[1:]}" if srt.id_sort() is not None else k
                    for srt, k in zip(d.index_sorts, parts)
                )
                ids = d.value_sort.id_sort()
                cells[ext] = v if ids is None or v == "none" else f"{ids.name.lower()}-{v[1:]}"
            out[d.name] = cells
    return out


def random_walk(dm: DenseModel, rng: random.Random, steps: int) -> list[tuple[tuple[int, ...], Instance]]:
    s = dm.initial
    walk = []
    for _ in range(steps):
        succ = dm.successors(s)
        if not succ:
            break
        i, t = rng.choice(succ)
        walk.append((s, dm.instances[i]))
        s = t
    return walk


@pytest.mark.parametrize("name", sorted(SMALL))
def test_monitor_follows_the_dense_model(name: str) -> None:
    model = get_model(name)
    dm = compile_dense(model.config(**SMALL[name]), checked=True)
    for seed in range(30):
        rng = random.Random(seed)
        mon = Monitor([model])
        s = dm.initial
        for n, (pre, inst) in enumerate(random_walk(dm, rng, 60), 1):
            assert pre == s
            ev = event_for(dm, s, inst)
            try:
                mon.step(ev, line=n)
            except MonitorViolation as v:  # pragma: no cover - failure path prints the evidence
                pytest.fail(f"seed {seed}: correct run flagged: {v.report()}")
            t = dm.apply(s, inst)
            assert t is not None
            s = t
            # ids the monitor interned follow first appearance, so compare via external names
            got = {k: v for k, v in mon.state(name).items()}
            want = dense_as_external(dm, s)
            for var, cells in want.items():
                if isinstance(cells, dict):
                    decl = model.decl(var)
                    init = decl.value_sort.render(decl.init)  # type: ignore[union-attr]
                    have = {k: v for k, v in got[var].items() if v != init}
                    assert have == cells, f"seed {seed} step {n} ({inst.render()}): {var}: {have} != {cells}"
                else:
                    assert got[var] == cells, f"seed {seed} step {n}: {var}"
        assert mon.check_all() == []


def first_violating_run(fault: Any) -> tuple[Model, Model, DenseModel, Any]:
    """A seeded-fault variant's first violating run: (correct model, variant, the variant's dense model, trace)."""
    from properties.explorer import explore

    base = get_model(fault.model)
    variant = fault.variant(base)
    cfg = variant.config(**fault.bounds)
    res = explore(cfg)
    assert res.violations, "the fault must be reachable"
    return base, variant, compile_dense(cfg), res.violations[0]


@pytest.mark.parametrize("fault", [f for n in SMALL for f in faults_for(n)], ids=lambda f: f"{f.model}/{f.name}")
def test_monitor_flags_fault_variants(fault: Any) -> None:
    """A run of a broken variant, checked against the correct model, is flagged."""
    base, _variant, dm, trace = first_violating_run(fault)
    correct = compile_dense(base.config(**fault.bounds))
    # Does the broken run take a step the correct model forbids (or predicts differently)?
    observable = False
    for s, st in zip(trace.states, trace.steps):
        inst = correct.instance(st.instance.action.name, st.instance.args)
        if correct.apply(s, inst) is None or (
            inst.action.checks and correct.outputs(s, inst) != dm.outputs(s, st.instance)
        ):
            observable = True
            break
    if not observable:
        pytest.skip("an update fault: invisible in the event stream, caught by state snapshots (hypothesis oracle)")
    mon = Monitor([base])
    with pytest.raises(MonitorViolation) as info:
        for n, (s, st) in enumerate(zip(trace.states, trace.steps), 1):
            mon.step(event_for(dm, s, st.instance), line=n)
    assert info.value.rules, "a violation names its rule ids"


def test_unknown_op_and_bad_args_are_reported() -> None:
    mon = Monitor(["context"])
    with pytest.raises(MonitorViolation, match="no watched model"):
        mon.step({"op": "fly", "args": {}})
    with pytest.raises(MonitorViolation, match="missing argument"):
        mon.step({"op": "create_context", "args": {"c": "a"}})
    with pytest.raises(MonitorViolation, match="must report a 'result'"):
        mon.step({"op": "create_context", "args": {"c": "a", "t": "main", "actor": False}})
        mon.step({"op": "enter", "args": {"c": "a", "t": "main"}})


def test_wrong_result_names_the_check() -> None:
    mon = Monitor(["context"])
    mon.step({"op": "create_context", "args": {"c": "a", "t": "main", "actor": False}})
    with pytest.raises(MonitorViolation) as info:
        mon.step({"op": "enter", "args": {"c": "a", "t": "worker"}, "result": "OK"})
    assert info.value.kind == "wrong_result"
    assert "ERR_WRONG_THREAD" in str(info.value) and "INV-C1" in info.value.rules


_ = MODELS


def _violating_runs(fault: Any) -> tuple[Model, DenseModel, list[Any]]:
    """A seeded-fault variant, its dense compilation and the explorer's violating runs (shared by two tests)."""
    return _explored(fault.model, fault.name)


@functools.cache
def _explored(model: str, name: str) -> tuple[Model, DenseModel, list[Any]]:
    from properties.explorer import explore

    fault = next(f for f in faults_for(model) if f.name == name)
    variant = fault.variant(get_model(fault.model))
    cfg = variant.config(**fault.bounds)
    return variant, compile_dense(cfg), explore(cfg, stop_on_violation=False).violations


@pytest.mark.parametrize("fault", [f for n in SMALL for f in faults_for(n)], ids=lambda f: f"{f.model}/{f.name}")
def test_incremental_invariants_catch_what_the_explorer_catches(fault: Any) -> None:
    """Replaying a variant's violating run through a monitor of the *variant* raises the same invariant.

    This exercises the sparse engine's incremental (and transition) invariant checks: they
    must not miss what a full check finds.
    """
    variant, dm, violations = _violating_runs(fault)
    for trace in violations:
        # the first step after which the reference semantics sees a broken invariant
        first = None
        for n, (s, t) in enumerate(zip(trace.states, trace.states[1:]), 1):
            bad = [i.name for i in dm.violated(t)]
            if dm.check_transition(s, t) >= 0:
                bad.append(dm.transition_invariants[dm.check_transition(s, t)].name)
            if bad:
                first = (n, bad)
                break
        assert first is not None
        mon = Monitor([variant])
        with pytest.raises(MonitorViolation) as info:
            for n, (s, st) in enumerate(zip(trace.states, trace.steps), 1):
                mon.step(event_for(dm, s, st.instance), line=n)
        assert info.value.kind == "invariant"
        assert info.value.line == first[0], "flagged exactly at the first violating step"
        assert any(f"invariant {name} " in str(info.value) for name in first[1])


@pytest.mark.parametrize("fault", [f for n in SMALL for f in faults_for(n)], ids=lambda f: f"{f.model}/{f.name}")
def test_the_final_check_catches_what_the_explorer_catches(fault: Any) -> None:
    """The end-of-trace full evaluation (``check-trace --final-check``) can fail on its own.

    With the incremental checks off, a variant's violating run replayed through a monitor of
    the variant ends in the state the explorer flagged, and `Monitor.check_all` must name the
    broken state invariant (transition invariants are per step, so the final check cannot see them).
    """
    variant, dm, violations = _violating_runs(fault)
    state_faults = 0
    for trace in violations:
        broken_at_end = {i.name for i in dm.violated(trace.states[-1])}
        if not broken_at_end:
            continue
        state_faults += 1
        mon = Monitor([variant], check_invariants=False)
        for n, (s, st) in enumerate(zip(trace.states, trace.steps), 1):
            mon.step(event_for(dm, s, st.instance), line=n)
        assert {inv.name for _, inv in mon.check_all()} == broken_at_end
    if not state_faults:
        pytest.skip("the fault breaks a transition invariant only (checked per step, not at the end)")
