"""The conformance catalogue against the reference implementation: scenarios/s and where the time goes.

Loads the whole catalogue (hand-written and generated scenarios, each validated by running it
through its model), runs it against the reference implementation's in-process adapter, and
prints the figures measured in this run: load time, run time, scenarios per second, and the
share of the run spent predicting with the model, performing in the implementation, and
checking the recorded traces with the monitors.  Target: the whole suite in under 60 s::

    python benchmarks/bench_conformance.py            # the catalogue once
    python benchmarks/bench_conformance.py --repeat 3 # best of three runs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from conformance.expectations_file import load_expectations
from conformance.reference_adapter import ReferenceImplementation
from conformance.runner import Timing, apply_expectations, run_suite
from conformance.scenario import _load_dir, load_all

EXPECTATIONS = Path(__file__).resolve().parents[1] / "conformance" / "expectations" / "reference.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1, help="runs of the whole catalogue (the best is reported)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    scenarios = load_all(generated=True)
    load = time.perf_counter() - t0
    impl = ReferenceImplementation()
    best: tuple[float, Timing, dict[str, int]] | None = None
    for _ in range(args.repeat):
        timing = Timing()
        t1 = time.perf_counter()
        results = run_suite(scenarios, impl, timing=timing)
        elapsed = time.perf_counter() - t1
        apply_expectations(results, load_expectations(EXPECTATIONS))
        outcomes: dict[str, int] = {}
        for r in results:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        if best is None or elapsed < best[0]:
            best = (elapsed, timing, outcomes)
        _load_dir.cache_clear()
    assert best is not None
    elapsed, timing, outcomes = best
    accounted = timing.model + timing.implementation + timing.monitor
    print(f"catalogue: {len(scenarios)} scenarios ({sum(s.generated for s in scenarios)} generated), "
          f"loaded and validated against the models in {load:.2f} s")
    print(f"run: {elapsed:.2f} s for {len(results)} scenarios = {len(results) / elapsed:.1f} scenarios/s "
          f"(best of {args.repeat}); outcomes {outcomes}")
    print(f"load + run: {load + elapsed:.2f} s (target: under 60 s)")
    for name, secs in (("model (predictions)", timing.model),
                       ("implementation (adapter, runtime)", timing.implementation),
                       ("monitors (trace check)", timing.monitor),
                       ("harness (loop, comparison)", max(elapsed - accounted, 0.0))):
        print(f"  {name:32} {secs:7.2f} s  {100 * secs / elapsed:5.1f} %")


if __name__ == "__main__":
    main()
