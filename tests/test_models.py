"""Generic checks over every model in the catalogue.

* the generated code agrees with the reference evaluator on every reachable state of a small
  configuration (enabled set, successors, invariant verdicts, incremental checks);
* every seeded fault is found by the explorer, with and without symmetry reduction;
* every invariant (lemmas too) is broken by at least one fault: no check that cannot fail;
* each standard configuration explores to its recorded counts, with no violation or deadlock.
"""

from __future__ import annotations

import pytest

from model.catalog import MODELS, get_model, standard_configs
from model.core import compile_dense
from model.faults import FAULTS, faults_in_lineage
from properties.explorer import explore

# small configurations for the differential check (bounded so each runs in about a second)
DIFFERENTIAL_LIMIT = 4000


def _small_config(name: str):  # type: ignore[no-untyped-def]
    scs = [c for c in standard_configs() if c.model_name == name and c.ci]
    if scs:
        return min(scs, key=lambda c: c.expected.get("distinct", 1 << 60)).config()
    return get_model(name).config()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiled_code_agrees_with_reference_semantics(name: str) -> None:
    cfg = _small_config(name)
    dm = compile_dense(cfg, checked=True)
    seen = {dm.initial}
    frontier = [dm.initial]
    checked = 0
    while frontier and checked < DIFFERENTIAL_LIMIT:
        nxt = []
        for s in frontier:
            checked += 1
            got = dict(dm.successors(s))
            for inst in dm.instances:
                ref = dm.apply(s, inst)
                assert (ref is None) == (inst.index not in got), f"{inst.render()} enabledness differs in {s}"
                if ref is not None:
                    assert ref == got[inst.index], f"{inst.render()}: {dm.diff(ref, got[inst.index])}"
                    # incremental invariant check == full check on the successor
                    full = dm.check_state(ref)
                    chk = dm.inst_check[inst.index]
                    inc = chk(ref) if chk is not None else -1
                    assert (full >= 0) == (inc >= 0) or dm.check_state(s) >= 0
                    tc = dm.inst_tcheck[inst.index]
                    assert (dm.check_transition(s, ref) >= 0) == (tc is not None and tc(s, ref) >= 0)
            assert (dm.check_state(s) >= 0) == bool(dm.violated(s))
            for t in got.values():
                if t not in seen:
                    seen.add(t)
                    nxt.append(t)
        frontier = nxt
    assert checked > 10


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f.model}/{f.name}")
@pytest.mark.parametrize("symmetry", [False, True], ids=["plain", "symmetry"])
def test_every_fault_is_found_with_a_replayable_trace(fault, symmetry: bool) -> None:  # type: ignore[no-untyped-def]
    from properties.explorer import replay

    variant = fault.variant(get_model(fault.model))
    cfg = variant.config(**fault.bounds)
    res = explore(cfg, symmetry=symmetry, stop_on_violation=False)
    found = {t.reason.split()[-2] for t in res.violations}
    if res.deadlocks:
        found.add("deadlock")
        assert res.deadlock_trace is not None and res.deadlock_trace.format()
    assert found & set(fault.breaks), f"expected one of {fault.breaks}, found {sorted(found)}"
    for trace in res.violations:
        name = trace.reason.split()[-2]
        if name in fault.breaks:
            _, broken = replay(cfg, trace.to_json()["steps"])
            assert name in broken, "the printed counterexample reproduces the violation"
            assert trace.format()  # readable step list


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_invariant_has_a_fault(name: str) -> None:
    model = get_model(name)
    covered = {b for f in faults_in_lineage(name) for b in f.breaks}
    missing = [i.name for i in model.invariants if i.name not in covered]
    assert not missing, f"{name}: invariants no seeded fault breaks: {missing}"


@pytest.mark.parametrize("sc", [c for c in standard_configs() if c.ci], ids=lambda c: c.name)
def test_standard_configuration_counts(sc) -> None:  # type: ignore[no-untyped-def]
    res = explore(sc.config(), symmetry=sc.symmetry)
    assert res.complete and not res.violations and res.deadlocks == 0, res.summary()
    got = {"distinct": res.distinct, "transitions": res.transitions, "depth": res.depth}
    want = {k: sc.expected[k] for k in got if k in sc.expected}
    assert {k: got[k] for k in want} == want, (
        f"{sc.name}: the state space changed; if the change to the rules is intended, update "
        f"model/standard_configs.json to {got}"
    )


@pytest.mark.parametrize("sc", [c for c in standard_configs() if c.ci and not c.symmetry], ids=lambda c: c.name)
def test_symmetry_changes_no_verdict(sc) -> None:  # type: ignore[no-untyped-def]
    plain = explore(sc.config())
    reduced = explore(sc.config(), symmetry=True)
    assert reduced.distinct <= plain.distinct
    assert bool(plain.violations) == bool(reduced.violations)
    assert plain.deadlocks == 0 and reduced.deadlocks == 0
    assert plain.depth == reduced.depth


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fingerprint_count_equals_distinct_states(name: str) -> None:
    """The compact store counts exactly the states a plain set of tuples would (graph mode keeps them)."""
    from properties.explorer import Explorer

    res = Explorer(_small_config(name)).run(graph=True, store_capacity=16)  # grows many times
    assert res.graph is not None
    assert res.distinct == res.graph.number_of_nodes()


@pytest.mark.parametrize("symmetry", [False, True], ids=["plain", "symmetry"])
def test_worker_processes_change_nothing(symmetry: bool) -> None:
    """`workers=2` (and 3) gives the same counts, and the same counterexamples, as one process."""
    from model.faults import FAULTS

    sc = next(c for c in standard_configs() if c.name == "ownership-lean-2x2x2")
    one, two = (explore(sc.config(), symmetry=symmetry, workers=w) for w in (1, 2))
    assert (one.distinct, one.transitions, one.depth, one.per_action, one.pruned, one.deadlocks) == (
        two.distinct, two.transitions, two.depth, two.per_action, two.pruned, two.deadlocks)
    fault = next(f for f in FAULTS if f.model == "ownership")
    cfg = fault.variant(get_model("ownership")).config(**fault.bounds)
    for stop in (True, False):
        one, two, three = (explore(cfg, symmetry=symmetry, workers=w, stop_on_violation=stop) for w in (1, 2, 3))
        assert one.violations
        assert [t.to_json() for t in one.violations] == [t.to_json() for t in two.violations]
        assert [t.to_json() for t in one.violations] == [t.to_json() for t in three.violations]
        assert (one.distinct, one.transitions) == (two.distinct, two.transitions) == (three.distinct, three.transitions)


def test_worker_processes_report_the_same_deadlock() -> None:
    """The deadlock example does not depend on `workers`."""
    from model.faults import FAULTS

    fault = next(f for f in FAULTS if "deadlock" in f.breaks)
    cfg = fault.variant(get_model(fault.model)).config(**fault.bounds)
    one, two = (explore(cfg, workers=w, stop_on_violation=False) for w in (1, 2))
    assert one.deadlocks and one.deadlocks == two.deadlocks
    assert one.deadlock_trace is not None and two.deadlock_trace is not None
    assert one.deadlock_trace.to_json() == two.deadlock_trace.to_json()
