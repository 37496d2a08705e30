"""``python -m conformance.http``: run the HTTP-level scenarios against a workerd binary.

Prints one line per scenario (PASS / FAIL / DIFF for a non-MUST mismatch), the workerd
version, the number of processes started and the wall time; ``--json FILE`` writes the
observation records.  Exit code: 0 when every MUST scenario matches, 1 otherwise, 2 for bad
input (unknown id, malformed scenario, missing or broken binary), 130 when interrupted.
SIGTERM is turned into a clean stop so no workerd process outlives the run.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from iospec.errors import UserError

from .expect import check
from .scenarios import load_all, select
from .vocabulary import IO_KINDS, OPS
from .workerd import resolve_workerd, run_scenarios

__all__ = ["main"]


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conformance.http", description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="scenario ids to run (a trailing * matches a prefix); default: all")
    parser.add_argument("--workerd-bin", metavar="PATH", help="the workerd binary (default: node_modules' workerd)")
    parser.add_argument("--slow", action="store_true", help="also run the slow scenarios (waits of 30 s or more)")
    parser.add_argument("--json", metavar="FILE", help="write the observation records here")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated config and workers in DIR")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--vocabulary", action="store_true", help="print the behaviour vocabulary and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.vocabulary:
        print("ops (a step is {\"op\": NAME, ...}; fields: conformance/http/scenario.schema.json):")
        for name, meaning in OPS.items():
            print(f"  {name:24} {meaning}")
        print("I/O kinds (save_io / use_io):")
        for name, meaning in IO_KINDS.items():
            print(f"  {name:26} {meaning}")
        return 0
    try:
        scenarios = select(load_all(), ids=args.ids, slow=args.slow)
        if args.list:
            for s in scenarios:
                print(f"{s.id:50} {s.level:13} {' '.join(s.rules)}{'  (slow)' if s.slow else ''}")
            return 0
        binary = resolve_workerd(args.workerd_bin)
        failures = 0

        def show(record: dict[str, Any]) -> None:
            nonlocal failures
            scenario = next(s for s in scenarios if s.id == record["scenario"])
            problems = check(scenario.expect, record)
            verdict = "PASS" if not problems else ("FAIL" if scenario.level == "MUST" else "DIFF")
            failures += verdict == "FAIL"
            print(f"{verdict} {scenario.level:13} {scenario.id}", flush=True)
            for problem in problems:
                print(f"     {problem}", flush=True)

        result = run_scenarios(scenarios, binary, keep_dir=Path(args.keep) if args.keep else None, on_result=show)
        print(f"{result.version}: {len(scenarios)} scenarios, {failures} MUST failures, "
              f"{result.processes_started} workerd processes, {result.wall_s:.1f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(result.to_json(), indent=1) + "\n", encoding="utf-8")
        return 1 if failures else 0
    except UserError as e:
        print(f"conformance.http: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conformance.http: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
