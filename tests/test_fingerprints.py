"""The compact fingerprint store behaves like a set, through many growths."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from properties.fingerprints import FingerprintSet, fingerprint


@given(st.lists(st.integers(min_value=1, max_value=(1 << 64) - 1), max_size=3000))
@settings(max_examples=60, deadline=None)
def test_behaves_like_a_set(values: list[int]) -> None:
    fs = FingerprintSet(16)
    ref: set[int] = set()
    for v in values:
        assert fs.add(v) == (v not in ref)
        ref.add(v)
    assert len(fs) == len(ref)
    assert all(v in fs for v in ref)


def test_stays_compact() -> None:
    fs = FingerprintSet(16)
    rng = random.Random(7)
    for _ in range(200_000):
        fs.add(rng.getrandbits(64) or 1)
    assert len(fs) == 200_000
    assert fs.bytes_per_entry <= 16.0 + 1e-9, fs.bytes_per_entry


def test_fingerprint_is_nonzero_and_stable() -> None:
    assert fingerprint((0,)) != 0
    assert fingerprint((1, 2, 3)) == fingerprint((1, 2, 3))
    assert fingerprint((True, False)) == fingerprint((1, 0))
