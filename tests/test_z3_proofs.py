"""z3 induction proofs: every invariant of every model holds at every depth in the model's default
bounded configuration; those of the context, ownership and locks models for any number of threads,
contexts, objects and isolates too; and on every seeded fault the proof fails (no check that cannot
fail), never contradicting BMC.

`KNOWN_UNPROVED` lists invariants with no bounded proof yet (none at present): a proof that starts
failing (a regression) fails the test.
"""

from __future__ import annotations

import os

import pytest

from model.catalog import MODELS, get_model, standard_configs
from model.faults import FAULTS
from properties.z3.bmc import bmc
from properties.z3.encoding import BoundedEncoding, ParametricEncoding
from properties.z3.induction import prove, relative_ctis

#: every invariant proved for any number of identities (the issue's parameterised rules)
FULLY_PROVED = ("context", "ownership", "locks")
#: every invariant proved for every depth in the model's default bounded configuration
BOUNDED_PROVED = tuple(sorted(MODELS))

#: long checks run with IOSPEC_SLOW=1 (tox -e verify sets it)
SLOW = [pytest.mark.slow, pytest.mark.skipif(os.environ.get("IOSPEC_SLOW") != "1", reason="slow: set IOSPEC_SLOW=1")]

#: invariants with no bounded induction proof yet, per model (none since the lifecycle lemmas; a
#: proof that starts failing fails `test_every_invariant_is_proved_in_the_default_configuration`).
#: The lifecycle family is not proved parametrically: see docs/verification.md, "Not yet proved".
KNOWN_UNPROVED: dict[str, set[str]] = {}

FAULTS_OF_PROVED = [f for f in FAULTS if f.model in FULLY_PROVED]
#: faults of the lifecycle family whose induction refutation runs in the default test run (all: IOSPEC_SLOW=1)
QUICK_LIFECYCLE = {"wait_until_before_creation", "exit_stays_entered", "drain_ends_inside_js"}
FAULTS_BOUNDED = [pytest.param(f, marks=() if f.model in FULLY_PROVED or f.name in QUICK_LIFECYCLE else SLOW)
                  for f in FAULTS]
#: a few faults whose parametric refutation runs in the default test run (all of them: -m slow)
QUICK_PARAMETRIC = {"reenter", "recycle_ids", "release_any_kind", "leak_at_death", "lifo_queue", "no_coalescing"}


@pytest.mark.parametrize("name", BOUNDED_PROVED)
def test_every_invariant_is_proved_in_the_default_configuration(name: str) -> None:
    model = get_model(name)
    run = prove(BoundedEncoding(model.config()))
    unproved = {n: p.detail for n, p in run.proofs.items() if not p.proved and n not in KNOWN_UNPROVED.get(name, ())}
    assert not unproved
    assert set(run.proofs) == {i.name for i in model.invariants}
    names = set(run.proofs)
    for p in run.proofs.values():
        assert set(p.support) <= names - {p.name}


@pytest.mark.parametrize("name", FULLY_PROVED)
def test_every_invariant_is_proved_for_any_number_of_identities(name: str) -> None:
    model = get_model(name)
    run = prove(ParametricEncoding(model), max_k=1, minimize=False)
    unproved = {n: p.detail for n, p in run.proofs.items() if not p.proved}
    assert not unproved
    assert not relative_ctis(ParametricEncoding(model, tag="#rel")), "every invariant is inductive relative to all"


def test_constants_can_be_fixed_in_a_parametric_proof() -> None:
    model = get_model("ownership")
    run = prove(ParametricEncoding(model, {"all_kinds": 0, "max_actions": 2}), max_k=1, minimize=False)
    assert all(p.proved for p in run.proofs.values())


def test_lemmas_are_what_the_proofs_need() -> None:
    """Without its lemmas, an ownership rule is not inductive: the lemmas are doing work."""
    from dataclasses import replace

    model = get_model("ownership")
    bare = replace(model, invariants=tuple(i for i in model.invariants if not i.lemma))
    run = prove(BoundedEncoding(bare.config()), max_k=1, minimize=False)
    assert not all(p.proved for p in run.proofs.values())
    full = prove(BoundedEncoding(model.config()), max_k=1)
    used = {s for p in full.proofs.values() for s in p.support}
    added_for_induction = {"unborn_contexts_are_unpinned", "saved_outer_is_unique", "current_is_top_of_stack",
                           "node_matches_kind", "pushers_dropped_an_io_own", "unborn_contexts_have_empty_queues"}
    assert added_for_induction <= used, "every lemma added for the induction proofs is used by one"


@pytest.mark.parametrize("fault", FAULTS_BOUNDED, ids=lambda f: f"{f.model}/{f.name}")
def test_the_induction_proof_fails_on_every_fault(fault) -> None:  # type: ignore[no-untyped-def]
    variant = fault.variant(get_model(fault.model))
    cfg = variant.config(**fault.bounds)
    invs = {i.name for i in variant.invariants}
    breaks = [b for b in fault.breaks if b in invs]
    if not breaks:
        pytest.skip(f"{fault.name} breaks no invariant ({', '.join(fault.breaks)})")
    proofs = prove(BoundedEncoding(cfg), max_k=1, minimize=False).proofs
    unproved = {n for n, p in proofs.items() if not p.proved}
    assert unproved & set(breaks), f"{fault.name}: {breaks} proved on the faulty model"
    violated = set(bmc(cfg, 12, invariants=breaks).traces)
    assert violated and not violated & {n for n, p in proofs.items() if p.proved}, "a BMC violation was 'proved'"


def test_k_induction_checks_its_base_case() -> None:
    """A property violated after one step is not 'proved' by k-induction (regression: the base case
    must cover every depth below k, not just the initial state)."""
    fault = next(f for f in FAULTS if f.name == "schedule_before_creation")
    cfg = fault.variant(get_model(fault.model)).config(**fault.bounds)
    assert set(bmc(cfg, 3).traces) == {"unborn_contexts_have_empty_queues"}
    proofs = prove(BoundedEncoding(cfg), max_k=3, minimize=False).proofs
    assert not proofs["unborn_contexts_have_empty_queues"].proved
    assert proofs["pending_actions_are_signaled"].proved  # holds in this variant (the explorer agrees)
    assert proofs["pending_actions_are_signaled"].method == "k-induction"


@pytest.mark.parametrize(
    "fault",
    [pytest.param(f, marks=() if f.name in QUICK_PARAMETRIC else SLOW) for f in FAULTS_OF_PROVED],
    ids=lambda f: f"{f.model}/{f.name}",
)
def test_the_parametric_proof_fails_on_every_fault(fault) -> None:  # type: ignore[no-untyped-def]
    variant = fault.variant(get_model(fault.model))
    breaks = [b for b in fault.breaks if b in {i.name for i in variant.invariants}]
    if not breaks:
        pytest.skip(f"{fault.name} breaks no invariant")
    proofs = prove(ParametricEncoding(variant), max_k=1, timeout_ms=5000, minimize=False).proofs
    assert {n for n, p in proofs.items() if not p.proved} & set(breaks)


@pytest.mark.parametrize("sc", [pytest.param(c, marks=SLOW) for c in standard_configs()], ids=lambda c: c.name)
def test_every_invariant_is_proved_in_every_standard_configuration(sc) -> None:  # type: ignore[no-untyped-def]
    run = prove(BoundedEncoding(sc.config()), max_k=2, minimize=False)
    assert not {n: p.detail for n, p in run.proofs.items() if not p.proved}


def test_lifecycle_lemmas_are_what_the_proofs_need() -> None:
    """The lifecycle lemmas added for induction each appear in the support of some proof."""
    model = get_model("lifecycle")
    full = prove(BoundedEncoding(model.config()), max_k=2)
    used = {s for p in full.proofs.values() if p.method == "induction" for s in p.support}
    added_for_induction = {"phase_matches_fields", "newer_orders_each_list", "unborn_contexts_have_no_tasks",
                           "entered_contexts_have_a_request", "threads_with_entered_contexts_are_busy"}
    assert added_for_induction <= used
    assert full.proofs["delivered_at_most_once"].method == "k-induction", "a ghost flag needs its previous step"
