"""``iospec diagrams``: generate the lifecycle, ownership, lock and sequence diagrams from the models.

Writes Mermaid (``.mmd``), Markdown embedding it (``.md``, ``index.md``), DOT, and SVG/PNG
rendered by Graphviz's ``dot``; see `iospec.diagrams`.  ``--model``/``--cell`` draws any other
projection ad hoc.  Exit code 0: written; 1: the seed article comparison found the mapping
table out of date (the documents are still written, with the problems listed), or with
``--check-mermaid`` the real Mermaid parser rejected a diagram; 2: bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from iospec.errors import UserError
from model.catalog import MODELS, get_model, parse_bounds

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diagrams",
        help="generate state and sequence diagrams from the models (Mermaid, DOT, SVG, PNG)",
        description=(
            "Derive every diagram of the catalogue from its model (explore a small configuration and "
            "project it onto one object's variables, or take the shortest run through some milestones) "
            "and write Mermaid, Markdown, DOT, and SVG/PNG rendered by Graphviz. "
            "With --model and --cell, draw one ad-hoc projection instead."
        ),
    )
    p.add_argument("--out", metavar="DIR", type=Path, default=Path("reports/diagrams"),
                   help="output directory (default: reports/diagrams)")
    p.add_argument("--only", metavar="NAME[,NAME]", help="generate only these diagrams (see --list)")
    p.add_argument("--list", action="store_true", help="list the diagrams and whether each can be generated")
    p.add_argument("--no-render", action="store_true", help="write DOT but do not run Graphviz")
    p.add_argument("--guards", action="store_true", help="label DOT edges with the actions' guard names too")
    p.add_argument("--check-mermaid", action="store_true",
                   help="parse every written .mmd with the real Mermaid parser (Node.js; see scripts/setup.sh)")
    p.add_argument("--model", help=f"ad hoc: the model to project (one of: {', '.join(MODELS)})")
    p.add_argument("--cell", action="append", metavar="CELL",
                   help="ad hoc: a variable or cell to project onto, e.g. 'ctx_state[c0]' (repeatable)")
    p.add_argument("--bounds", metavar="K=V,...", help="ad hoc: bounds and constants of the configuration")
    p.add_argument("--flowchart", action="store_true", help="ad hoc: draw a flowchart, not a state diagram")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from iospec.diagrams.catalog import DIAGRAMS, PENDING, available
    from iospec.diagrams.document import write_diagrams

    if args.list:
        for s in DIAGRAMS:
            status = "ready" if available(s) else f"pending (model {s.model!r} not registered)"
            print(f"  {s.name:22s} {s.model:10s} {status}: {s.title}")
        for name, why in PENDING.items():
            print(f"  {name:22s} {'':10s} pending: {why}")
        return 0
    if args.check_mermaid:  # fail before the work, not after it
        from iospec.diagrams.mermaid import PARSER, parser_available

        if not parser_available():
            raise UserError(f"--check-mermaid needs the Mermaid parser: run scripts/setup.sh (npm ci in {PARSER}; "
                            "Node.js required)")
    if args.model or args.cell:
        return _ad_hoc(args)
    if args.bounds or args.flowchart:
        raise UserError("--bounds and --flowchart need --model and --cell")
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    built, written = write_diagrams(args.out, names, render=not args.no_render, guards=args.guards)
    for b in built:
        print(f"{b.spec.name}: {b.notes[0] if b.notes else ''}")
    pending = [s.name for s in DIAGRAMS if not available(s)] + list(PENDING)
    if not names and pending:
        print(f"not generated yet (see {args.out / 'index.md'}): {', '.join(pending)}")
    print(f"wrote {len(written)} files to {args.out}")
    exit_code = 0
    if args.check_mermaid:
        from iospec.diagrams.mermaid import validate

        files = [p for p in written if p.suffix == ".mmd"]
        errors = validate(files)
        for msg in errors:
            print(f"mermaid: {msg}", file=sys.stderr)
        print(f"mermaid: {len(files) - len(errors)} of {len(files)} diagrams parse")
        exit_code = 1 if errors else 0
    bad = [b for b in built if b.coverage is not None and not b.coverage.ok]
    for b in bad:
        assert b.coverage is not None
        print(f"{b.spec.name}: the seed article mapping is out of date:", file=sys.stderr)
        for problem in b.coverage.problems:
            print(f"  {problem}", file=sys.stderr)
    return 1 if bad else exit_code


def _ad_hoc(args: argparse.Namespace) -> int:
    from iospec.diagrams import dot, mermaid
    from iospec.diagrams.graph import safe_id
    from iospec.diagrams.project import project

    if not args.model or not args.cell:
        raise UserError("an ad-hoc diagram needs both --model and --cell")
    if args.only:
        raise UserError("--only selects catalogue diagrams; it cannot be combined with --model")
    config = get_model(args.model).config(**parse_bounds(args.bounds))
    name = safe_id(f"{args.model}-{'-'.join(args.cell)}")
    g = project(config, args.cell, name=name, title=f"{args.model}: {', '.join(args.cell)}")
    text = mermaid.flowchart(g) if args.flowchart else mermaid.state_diagram(g)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{args.out}: cannot create directory: {e.strerror}") from None
    (args.out / f"{name}.mmd").write_text(text)
    dot_text = dot.to_dot(g, show_guards=args.guards)
    (args.out / f"{name}.dot").write_text(dot_text)
    if not args.no_render:
        for fmt in ("svg", "png"):
            dot.render(dot_text, args.out / f"{name}.{fmt}", fmt)
    print(text, end="")
    print(f"wrote {name}.mmd, .dot{'' if args.no_render else ', .svg, .png'} to {args.out}")
    if args.check_mermaid:
        errors = mermaid.validate([args.out / f"{name}.mmd"])
        for msg in errors:
            print(f"mermaid: {msg}", file=sys.stderr)
        return 1 if errors else 0
    return 0
