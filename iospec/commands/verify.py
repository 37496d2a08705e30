"""``iospec verify``: z3 bounded model checking, induction proofs and parametric proofs of a model's invariants.

Prints one line per invariant (proved / violated / unknown, or bounded when only BMC ran) with
the method and the time taken; a violation prints its counterexample, which replays with
``iospec explore MODEL --bounds ... --replay FILE`` (the report's JSON holds the steps).
Exit code 0: nothing violated or unknown; 1: a violation; 3: some invariant unknown (never
reported as proved); 2: bad input (one line).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iospec.errors import UserError
from model.catalog import MODELS, get_model, parse_bounds

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="prove a model's invariants with z3 (BMC, induction, any number of threads/contexts/objects)",
        description=(
            "Check the invariants of each MODEL (every model if none is named) with z3: bounded model checking to "
            "--depth in a bounded configuration (the model's default bounds, or --bounds); with --induction, "
            "a proof for every depth in that configuration; with --parametric, a proof for every depth and "
            "any number of each identity (threads, contexts, objects, ...), constants not given in --bounds "
            "left free.  Exit code 0: all proved (or, BMC only, none violated); 1: a violation; "
            "3: some invariant unknown; 2: bad input."
        ),
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"of: {', '.join(MODELS)} (default: every model)")
    p.add_argument("--depth", type=int, default=10, metavar="N", help="BMC depth (default 10; 0: the initial state)")
    p.add_argument("--induction", action="store_true", help="prove each invariant for every depth (bounded config)")
    p.add_argument("--parametric", action="store_true", help="prove each invariant for any number of identities")
    p.add_argument("--bounds", metavar="K=V,...", help="bounds and constants, e.g. threads=2,contexts=2,nesting=0")
    p.add_argument("--fault", metavar="NAME",
                   help="verify a seeded-fault variant instead (see iospec explore --list-faults)")
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS", help="per z3 query (default 20)")
    p.add_argument("--max-k", type=int, default=3, metavar="K", help="try k-induction up to K (default 3)")
    p.add_argument("--report", type=Path, metavar="DIR", help="write DIR/verification.md and DIR/verification.json")
    p.add_argument("--trace-out", type=Path, metavar="FILE",
                   help="write the counterexamples as a JSON list (each replays with iospec explore --replay)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from properties.z3.verify import exit_code, format_header, format_line, verify_model, write_report

    if args.depth < 0:
        raise UserError(f"--depth {args.depth}: must be 0 or more")
    if args.timeout <= 0:
        raise UserError(f"--timeout {args.timeout}: must be positive")
    if args.max_k < 1:
        raise UserError(f"--max-k {args.max_k}: must be 1 or more")
    names = list(dict.fromkeys(args.models)) or list(MODELS)
    bounds = parse_bounds(args.bounds)
    if args.fault and len(args.models) != 1:
        raise UserError("--fault needs exactly one MODEL")
    models = []
    for name in names:
        model = get_model(name)
        if args.fault:
            from model.faults import fault_variant

            model = fault_variant(name, args.fault)
        models.append(model)
    if len(models) == 1:
        models[0].config(**bounds)  # a typo in --bounds is one line, before any solving
    else:
        known = {k for m in models for k in [*dict(m.bounds), *(c.name for c in m.consts)]}
        unknown = sorted(set(bounds) - known)
        if unknown:
            raise UserError(f"--bounds: no model has a bound or constant {', '.join(unknown)}")
    results = []
    for model in models:
        # with every model, each takes the bounds it has
        own = {k: v for k, v in bounds.items() if k in dict(model.bounds) or k in {c.name for c in model.consts}}
        m = verify_model(
            model,
            bounds=own,
            depth=args.depth,
            induction=args.induction,
            parametric=args.parametric,
            timeout_ms=int(args.timeout * 1000),
            max_k=args.max_k,
        )
        print(format_header(m), flush=True)
        for r in m.results:
            print("  " + format_line(r), flush=True)
            if r.trace_text:
                for line in r.trace_text.splitlines():
                    print("      " + line)
        results.append(m)
    if args.report:
        md, js = write_report(results, args.report)
        print(f"report: {md} and {js}")
    if args.trace_out:
        # the format of 'iospec explore --trace-out': each object replays with --replay
        traces = [r.trace_json for m in results for r in m.results if r.status == "violated"]
        args.trace_out.write_text(json.dumps(traces, indent=2) + "\n")
    return exit_code(results)
