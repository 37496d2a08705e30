"""The conformance catalogue as pytest items: ``pytest --pyargs conformance --impl reference``.

Collected only through the plugin (conformance/pytest_plugin.py, entry point ``pytest11``);
each item runs one scenario (or one recorded trace) and fails with the differences between
the implementation's observations and the model's predictions.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.pytest_plugin import run_param, scenario_params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" in metafunc.fixturenames:
        metafunc.parametrize("conformance_case", scenario_params(metafunc.config))


def test_scenario(conformance_case: tuple[str, Any], request: pytest.FixtureRequest) -> None:
    res = run_param(request.config, conformance_case)
    detail = "\n".join(res.differences) or res.reason
    if res.outcome == "XFAIL":
        pytest.xfail(res.reason)
    if res.outcome == "NOT-IMPLEMENTED":
        pytest.skip(f"NOT-IMPLEMENTED: {res.reason}")
    if res.outcome in ("FAIL", "ERROR", "XPASS"):
        pytest.fail(f"{res.outcome} {res.scenario_id} ({res.level}; {', '.join(res.rules)}):\n{detail}", pytrace=False)
