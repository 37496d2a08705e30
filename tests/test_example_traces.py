"""The example traces in examples/traces/ are up to date and check as their manifest says.

Each file is re-recorded from the reference implementation (scripts/record_example_traces.py)
and must be identical to the committed one; ``iospec check-trace`` must pass the clean ones
and reject each fault's trace with the rule its manifest names.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from iospec.cli import main
from properties.tracecheck import check_trace

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "examples" / "traces"
MANIFEST = json.loads((TRACES / "manifest.json").read_text())


def _recorder() -> ModuleType:
    script = ROOT / "scripts" / "record_example_traces.py"
    spec = importlib.util.spec_from_file_location("record_example_traces", script)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_traces_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert _recorder().main(["--check"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("entry", MANIFEST["traces"], ids=lambda e: e["file"])
def test_check_trace_finds_what_the_manifest_says(entry: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    path = TRACES / str(entry["file"])
    code = main(["check-trace", str(path)])
    out = capsys.readouterr().out
    if entry["expect"] == "clean":
        assert code == 0, out
        return
    assert code == 1, out
    expect = entry["expect"]
    assert isinstance(expect, dict)
    rep = check_trace(path)
    assert rep.violation is not None and expect["violation"] in rep.violation.rules, rep.summary()
    assert f"line {rep.violation.line}:" in out, "the report names the violating line"


def test_every_fault_example_names_a_known_fault() -> None:
    from reference_impl.faults import FAULTS

    for entry in MANIFEST["traces"]:
        assert all(f in FAULTS for f in entry["faults"]), entry
        assert (entry["expect"] == "clean") == (not entry["faults"]), entry
