"""Conformance reports: JSON, JUnit XML, a Markdown summary, and rule and transition coverage.

`write_reports` takes `ScenarioResult` lists from any suite (model steps, HTTP, traces) and
writes into one directory:

* ``report.json``: implementations (name, version), seed, every result (outcome, prediction,
  observation, differences, minimal trace), and the coverage below;
* ``junit.xml``: one testsuite per implementation and suite, one testcase per scenario
  (FAIL/XPASS/ERROR are failures, NOT-IMPLEMENTED skipped), for CI dashboards;
* ``summary.md``: totals, the implementation x rule matrix, failure details with the minimal
  event trace and the failing path drawn as a Mermaid state diagram;
* ``summary.html``: the same summary as a self-contained page;
* ``coverage.json``: rule coverage (each rule id: the scenarios and checks that exercise it)
  and transition coverage (each model transition: how often the run took it; uncovered ones
  with the reason the catalogue gives, ``conformance/uncovered.json``).
"""

from __future__ import annotations

import functools
import json
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.catalog import MODELS, get_model
from model.rules import LEFT_OUT, RULES

from .results import FAILING_OUTCOMES, ScenarioResult

__all__ = ["Coverage", "UNCOVERED_FILE", "coverage", "render_markdown", "write_reports"]

UNCOVERED_FILE = Path(__file__).with_name("uncovered.json")

OUTCOMES = ("PASS", "FAIL", "XFAIL", "XPASS", "NOT-IMPLEMENTED", "INFORMATIONAL", "ERROR")


def explained_gaps() -> dict[str, str]:
    """``conformance/uncovered.json``: rule ids and ``model.action`` transitions no scenario can exercise, why."""
    if not UNCOVERED_FILE.exists():
        return {}
    data: dict[str, str] = json.loads(UNCOVERED_FILE.read_text(encoding="utf-8"))["uncovered"]
    return data


def all_transitions() -> list[str]:
    """Every model transition ``model.action``, named by the model that defines it."""
    from .runner import transition_name

    seen: dict[str, None] = {}
    for name in MODELS:
        for a in get_model(name).actions:
            seen.setdefault(transition_name(a.name), None)
    return sorted(seen)


@dataclass
class Coverage:
    #: rule id -> scenario ids that check it
    rules: dict[str, list[str]] = field(default_factory=dict)
    #: rule id -> the model actions of the exercised transitions that carry it (the checks)
    rule_checks: dict[str, list[str]] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)
    uncovered_rules: dict[str, str] = field(default_factory=dict)
    uncovered_transitions: dict[str, str] = field(default_factory=dict)

    @property
    def unexplained(self) -> list[str]:
        return sorted(k for k, v in {**self.uncovered_rules, **self.uncovered_transitions}.items() if not v)

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": {r: {"scenarios": s, "checks": self.rule_checks.get(r, [])}
                      for r, s in sorted(self.rules.items())},
            "transitions": dict(sorted(self.transitions.items())),
            "uncovered_rules": self.uncovered_rules,
            "uncovered_transitions": self.uncovered_transitions,
            "unexplained_gaps": self.unexplained,
        }


def coverage(results: Iterable[ScenarioResult]) -> Coverage:
    """Rule and transition coverage of a run (only results that ran count: not NOT-IMPLEMENTED or ERROR)."""
    from .runner import defining_model, transition_name

    gaps = explained_gaps()
    cov = Coverage()
    rules: dict[str, set[str]] = defaultdict(set)
    checks: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter({t: 0 for t in all_transitions()})
    action_rules: dict[str, tuple[str, ...]] = {}
    for name in MODELS:
        for a in get_model(name).actions:
            action_rules.setdefault(a.name, tuple(getattr(a, "rules", ()) or ()))
    for r in results:
        if r.outcome in ("NOT-IMPLEMENTED", "ERROR"):
            continue
        for rid in r.rules:
            rules[rid].add(r.scenario_id)
        for t in r.transitions:
            action = t.split(".", 1)[-1]
            # suites name a transition by the model that took it (an extension); count it for the defining model
            counts[transition_name(action) if defining_model(action) != "?" else t] += 1
            for rid in action_rules.get(action, ()):
                checks[rid].add(action)
    cov.rules = {k: sorted(v) for k, v in rules.items()}
    cov.rule_checks = {k: sorted(v) for k, v in checks.items()}
    cov.transitions = dict(counts)
    for rid in RULES:
        if rid not in rules:
            cov.uncovered_rules[rid] = gaps.get(rid) or LEFT_OUT.get(rid, "")
    for t, n in counts.items():
        if n == 0 and defining_model(t.split(".", 1)[1]) != "?":
            cov.uncovered_transitions[t] = gaps.get(t, "")
    return cov


# ---- JSON -------------------------------------------------------------------------------------------


def _implementations(results: Sequence[ScenarioResult]) -> list[dict[str, str]]:
    seen: dict[str, str] = {}
    for r in results:
        seen.setdefault(r.implementation, r.implementation_version)
    return [{"name": k, "version": v} for k, v in seen.items()]


def totals(results: Sequence[ScenarioResult]) -> dict[str, int]:
    c: Counter[str] = Counter(r.outcome for r in results)
    return {o: c.get(o, 0) for o in OUTCOMES}


def report_json(results: Sequence[ScenarioResult], cov: Coverage, meta: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "format": "iospec-conformance-report/1",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **meta,
        "implementations": _implementations(results),
        "totals": totals(results),
        "passed": not any(r.outcome in FAILING_OUTCOMES for r in results),
        "results": [r.to_json() for r in results],
        "coverage": cov.to_json(),
    }


# ---- JUnit XML ------------------------------------------------------------------------------------------


def junit_xml(results: Sequence[ScenarioResult]) -> str:
    root = ET.Element("testsuites", name="iospec conformance")
    groups: dict[tuple[str, str], list[ScenarioResult]] = defaultdict(list)
    for r in results:
        groups[(r.implementation, r.suite)].append(r)
    for (impl, suite), rs in groups.items():
        ts = ET.SubElement(root, "testsuite", name=f"{impl}/{suite}", tests=str(len(rs)),
                           failures=str(sum(r.outcome in ("FAIL", "XPASS") for r in rs)),
                           errors=str(sum(r.outcome == "ERROR" for r in rs)),
                           skipped=str(sum(r.outcome in ("NOT-IMPLEMENTED", "XFAIL") for r in rs)),
                           time=f"{sum(r.duration for r in rs):.3f}")
        for r in rs:
            tc = ET.SubElement(ts, "testcase", classname=f"{impl}.{suite}.{r.scenario_id.rsplit('.', 1)[0]}",
                               name=r.scenario_id, time=f"{r.duration:.3f}")
            ET.SubElement(tc, "properties").extend(
                [ET.Element("property", name="rules", value=" ".join(r.rules)),
                 ET.Element("property", name="level", value=r.level),
                 ET.Element("property", name="outcome", value=r.outcome)])
            text = "\n".join(r.differences)
            if r.outcome in ("FAIL", "XPASS"):
                first = r.differences[0] if r.differences else r.outcome
                ET.SubElement(tc, "failure", message=first[:500]).text = text
            elif r.outcome == "ERROR":
                ET.SubElement(tc, "error", message=r.reason[:500]).text = r.reason
            elif r.outcome in ("NOT-IMPLEMENTED", "XFAIL"):
                ET.SubElement(tc, "skipped", message=f"{r.outcome}: {r.reason}"[:500])
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---- Markdown -----------------------------------------------------------------------------------------

_MARK = {"PASS": "pass", "FAIL": "**FAIL**", "XFAIL": "xfail", "XPASS": "**XPASS**", "NOT-IMPLEMENTED": "n/i",
         "INFORMATIONAL": "info", "ERROR": "**ERROR**"}
_RANK = {"ERROR": 6, "XPASS": 5, "FAIL": 4, "INFORMATIONAL": 3, "XFAIL": 2, "PASS": 1, "NOT-IMPLEMENTED": 0}


def _cell(outcomes: list[str]) -> str:
    if not outcomes:
        return "-"
    worst = max(outcomes, key=lambda o: _RANK[o])
    n = sum(o == worst for o in outcomes)
    return f"{_MARK[worst]} {n}/{len(outcomes)}" if worst != "PASS" else f"pass {len(outcomes)}"


def _path_diagram(trace: Sequence[Mapping[str, Any]]) -> str:
    """The failing path as a Mermaid state diagram: each step a state, the last one (the failure) highlighted."""
    lines = ["```mermaid", "stateDiagram-v2", "    direction LR"]
    prev = "[*]"
    for k, e in enumerate(trace[-12:]):
        label = str(e.get("op", "?")) if "op" in e else str(e)
        args = e.get("args")
        if isinstance(args, Mapping):
            label += "(" + ", ".join(f"{a}={v}" for a, v in args.items()) + ")"
        if "result" in e:
            label += f" -> {e['result']}"
        sid = f"s{k}"
        lines.append(f"    {sid}: {label.replace(':', ' ')[:90]}")
        lines.append(f"    {prev} --> {sid}")
        prev = sid
    if prev != "[*]":
        lines.append("    classDef failed fill:#f66,stroke:#900,color:#fff")
        lines.append(f"    class {prev} failed")
    lines.append("```")
    return "\n".join(lines)


@functools.cache
def _lifecycle_mermaid(production: bool) -> str | None:
    """The IncomingRequest lifecycle diagram (iospec diagrams), or None if it cannot be built here."""
    try:
        from iospec.diagrams.catalog import spec
        from iospec.diagrams.document import build

        return build(spec("lifecycle-production" if production else "lifecycle")).mermaid
    except Exception:  # diagrams are a nicety of the report; a failure to draw one must not fail the run
        return None


def _lifecycle_path(r: ScenarioResult) -> str | None:
    """The failing request's phases highlighted on the lifecycle diagram (the last one as the failure)."""
    phases: list[str] = []
    for step in r.prediction if isinstance(r.prediction, list) else []:
        for phase in (step.get("lifecycle_phase") or {}).values():
            if not phases or phases[-1] != phase:
                phases.append(phase)
    if not phases:
        return None
    production = "production" in json.dumps(r.prediction)
    base = _lifecycle_mermaid(production)
    if base is None:
        return None
    lines = ["```mermaid", base.rstrip("\n"), "    classDef visited fill:#ffd966,stroke:#b8860b",
             "    classDef failed fill:#f66,stroke:#900,color:#fff"]
    lines += [f"    class {p} visited" for p in dict.fromkeys(phases[:-1]) if p != phases[-1]]
    lines += [f"    class {phases[-1]} failed", "```"]
    return "\n".join(lines)


def render_markdown(results: Sequence[ScenarioResult], cov: Coverage, meta: Mapping[str, Any]) -> str:
    impls = [i["name"] for i in _implementations(results)]
    t = totals(results)
    passed = not any(r.outcome in FAILING_OUTCOMES for r in results)
    out = [f"# iospec conformance: {'PASSED' if passed else 'FAILED'}", ""]
    out.append(f"Implementations: {', '.join(f'`{i}`' for i in impls) or '(none)'}; seed {meta.get('seed', 0)}; "
               f"{len(results)} results.")
    out.append("")
    out.append("| " + " | ".join(OUTCOMES) + " |")
    out.append("|" + "---|" * len(OUTCOMES))
    out.append("| " + " | ".join(str(t[o]) for o in OUTCOMES) + " |")
    out += ["", "## Implementation x rule", "",
            "Each cell: the worst outcome among the scenarios checking the rule, and how many.", ""]
    by_rule: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    levels: dict[str, set[str]] = defaultdict(set)
    for r in results:
        for rid in r.rules:
            by_rule[rid][r.implementation].append(r.outcome)
            levels[rid].add(r.level)
    out.append("| rule | title | levels | " + " | ".join(f"`{i}`" for i in impls) + " |")
    out.append("|---|---|---|" + "---|" * len(impls))
    for rid in RULES:
        if rid not in by_rule:
            continue
        cells = [_cell(by_rule[rid].get(i, [])) for i in impls]
        out.append(f"| [{rid}]({RULES[rid].url}) | {RULES[rid].title} | {', '.join(sorted(levels[rid]))} | "
                   + " | ".join(cells) + " |")
    failing = [r for r in results if r.outcome in ("FAIL", "XPASS", "ERROR", "INFORMATIONAL")]
    if failing:
        out += ["", "## Failures", ""]
        for r in failing:
            out.append(f"### `{r.implementation}` {r.outcome}: `{r.scenario_id}` ({r.level}; {', '.join(r.rules)})")
            out.append("")
            out.append(r.title)
            out.append("")
            for d in r.differences or [r.reason]:
                out.append(f"- {d.splitlines()[0] if d else d}")
            if r.trace:
                out += ["", "Minimal trace (the last steps; the failing one highlighted):", "", _path_diagram(r.trace)]
            path = _lifecycle_path(r)
            if path is not None:
                out += ["", "The request's path on the IncomingRequest lifecycle (where it failed in red):", "", path]
            out.append("")
    out += ["", "## Rule coverage", ""]
    covered = len([r for r in RULES if r in cov.rules])
    out.append(f"{covered}/{len(RULES)} rule ids are checked by a scenario that ran.")
    if cov.uncovered_rules:
        out += ["", "| uncovered rule | why |", "|---|---|"]
        for rid, why in sorted(cov.uncovered_rules.items()):
            out.append(f"| {rid} | {why or '**not explained**'} |")
    out += ["", "## Transition coverage", ""]
    took = sum(1 for n in cov.transitions.values() if n)
    out.append(f"{took}/{len(cov.transitions)} model transitions exercised.")
    if cov.uncovered_transitions:
        out += ["", "| uncovered transition | why |", "|---|---|"]
        for tr, why in sorted(cov.uncovered_transitions.items()):
            out.append(f"| {tr} | {why or '**not explained**'} |")
    out += ["", "<details><summary>Transition counts</summary>", "", "| transition | taken |", "|---|---|"]
    out += [f"| {tr} | {n} |" for tr, n in sorted(cov.transitions.items())]
    out += ["", "</details>", ""]
    return "\n".join(out)


def render_html(markdown: str) -> str:
    """``summary.html``: the Markdown summary as a self-contained page (tables, headings, lists, code blocks).

    A small converter for exactly what `render_markdown` writes; Mermaid blocks stay as
    ``<pre class="mermaid">`` for a page that loads Mermaid (none is fetched from here).
    """
    import html

    out = ['<!doctype html><html><head><meta charset="utf-8"><title>iospec conformance</title><style>',
           "body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:2px 6px}pre{background:#f6f6f6;padding:6px;overflow:auto}",
           "</style></head><body>"]
    lines = markdown.splitlines()
    k = 0

    def inline(text: str) -> str:
        t = html.escape(text)
        t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
        t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
        return re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', t)

    while k < len(lines):
        line = lines[k]
        if line.startswith("```"):
            cls = ' class="mermaid"' if line.strip() == "```mermaid" else ""
            body = []
            k += 1
            while k < len(lines) and not lines[k].startswith("```"):
                body.append(lines[k])
                k += 1
            out.append(f"<pre{cls}>{html.escape(chr(10).join(body))}</pre>")
        elif line.startswith("|"):
            rows = []
            while k < len(lines) and lines[k].startswith("|"):
                rows.append(lines[k])
                k += 1
            k -= 1
            cells = [[c.strip() for c in re.split(r"(?<!\\)\|", r.strip("|"))] for r in rows
                     if not re.fullmatch(r"\|(-+\|)+", r.replace(" ", ""))]
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{inline(c)}</{'th' if i == 0 else 'td'}>"
                                 for c in row) + "</tr>" for i, row in enumerate(cells)) + "</table>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<ul><li>{inline(line[2:])}</li></ul>")
        elif line.strip() and not line.startswith("<"):
            out.append(f"<p>{inline(line)}</p>")
        elif line.startswith("<"):
            out.append(line)
        k += 1
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_reports(results: Sequence[ScenarioResult], directory: str | Path, meta: Mapping[str, Any]) -> dict[str, Path]:
    """Write every report into ``directory`` (created); returns the paths by kind."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cov = coverage(results)
    paths = {"json": d / "report.json", "junit": d / "junit.xml", "markdown": d / "summary.md",
             "coverage": d / "coverage.json"}
    paths["json"].write_text(json.dumps(report_json(results, cov, meta), indent=1, default=str) + "\n")
    paths["junit"].write_text(junit_xml(results))
    markdown = render_markdown(results, cov, meta)
    paths["markdown"].write_text(markdown)
    paths["html"] = d / "summary.html"
    paths["html"].write_text(render_html(markdown))
    paths["coverage"].write_text(json.dumps(cov.to_json(), indent=1) + "\n")
    return paths
