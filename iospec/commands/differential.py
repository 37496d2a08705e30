"""``iospec differential``: the HTTP scenarios three ways (model prediction, reference implementation, workerd).

Runs every selected HTTP-level scenario (conformance/http/scenarios) against the reference
implementation's HTTP listener and against a real ``workerd serve`` (default: the pinned npm
binary under node_modules; ``--workerd-bin PATH`` another build), checks both against the
models' prediction merged with the scenario's pins, and writes ``differential.md`` and
``differential.json`` (disagreements first, each explained) into ``--out``.  ``--compare
FILE`` checks that this run observed exactly what an earlier report did (repeatability).

Exit code: 0 when every MUST scenario agrees three ways and every other disagreement is
explained; 1 otherwise (or when ``--compare`` finds a difference); 2 for bad input (missing or
broken binary, unknown scenario id, malformed scenario file); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from conformance.http.differential import IMPLEMENTATIONS, compare_runs, run_differential, write_report
from conformance.http.scenarios import load_all, select
from conformance.results import ScenarioResult
from iospec.errors import UserError

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "differential",
        help="HTTP scenarios three ways: model prediction | reference implementation | workerd",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="scenario ids (a trailing * matches a prefix); default: all")
    p.add_argument("--workerd-bin", metavar="PATH", help="the workerd binary (default: node_modules' pinned workerd)")
    p.add_argument("--impl", action="append", choices=IMPLEMENTATIONS, metavar="NAME",
                   help="only these implementations (repeatable; default: reference and workerd)")
    p.add_argument("--slow", action="store_true", help="also run the slow scenarios (waits of 30 s or more)")
    p.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                   help="where differential.md and differential.json go (default: reports)")
    p.add_argument("--compare", type=Path, metavar="FILE", help="an earlier differential.json this run must repeat")
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep the generated configs and workers (JS and Python)")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per scenario")
    p.set_defaults(func=run)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the adapters' cleanup: no workerd outlives the run


def run(args: argparse.Namespace) -> int:
    previous = None
    if args.compare is not None:
        try:
            previous = json.loads(args.compare.read_text(encoding="utf-8"))
            if not isinstance(previous["scenarios"], list):
                raise TypeError("'scenarios' is not a list")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{args.compare}: not a differential report: {e}") from None
    scenarios = select(load_all(), ids=args.ids, slow=args.slow)
    signal.signal(signal.SIGTERM, _terminate)

    def show(name: str, result: ScenarioResult) -> None:
        if not args.quiet:
            print(f"{result.outcome:15} {name:9} {result.level:13} {result.scenario_id}", flush=True)

    diff = run_differential(scenarios, workerd_bin=args.workerd_bin, keep_dir=args.keep,
                            implementations=args.impl or IMPLEMENTATIONS, on_row=show)
    md, js = write_report(diff, args.out)
    for name, batch in diff.batches.items():
        print(f"{name}: {batch.version}, {batch.wall_s:.1f} s, {batch.processes_started} "
              f"{'workerd processes' if name == 'workerd' else 'runtimes'}")
    agree = sum(row.agrees for row in diff.rows)
    print(f"{len(diff.rows)} scenarios, {agree} agree three ways, {len(diff.blocking)} blocking disagreements; "
          f"report: {md} ({js})")
    for row in diff.blocking:
        print(f"BLOCKING {row.scenario.id} ({row.scenario.level}): "
              + "; ".join(f"{n}: {why or 'UNEXPLAINED'}" for n, why in row.explanations().items()))
    code = 1 if diff.blocking else 0
    if previous is not None:
        changes = compare_runs(previous, json.loads(js.read_text(encoding="utf-8")))
        for line in changes:
            print(f"NOT REPEATED {line}")
        print(f"compared with {args.compare}: {'identical results' if not changes else f'{len(changes)} differences'}")
        code = code or (1 if changes else 0)
    return code
