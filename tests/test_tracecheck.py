"""`iospec check-trace`: clean traces pass, violations name line and rule, bad files are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from iospec.cli import main
from properties.tracecheck import TraceFormatError, check_trace

DATA = Path(__file__).parent / "data" / "traces"


def test_clean_trace_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-trace", str(DATA / "clean_two_contexts.ndjson")]) == 0
    assert "no violation" in capsys.readouterr().out


def test_cross_request_access_is_caught_at_its_line() -> None:
    rep = check_trace(DATA / "cross_request_access.ndjson")
    assert rep.violation is not None
    assert rep.violation.line == 8
    assert rep.violation.kind == "wrong_result"
    assert "INV-O2" in rep.violation.rules
    assert "ERR_DIFFERENT_REQUEST" in str(rep.violation)
    # the report shows the contexts the object and the thread point to
    assert "ctx_state[A]" in rep.violation.report() and "ctx_state[B]" in rep.violation.report()


def test_violation_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-trace", str(DATA / "cross_request_access.ndjson")]) == 1


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty trace"),
        (b'{"iospec_trace": 1, "models": ["ownership"]}\n', "no events"),
        (b'{"iospec_trace": 1, "models": ["ownership"]}\n{"seq": 1, "op": "exit", "ar', "truncated"),
        (b'{"iospec_trace": 1, "models": ["ownership"]}\nnot json\n', ":2: not JSON"),
        (b'{"models": ["ownership"]}\n', ":1: the first line must be a header"),
        (b'{"iospec_trace": 1, "models": ["nope"]}\n', "unknown model"),
        (b'{"iospec_trace": 1, "models": ["context"]}\n{"seq": 1, "op": "fly", "args": {}}\n', "no watched model"),
        (b'{"iospec_trace": 1, "models": ["context"]}\n{"seq": 2, "op": "note.x", "args": {}}\n'
         b'{"seq": 1, "op": "note.y", "args": {}}\n', "does not increase"),
        (b'{"iospec_trace": 1, "models": ["context"]}\n[1, 2]\n', "expected a JSON object"),
        (b'{"iospec_trace": 1, "models": ["context"]}\n{"seq": 1, "op": "exit"}\n', "'args' object"),
        (b'{"iospec_trace": 1, "models": ["context"]}\n\n', ":2: empty line"),
    ],
)
def test_malformed_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    f = tmp_path / "t.ndjson"
    f.write_bytes(content)
    with pytest.raises(TraceFormatError, match=message):
        check_trace(f)
    assert main(["check-trace", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(f) in err and "Traceback" not in err


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check-trace", str(tmp_path / "absent.ndjson")]) == 2
    assert "no such file" in capsys.readouterr().err
