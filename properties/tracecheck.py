"""Offline trace checking: run the monitors over a recorded NDJSON trace (docs/trace-format.md).

`check_trace` reads the header, validates every line's shape (a malformed, empty or truncated
file is a `TraceFormatError` naming the file and line), and feeds each event to a `Monitor`.
The first event the models do not allow is returned as a `MonitorViolation` with its line
number, rule ids and the model state; a clean trace gets a summary.

``engine="c"`` first runs the compiled checker (`properties.compiled`, C generated from the same
model expressions); it answers "clean" or "stop at line N", and for every answer but "clean" the
Python engine re-checks the trace, so reports and errors are the Python engine's, word for word.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.catalog import MODELS
from properties.monitor import Monitor, MonitorViolation

__all__ = ["check_trace", "TraceReport", "TraceFormatError", "read_trace", "ENGINES"]

#: ``python``: the monitors (`properties.monitor`); ``c``: the compiled checker first (the Python
#: engine re-checks anything it does not find clean; without a C compiler it is the Python engine)
ENGINES = ("python", "c")


class TraceFormatError(ValueError):
    """The trace file is not a well-formed iospec trace (one line, with file and line)."""


@dataclass
class TraceReport:
    path: str
    models: list[str]
    events: int = 0
    elapsed: float = 0.0
    violation: MonitorViolation | None = None
    end_violations: list[str] = field(default_factory=list)
    per_op: dict[str, int] = field(default_factory=dict)
    implementation: str = ""
    #: the engine whose verdict this is: "python", "c", or "python" after the compiled one stopped (see `compiled`)
    engine: str = "python"
    #: what the compiled engine said before the Python engine re-checked (``"<kind> at line N"``), if it ran
    compiled: str | None = None

    @property
    def ok(self) -> bool:
        return self.violation is None and not self.end_violations

    def summary(self) -> str:
        rate = self.events / self.elapsed if self.elapsed else float("inf")
        head = f"{self.path}: {self.events:,} events, models {', '.join(self.models)}"
        if self.violation is not None:
            return f"{head}: VIOLATION\n{self.violation.report()}"
        if self.end_violations:
            return f"{head}: invariants violated at the end: {', '.join(self.end_violations)}"
        return f"{head}: no violation ({self.elapsed:.2f}s, {rate:,.0f} events/s)"


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, content, ends with newline) for every line of the file."""
    with path.open("rb") as f:
        n = 0
        for raw in f:
            n += 1
            yield n, raw, raw.endswith(b"\n")


def read_trace(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every line, header included; raise TraceFormatError."""
    if not path.exists():
        raise TraceFormatError(f"{path}: no such file")
    if path.is_dir():
        raise TraceFormatError(f"{path}: is a directory, not a trace file")
    seen_any = False
    for n, raw, newline in _lines(path):
        seen_any = True
        text = raw.strip()
        if not text:
            raise TraceFormatError(f"{path}:{n}: empty line (every line must be one JSON object)")
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if not newline:
                raise TraceFormatError(
                    f"{path}:{n}: truncated line (the file ends mid-object; was the trace cut short?)"
                ) from None
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
            raise TraceFormatError(f"{path}:{n}: not JSON: {msg}") from None
        if not isinstance(obj, dict):
            raise TraceFormatError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
        yield n, obj
    if not seen_any:
        raise TraceFormatError(f"{path}: empty trace (no header line)")


def _header(path: Path, n: int, obj: dict[str, Any], models: list[str] | None) -> tuple[list[str], dict[str, int]]:
    if obj.get("iospec_trace") != 1:
        raise TraceFormatError(
            f"{path}:{n}: the first line must be a header with \"iospec_trace\": 1 (see docs/trace-format.md)"
        )
    names = models or obj.get("models")
    if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names):
        raise TraceFormatError(f"{path}:{n}: header 'models' must be a non-empty list of model names")
    unknown = [x for x in names if x not in MODELS]
    if unknown:
        raise TraceFormatError(f"{path}:{n}: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    consts = obj.get("consts", {})
    if not isinstance(consts, dict):
        raise TraceFormatError(f"{path}:{n}: header 'consts' must be an object")
    return names, {k: int(v) for k, v in consts.items()}


def _check_event(path: Path, n: int, obj: dict[str, Any], last_seq: int | None) -> int:
    seq = obj.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise TraceFormatError(f"{path}:{n}: event needs an integer 'seq'")
    if last_seq is not None and seq <= last_seq:
        raise TraceFormatError(f"{path}:{n}: 'seq' {seq} does not increase (previous {last_seq})")
    if not isinstance(obj.get("op"), str) or not obj["op"]:
        raise TraceFormatError(f"{path}:{n}: event needs an 'op' string")
    if not isinstance(obj.get("args"), dict):
        raise TraceFormatError(f"{path}:{n}: event needs an 'args' object")
    if "result" in obj and not isinstance(obj["result"], str):
        raise TraceFormatError(f"{path}:{n}: 'result' must be a string")
    if "outputs" in obj and not isinstance(obj["outputs"], dict):
        raise TraceFormatError(f"{path}:{n}: 'outputs' must be an object")
    return seq


def _header_offset(path: Path) -> tuple[dict[str, Any], int]:
    """The header (validated as the Python engine does) and the byte offset of line 2."""
    _, obj = next(read_trace(path))
    with path.open("rb") as f:
        offset = len(f.readline())
    return obj, offset


def check_compiled(path: Path | str, *, models: list[str] | None = None) -> tuple[list[str], Any]:
    """The compiled engine's verdict on ``path`` (a `CompiledResult`), or None without a C compiler.

    Raises `TraceFormatError` for a missing file or a bad header (as the Python engine does).
    """
    from properties.compiled.engine import compiled_checker

    path = Path(path)
    header, offset = _header_offset(path)
    names, consts = _header(path, 1, header, models)
    checker = compiled_checker(names, consts)
    if checker is None:
        return names, None
    return names, checker.check(path, offset, 2)


def check_trace(path: Path | str, *, models: list[str] | None = None, history: int = 10,
                final_check: bool = False, engine: str = "python") -> TraceReport:
    """Check one trace file; raises `TraceFormatError` for a malformed file.

    Every invariant is checked after every event, incrementally (exact: see `model.core.sparse`).
    ``final_check`` also evaluates every invariant in full at the end, a second opinion on the
    incremental engine; it costs time quadratic in the identities of the run for the invariants
    that relate pairs (requests of one context, for example), so it is off for long traces
    (it needs the Python engine's state: with it, ``engine`` is ignored).
    ``engine``: see `ENGINES`.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
    path = Path(path)
    compiled_said: str | None = None
    if engine == "c" and not final_check:
        names, result = check_compiled(path, models=models)
        if result is None:
            from properties.compiled.engine import unavailable_reason

            compiled_said = f"unavailable: {unavailable_reason()}"
        elif result.clean and result.events > 0:
            header, _ = _header_offset(path)
            return TraceReport(str(path), names, events=result.events, elapsed=result.elapsed,
                               per_op=result.per_op, implementation=str(header.get("implementation", "")),
                               engine="c")
        else:
            compiled_said = f"{result.kind} at line {result.line}"
    it = read_trace(path)
    first = next(it)
    names, consts = _header(path, first[0], first[1], models)
    report = TraceReport(str(path), names, implementation=str(first[1].get("implementation", "")),
                         compiled=compiled_said)
    mon = Monitor(names, history=history, consts=consts)
    start = time.perf_counter()
    last_seq: int | None = None
    events = 0
    try:
        for n, obj in it:
            last_seq = _check_event(path, n, obj, last_seq)
            events += 1
            try:
                mon.step(obj, line=n)
            except MonitorViolation as v:
                if v.kind in ("bad_event", "unknown_op"):
                    raise TraceFormatError(f"{path}:{n}: {v.message}") from None
                report.violation = v
                break
    finally:
        report.elapsed = time.perf_counter() - start
        report.events = events
        report.per_op = dict(mon.per_op)
    if final_check and report.violation is None:
        report.end_violations = [f"{m}.{inv.name}" for m, inv in mon.check_all()]
    if events == 0 and report.violation is None:
        raise TraceFormatError(f"{path}: the trace has a header but no events")
    return report
