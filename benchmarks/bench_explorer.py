"""Explorer throughput: distinct states/s, transitions/s, bytes per visited state, symmetry reduction.

Explores standard configurations (model/standard_configs.json) and prints, for each, the figures
measured in this run: wall time and CPU time of this process and its workers (the CPU figure is the one to
compare on a shared machine), the CPU time of the busiest worker (what the wall time would be on an
idle machine with a core per worker), the load average when the run ended, distinct states and
transitions per CPU second, the fingerprint store's bytes per state and, where a configuration is
explored both ways, the reduction from symmetry (distinct states without / with).  Ends with the
issue's targets and whether this run met them.  Not a test: nothing here fails on a slow machine.

    python benchmarks/bench_explorer.py                # quick set (about a minute of CPU)
    python benchmarks/bench_explorer.py --large        # adds ownership-lean-3x3x4 (minutes)
    python benchmarks/bench_explorer.py --config NAME  # one configuration
    python benchmarks/bench_explorer.py --workers 4    # parallel runs with 4 worker processes
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
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
    workers: int = 1
    load: float = 0.0

    @property
    def busiest(self) -> float:
        """CPU seconds of the busiest process (all of it with one process)."""
        return max(self.result.worker_cpu, default=self.cpu)

    def row(self) -> str:
        r = self.result
        return (
            f"{self.name:28s} {'sym' if self.symmetry else '   '} {self.workers:>2} "
            f"{r.distinct:>11,} {r.transitions:>12,} "
            f"{r.elapsed:>8.2f} {self.cpu:>8.2f} {self.busiest:>8.2f} {self.load:>5.1f} "
            f"{r.distinct / self.cpu:>11,.0f} {r.transitions / self.cpu:>12,.0f} {r.bytes_per_state:>6.1f}"
        )


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the explorer's worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(sc: StandardConfig, symmetry: bool, workers: int) -> Figure:
    explorer = Explorer(sc.config(), symmetry=symmetry)
    c0 = cpu_seconds()
    result = explorer.run(workers=workers)
    cpu = max(1e-9, cpu_seconds() - c0)
    return Figure(sc.name, symmetry, result, cpu, workers, os.getloadavg()[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--large", action="store_true", help="also explore " + ", ".join(LARGE))
    ap.add_argument("--config", action="append", metavar="NAME", help="only these standard configurations")
    ap.add_argument("--workers", type=int, default=2, help="also explore with this many worker processes (default 2)")
    args = ap.parse_args(argv)
    by_name = {c.name: c for c in standard_configs()}
    names = args.config or QUICK + (LARGE if args.large else [])
    unknown = [n for n in names if n not in by_name]
    if unknown:
        print(f"bench_explorer: unknown configuration {unknown[0]!r} (see iospec explore --list)", file=sys.stderr)
        return 2

    print(f"{'configuration':28s} sym  w {'distinct':>11s} {'transitions':>12s} {'wall s':>8s} {'cpu s':>8s} "
          f"{'max cpu':>8s} {'load':>5s} {'states/cpu-s':>11s} {'trans/cpu-s':>12s} {'B/st':>6s}")
    figures: list[Figure] = []
    for name in names:
        sc = by_name[name]
        ways = [False, True] if name in BOTH_WAYS else [sc.symmetry]
        for sym in ways:
            for workers in sorted({1, args.workers}):
                f = measure(sc, sym, workers)
                figures.append(f)
                print(f.row(), flush=True)
            if sym == sc.symmetry:
                got = {"distinct": f.result.distinct, "transitions": f.result.transitions, "depth": f.result.depth}
                for key, want in sc.expected.items():
                    if key in got and got[key] != want:
                        print(f"  NOTE: expected {key} {want:,}, got {got[key]:,} (model/standard_configs.json)")

    print("\nsymmetry reduction (distinct states without / with, and CPU time without / with):")
    for name in names:
        pair = [f for f in figures if f.name == name and f.workers == 1]
        if len(pair) == 2:
            plain, reduced = pair
            print(f"  {name:28s} {plain.result.distinct / reduced.result.distinct:5.2f}x states, "
                  f"{plain.cpu / reduced.cpu:5.2f}x time")

    print("\ntargets (this run):")
    own = [f for f in figures if f.name.startswith("ownership") and not f.symmetry and f.result.distinct > 100_000]
    for f in own:
        rate = f.result.distinct / f.result.elapsed
        idle = f.result.distinct / f.busiest
        print(f"  {f.name} with {f.workers} process(es): {rate:,.0f} distinct states per wall second "
              f"(target >= {TARGET_STATES_PER_S:,}): {'met' if rate >= TARGET_STATES_PER_S else 'NOT met'}; "
              f"{idle:,.0f} per CPU second of the busiest process (the idle-machine figure)")
    print(f"  (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall figures need a quiet machine)")
    worst = max(f.result.bytes_per_state for f in figures if f.result.distinct > 10_000)
    print(f"  fingerprint store, worst bytes/state over runs with >10k states: {worst:.1f} "
          f"(target <= {TARGET_BYTES_PER_STATE:.0f}): {'met' if worst <= TARGET_BYTES_PER_STATE else 'NOT met'}")
    for f in figures:
        if f.name in LARGE:
            met = f.result.elapsed < TARGET_LARGE_SECONDS
            idle_met = f.busiest < TARGET_LARGE_SECONDS
            print(f"  {f.name} with {f.workers} process(es): {f.result.elapsed:.1f} wall s, {f.cpu:.1f} CPU s, "
                  f"busiest process {f.busiest:.1f} CPU s (target < {TARGET_LARGE_SECONDS:.0f} s wall): "
                  f"{'met' if met else 'NOT met'}; by the busiest process's CPU: {'met' if idle_met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
