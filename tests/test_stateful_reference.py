"""Hypothesis stateful tests of the reference implementation, the models as the oracle.

`tests.stateful_reference.ReferenceMachine` drives the real runtime (threads, event loops,
the GC thread); here it runs clean (every program must agree with the models) and with
seeded faults of `reference_impl.faults` (a fixed, derandomized search must find a program
that disagrees, and its failure names the broken rule).  Profiles: IOSPEC_HYPOTHESIS_PROFILE
= dev (default) | ci | soak.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from reference_impl.faults import FAULTS
from tests.stateful_reference import ReferenceMachine, machine_with_faults, profile

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
    fixed = settings(profile("dev"), derandomize=True, max_examples=200, print_blob=False)
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(machine, settings=fixed)
    text = str(info.value)
    print(f"{fault} (rule {FAULTS[fault].rule}) caught, derandomized search:\n{text[:2000]}")
    assert "trace (NDJSON" in text, "a failure carries its replayable trace"
