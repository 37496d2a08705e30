"""``iospec check-trace``: check recorded NDJSON traces against the models (docs/trace-format.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iospec.errors import UserError
from properties.tracecheck import TraceFormatError, check_trace

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check-trace",
        help="check recorded traces of a real run against the models",
        description=(
            "Run the models over recorded NDJSON traces (docs/trace-format.md). Reports the first event a "
            "model does not allow: its line, rule ids, and the model state. Exit 0: clean; 1: a violation; "
            "2: a malformed, empty or truncated file."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--models", metavar="A,B", help="check against these models instead of the header's")
    p.add_argument("--json", metavar="FILE", type=Path, help="write a JSON report here")
    p.add_argument("--history", type=int, default=10, metavar="N", help="events shown before a violation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    worst = 0
    out = []
    for f in args.files:
        try:
            rep = check_trace(f, models=models, history=args.history)
        except TraceFormatError as e:
            raise UserError(str(e)) from None
        print(rep.summary())
        worst = max(worst, 0 if rep.ok else 1)
        out.append({
            "file": str(f),
            "implementation": rep.implementation,
            "models": rep.models,
            "events": rep.events,
            "ok": rep.ok,
            "violation": None if rep.violation is None else {
                "line": rep.violation.line, "kind": rep.violation.kind, "message": rep.violation.message,
                "rules": list(rep.violation.rules), "state": rep.violation.state,
            },
            "end_violations": rep.end_violations,
        })
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return worst
