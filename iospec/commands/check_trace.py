"""``iospec check-trace``: check recorded NDJSON traces against the models (docs/trace-format.md)."""

from __future__ import annotations

import argparse
import json
import sys
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
    p.add_argument("--final-check", action="store_true",
                   help="also evaluate every invariant in full at the end (a cross-check of the incremental "
                        "checks; slow on long traces)")
    p.add_argument("--engine", choices=("auto", "python", "c"), default="auto",
                   help="c: the compiled checker (C generated from the models, built with the system C compiler; "
                        "the Python engine re-checks any trace it does not find clean, so reports are the same); "
                        "python: the monitors only; auto (default): c when a C compiler is available")
    p.add_argument("--predict", action="store_true",
                   help="predictive checking: ask z3 whether any schedule consistent with the run's program order "
                        "and recorded synchronisation breaks an ownership rule (docs/predictive-checking.md)")
    p.add_argument("--model", default="ownership", metavar="NAME", help="with --predict: the model (default ownership)")
    p.add_argument("--window", type=int, default=200, metavar="N",
                   help="with --predict: events per window (windows overlap by half; default 200)")
    p.add_argument("--witness", type=Path, metavar="FILE",
                   help="with --predict: write a witness schedule here (replay: python -m reference_impl replay FILE)")
    p.set_defaults(func=run)


def run_predict(args: argparse.Namespace) -> int:
    from model.catalog import MODELS
    from properties.predict import predict_trace

    if args.model not in MODELS:
        raise UserError(f"--model: unknown model {args.model!r}; known: {', '.join(MODELS)}")
    if args.window < 2:
        raise UserError("--window: must be at least 2")
    if args.witness is not None and len(args.files) > 1:
        raise UserError("--witness: give one trace file")
    worst = 0
    for f in args.files:
        try:
            rep = predict_trace(f, model=args.model, window=args.window)
        except TraceFormatError as e:
            raise UserError(str(e)) from None
        print(rep.summary())
        if not rep.ok:
            worst = 1
        if rep.witness is not None and args.witness is not None:
            args.witness.write_text(json.dumps(rep.witness.to_json(rep.header, str(f)), indent=1) + "\n")
            print(f"witness schedule: {args.witness}")
    return worst


def _engine(choice: str) -> str:
    """The engine to run: ``c`` needs a working C compiler (auto falls back with a one-line notice)."""
    if choice == "python":
        return "python"
    from properties.compiled.engine import find_compiler

    if find_compiler() is not None:
        return "c"
    if choice == "c":
        raise UserError("--engine c: no C compiler found (set CC, or install cc/gcc); use --engine python")
    print("iospec: no C compiler found; checking with the Python engine", file=sys.stderr)
    return "python"


def run(args: argparse.Namespace) -> int:
    if args.predict:
        return run_predict(args)
    models = [m.strip() for m in args.models.split(",")] if args.models else None
    engine = _engine(args.engine)
    noticed = False
    worst = 0
    out = []
    for f in args.files:
        try:
            rep = check_trace(f, models=models, history=args.history, final_check=args.final_check, engine=engine)
        except TraceFormatError as e:
            raise UserError(str(e)) from None
        if rep.compiled is not None and rep.compiled.startswith("unavailable") and not noticed:
            print(f"iospec: compiled engine {rep.compiled}; checking with the Python engine", file=sys.stderr)
            noticed = True
        print(rep.summary())
        worst = max(worst, 0 if rep.ok else 1)
        out.append({
            "file": str(f),
            "implementation": rep.implementation,
            "models": rep.models,
            "events": rep.events,
            "engine": rep.engine,
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
