"""Hypothesis stateful tests of the reference implementation, the models as the oracle.

`tests.stateful_reference.ReferenceMachine` drives the real runtime (threads, event loops,
the GC thread); here it runs clean (every program must agree with the models) and with
seeded faults of `reference_impl.faults` (a fixed, derandomized search must find a program
that disagrees, and its failure names the broken rule).  Profiles: IOSPEC_HYPOTHESIS_PROFILE
= dev (default) | ci | soak.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import Phase, seed, settings
from hypothesis.stateful import run_state_machine_as_test

from properties.tracecheck import check_trace
from reference_impl.faults import FAULTS
from tests.stateful_reference import COVERAGE, STEPS, ReferenceMachine, machine_with_faults, profile

TestReferenceMachine = ReferenceMachine.TestCase
TestReferenceMachine.settings = profile()

#: faults of the rules this machine exercises (ownership, entering, aborts, delivery)
CAUGHT = [
    "access_check_missing",
    "access_check_compares_threads",
    "delete_on_wrong_thread",
    "deletion_after_death",
    "double_deletion",
    "deletion_without_queue_lock",
    "run_after_abort",
    "abort_last_reason_wins",
    "deliver_twice",
]


@pytest.mark.parametrize("fault", CAUGHT)
def test_the_machine_catches_seeded_fault(fault: str) -> None:
    machine = machine_with_faults([fault])
    # generation only: finding the disagreement is the point here (shrinking is tested below)
    fixed = settings(profile("dev"), derandomize=True, max_examples=300, print_blob=False, phases=[Phase.generate])
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(machine, settings=fixed)
    text = str(info.value)
    print(f"{fault} (rule {FAULTS[fault].rule}) caught, derandomized search:\n{text[:2000]}")
    assert "trace (NDJSON" in text, "a failure carries its replayable trace"


def test_a_failure_shrinks_to_a_minimal_replayable_trace(tmp_path: Path) -> None:
    """The shrunk failure of a faulty variant prints a short trace that `iospec check-trace` rejects on its own."""
    machine = machine_with_faults(["access_check_missing"])
    fixed = settings(profile("dev"), derandomize=True, max_examples=300, stateful_step_count=15, print_blob=False)
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(machine, settings=fixed)
    lines = str(info.value).split("trace (NDJSON; `iospec check-trace FILE` replays it):\n", 1)[1].splitlines()
    assert json.loads(lines[0])["iospec_trace"] == 1
    events = [json.loads(x) for x in lines[1:]]
    # two contexts, an object, a foreign access (each with its lock and enter/exit events): a few dozen at most
    assert len(events) <= 40, f"not shrunk: {len(events)} events"
    trace = tmp_path / "shrunk.ndjson"
    trace.write_text("\n".join(lines) + "\n")
    rep = check_trace(trace)
    assert rep.violation is not None and "INV-O2" in rep.violation.rules, rep.summary()
    assert rep.violation.event is not None and rep.violation.event["op"] == "access"


# ---- soak (IOSPEC_SLOW=1; tox -e soak) ------------------------------------------------------------------------------

SOAK_SEEDS = range(20)


@pytest.mark.slow
@pytest.mark.parametrize("run_seed", SOAK_SEEDS)
def test_no_flakiness_twenty_seeds(run_seed: int) -> None:
    """The clean machine passes under 20 different seeds (ci profile); a failure prints its seed."""
    machine = seed(run_seed)(machine_with_faults([]))
    print(f"seed {run_seed}")
    run_state_machine_as_test(machine, settings=settings(profile("ci"), derandomize=False))


@pytest.mark.slow
def test_soak_campaign_eight_threads() -> None:
    """A long campaign (soak profile: IOSPEC_SOAK_EXAMPLES programs of up to 100 steps) on 8 runtime threads.

    Every program ends with the teardown checks (every object of a dead context destroyed
    exactly once, no queued deletion left in a dead context, no DeleteQueue mutex held, every
    invariant holds in full, no runtime thread left running).  Prints the figures.
    """
    machine = machine_with_faults([], threads=8)
    started = time.monotonic()
    before = STEPS["steps"]
    run_state_machine_as_test(machine, settings=settings(profile("soak"), derandomize=False))
    elapsed = time.monotonic() - started
    ran = STEPS["steps"] - before
    print(f"soak: {ran:,} steps in {elapsed:.0f}s ({ran / elapsed:,.0f} steps/s) on 8 threads; "
          f"outcomes {dict(COVERAGE)}")
