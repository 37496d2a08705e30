"""The z3 encoding agrees with the explorer, state for state (the guard against the encoding drifting).

For small configurations of every model in the catalogue (its smallest standard configuration
plus the context/ownership configurations below):

* the states z3 finds reachable in exactly ``d`` steps (all-SAT over paths with stutter
  steps, for every ``d`` up to a small depth) are the explorer's states at BFS depth ``d``;
* from sampled reachable states, the set of ``(action instance, successor)`` pairs the
  symbolic transition relation admits (all-SAT) is exactly the explorer's successor list:
  every explicit transition satisfies the relation and the relation admits nothing else;
* the symbolic action instances are the dense compiler's, in the same order (so selector
  values decode to the explorer's instances).
"""

from __future__ import annotations

import pytest

from model.catalog import MODELS, get_model, standard_configs
from model.core import Config, compile_dense
from properties.z3.bmc import reachable_by_depth, successors
from properties.z3.encoding import BoundedEncoding

#: explorer states (cumulative over depths) to compare by all-SAT, per configuration, and the depth cap
MAX_STATES = 250
MAX_DEPTH = 4
#: reachable states whose successor sets are compared
SAMPLE = 30

EXTRA = [
    ("context", {"threads": 2, "contexts": 2}),
    ("ownership", {"threads": 1, "contexts": 1, "objects": 1, "max_actions": 0}),
    ("ownership", {"threads": 2, "contexts": 1, "objects": 1, "max_actions": 1}),
    ("ownership", {"threads": 1, "contexts": 2, "objects": 1, "max_actions": 1}),
    ("ownership", {"threads": 2, "contexts": 2, "objects": 1, "max_actions": 0}),
]


def _configs() -> list[tuple[str, Config]]:
    out = [(f"{m}:{','.join(f'{k}={v}' for k, v in b.items())}", get_model(m).config(**b)) for m, b in EXTRA]
    for name in sorted(MODELS):
        scs = [c for c in standard_configs() if c.model_name == name and c.ci]
        cfg = min(scs, key=lambda c: c.expected.get("distinct", 1 << 60)).config() if scs else get_model(name).config()
        out.append((f"{name}:smallest", cfg))
    return out


CONFIGS = _configs()


def _levels(cfg: Config, max_states: int) -> list[set[tuple[int, ...]]]:
    dm = compile_dense(cfg, checked=True)
    seen = {dm.initial}
    levels = [{dm.initial}]
    while True:
        nxt = {t for s in levels[-1] for _, t in dm.successors(s) if t not in seen}
        if not nxt or len(seen) + len(nxt) > max_states or len(levels) > MAX_DEPTH:
            return levels
        seen |= nxt
        levels.append(nxt)


@pytest.mark.parametrize("label,cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_states_reachable_per_depth_equal_the_explorers(label: str, cfg: Config) -> None:
    want = _levels(cfg, MAX_STATES)
    depth = max(2, len(want) - 1)
    got = reachable_by_depth(cfg, min(depth, len(want) - 1))
    assert [len(x) for x in got] == [len(x) for x in want[: len(got)]], "states per depth differ"
    assert got == want[: len(got)]
    assert len(got) >= 2


@pytest.mark.parametrize("label,cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_successor_sets_equal_the_explorers(label: str, cfg: Config) -> None:
    dm = compile_dense(cfg, checked=True)
    enc = BoundedEncoding(cfg)
    assert [(i.action.name, i.args) for i in enc.instances] == [(i.action.name, i.args) for i in dm.instances]
    # a deterministic sample: breadth-first, every k-th state, so deep states are included
    order = [dm.initial]
    seen = {dm.initial}
    k = 0
    while k < len(order) and len(order) < 2000:
        for _, t in dm.successors(order[k]):
            if t not in seen:
                seen.add(t)
                order.append(t)
        k += 1
    step = max(1, len(order) // SAMPLE)
    sample = order[::step][:SAMPLE]
    compared = 0
    for s in sample:
        want = {(i, t) for i, t in dm.successors(s)}
        got = successors(enc, s)
        missing = sorted(dm.instances[i].render() for i, _ in want - got)
        extra = sorted(dm.instances[i].render() for i, _ in got - want)
        assert not missing and not extra, f"from {dm.format_state(s)}: z3 lacks {missing}, z3 adds {extra}"
        compared += len(want)
    assert compared > 0
