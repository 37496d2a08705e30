"""``iospec verify``: one line per invariant, exit codes 0 / 1 / 3 / 2, the proof report, replayable traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iospec.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_proved_for_any_size_with_a_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "context", "--depth", "4", "--induction", "--parametric", "--report", str(tmp_path))
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.startswith("  ")]
    assert len(lines) == 12 and all(ln.split()[0] == "proved" for ln in lines)
    assert "parametric induction" in out and "any number of Ctx, Thread" in out
    data = json.loads((tmp_path / "verification.json").read_text())
    invs = {i["name"]: i for i in data["models"][0]["invariants"]}
    assert invs["current_is_top_of_stack"]["lemma"] is True
    assert invs["saved_outer_is_unique"]["support"] == ["current_is_top_of_stack"]
    assert invs["runs_on_pinned_thread"]["rules"][0]["id"] == "INV-C1"
    assert set(invs["ids_never_reused"]["methods"]) == {"bmc", "induction", "parametric"}
    md = (tmp_path / "verification.md").read_text()
    assert "| never_reentered | INV-C2 | `io/io-context.c++:1307-1308` | proved |" in md


def test_bmc_only_is_not_called_a_proof(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "context", "--depth", "3", "--bounds", "threads=1,contexts=2")
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.startswith("  ")]
    assert lines and all(ln.split()[0] == "bounded" for ln in lines)
    assert "not a proof" in out and "proved" not in out


def test_a_fault_is_violated_with_a_replayable_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    traces = tmp_path / "cex.json"
    code, out, _ = _run(capsys, "context", "--fault", "run_after_abort", "--depth", "6", "--induction",
                        "--trace-out", str(traces))
    assert code == 1
    assert "violated context~run_after_abort.no_js_after_abort" in " ".join(out.split())
    assert "enter(c=" in out
    first = json.loads(traces.read_text())[0]
    one = tmp_path / "one.json"
    one.write_text(json.dumps(first))
    code = main(["explore", "context", "--fault", "run_after_abort", "--replay", str(one)])
    assert code == 1
    assert "violates: no_js_after_abort" in capsys.readouterr().out


def test_unknown_exits_3_and_is_never_proved(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "context", "--fault", "exit_keeps_outer", "--depth", "0", "--induction")
    assert code == 3  # depth 0 cannot reach the violation; the proof fails: unknown
    statuses = {ln.split()[1]: ln.split()[0] for ln in out.splitlines() if ln.startswith("  ")}
    assert statuses["context~exit_keeps_outer.outer_contexts_are_entered"] == "unknown"
    assert "not inductive" in out


@pytest.mark.parametrize("argv,needle", [
    (["nosuch"], "unknown model 'nosuch'"),
    (["context", "--bounds", "threads=x"], "not an integer"),
    (["context", "--bounds", "objects=1"], "no bound or constant 'objects'"),
    (["context", "--depth", "-1"], "--depth -1"),
    (["context", "--fault", "nosuch"], "no fault 'nosuch'"),
    (["--bounds", "nosuch=1"], "no model has a bound or constant nosuch"),
])
def test_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
