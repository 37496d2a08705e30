"""``iospec conformance``: run the conformance suite against an implementation and write the reports.

``--impl reference`` (the default) runs the scenario catalogue (conformance/scenarios/) through
the in-process adapter of the reference implementation, with every expected observation
predicted by the models; ``--impl package.module:factory`` loads a user's adapter
(docs/conformance.md); ``--impl workerd`` runs the HTTP-level suite against the real binary
(conformance.http); ``--trace FILE...`` checks recorded NDJSON traces.  Exit 0 iff no result
is FAIL, XPASS or ERROR.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

from conformance.results import FAILING_OUTCOMES, ScenarioResult
from iospec.errors import UserError

__all__ = ["register", "run", "collect"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "conformance",
        help="run the conformance suite against an implementation and write reports",
        description=(
            "Run the data-driven scenario catalogue against an implementation; what it must observe is predicted "
            "by the models. Writes report.json, junit.xml, summary.md, summary.html and coverage.json into --reports. "
            "Exit 0: no FAIL, XPASS or ERROR; 1: some; 2: bad input."
        ),
    )
    p.add_argument("--impl", action="append", default=[], metavar="SPEC",
                   help="'reference' (default), 'reference[fault,...]', 'workerd' (HTTP level) or "
                        "'package.module:factory' (repeatable)")
    p.add_argument("--trace", nargs="+", default=[], type=Path, metavar="FILE",
                   help="check recorded NDJSON traces (docs/trace-format.md) instead of, or besides, --impl")
    p.add_argument("--scenarios", type=Path, metavar="PATH",
                   help="a scenario file or directory (default: the catalogue)")
    p.add_argument("--id", action="append", default=[], metavar="PATTERN",
                   help="select scenario ids (glob; repeatable)")
    p.add_argument("--rule", action="append", default=[], metavar="ID", help="select scenarios checking a rule id")
    p.add_argument("--level", action="append", default=[], metavar="LEVEL", help="MUST, SHOULD or INFORMATIONAL")
    p.add_argument("--expectations", type=Path, metavar="FILE", help="known failures, each with a reason")
    p.add_argument("--workerd-bin", metavar="PATH",
                   help="the workerd binary for --impl workerd (default: the pinned one in node_modules)")
    p.add_argument("--reports", type=Path, default=Path("reports"), metavar="DIR", help="where reports go (reports/)")
    p.add_argument("--no-generated", action="store_true", help="leave out the scenarios generated from model paths")
    p.add_argument("--seed", type=int, default=0, help="recorded in the reports (runs are deterministic)")
    p.add_argument("--list", action="store_true", help="list the selected scenarios and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=run)


def _scenarios(args: argparse.Namespace) -> list[Any]:
    from conformance.scenario import Selection, load_all, load_file

    sel = Selection.parse(args.id, args.rule, args.level)
    if args.scenarios is None:
        scs = load_all(generated=not args.no_generated)
    elif args.scenarios.is_dir():
        scs = load_all(args.scenarios)
    else:
        scs = load_file(args.scenarios)
    return [s for s in scs if sel(s)]


def _workerd(args: argparse.Namespace) -> list[ScenarioResult]:
    try:
        http = importlib.import_module("conformance.http")
    except ImportError as e:
        raise UserError(f"--impl workerd: the HTTP-level suite is not available ({e})") from None
    fn = getattr(http, "run_for_conformance", None)
    if fn is None:
        raise UserError("--impl workerd: conformance.http has no run_for_conformance(args) in this checkout yet")
    # the HTTP suite's own options (conformance/http/differential.py run_for_conformance): one implementation,
    # its scenario ids, the workerd binary
    http_args = argparse.Namespace(impl="workerd", workerd_bin=args.workerd_bin, ids=list(args.id), slow=False,
                                   keep=None, seed=args.seed)
    results: list[ScenarioResult] = fn(http_args)
    return results


def collect(args: argparse.Namespace, *, log: Any = None) -> tuple[list[ScenarioResult], dict[str, Any]]:
    """Run what the options ask for; the results and the timing figures."""
    from conformance.adapter import load_implementation
    from conformance.runner import Timing, run_suite, run_traces

    specs = list(args.impl) or ([] if args.trace else ["reference"])
    impls = [(s, None if s.strip() == "workerd" else load_implementation(s)) for s in specs]
    scenarios = _scenarios(args) if any(i is not None for _, i in impls) else []
    results: list[ScenarioResult] = []
    timing = Timing()
    for _spec, impl in impls:
        if impl is None:
            results += _workerd(args)
            continue
        results += run_suite(scenarios, impl, seed=args.seed, timing=timing, progress=log)
    if args.trace:
        results += run_traces(args.trace)
    return results, {"model_seconds": timing.model, "implementation_seconds": timing.implementation,
                     "monitor_seconds": timing.monitor}


def run(args: argparse.Namespace) -> int:
    from conformance.expectations_file import load_expectations
    from conformance.reports import coverage, write_reports
    from conformance.runner import apply_expectations

    # the reference's known failures apply to its results only (the file names its implementation)
    runs_reference = any(i.strip() == "reference" for i in args.impl) or (not args.impl and not args.trace)
    if args.expectations is None and runs_reference:
        default = Path(__file__).resolve().parents[2] / "conformance" / "expectations" / "reference.json"
        if default.exists():  # the reference's own known failures (each with its reason)
            args.expectations = default
    expectations = load_expectations(args.expectations) if args.expectations else None
    if args.list:
        for s in _scenarios(args):
            print(f"{s.id:60} {s.level:13} {','.join(s.rules):24} {s.where}")
        return 0
    if expectations is not None and not any(i.strip() == "workerd" for i in args.impl):
        # ids of the HTTP suite are its own (conformance/http); only the model catalogue's are checked here
        from conformance.scenario import load_all

        expectations.check_ids(s.id for s in load_all(generated=True))

    def log(r: ScenarioResult) -> None:
        if not args.quiet and (r.outcome != "PASS"):
            first = (r.differences or [r.reason])[0].splitlines()[0] if (r.differences or r.reason) else ""
            # a known failure is reported as such while the run goes (expectations apply at the end)
            known = expectations.reason_for(r.implementation, r.scenario_id) if expectations else None
            outcome = "XFAIL" if known and r.outcome == "FAIL" else r.outcome
            print(f"{outcome:15} {r.implementation} {r.scenario_id}: {first}", flush=True)

    start = time.perf_counter()
    print(f"iospec conformance: seed {args.seed}"
          + (f"; expectations {args.expectations}" if args.expectations else ""), flush=True)
    results, figures = collect(args, log=log)
    apply_expectations(results, expectations)
    elapsed = time.perf_counter() - start
    meta = {"seed": args.seed, "elapsed_seconds": round(elapsed, 3), **{k: round(v, 3) for k, v in figures.items()},
            "expectations": str(args.expectations) if args.expectations else None,
            "command": " ".join(sys.argv[1:])}
    paths = write_reports(results, args.reports, meta)
    for r in results:
        if r.outcome == "XPASS":
            print(f"XPASS           {r.implementation} {r.scenario_id}: passes but is listed as a known failure; "
                  f"update {args.expectations}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    cov = coverage(results)
    took = sum(1 for n in cov.transitions.values() if n)
    failing = sum(n for o, n in counts.items() if o in FAILING_OUTCOMES)
    print(f"{len(results)} results in {elapsed:.1f}s: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    selected = bool(args.id or args.rule or args.level or args.scenarios or args.no_generated or not args.impl)
    gaps = [] if selected else cov.unexplained  # a selection covers less on purpose
    shown = ", ".join(gaps) if len(gaps) <= 8 else f"{', '.join(gaps[:8])} and {len(gaps) - 8} more"
    print(f"coverage: {len(cov.rules)} rule ids checked, {took}/{len(cov.transitions)} transitions exercised"
          + (f"; {len(gaps)} gaps not explained in conformance/uncovered.json: {shown}" if gaps else ""))
    print(f"reports: {', '.join(str(p) for p in paths.values())}")
    return 1 if failing else 0
