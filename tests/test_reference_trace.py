"""The reference implementation's trace: format v1, real interleavings, sinks, offline checking, the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from properties.tracecheck import check_trace
from reference_impl import Request, Runtime
from reference_impl.demo import build_demo
from reference_impl.trace import CallbackSink, MemorySink, NdjsonSink, Recorder
from tests.reference_helpers import drain, new_context, run_in, runtime


def test_recorder_header_seq_and_notes() -> None:
    mem = MemorySink()
    rec = Recorder([mem], models=["context"], known_ops=frozenset({"enter"}))
    with rec.atomic():
        rec.emit("enter", {"c": "ctx-1", "t": "thread-0"}, result="OK")
        rec.emit("not_a_model_action", {"x": 1})
        rec.emit("release_lock", {"t": "thread-0", "i": "iso-1"}, model="locks")  # locks is not in the header
    assert mem.head == {"iospec_trace": 1, "implementation": "reference", "version": "0.1.0", "models": ["context"]}
    assert [e["seq"] for e in mem.events] == [1, 2, 3]
    assert mem.ops() == ["enter", "note.not_a_model_action", "note.release_lock"]
    assert mem.events[0]["result"] == "OK" and "result" not in mem.events[1]


def test_a_real_multithreaded_run_is_a_checkable_ndjson_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.ndjson"
    seen: list[dict] = []
    with runtime(threads=2, trace=[NdjsonSink(path), CallbackSink(seen.append)]) as rt:
        build_demo(rt)
        for i in range(6):
            rt.fetch("app", Request("GET", f"http://x/{['', 'wait', 'do/a'][i % 3]}"), thread=i % 2)
        rt.settle()
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["iospec_trace"] == 1 and header["models"] == rt.recorder.header["models"]
    events = [json.loads(line) for line in lines[1:]]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["thread"] for e in events} >= {"thread-0", "thread-1"}
    assert len(seen) == len(events)
    report = check_trace(path, final_check=True)
    assert report.ok, report.summary()


def test_a_faulty_runs_trace_is_rejected_at_the_forbidden_step(tmp_path: Path) -> None:
    path = tmp_path / "faulty.ndjson"
    with runtime(threads=2, direct=True, faults={"delete_on_wrong_thread"}, trace=[NdjsonSink(path)]) as rt:
        ctx, r = new_context(rt, 0)
        own = run_in(rt, ctx, lambda: ctx.add_object(object(), "X"))
        rt.gc.collect(own.drop)
        drain(rt, r)
    report = check_trace(path)
    assert not report.ok and report.violation is not None
    bad = json.loads(path.read_text().splitlines()[(report.violation.line or 1) - 1])  # lines count from 1
    assert bad["op"] == "drop_in_owner" and bad["thread"] == "gc"
    assert "INV-O10" in report.violation.rules


def test_the_monitor_can_be_switched_off() -> None:
    with Runtime(threads=1, monitor=False) as rt:
        assert rt.monitor is None
    with Runtime(threads=1, monitor=True) as rt:
        assert rt.monitor is not None and rt.monitor.ok


def test_the_demo_server_runs_as_a_process(tmp_path: Path) -> None:
    trace = tmp_path / "demo.ndjson"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "reference_impl", "serve", "--port", "0", "--monitor",
                             "--trace", str(trace)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split()[1]
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == b"hello from the reference implementation\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "no violation" in err
    assert check_trace(trace).ok
