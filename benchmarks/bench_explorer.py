"""Explorer throughput: distinct states/s, transitions/s, bytes per visited state, symmetry reduction.

Explores standard configurations (model/standard_configs.json) and prints, for each, the figures
measured in this run: wall time and CPU time of this process (the CPU figure is the one to
compare on a shared machine), distinct states and transitions per CPU second, the fingerprint
store's bytes per state and, where a configuration is explored both ways, the reduction from
symmetry (distinct states without / with).  Ends with the issue's targets and whether this run
met them.  Not a test: nothing here fails on a slow machine.

    python benchmarks/bench_explorer.py                # quick set (about a minute of CPU)
    python benchmarks/bench_explorer.py --large        # adds ownership-lean-3x3x4 (minutes)
    python benchmarks/bench_explorer.py --config NAME  # one configuration, both ways if feasible
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from model.catalog import StandardConfig, standard_configs
from properties.explorer import Explorer, ExploreResult

QUICK = [
    "context-2x2", "ownership-tiny", "ownership-lean-2x2x2", "ownership-2x2x1", "locks-progress", "entrypoint-fetch",
]
#: configurations explored with and without symmetry, to measure the reduction
BOTH_WAYS = {"ownership-lean-2x2x2", "context-2x2", "locks-progress"}
LARGE = ["ownership-lean-3x3x4"]

TARGET_STATES_PER_S = 100_000
TARGET_BYTES_PER_STATE = 16.0
TARGET_LARGE_SECONDS = 60.0


@dataclass
class Figure:
    name: str
    symmetry: bool
    result: ExploreResult
    cpu: float

    def row(self) -> str:
        r = self.result
        return (
            f"{self.name:28s} {'sym' if self.symmetry else '   '} {r.distinct:>11,} {r.transitions:>12,} "
            f"{r.elapsed:>8.2f} {self.cpu:>8.2f} {r.distinct / self.cpu:>11,.0f} {r.transitions / self.cpu:>12,.0f} "
            f"{r.bytes_per_state:>6.1f}"
        )


def measure(sc: StandardConfig, symmetry: bool) -> Figure:
    explorer = Explorer(sc.config(), symmetry=symmetry)
    c0 = time.process_time()
    result = explorer.run()
    cpu = max(1e-9, time.process_time() - c0)
    return Figure(sc.name, symmetry, result, cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true", help="also explore " + ", ".join(LARGE))
    ap.add_argument("--config", action="append", metavar="NAME", help="only these standard configurations")
    args = ap.parse_args(argv)
    by_name = {c.name: c for c in standard_configs()}
    names = args.config or QUICK + (LARGE if args.large else [])
    unknown = [n for n in names if n not in by_name]
    if unknown:
        print(f"bench_explorer: unknown configuration {unknown[0]!r} (see iospec explore --list)", file=sys.stderr)
        return 2

    print(f"{'configuration':28s} sym {'distinct':>11s} {'transitions':>12s} {'wall s':>8s} {'cpu s':>8s} "
          f"{'states/cpu-s':>11s} {'trans/cpu-s':>12s} {'B/st':>6s}")
    figures: list[Figure] = []
    for name in names:
        sc = by_name[name]
        ways = [False, True] if name in BOTH_WAYS else [sc.symmetry]
        for sym in ways:
            f = measure(sc, sym)
            figures.append(f)
            print(f.row(), flush=True)
            if f.result.distinct != sc.expected.get("distinct", f.result.distinct) and sym == sc.symmetry:
                print(f"  NOTE: expected {sc.expected['distinct']:,} distinct states (standard_configs.json)")

    print("\nsymmetry reduction (distinct states without / with, and CPU time without / with):")
    for name in names:
        pair = [f for f in figures if f.name == name]
        if len(pair) == 2:
            plain, reduced = pair
            print(f"  {name:28s} {plain.result.distinct / reduced.result.distinct:5.2f}x states, "
                  f"{plain.cpu / reduced.cpu:5.2f}x time")

    print("\ntargets (this run):")
    own = [f for f in figures if f.name.startswith("ownership") and not f.symmetry and f.result.distinct > 100_000]
    if own:
        best = max(f.result.distinct / f.cpu for f in own)
        print(f"  ownership distinct states per CPU second: {best:,.0f} (target >= {TARGET_STATES_PER_S:,}): "
              f"{'met' if best >= TARGET_STATES_PER_S else 'NOT met'}")
    worst = max(f.result.bytes_per_state for f in figures if f.result.distinct > 10_000)
    print(f"  fingerprint store, worst bytes/state over runs with >10k states: {worst:.1f} "
          f"(target <= {TARGET_BYTES_PER_STATE:.0f}): {'met' if worst <= TARGET_BYTES_PER_STATE else 'NOT met'}")
    for f in figures:
        if f.name in LARGE:
            met = min(f.cpu, f.result.elapsed) < TARGET_LARGE_SECONDS
            print(f"  {f.name}: {f.cpu:.1f} CPU s, {f.result.elapsed:.1f} wall s "
                  f"(target < {TARGET_LARGE_SECONDS:.0f} s): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
