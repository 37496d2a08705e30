"""Predictive checking time against trace length, and the controlled scheduler's schedules per second.

Traces are real runs of the reference implementation (scenario ``churn``: two contexts on two
threads, the GC thread dropping half of their objects while both owners keep entering; every
round is a fresh race on both DeleteQueue mutexes), recorded with synchronisation, of about
1,000 / 10,000 / 100,000 events.  Each is checked with ``iospec check-trace --predict``'s
engine (properties/predict.py).  Target: 10,000 events in under 10 s.

    python benchmarks/bench_predict.py                 # 1k, 10k, 100k events; 20 scheduled runs
    python benchmarks/bench_predict.py --sizes 1000,10000 --window 200 --runs 10

Prints figures only (no pass/fail): wall and CPU seconds (the CPU time of this process, which a
shared machine's load does not inflate), events/s, windows, solver share, and the per-event cost,
from which the practical limit follows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from properties.predict import predict_events
from reference_impl.scenarios import explore, record_uncontrolled

OBJECTS = 4


def _record(target: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    # the events of one round of churn: the difference between two and one round
    _, one = record_uncontrolled("churn", objects=OBJECTS, rounds=1)
    _, two = record_uncontrolled("churn", objects=OBJECTS, rounds=2)
    per_round = max(1, len(two) - len(one))
    rounds = max(1, round((target - (len(one) - per_round)) / per_round))
    return record_uncontrolled("churn", objects=OBJECTS, rounds=rounds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="target trace lengths (events)")
    ap.add_argument("--window", type=int, default=200, help="events per window (default 200)")
    ap.add_argument("--runs", type=int, default=20, help="controlled runs for the schedules/s figure")
    args = ap.parse_args()

    print("predictive checking (model ownership, reference implementation runs, scenario churn)")
    cols = ["events", "record s", "check s", "cpu s", "events/s", "windows", "build %", "z3 %", "ms/event"]
    print(" ".join(f"{c:>9}" for c in cols))
    for size in [int(x) for x in args.sizes.split(",") if x]:
        t0 = time.perf_counter()
        header, trace = _record(size)
        rec = time.perf_counter() - t0
        cpu0 = time.process_time()
        rep = predict_events(header, [(i + 2, e) for i, e in enumerate(trace)], window=args.window)
        cpu = time.process_time() - cpu0
        assert rep.ok, rep.summary()
        n = len(trace)
        build = 100 * (rep.solver_seconds - rep.z3_seconds) / rep.seconds if rep.seconds else 0.0
        z3_share = 100 * rep.z3_seconds / rep.seconds if rep.seconds else 0.0
        print(f"{n:>9,} {rec:>9.2f} {rep.seconds:>9.2f} {cpu:>9.2f} {n / rep.seconds:>9,.0f} {rep.windows:>9} "
              f"{build:>8.0f}% {z3_share:>8.0f}% {1000 * rep.seconds / n:>9.2f}", flush=True)
    print("(check s: wall time; cpu s: this process's CPU time; build % = building the windows' z3 problems,\n"
          " z3 % = z3 solving them; the rest is reading the trace and the monitor)")

    print("\ncontrolled scheduler (scenario gc_drop_vs_entry, reference implementation, random strategy)")
    decisions = 0
    steps = 0

    def count(_k: int, res: object) -> None:
        nonlocal decisions, steps
        decisions += res.extra["decisions"]  # type: ignore[attr-defined]
        steps += len(res.trace)  # type: ignore[attr-defined]

    t0, cpu0 = time.perf_counter(), time.process_time()
    found, n = explore("gc_drop_vs_entry", "random", runs=args.runs, seed=1, on_run=count)
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert found is None
    print(f"{n} schedules in {dt:.2f} s ({cpu:.2f} s CPU): {n / dt:.2f} schedules/s, "
          f"{decisions / dt:,.0f} scheduling decisions/s, {steps / dt:,.0f} recorded steps/s "
          "(each schedule starts and stops a runtime with 3 threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
