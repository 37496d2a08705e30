"""Verify a model with z3 (BMC, induction, parametric induction) and report per invariant.

`verify_model` runs, for one model:

* **BMC** to ``depth`` in a bounded configuration (`properties.z3.bmc`): a violation comes
  back as a replayable counterexample;
* with ``induction``, the **induction proof** in that configuration (`properties.z3.induction`):
  every depth, that configuration;
* with ``parametric``, the **parametric proof**: every depth, any number of each identity
  (threads, contexts, objects, ...), every value of the constants not fixed by ``bounds``.

and combines them into one verdict per invariant: ``violated`` (BMC found a trace),
``proved`` (by the strongest method that succeeded), ``unknown`` (a proof was asked for and
none succeeded: never reported as proved), or ``bounded`` (only BMC ran: no violation within
``depth``; not a proof).  `write_report` writes the proof report (Markdown and JSON) with each
invariant's rule ids, workerd source, method, the lemmas its proof used, and the time taken.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import z3

from model.core import Config, Model
from model.rules import RULES, WORKERD_COMMIT

from .bmc import bmc
from .encoding import BoundedEncoding, ParametricEncoding
from .induction import Proof, prove

__all__ = ["InvariantResult", "ModelResult", "verify_model", "exit_code", "format_line", "write_report"]

STATUS_ORDER = ("violated", "unknown", "bounded", "proved")


@dataclass
class InvariantResult:
    model: str
    name: str
    rules: tuple[str, ...]
    source: tuple[str, ...]
    doc: str
    lemma: bool
    transition: bool
    status: str  # proved | violated | unknown | bounded
    method: str  # a one-line description of what established the status
    support: tuple[str, ...] = ()
    lemmas_used: tuple[str, ...] = ()
    support_minimal: bool = True
    seconds: float = 0.0
    detail: str = ""
    trace_text: str = ""
    trace_steps: list[dict[str, Any]] = field(default_factory=list)
    trace_json: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ModelResult:
    model: str
    config: str
    depth: int
    results: list[InvariantResult]
    bmc_seconds: float = 0.0
    bmc_covered_all_depths_at: int | None = None
    induction_seconds: float | None = None
    parametric_seconds: float | None = None
    parametric_scope: str = ""
    seconds: float = 0.0


def _scope(model: Model, fixed: Mapping[str, int]) -> str:
    ids = ", ".join(s.name for s in model.id_sorts) or "no identity sort"
    parts = [f"any number of {ids}"]
    id_bounds = {s.bound for s in model.id_sorts}
    free = [b for b, _ in model.bounds if b not in id_bounds and b not in fixed]
    free += [c.name for c in model.consts if c.name not in fixed]
    if free:
        parts.append(f"every value of {', '.join(free)}")
    pinned = [f"{k}={v}" for k, v in fixed.items()]
    if pinned:
        parts.append(f"with {', '.join(pinned)}")
    return "; ".join(parts)


def _parametric_fixed(model: Model, bounds: Mapping[str, int]) -> dict[str, int]:
    """The bounds/constants given explicitly that mean something parametrically (not Id sizes)."""
    id_bounds = {s.bound for s in model.id_sorts}
    return {k: int(v) for k, v in bounds.items() if k not in id_bounds}


def verify_model(
    model: Model,
    *,
    bounds: Mapping[str, int] | None = None,
    depth: int = 10,
    induction: bool = False,
    parametric: bool = False,
    timeout_ms: int = 20000,
    max_k: int = 3,
) -> ModelResult:
    """Run the requested methods on ``model`` (see the module docstring)."""
    start = time.perf_counter()
    bounds = dict(bounds or {})
    config: Config = model.config(**bounds)
    lemmas = {i.name for i in model.invariants if i.lemma}
    res = ModelResult(model.name, config.describe(), depth, [])

    traces: dict[str, Any] = {}
    found_at: dict[str, float] = {}
    if depth >= 0:
        b = bmc(config, depth, timeout_ms=timeout_ms)
        traces, found_at = b.traces, b.found_at
        res.bmc_seconds = b.elapsed
        res.bmc_covered_all_depths_at = b.inductive_at

    bounded: dict[str, Proof] = {}
    if induction or parametric:
        t = time.perf_counter()
        bounded = prove(BoundedEncoding(config), timeout_ms=timeout_ms, max_k=max_k).proofs
        if induction:
            res.induction_seconds = time.perf_counter() - t

    param: dict[str, Proof] = {}
    if parametric:
        t = time.perf_counter()
        fixed = _parametric_fixed(model, bounds)
        skip = {
            n: f"not 1-inductive in {config.describe()}, so not tried parametrically ({p.detail or p.method})"
            for n, p in bounded.items()
            if not (p.proved and p.method == "induction")
        }
        param = prove(ParametricEncoding(model, fixed), timeout_ms=timeout_ms, max_k=1, skip=skip).proofs
        res.parametric_seconds = time.perf_counter() - t
        res.parametric_scope = _scope(model, fixed)

    for inv in model.invariants:
        r = InvariantResult(
            model.name, inv.name, inv.rules, inv.source, inv.doc, inv.lemma, inv.transition, "bounded", ""
        )
        tr = traces.get(inv.name)
        if depth >= 0:
            r.methods["bmc"] = {"depth": depth, "config": config.describe(), "violated": tr is not None,
                                "seconds": round(found_at.get(inv.name, res.bmc_seconds), 4)}
            if tr is not None:
                r.methods["bmc"]["trace_length"] = len(tr.steps)
        bp = bounded.get(inv.name)
        if bp is not None and induction:
            r.methods["induction"] = _proof_json(bp, config.describe())
        pp = param.get(inv.name)
        if pp is not None:
            r.methods["parametric"] = _proof_json(pp, res.parametric_scope)
        if tr is not None:
            r.status = "violated"
            r.method = f"BMC: violated after {len(tr.steps)} step(s)"
            r.trace_text = tr.format()
            r.trace_json = tr.to_json()
            r.trace_steps = r.trace_json["steps"]
            r.seconds = found_at.get(inv.name, 0.0)
            for p in (bp, pp):
                if p is not None and p.proved:  # pragma: no cover - would be an unsound encoding
                    r.detail = "INTERNAL ERROR: also 'proved' by induction; the z3 encoding is inconsistent"
        elif pp is not None and pp.proved:
            _proved(r, pp, f"parametric {_method(pp)}", lemmas)
        elif bp is not None and bp.proved and induction:
            _proved(r, bp, f"{_method(bp)} (bounded configuration)", lemmas)
        elif induction or parametric:
            r.status = "unknown"
            why = pp.detail if pp is not None else (bp.detail if bp is not None else "")
            r.method = "no proof"
            r.detail = why
            r.seconds = (pp.seconds if pp else 0.0) + (bp.seconds if bp else 0.0)
        else:
            r.status = "bounded"
            r.method = f"BMC: no violation within {depth} step(s) (not a proof)"
            r.seconds = res.bmc_seconds
        res.results.append(r)
    res.seconds = time.perf_counter() - start
    return res


def _method(p: Proof) -> str:
    return "induction" if p.method == "induction" else f"{p.k}-induction"


def _proved(r: InvariantResult, p: Proof, method: str, lemmas: set[str]) -> None:
    r.status = "proved"
    r.method = method
    r.support = p.support
    r.support_minimal = p.support_minimal
    r.lemmas_used = tuple(s for s in p.support if s in lemmas)
    r.seconds = p.seconds


def _proof_json(p: Proof, scope: str) -> dict[str, Any]:
    out = {k: v for k, v in asdict(p).items() if k != "name"}
    out["seconds"] = round(p.seconds, 4)
    out["scope"] = scope
    return out


def exit_code(results: Iterable[ModelResult]) -> int:
    """1 if anything is violated, else 3 if anything is unknown, else 0."""
    statuses = {r.status for m in results for r in m.results}
    if "violated" in statuses:
        return 1
    if "unknown" in statuses:
        return 3
    return 0


def format_line(r: InvariantResult) -> str:
    rules = ",".join(r.rules)
    extra = ""
    if r.status == "proved":
        used = ", ".join(r.support) if r.support else "none (inductive on its own)"
        extra = f"; uses: {used}"
    elif r.status == "unknown" and r.detail:
        extra = f": {r.detail[:300]}"
    return f"{r.status:8s} {r.model}.{r.name} [{rules}]  {r.method}{extra}  ({r.seconds:.2f}s)"


def format_header(m: ModelResult) -> str:
    parts = [f"{m.model}: BMC to depth {m.depth} in {m.config}, {m.bmc_seconds:.2f}s"]
    if m.bmc_covered_all_depths_at is not None:
        parts[0] += " (unrolling stopped: what it checks is inductive)"
    if m.induction_seconds is not None:
        parts.append(f"induction {m.induction_seconds:.2f}s")
    if m.parametric_seconds is not None:
        parts.append(f"parametric {m.parametric_seconds:.2f}s ({m.parametric_scope})")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------
# The proof report
# --------------------------------------------------------------------------------------


def write_report(models: list[ModelResult], directory: Path) -> tuple[Path, Path]:
    """Write ``verification.md`` and ``verification.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "z3": z3.get_version_string(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} ({platform.system()})",
        "workerd_commit": WORKERD_COMMIT,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    data = {"meta": meta, "models": [_model_json(m) for m in models]}
    jpath = directory / "verification.json"
    jpath.write_text(json.dumps(data, indent=2) + "\n")
    mpath = directory / "verification.md"
    mpath.write_text(_markdown(models, meta))
    return mpath, jpath


def _model_json(m: ModelResult) -> dict[str, Any]:
    out = {k: v for k, v in asdict(m).items() if k != "results"}
    out["invariants"] = []
    for r in m.results:
        d = asdict(r)
        d["rules"] = [{"id": x, "title": RULES[x].title, "source": RULES[x].source} for x in r.rules if x in RULES]
        d["seconds"] = round(r.seconds, 4)
        out["invariants"].append(d)
    return out


def _markdown(models: list[ModelResult], meta: Mapping[str, str]) -> str:
    lines = [
        "# Verification report (z3)",
        "",
        f"Generated {meta['generated']} with z3 {meta['z3']} on {meta['machine']}, Python {meta['python']}; "
        f"workerd rules read at commit {meta['workerd_commit'][:8]}.",
        "",
        "Status: **proved** (for every depth, by the method shown), **violated** (BMC counterexample, "
        "replayable with `iospec explore --replay`), **unknown** (a proof was asked for and none succeeded), "
        "**bounded** (BMC only: no violation within the depth; not a proof).  *Uses* lists the other "
        "invariants the induction step needed (lemmas in italics); how the encoding works and which "
        "fragment of logic it stays in: docs/verification.md.",
        "",
    ]
    total = {s: 0 for s in STATUS_ORDER}
    for m in models:
        for r in m.results:
            total[r.status] += 1
    lines.append("| " + " | ".join(STATUS_ORDER) + " |")
    lines.append("|" + "---|" * len(STATUS_ORDER))
    lines.append("| " + " | ".join(str(total[s]) for s in STATUS_ORDER) + " |")
    lines.append("")
    for m in models:
        lines.append(f"## {m.model}")
        lines.append("")
        lines.append(f"* bounded configuration: `{m.config}`; BMC to depth {m.depth}: {m.bmc_seconds:.2f} s"
                     + (" (stopped unrolling: the invariants it checks are inductive)"
                        if m.bmc_covered_all_depths_at is not None else ""))
        if m.induction_seconds is not None:
            lines.append(f"* induction in that configuration: {m.induction_seconds:.2f} s")
        if m.parametric_seconds is not None:
            lines.append(f"* parametric: {m.parametric_scope}: {m.parametric_seconds:.2f} s")
        lines.append(f"* total: {m.seconds:.2f} s")
        lines.append("")
        lines.append("| invariant | rules | workerd source | status | method | uses | time |")
        lines.append("|---|---|---|---|---|---|---|")
        lemma_names = {r.name for r in m.results if r.lemma}
        for r in m.results:
            name = f"*{r.name}* (lemma)" if r.lemma else r.name
            uses = ", ".join(f"*{s}*" if s in lemma_names else s for s in r.support) or "—"
            if r.status == "proved" and not r.support_minimal:
                uses += " (not minimised: a query timed out)"
            method = r.method if r.status != "unknown" else f"{r.method}: {r.detail[:200]}"
            lines.append(
                f"| {name} | {', '.join(r.rules)} | {', '.join(f'`{s}`' for s in r.source)} | {r.status} "
                f"| {method.replace('|', '/')} | {uses if r.status == 'proved' else '—'} | {r.seconds:.2f} s |"
            )
        lines.append("")
        for r in m.results:
            if r.trace_text:
                lines.append(f"### Counterexample: {r.name}")
                lines.append("")
                lines.append("```")
                lines.append(r.trace_text)
                lines.append("```")
                lines.append("")
    return "\n".join(lines) + "\n"
