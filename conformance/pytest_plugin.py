"""The pytest plugin (entry point ``pytest11``: ``iospec-conformance``): the suite as pytest items.

``pytest --pyargs conformance --impl reference`` collects conformance/test_catalogue.py, which
has one item per scenario (its id is the scenario id, so ``-k`` works on ids; rule ids and the
level are keywords too).  Options:

* ``--impl SPEC``: ``reference``, ``reference[fault,...]``, ``package.module:factory``, or ``workerd``
  (the HTTP-level suite against the real binary, run as one batch whose results become the items);
* ``--trace-file FILE`` (repeatable): check recorded NDJSON traces, one item each (pytest's own
  ``--trace`` starts the debugger, hence the name);
* ``--scenario PATTERN``, ``--rule ID``, ``--level LEVEL``: selection, as ``iospec conformance``;
* ``--expectations FILE``: known failures (XFAIL; an unexpected pass fails the item);
* ``--conformance-reports DIR``: also write the reports (report.json, junit.xml, summary.md).

The options exist only when the plugin is loaded; the default test run (tests/) does not use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .results import ScenarioResult

__all__ = ["pytest_addoption", "pytest_configure", "pytest_sessionfinish"]

_RESULTS_KEY = pytest.StashKey[list[ScenarioResult]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("iospec-conformance", "iospec conformance suite")
    g.addoption("--impl", action="store", default=None, metavar="SPEC",
                help="implementation under test: reference, reference[fault,...] or package.module:factory")
    g.addoption("--trace-file", action="append", default=[], metavar="FILE",
                help="check a recorded NDJSON trace (docs/trace-format.md); repeatable")
    g.addoption("--scenario", action="append", default=[], metavar="PATTERN", help="select scenario ids (glob)")
    g.addoption("--rule", action="append", default=[], metavar="ID", help="select scenarios checking this rule id")
    g.addoption("--level", action="append", default=[], metavar="LEVEL", help="MUST, SHOULD or INFORMATIONAL")
    g.addoption("--expectations", action="store", default=None, metavar="FILE", help="known failures with reasons")
    g.addoption("--conformance-reports", action="store", default=None, metavar="DIR",
                help="write report.json, junit.xml, summary.md and coverage.json here")


def pytest_configure(config: pytest.Config) -> None:
    from model.rules import RULES

    config.stash[_RESULTS_KEY] = []
    config.addinivalue_line("markers", "conformance: an iospec conformance scenario")
    for level in ("must", "should", "informational"):
        config.addinivalue_line("markers", f"{level}: a conformance scenario at requirement level {level.upper()}")
    for rid, rule in RULES.items():
        config.addinivalue_line("markers", f"{rid.replace('-', '_')}: conformance scenarios checking {rule.title}")
    if config.getoption("--impl", default=None) or config.getoption("--trace-file", default=None):
        _state(config)  # bad options are a usage error (one line), not a collection error


def _state(config: pytest.Config) -> dict[str, Any]:
    """The implementation, selection and expectations, built once per session (UserError -> usage error)."""
    cached: dict[str, Any] | None = getattr(config, "_iospec_state", None)
    if cached is not None:
        return cached
    from iospec.errors import UserError

    from .adapter import load_implementation
    from .expectations_file import load_expectations
    from .scenario import Selection, load_all

    try:
        spec = config.getoption("--impl")
        http_results: list[ScenarioResult] = []
        sel = Selection.parse(config.getoption("--scenario"), config.getoption("--rule"),
                              config.getoption("--level"))
        if spec and spec.strip() == "workerd":  # the HTTP suite runs as one batch; its results become items
            http_results = [r for r in _http_results() if sel({"id": r.scenario_id, "rules": r.rules,
                                                                "level": r.level})]
            spec = None
        impl = load_implementation(spec) if spec else None
        exp_path = config.getoption("--expectations")
        if exp_path is None and spec and spec.strip() == "reference":
            default = Path(__file__).with_name("expectations") / "reference.json"
            exp_path = str(default) if default.exists() else None
        expectations = load_expectations(exp_path) if exp_path else None
        scenarios = [s for s in load_all(generated=True) if sel(s)] if impl is not None else []
    except UserError as e:
        raise pytest.UsageError(str(e)) from None
    state = {"impl": impl, "scenarios": scenarios, "expectations": expectations,
             "traces": list(config.getoption("--trace-file")), "http": http_results}
    config._iospec_state = state  # type: ignore[attr-defined]
    return state


def _http_results() -> list[ScenarioResult]:
    """``--impl workerd``: the HTTP-level suite against the real binary (conformance.http)."""
    import argparse

    from iospec.errors import UserError

    try:
        from .http import run_for_conformance
    except ImportError as e:
        raise UserError(f"--impl workerd: the HTTP-level suite is not available ({e})") from None
    results: list[ScenarioResult] = run_for_conformance(
        argparse.Namespace(impl="workerd", workerd_bin=None, ids=[], slow=False, keep=None, seed=0))
    return results


def scenario_params(config: pytest.Config) -> list[Any]:
    """The parameters of conformance/test_catalogue.py: scenarios (with rule and level keywords), traces."""
    state = _state(config)
    params: list[Any] = []
    for sc in state["scenarios"]:
        marks = [pytest.mark.conformance, getattr(pytest.mark, sc.level.lower().replace("-", "_"))]
        marks += [getattr(pytest.mark, r.replace("-", "_")) for r in sc.rules]
        params.append(pytest.param(("scenario", sc), id=sc.id, marks=marks))
    for r in state["http"]:
        params.append(pytest.param(("result", r), id=f"http:{r.scenario_id}", marks=[pytest.mark.conformance]))
    for t in state["traces"]:
        params.append(pytest.param(("trace", t), id=f"trace:{Path(t).name}", marks=[pytest.mark.conformance]))
    return params


def run_param(config: pytest.Config, param: tuple[str, Any]) -> ScenarioResult:
    from .runner import apply_expectations, run_scenario, run_traces

    state = _state(config)
    kind, what = param
    if kind == "scenario":
        res = run_scenario(what, state["impl"])
    elif kind == "result":
        res = what
    else:
        res = run_traces([what])[0]
    apply_expectations([res], state["expectations"])
    config.stash[_RESULTS_KEY].append(res)
    return res


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = session.config.getoption("--conformance-reports", default=None)
    results = session.config.stash.get(_RESULTS_KEY, [])
    if out and results:
        from .reports import write_reports

        write_reports(results, out, {"seed": 0, "runner": "pytest"})
