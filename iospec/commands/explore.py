"""``iospec explore``: exhaustive breadth-first exploration of a model configuration."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from iospec.errors import UserError
from model.catalog import MODELS, get_model, parse_bounds, standard_configs
from model.core import Config
from properties.explorer import ProgressPrinter, explore, replay

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explore",
        help="explore every reachable state of a model and check its invariants",
        description=(
            "Explore every reachable state of MODEL for the given bounds, check every invariant "
            "on every state, and print a summary; a violation prints the shortest path to it. "
            "Exit code 0: all invariants hold and no deadlock; 1: a violation or deadlock; 2: bad input."
        ),
    )
    p.add_argument("model", nargs="?", help=f"one of: {', '.join(MODELS)} (or --config / --list)")
    p.add_argument("--config", metavar="NAME", help="a standard configuration (see --list)")
    p.add_argument("--bounds", metavar="K=V,...", help="bounds and constants, e.g. threads=3,contexts=2,objects=4")
    p.add_argument("--symmetry", action="store_true", help="store one state per symmetry orbit of the ids")
    p.add_argument("--fault", metavar="NAME", help="explore a seeded-fault variant instead (see --list-faults)")
    p.add_argument("--max-depth", type=int, metavar="N", help="stop after N steps (the result is then incomplete)")
    p.add_argument("--max-states", type=int, metavar="N", help="stop after N distinct states")
    p.add_argument("--all-violations", action="store_true", help="keep going after the first violation")
    p.add_argument("--replay", metavar="FILE", type=Path, help="replay a JSON trace (from --trace-out or z3) instead")
    p.add_argument("--trace-out", metavar="FILE", type=Path, help="write counterexample traces here as JSON")
    p.add_argument("--json", metavar="FILE", type=Path, help="write the result summary here as JSON")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="expand each BFS level in N forked processes (same result; default 1)")
    p.add_argument("--progress", type=float, default=5.0, metavar="SECONDS", help="progress line interval (0: none)")
    p.add_argument("--list", action="store_true", help="list models and standard configurations")
    p.add_argument("--list-faults", action="store_true", help="list the seeded-fault variants")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Config:
    bounds = parse_bounds(args.bounds)
    if args.config:
        known = {c.name: c for c in standard_configs()}
        if args.config not in known:
            raise UserError(f"unknown standard configuration {args.config!r}; see 'iospec explore --list'")
        sc = known[args.config]
        model = get_model(sc.model_name)
        values: dict[str, int] = {**sc.bounds, **bounds}
        if args.symmetry is False and sc.symmetry:
            args.symmetry = True
    elif args.model:
        model = get_model(args.model)
        values = bounds
    else:
        raise UserError("name a MODEL or a --config (see 'iospec explore --list')")
    if args.fault:
        from model.faults import fault_variant

        model = fault_variant(model.name, args.fault)
    return model.config(**values)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print("models:")
        for name in MODELS:
            m = get_model(name)
            first = m.doc.splitlines()[0] if m.doc else ""
            print(f"  {name:12s} {first}")
            print(f"  {'':12s} bounds: {', '.join(f'{k}={v}' for k, v in m.bounds)}"
                  + (f"; constants: {', '.join(f'{c.name}={c.default}' for c in m.consts)}" if m.consts else ""))
        print("standard configurations:")
        for sc in standard_configs():
            b = ",".join(f"{k}={v}" for k, v in sc.bounds.items())
            print(f"  {sc.name:24s} {sc.model_name} {b}{' +symmetry' if sc.symmetry else ''}")
        return 0
    if args.list_faults:
        from model.faults import FAULTS

        for f in FAULTS:
            print(f"  {f.model:12s} {f.name:40s} breaks {', '.join(f.breaks)}: {f.description}")
        return 0
    config = _config(args)
    if args.replay:
        try:
            data = json.loads(args.replay.read_text())
        except OSError as e:
            raise UserError(f"{args.replay}: cannot read: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise UserError(f"{args.replay}:{e.lineno}: not JSON: {e.msg}") from None
        steps = data.get("steps") if isinstance(data, dict) else data
        if not isinstance(steps, list):
            raise UserError(f"{args.replay}: expected a list of steps or an object with 'steps'")
        trace, broken = replay(config, steps)
        print(trace.format())
        if broken:
            print(f"violates: {', '.join(broken)}")
            return 1
        print("the trace is a valid behaviour and breaks no invariant")
        return 0
    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be 1 or more")
    progress = ProgressPrinter(interval=args.progress) if args.progress > 0 else None
    res = explore(
        config,
        symmetry=args.symmetry,
        max_depth=args.max_depth,
        max_states=args.max_states,
        stop_on_violation=not args.all_violations,
        progress=progress,
        workers=args.workers,
    )
    print(res.summary())
    for tr in res.violations:
        print()
        print(tr.format())
    if res.deadlock_trace is not None:
        print()
        print(res.deadlock_trace.format())
    if args.trace_out:
        traces = [t.to_json() for t in res.violations]
        if res.deadlock_trace is not None:
            traces.append(res.deadlock_trace.to_json())
        args.trace_out.write_text(json.dumps(traces, indent=2) + "\n")
    if args.json:
        args.json.write_text(json.dumps(_summary_json(res), indent=2) + "\n")
    return 0 if res.ok else 1


def _summary_json(res: Any) -> dict[str, Any]:
    return {
        "config": res.config.describe(),
        "complete": res.complete,
        "distinct": res.distinct,
        "transitions": res.transitions,
        "depth": res.depth,
        "elapsed": round(res.elapsed, 3),
        "symmetry": res.symmetric_sorts if res.symmetry else [],
        "per_action": res.per_action,
        "never_enabled": res.never_enabled,
        "deadlocks": res.deadlocks,
        "violations": [t.to_json() for t in res.violations],
    }


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
