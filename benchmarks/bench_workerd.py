"""Wall time of the HTTP-level conformance suite against real workerd, and how many processes it starts.

    python benchmarks/bench_workerd.py [--repeat N] [--slow] [--workerd-bin PATH]

Target (issue 6): the non-slow set in under 60 s.  With --repeat N (default 2) the suite runs
N times in a row and the script also reports whether every run gave the same verdict for
every scenario (it should: the suite is deterministic at the level of verdicts).  Exit code 1
if a MUST scenario failed or the verdicts differ between runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.http.expect import check
from conformance.http.scenarios import load_all, select
from conformance.http.workerd import resolve_workerd, run_scenarios

TARGET_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--slow", action="store_true", help="include the slow scenarios")
    parser.add_argument("--workerd-bin", metavar="PATH")
    args = parser.parse_args()
    binary = resolve_workerd(args.workerd_bin)
    scenarios = select(load_all(), slow=args.slow)
    verdicts: list[dict[str, str]] = []
    must_failures = 0
    for index in range(args.repeat):
        started = time.monotonic()
        result = run_scenarios(scenarios, binary)
        wall = time.monotonic() - started
        run_verdicts = {}
        for s, o in zip(scenarios, result.observations, strict=True):
            problems = check(s.expect, o)
            run_verdicts[s.id] = "pass" if not problems else "differs"
            must_failures += bool(problems) and s.level == "MUST"
        verdicts.append(run_verdicts)
        passed = sum(v == "pass" for v in run_verdicts.values())
        print(f"run {index + 1}: {len(scenarios)} scenarios ({passed} match), {result.processes_started} workerd "
              f"processes, wall {wall:.1f} s (target < {TARGET_S:.0f} s: {'met' if wall < TARGET_S else 'MISSED'}), "
              f"{result.version}")
    same = all(v == verdicts[0] for v in verdicts)
    if args.repeat > 1:
        changed = sorted(k for k in verdicts[0] if len({v[k] for v in verdicts}) > 1)
        print(f"verdicts identical across {args.repeat} runs: {'yes' if same else 'NO, differ: ' + ', '.join(changed)}")
    print(f"MUST failures (all runs): {must_failures}")
    return 0 if same and not must_failures else 1


if __name__ == "__main__":
    sys.exit(main())
