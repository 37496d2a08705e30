"""Wall time of the HTTP-level conformance suite against workerd and against the reference implementation.

    python benchmarks/bench_http.py [--repeat N] [--slow] [--workerd-bin PATH] [--impl NAME ...]

Prints, per run and implementation: the number of scenarios, how many match the expectation
(the models' prediction merged with the scenario's pins), the wall time, and the number of
workerd processes started (reference: runtimes built).  Target (issue 6): the non-slow set
against workerd in under 60 s.  With --repeat N (default 2) the runs are repeated and the
script reports whether every run gave the same outcome for every scenario.  Exit code 1 if a
MUST scenario failed or outcomes differ between runs.  (Formerly bench_workerd.py.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.http.differential import IMPLEMENTATIONS, expectation, run_implementation, scenario_result
from conformance.http.scenarios import load_all, select

TARGET_S = {"workerd": 60.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--slow", action="store_true", help="include the slow scenarios")
    parser.add_argument("--workerd-bin", metavar="PATH")
    parser.add_argument("--impl", action="append", choices=IMPLEMENTATIONS, help="default: both")
    args = parser.parse_args()
    scenarios = select(load_all(), slow=args.slow)
    started = time.monotonic()
    expected = {s.id: expectation(s) for s in scenarios}
    print(f"predictions for {len(scenarios)} scenarios: {time.monotonic() - started:.2f} s")
    outcomes: dict[str, list[dict[str, str]]] = {}
    must_failures = 0
    for index in range(args.repeat):
        for name in args.impl or IMPLEMENTATIONS:
            began = time.monotonic()
            batch = run_implementation(name, scenarios, workerd_bin=args.workerd_bin)
            wall = time.monotonic() - began
            pairs = zip(scenarios, batch.observations, strict=True)
            results = [scenario_result(s, expected[s.id], o) for s, o in pairs]
            outcomes.setdefault(name, []).append({r.scenario_id: r.outcome for r in results})
            must_failures += sum(r.outcome in ("FAIL", "ERROR") and r.level == "MUST" for r in results)
            passed = sum(r.outcome == "PASS" for r in results)
            target = TARGET_S.get(name)
            verdict = f" (target < {target:.0f} s: {'met' if wall < target else 'MISSED'})" if target else ""
            unit = "workerd processes" if name == "workerd" else "runtimes"
            print(f"run {index + 1} {name:9}: {len(scenarios)} scenarios ({passed} match), wall {wall:.1f} s{verdict}, "
                  f"{batch.processes_started} {unit}, {batch.version}", flush=True)
    same = True
    for name, runs in outcomes.items():
        changed = sorted(k for k in runs[0] if len({r[k] for r in runs}) > 1)
        same = same and not changed
        if args.repeat > 1:
            print(f"{name}: outcomes identical across {args.repeat} runs: "
                  f"{'yes' if not changed else 'NO, differ: ' + ', '.join(changed)}")
    print(f"MUST failures (all runs): {must_failures}")
    return 0 if same and not must_failures else 1


if __name__ == "__main__":
    sys.exit(main())
