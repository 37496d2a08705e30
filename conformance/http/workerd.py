"""The workerd adapter: run HTTP-level scenarios against a real `workerd serve` process.

For a batch of scenarios it writes ONE Cap'n Proto config (every scenario's workers become
services named ``<scenario>:<worker>``, each requested worker gets a socket on 127.0.0.1:0),
plus the recorder as an ``external`` service; it starts as few processes as the scenarios'
runtime needs allow (one per distinct set of flags, one per startup-refusal scenario), learns
the real ports through ``--control-fd``, sends the requests with `conformance.http.client`,
and returns plain-JSON observation records.

Process rules (workerd-observed.md: workerd does not exit on SIGTERM while a connection is
open): every process is started in its own session with PR_SET_PDEATHSIG=SIGKILL (so it dies
with the harness even on SIGKILL), tracked in `LIVE` until reaped, and stopped by PID with
SIGTERM then SIGKILL after `STOP_GRACE_S`.  An atexit hook stops any that remain.  Config
semantics follow server/workerd.capnp (globalOutbound is the passThroughOnException target,
worker-entrypoint.c++:593-614 and server.c++:5887-5893).
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from iospec.errors import UserError

from .client import exchange
from .jsgen import ACTOR_CLASS, generate_worker
from .recorder import Recorder
from .scenarios import Runtime, Scenario

__all__ = [
    "LIVE",
    "BatchResult",
    "Served",
    "WorkerdError",
    "WorkerdProcess",
    "build_config",
    "default_workerd",
    "resolve_workerd",
    "run_one",
    "run_scenarios",
    "workerd_version",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 2.0
STARTUP_TIMEOUT_S = 60.0
#: Extra time after each scenario so log lines written just after the last response are attributed to it.
LOG_SETTLE_S = 0.05
_PLATFORM_PACKAGES = {
    ("linux", "x86_64"): "workerd-linux-64",
    ("linux", "aarch64"): "workerd-linux-arm64",
    ("darwin", "x86_64"): "workerd-darwin-64",
    ("darwin", "arm64"): "workerd-darwin-arm64",
}
_EXECUTABLE_MAGIC = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


class WorkerdError(UserError):
    """workerd is missing, broken, refused the config, or could not listen (one line, naming the cause)."""


# --------------------------------------------------------------------------- finding the binary


def _is_native_executable(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) in _EXECUTABLE_MAGIC
    except OSError:
        return False


def default_workerd(root: Path = REPO_ROOT) -> Path | None:
    """The npm-installed workerd under `root`/node_modules, or None when `npm ci` has not been run.

    Prefers the platform package's native binary over node_modules/.bin/workerd, which may be a
    node wrapper script: a wrapper would be the PID we stop, not workerd itself.
    """
    machine = os.uname().machine
    package = _PLATFORM_PACKAGES.get((sys.platform, machine))
    candidates = []
    if package:
        candidates.append(root / "node_modules" / "@cloudflare" / package / "bin" / "workerd")
    candidates += [root / "node_modules" / "workerd" / "bin" / "workerd", root / "node_modules" / ".bin" / "workerd"]
    for candidate in candidates:
        if candidate.is_file() and _is_native_executable(candidate.resolve()):
            return candidate
    return None


def resolve_workerd(explicit: str | os.PathLike[str] | None, root: Path = REPO_ROOT) -> Path:
    """The binary to use: `explicit` (e.g. --workerd-bin) or the npm-installed one; WorkerdError if unusable."""
    if explicit is None:
        found = default_workerd(root)
        if found is None:
            raise WorkerdError(f"workerd not found under {root / 'node_modules'} (run `npm ci` there, "
                               "or pass --workerd-bin PATH)")
        return found
    path = Path(explicit)
    if not path.exists():
        raise WorkerdError(f"workerd binary not found: {path}")
    if path.is_dir() or not os.access(path, os.X_OK):
        raise WorkerdError(f"workerd binary is not an executable file: {path}")
    return path


def workerd_version(binary: Path) -> str:
    """`workerd --version` (e.g. 'workerd 2026-11-17'); WorkerdError if the binary does not run."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, timeout=30, check=False,
                              stdin=subprocess.DEVNULL)
    except OSError as e:
        raise WorkerdError(f"{binary} is not a working workerd binary: {e.strerror or e}") from None
    except subprocess.TimeoutExpired:
        raise WorkerdError(f"{binary} is not a working workerd binary: --version did not answer in 30 s") from None
    out = (done.stdout + done.stderr).decode(errors="replace").strip()
    if done.returncode != 0 or not out.startswith("workerd "):
        first = out.splitlines()[0] if out else f"exit code {done.returncode}, no output"
        raise WorkerdError(f"{binary} is not a working workerd binary: --version said: {first}")
    return out.splitlines()[0]


# --------------------------------------------------------------------------- process management

#: workerd processes started by this Python process and not yet reaped (pid -> Popen).
LIVE: dict[int, subprocess.Popen[bytes]] = {}
_LIVE_LOCK = threading.Lock()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the harness thread that started it dies


def _stop(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always reaps; by PID only."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    finally:
        with _LIVE_LOCK:
            LIVE.pop(process.pid, None)


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        remaining = list(LIVE.values())
    for process in remaining:
        _stop(process, grace=0.5)


@dataclass
class LogLine:
    t: float  # time.monotonic() when read
    stream: str
    line: str


@dataclass
class WorkerdProcess:
    """One `workerd serve` process: start it, learn its ports, collect its log lines, stop it."""

    binary: Path
    config_path: Path
    flags: Sequence[str] = ()
    sockets: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    logs: list[LogLine] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)
    _control: int | None = None

    @property
    def command(self) -> list[str]:
        return [str(self.binary), "serve", str(self.config_path), *self.flags]

    def _spawn(self) -> None:
        """Start the process (tracked in LIVE, log readers running); the control pipe's read end is kept."""
        if self.process is not None:
            raise RuntimeError("this WorkerdProcess was already started")
        control_read, control_write = os.pipe()
        try:
            process = subprocess.Popen(
                [*self.command, "--control-fd", str(control_write)],
                pass_fds=[control_write], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=str(self.config_path.parent), start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as e:
            os.close(control_read)
            raise WorkerdError(f"cannot start {self.binary}: {e.strerror or e}") from None
        finally:
            os.close(control_write)
        with _LIVE_LOCK:
            LIVE[process.pid] = process
        self.process = process
        self._control = control_read  # kept open while workerd runs: it writes to it later too
        for stream, pipe in (("stderr", process.stderr), ("stdout", process.stdout)):
            reader = threading.Thread(target=self._read_lines, args=(stream, pipe), daemon=True,
                                      name=f"workerd-{process.pid}-{stream}")
            reader.start()
            self._readers.append(reader)

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> WorkerdProcess:
        """Start workerd and wait until every socket in `sockets` listens; WorkerdError (one line) if not.

        Call it from a thread that outlives the process (PR_SET_PDEATHSIG follows the starting thread).
        """
        self._spawn()
        assert self._control is not None
        try:
            self._await_ports(self._control, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_lines(self, stream: str, pipe: Any) -> None:
        for raw in iter(pipe.readline, b""):
            self.logs.append(LogLine(time.monotonic(), stream, raw.decode("utf-8", errors="replace").rstrip("\n")))
        pipe.close()

    def _await_ports(self, control: int, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        pending = b""
        while not set(self.sockets) <= set(self.ports):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerdError(f"workerd did not listen on every socket within {timeout:.0f} s "
                                   f"(missing: {sorted(set(self.sockets) - set(self.ports))[:3]})")
            ready, _, _ = select.select([control], [], [], min(remaining, 0.2))
            if ready:
                chunk = os.read(control, 65536)
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        message = json.loads(line)
                        if message.get("event") == "listen":
                            self.ports[message["socket"]] = int(message["port"])
                    continue
            if self.process.poll() is not None:
                raise WorkerdError(self._startup_failure())

    def _startup_failure(self) -> str:
        assert self.process is not None
        for reader in self._readers:
            reader.join(2)
        text = [entry.line for entry in self.logs if entry.line.strip()]
        code = self.process.returncode
        cause = next((line for line in text if "Address already in use" in line or "EADDRINUSE" in line), None)
        if cause is not None:
            return f"workerd could not listen (address already in use): {_short(cause)}"
        errors = [line for line in text if "error" in line.lower() or "failed" in line.lower()] or text
        first = _short(errors[0]) if errors else "no output"
        return f"workerd refused to start with {self.config_path} (exit code {code}): {first}"

    def refusal(self, timeout: float) -> dict[str, Any]:
        """For startup-refusal scenarios: start and wait up to `timeout` s for the process to exit by itself."""
        self._spawn()
        assert self.process is not None
        try:
            self.process.wait(timeout)
            refused = True
        except subprocess.TimeoutExpired:
            refused = False
        self.stop()
        for reader in self._readers:
            reader.join(2)
        return {"refused": refused, "exit_code": self.process.returncode,
                "log": [{"stream": e.stream, "line": e.line} for e in self.logs]}

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        if self._control is not None:
            os.close(self._control)
            self._control = None

    def lines_between(self, start: float, end: float, t0: float) -> list[dict[str, Any]]:
        return [{"stream": e.stream, "line": e.line, "t": round((e.t - t0) * 1000, 1)}
                for e in list(self.logs) if start <= e.t <= end]

    def __enter__(self) -> WorkerdProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _short(line: str, limit: int = 300) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- config


def service_name(scenario: Scenario, worker: str) -> str:
    return f"{scenario.id}:{worker}"


def _module_file(scenario: Scenario, worker: str) -> str:
    return f"{scenario.id}__{worker}.js"


def _capnp(value: str) -> str:
    return json.dumps(value)


def _worker_service(scenario: Scenario, worker: Mapping[str, Any]) -> str:
    name = worker["name"]
    bindings = [f"(name = {_capnp('RECORDER')}, service = {_capnp('recorder')})"]
    for binding, target in sorted(worker.get("bindings", {}).items()):
        bindings.append(f"(name = {_capnp(binding)}, service = {_capnp(service_name(scenario, target))})")
    fields = [
        f"modules = [(name = {_capnp('worker.js')}, esModule = embed {_capnp(_module_file(scenario, name))})]",
        f"compatibilityDate = {_capnp(scenario.runtime.compatibility_date)}",
    ]
    flags = worker.get("compatibility_flags", [])
    if flags:
        fields.append("compatibilityFlags = [" + ", ".join(_capnp(f) for f in flags) + "]")
    if "durable_object" in worker:
        bindings.append(f"(name = {_capnp('DO')}, durableObjectNamespace = {_capnp(ACTOR_CLASS)})")
        fields.append(f"durableObjectNamespaces = [(className = {_capnp(ACTOR_CLASS)}, "
                      f"uniqueKey = {_capnp(service_name(scenario, name))})]")
        fields.append("durableObjectStorage = (inMemory = void)")
    fields.append("bindings = [" + ", ".join(bindings) + "]")
    fallback = worker.get("fallback", "internet")
    if fallback != "internet":
        fields.append(f"globalOutbound = {_capnp(service_name(scenario, fallback))}")
    head = f"    (name = {_capnp(service_name(scenario, name))}, worker = (\n      "
    return head + ",\n      ".join(fields) + "\n    ))"


def build_config(scenarios: Sequence[Scenario], recorder_port: int, directory: Path,
                 address: str = "127.0.0.1:0") -> tuple[Path, list[str]]:
    """Write the config and the generated modules into `directory`; returns (config path, socket names)."""
    services = [f"    (name = {_capnp('recorder')}, external = (address = {_capnp(f'127.0.0.1:{recorder_port}')}, "
                "http = ()))"]
    sockets: list[str] = []
    socket_lines: list[str] = []
    for scenario in scenarios:
        for worker in scenario.workers:
            (directory / _module_file(scenario, worker["name"])).write_text(
                generate_worker(scenario.id, worker), encoding="utf-8")
            services.append(_worker_service(scenario, worker))
        for worker_name in scenario.served_workers:
            name = service_name(scenario, worker_name)
            sockets.append(name)
            socket_lines.append(f"    (name = {_capnp(name)}, address = {_capnp(address)}, http = (), "
                                f"service = {_capnp(name)})")
    text = (
        "# Generated by iospec (conformance/http/workerd.py); one service per scenario worker.\n"
        'using Workerd = import "/workerd/workerd.capnp";\n\n'
        "const config :Workerd.Config = (\n"
        "  services = [\n" + ",\n".join(services) + "\n  ],\n"
        "  sockets = [\n" + ",\n".join(socket_lines) + "\n  ],\n"
        ");\n"
    )
    path = directory / "config.capnp"
    path.write_text(text, encoding="utf-8")
    return path, sockets


def runtime_flags(runtime: Runtime) -> list[str]:
    return (["--experimental"] if runtime.experimental else []) + (["--verbose"] if runtime.verbose else [])


# --------------------------------------------------------------------------- running


@dataclass
class BatchResult:
    """Everything one run produced: observation records (JSON-able) plus run facts."""

    version: str
    binary: str
    observations: list[dict[str, Any]]
    processes_started: int
    wall_s: float
    implementation: str = "workerd"

    def to_json(self) -> dict[str, Any]:
        return {"implementation": self.implementation, "version": self.version, "binary": self.binary,
                "processes_started": self.processes_started, "wall_s": round(self.wall_s, 2),
                "observations": self.observations}


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    directory = Path(tempfile.mkdtemp(prefix="iospec-workerd-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _groups(scenarios: Sequence[Scenario]) -> list[tuple[tuple[str, ...], list[Scenario]]]:
    """Scenarios that can share one process: same flags; startup-refusal scenarios each alone."""
    groups: dict[tuple[str, ...], list[Scenario]] = {}
    alone: list[tuple[tuple[str, ...], list[Scenario]]] = []
    for s in scenarios:
        flags = tuple(runtime_flags(s.runtime))
        if s.startup_only:
            alone.append((flags, [s]))
        else:
            groups.setdefault(flags, []).append(s)
    return list(groups.items()) + alone


def base_record(scenario: Scenario, version: str, flags: Sequence[str],
                implementation: str = "workerd") -> dict[str, Any]:
    return {"scenario": scenario.id, "level": scenario.level, "rules": list(scenario.rules),
            "implementation": implementation, "version": version, "flags": list(flags), "error": None}


class Served(Protocol):
    """What `run_one` needs from a running implementation: a port per ``<scenario>:<worker>`` and its log lines."""

    ports: dict[str, int]

    def lines_between(self, start: float, end: float, t0: float) -> list[dict[str, Any]]: ...


def run_one(scenario: Scenario, server: Served, recorder: Recorder, record: dict[str, Any]) -> None:
    """Send the scenario's requests to `server` and fill `record` (responses, events, logs); any implementation."""
    t0 = time.monotonic()
    responses: dict[str, dict[str, Any]] = {}
    background: list[threading.Thread] = []

    def send(request: Mapping[str, Any]) -> None:
        port = server.ports[service_name(scenario, request["worker"])]
        responses[request["id"]] = exchange(port, request, t0)

    for request in scenario.requests:
        if request.get("delay_ms"):
            time.sleep(request["delay_ms"] / 1000)
        if request.get("wait", "response") == "none":
            thread = threading.Thread(target=send, args=(request,), daemon=True)
            thread.start()
            background.append(thread)
        else:
            send(request)
    for thread, request in zip(background, [r for r in scenario.requests if r.get("wait") == "none"], strict=True):
        thread.join(request.get("timeout_ms", 5000) / 1000 + 2)
    time.sleep(scenario.observe_ms / 1000 + LOG_SETTLE_S)
    end = time.monotonic()
    record["responses"] = {r["id"]: responses.get(r["id"], {"outcome": "not_sent"}) for r in scenario.requests}
    record["events"] = [{"event": e["event"], "value": e["value"], "worker": e["worker"],
                         "t": round((t - t0) * 1000, 1)} for t, e in recorder.events(scenario.id)]
    record["logs"] = server.lines_between(t0, end, t0)
    record["duration_ms"] = round((end - t0) * 1000, 1)


def run_scenarios(scenarios: Sequence[Scenario], binary: Path, *, keep_dir: Path | None = None,
                  on_result: Callable[[dict[str, Any]], None] | None = None) -> BatchResult:
    """Run every scenario against `binary`; one observation record per scenario, in input order."""
    started = time.monotonic()
    version = workerd_version(binary)
    by_id: dict[str, dict[str, Any]] = {}
    processes = 0
    with Recorder() as recorder, _workdir(keep_dir) as root:
        for index, (flags, group) in enumerate(_groups(scenarios)):
            directory = root / f"batch{index}"
            directory.mkdir(exist_ok=True)
            config, sockets = build_config(group, recorder.port, directory)
            server = WorkerdProcess(binary, config, flags, sockets)
            processes += 1
            if group[0].startup_only:
                record = base_record(group[0], version, flags)
                record["startup"] = server.refusal(timeout=10)
                by_id[group[0].id] = record
                if on_result:
                    on_result(record)
                continue
            with server:
                for scenario in group:
                    record = base_record(scenario, version, flags)
                    if server.process is not None and server.process.poll() is not None:
                        record["error"] = f"workerd exited (code {server.process.returncode}) before this scenario"
                    else:
                        run_one(scenario, server, recorder, record)
                    by_id[scenario.id] = record
                    if on_result:
                        on_result(record)
    return BatchResult(version=version, binary=str(binary), observations=[by_id[s.id] for s in scenarios],
                       processes_started=processes, wall_s=time.monotonic() - started)
