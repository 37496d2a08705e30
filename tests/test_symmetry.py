"""The generated canonicalisers: fast variants agree with the general one, representatives are fixed points.

The explorer calls, for a successor of a representative under action instance ``i``, the
variant ``for_instance[i]`` that recomputes only the keys ``i`` can change (or nothing).  That is
exact only if a representative's keys are in order, i.e. ``canon`` is idempotent; both are
checked here on reachable states of every model, also with the ``sorted`` fallback that large
sorts use instead of the generated decision tree.
"""

from __future__ import annotations

import pytest

import properties.symmetry as symmetry_module
from model.catalog import MODELS
from model.core import compile_dense
from properties.symmetry import compile_canonicalizers
from tests.test_models import _small_config

#: representatives expanded per model (keeps each case around a second)
LIMIT = 1500


@pytest.mark.parametrize("tree", [True, False], ids=["decision-tree", "sorted"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_instance_variants_agree_with_the_general_canonicaliser(
    name: str, tree: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not tree:
        monkeypatch.setattr(symmetry_module, "MAX_SORT_TREE", 1)
    dm = compile_dense(_small_config(name), compact=True)
    c = compile_canonicalizers(dm)
    if c is None:
        pytest.skip(f"{name}: nothing symmetric in this configuration")
    canon = c.canon
    init = canon(dm.initial)
    assert canon(init) == init
    seen = {init}
    frontier = [init]
    expanded = permuted = 0
    while frontier and expanded < LIMIT:
        nxt = []
        for s in frontier:
            expanded += 1
            for i, t in dm.successors(s):
                rep = canon(t)
                variant = c.for_instance[i]
                assert (variant(t) if variant is not None else t) == rep, dm.instances[i].render()
                assert canon(rep) == rep, "a representative is its own representative"
                permuted += rep != t
                if rep not in seen:
                    seen.add(rep)
                    nxt.append(rep)
        frontier = nxt
    assert expanded > 10
    assert permuted, "some successor needed a permutation (else this checks little)"
