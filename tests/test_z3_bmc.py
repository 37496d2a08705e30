"""z3 bounded model checking: every seeded fault is refuted with a shortest, replayable counterexample.

* for every fault in `model.faults.FAULTS` (every model in the catalogue) that breaks an
  invariant, BMC in the fault's bounds finds a violation of one it names;
* each counterexample is a `properties.explorer.Trace` whose JSON steps replay through
  `properties.explorer.replay` to a state (or transition) violating the same invariant;
* it is as short as the explorer's shortest counterexample for that invariant;
* on the unbroken models BMC finds nothing, and the unrolling stops early where the
  invariants are inductive.
"""

from __future__ import annotations

import json

import pytest

from model.catalog import get_model
from model.faults import FAULTS
from properties.explorer import explore, replay
from properties.z3.bmc import bmc

INVARIANT_FAULTS = [
    f for f in FAULTS if any(b in {i.name for i in get_model(f.model).invariants} for b in f.breaks)
]
DEPTH = 20


@pytest.mark.parametrize("fault", INVARIANT_FAULTS, ids=lambda f: f"{f.model}/{f.name}")
def test_bmc_refutes_every_fault_with_a_replayable_shortest_trace(fault) -> None:  # type: ignore[no-untyped-def]
    variant = fault.variant(get_model(fault.model))
    cfg = variant.config(**fault.bounds)
    names = [b for b in fault.breaks if b in {i.name for i in variant.invariants}]
    res = bmc(cfg, DEPTH, invariants=names)
    assert set(res.traces) & set(names), f"BMC to depth {DEPTH} found none of {names}"
    for name, trace in res.traces.items():
        steps = json.loads(json.dumps(trace.to_json()))["steps"]  # through JSON, as a user would
        _, broken = replay(cfg, steps)
        assert name in broken, f"the z3 counterexample for {name} does not reproduce it"
        assert trace.format()
    # shortest: the explorer (breadth-first) finds none of them in fewer steps
    deepest = max(len(t.steps) for t in res.traces.values())
    if deepest > 0:
        earlier = explore(cfg, max_depth=deepest - 1, stop_on_violation=False)
        for t in earlier.violations:
            name = t.reason.split()[-2]
            if name in res.traces:
                assert len(t.steps) >= len(res.traces[name].steps), f"BMC's trace for {name} is not a shortest one"


@pytest.mark.parametrize("name,bounds,k", [
    ("context", {"threads": 2, "contexts": 2}, 1),
    ("ownership", {"threads": 2, "contexts": 2, "objects": 1, "max_actions": 1}, 1),
    ("locks", {}, 1),
    ("lifecycle", {}, 2),
])
def test_bmc_finds_nothing_in_the_models(name: str, bounds: dict[str, int], k: int) -> None:
    cfg = get_model(name).config(**bounds)
    res = bmc(cfg, 30)
    assert res.ok
    # k-inductive: BMC stops unrolling once depths below k are checked (lifecycle: a ghost
    # flag in a transition invariant needs its previous step)
    assert res.inductive_at == k - 1
    plain = bmc(cfg, 4, shortcut=False)
    assert plain.ok and plain.inductive_at is None and len(plain.per_depth) == 5


def test_the_shortcut_does_not_hide_a_violation_of_a_two_inductive_invariant() -> None:
    """On a fault, the set with the 2-inductive invariant is not inductive: BMC unrolls and finds it."""
    fault = next(f for f in FAULTS if f.name == "deliver_twice")
    cfg = fault.variant(get_model(fault.model)).config(**fault.bounds)
    res = bmc(cfg, 30)
    assert "delivered_at_most_once" in res.traces


def test_stop_at_first_returns_the_shallowest_violations() -> None:
    fault = next(f for f in FAULTS if f.model == "context" and f.name == "reenter")
    cfg = fault.variant(get_model("context")).config(**fault.bounds)
    first = bmc(cfg, 10, stop_at_first=True)
    full = bmc(cfg, 10)
    depth = min(len(t.steps) for t in full.traces.values())
    assert first.traces and all(len(t.steps) == depth for t in first.traces.values())
    assert set(first.traces) < set(full.traces)
