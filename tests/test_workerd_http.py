"""HTTP-level conformance scenarios against the real workerd binary (node_modules, from `npm ci`).

Installs nothing: when `npm ci` has not been run the module is skipped with that message
(`tox -e conformance-workerd` runs `npm ci` first).  Every MUST scenario must match its
expectation; a SHOULD or INFORMATIONAL difference is reported as an expected failure.  Seeded
faults (a wrong expectation, a changed behaviour) run in the same batch and must be caught,
and the process tests check that no workerd outlives the harness, even when it is interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conformance.http.differential import expectation
from conformance.http.expect import check
from conformance.http.scenarios import Scenario, load_all, select
from conformance.http.workerd import (
    LIVE,
    REPO_ROOT,
    BatchResult,
    WorkerdError,
    WorkerdProcess,
    build_config,
    default_workerd,
    run_scenarios,
    workerd_version,
)

BINARY = default_workerd()
if BINARY is None:
    pytest.skip("workerd is not installed: run `npm ci` in the repository root (tox -e conformance-workerd does it)",
                allow_module_level=True)
assert BINARY is not None
PINNED_VERSION = "workerd 2026-11-17"
pytestmark = pytest.mark.workerd

SCENARIOS = select(load_all())  # the non-slow set
BY_ID = {s.id: s for s in SCENARIOS}


def variant(base_id: str, suffix: str, *, expect: Mapping[str, Any] | None = None,
            routes: Mapping[str, Any] | None = None) -> Scenario:
    """A copy of a scenario with a seeded fault: a different expectation, or a different behaviour of `main`."""
    base = BY_ID[base_id]
    workers = tuple({**w, "routes": routes} if routes is not None and w["name"] == "main" else w
                    for w in base.workers)
    # a changed behaviour is checked against what the unchanged scenario expects (prediction merged with pins)
    return dataclasses.replace(base, id=f"{base_id}-{suffix}", workers=workers,
                               expect=expect if expect is not None else expectation(base).expect)


#: Each fault must make the checker report a difference (principle: every check can fail).
FAULTS = [
    variant("pass-through-fallback-serves", "fault-expects-listener-500",
            expect={"source": "pinned",
                    "responses": {"r1": {"status": 500, "body": {"equals": "Internal Server Error"}}}}),
    variant("pass-through-fallback-serves", "fault-forgets-pass-through",
            routes={"/p": [{"op": "throw", "message": "fail open"}]}),
    variant("timer-without-wait-until", "fault-keeps-context-alive",
            routes={"/": [{"op": "wait_until", "steps": [{"op": "sleep", "ms": 200}]},
                          {"op": "set_timeout", "ms": 50, "steps": [{"op": "record", "event": "timer_fired"}]},
                          {"op": "respond", "body": "responded"}]}),
    variant("xreq-identity-transform-stream", "fault-expects-it-to-work",
            expect={"source": "pinned", "responses": {"use": {"status": 200, "body": {"equals": "ok: read=x"}}}}),
    variant("stream-fails-after-first-chunk", "fault-expects-complete-body",
            expect={"source": "pinned", "responses": {"r1": {"status": 200, "complete": True}}}),
]


@pytest.fixture(scope="module")
def run() -> BatchResult:
    assert BINARY is not None
    result = run_scenarios([*SCENARIOS, *FAULTS], BINARY)
    return result


def observation(run: BatchResult, scenario_id: str) -> dict[str, Any]:
    return next(o for o in run.observations if o["scenario"] == scenario_id)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(run: BatchResult, scenario: Scenario) -> None:
    # the expectation: the models' prediction merged with what the scenario pins
    problems = check(expectation(scenario).expect, observation(run, scenario.id))
    where = f"{scenario.file}:{scenario.line} ({scenario.level}, rules {', '.join(scenario.rules)})"
    if scenario.level != "INFORMATIONAL" or "workerd" not in scenario.differences:
        assert not problems, f"{scenario.id} at {where}:\n  " + "\n  ".join(problems)
    elif problems:
        pytest.xfail(f"{scenario.level} scenario differs as explained at {where}: {'; '.join(problems)}")


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_seeded_fault_is_caught(run: BatchResult, fault: Scenario) -> None:
    assert check(fault.expect, observation(run, fault.id)), f"{fault.id}: the checker accepted a seeded fault"


def test_observations_are_plain_json_and_name_the_version(run: BatchResult) -> None:
    data = json.loads(json.dumps(run.to_json()))
    assert data["version"] == PINNED_VERSION == workerd_version(Path(run.binary))
    assert {o["scenario"] for o in data["observations"]} == {s.id for s in [*SCENARIOS, *FAULTS]}
    assert all(o["implementation"] == "workerd" and o["version"] == PINNED_VERSION for o in data["observations"])


def test_few_processes(run: BatchResult) -> None:
    flag_sets = {(s.runtime.experimental, s.runtime.verbose) for s in SCENARIOS if not s.startup_only}
    assert run.processes_started == len(flag_sets) + sum(s.startup_only for s in SCENARIOS)


def children_running_workerd(parent: int) -> list[int]:
    """PIDs of live (not zombie) processes whose parent is `parent` and whose executable is workerd."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z" and Path(exe).name == "workerd":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_no_workerd_outlives_the_run(run: BatchResult) -> None:
    assert not LIVE
    assert children_running_workerd(os.getpid()) == []


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_harness_leaves_no_workerd(sig: signal.Signals) -> None:
    # the slow scenario, named exactly, keeps the harness busy for ~33 s: long enough to interrupt it
    code = ("import sys; from conformance.http.__main__ import main; "
            f"sys.exit(main(['wait-until-past-production-drain-limit', '--workerd-bin', {str(BINARY)!r}]))")
    if sig == signal.SIGTERM:  # the same through `iospec differential` (workerd only)
        code = ("import sys; from iospec.cli import main; sys.exit(main(['differential', '--impl', 'workerd', "
                f"'-q', '--out', {str(REPO_ROOT / 'reports' / 'interrupted')!r}, "
                f"'wait-until-past-production-drain-limit', '--workerd-bin', {str(BINARY)!r}]))")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        pids: list[int] = []
        while not pids and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
            pids = children_running_workerd(child.pid)
        assert pids, "the harness never started workerd"
        time.sleep(0.5)  # inside the scenario now
        child.send_signal(sig)
        child.wait(20)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids), f"workerd {pids} outlived a harness stopped by {sig.name}"
        if sig != signal.SIGKILL:
            assert child.returncode in (130, 128 + signal.SIGTERM), child.stderr.read() if child.stderr else ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_no_workerd_outlives_a_failing_consumer() -> None:
    """A test that fails while workerd runs (here: the result callback raises) still stops every process."""
    assert BINARY is not None
    seen: list[int] = []

    def explode(record: dict[str, Any]) -> None:
        seen.extend(LIVE)
        raise RuntimeError("a failing test")

    with pytest.raises(RuntimeError, match="a failing test"):
        run_scenarios([BY_ID["exception-sync-throw"], BY_ID["stream-closes-normally"]], BINARY, on_result=explode)
    assert seen, "workerd was not running when the consumer failed"
    assert not LIVE
    assert not any(alive(p) for p in seen)
    assert children_running_workerd(os.getpid()) == []


def test_rejected_config_is_one_line(tmp_path: Path) -> None:
    assert BINARY is not None
    config = tmp_path / "config.capnp"
    config.write_text('using Workerd = import "/workerd/workerd.capnp";\n'
                      'const config :Workerd.Config = (sockets = [(name = "s", address = "127.0.0.1:0", '
                      'http = (), service = "missing")]);\n')
    with pytest.raises(WorkerdError) as info:
        WorkerdProcess(BINARY, config, sockets=["s"]).start()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"workerd refused to start with {config} (exit code 1): ")
    assert "missing" in message
    assert not LIVE


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    assert BINARY is not None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config, sockets = build_config([BY_ID["exception-sync-throw"]], 1, tmp_path, address=f"127.0.0.1:{port}")
        with pytest.raises(WorkerdError) as info:
            WorkerdProcess(BINARY, config, sockets=sockets).start()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("workerd could not listen (address already in use)")
    assert not LIVE


def test_broken_binary_is_one_line(tmp_path: Path) -> None:
    impostor = tmp_path / "workerd"
    impostor.write_text("#!/bin/sh\necho 'not workerd at all'\n")
    impostor.chmod(0o755)
    with pytest.raises(WorkerdError, match=r"is not a working workerd binary: --version said: not workerd at all$"):
        workerd_version(impostor)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01\x02 not an executable format")
    garbage.chmod(0o755)
    with pytest.raises(WorkerdError, match="is not a working workerd binary: Exec format error"):
        workerd_version(garbage)
