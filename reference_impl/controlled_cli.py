"""``python -m reference_impl record | explore | replay``: the controlled scheduler from the command line.

See reference_impl/scheduler.py (strategies, schedule files) and docs/predictive-checking.md
(record a run, check it predictively with ``iospec check-trace --predict``, replay the witness).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reference_impl.scenarios import explore, make_strategy, replay_schedule, run_scenario

__all__ = ["run_controlled"]


def _fail(message: str) -> int:
    print(f"python -m reference_impl: error: {message}", file=sys.stderr)
    return 2


def run_controlled(args: argparse.Namespace) -> int:
    if args.command == "replay":
        try:
            res = replay_schedule(args.file)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            return _fail(f"{args.file}: {e}")
        if args.trace:
            Path(args.trace).write_text("\n".join(res.trace_lines()) + "\n")
        out = res.replay
        assert out is not None
        print(f"replayed {out.followed}/{out.total} steps of {args.file} ({res.seconds:.2f} s)")
        if out.stuck or out.diverged:
            print(f"NOT CONFIRMED: {out.stuck or out.diverged}")
            return 3
        if res.violation is not None:
            print(f"CONFIRMED: the monitors reject the replayed run\n{res.violation.report()}")
            return 1
        print("the replayed run is accepted by the monitors (no violation)")
        return 0
    order = [t.strip() for t in args.order.split(",") if t.strip()]
    if args.command == "record":
        strategy = make_strategy(args.strategy, seed=args.seed, depth=args.depth, order=order)
        print(f"scenario {args.scenario}, strategy {strategy.describe()}", flush=True)
        res = run_scenario(args.scenario, strategy, faults=args.fault, trace_path=args.trace)
        if args.schedule:
            res.schedule.save(args.schedule)
        print(f"{len(res.trace)} events -> {args.trace} ({res.seconds:.2f} s); monitor: "
              f"{'no violation' if res.violation is None else res.violation}")
        return 0 if res.violation is None else 1
    print(f"exploring {args.scenario} with {args.strategy} (first seed {args.seed}, depth {args.depth}), "
          f"at most {args.runs} schedules", flush=True)
    found, n = explore(args.scenario, args.strategy, runs=args.runs, faults=args.fault, seed=args.seed,
                       depth=args.depth)
    if found is None:
        print(f"no violation in {n} schedules")
        return 0
    print(f"violation after {n} schedules ({found.schedule.strategy}):\n{found.violation.report()}")
    if args.schedule:
        found.schedule.save(args.schedule)
        print(f"schedule: {args.schedule} (replay: python -m reference_impl replay {args.schedule})")
    return 1
