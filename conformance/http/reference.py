"""The reference adapter: run HTTP-level scenarios against the reference implementation's HTTP listener.

The same scenarios, client, recorder and observation records as the workerd adapter
(`conformance.http.workerd`), with the worker behaviour generated as Python handlers
(`conformance.http.pygen`) and served by `reference_impl.Runtime.serve` (the h11 listener
that ``python -m reference_impl serve`` uses) on 127.0.0.1 port 0, over real loopback sockets.
The service graph mirrors the workerd config (workerd.py ``build_config``): every scenario
worker is a service ``<scenario>:<worker>``, the recorder an `ExternalService`, bindings are
service bindings, ``fallback`` is the worker's ``global_outbound`` (passThroughOnException's
target, worker-entrypoint.c++:593-614) and the default fallback ``internet`` is a service that
refuses, as workerd's internet service refuses loopback addresses.

One `Runtime` per distinct runtime flag set (``verbose`` decides whether INFO lines are logged,
as workerd's ``--verbose`` does); a startup-refusal scenario is a configuration check of
workerd's that the reference implementation does not have: its record says NOT-IMPLEMENTED.
Log lines are the runtime's ``on_log`` lines, ``"<level>: <text>"``, attributed to scenarios by
time window like workerd's stderr lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import reference_impl
from reference_impl.runtime import Runtime
from reference_impl.service import ExternalService, FailingService
from reference_impl.worker import IsolateConfig

from .pygen import ACTOR_CLASS, WORKER_CLASS, load_worker
from .recorder import Recorder
from .scenarios import Scenario
from .vocabulary import INTERNET
from .workerd import BatchResult, LogLine, base_record, run_one, runtime_flags, service_name

__all__ = ["IMPLEMENTATION", "NOT_IMPLEMENTED_STARTUP", "ReferenceServer", "reference_version", "run_scenarios"]

IMPLEMENTATION = "reference"
#: Why a startup-refusal scenario cannot run here.
NOT_IMPLEMENTED_STARTUP = ("the reference implementation has no configuration gate (workerd refuses some configs "
                           "at startup); there is nothing to refuse")
#: What the ``internet`` fallback answers with: workerd's network service refuses private addresses.
INTERNET_REFUSAL = "internet: connections to private addresses are refused"
RUNTIME_THREADS = 2


def reference_version() -> str:
    try:
        from importlib.metadata import version

        return f"iospec reference_impl {version('iospec')}"
    except Exception:  # not installed (running from a checkout)
        return "iospec reference_impl (checkout)"


@dataclass
class ReferenceServer:
    """One reference `Runtime` serving every worker of a batch of scenarios on loopback ports."""

    scenarios: Sequence[Scenario]
    recorder_port: int
    verbose: bool = False
    keep_dir: Path | None = None
    #: faulty variants of the reference implementation (reference_impl.faults), for seeded-fault tests
    faults: Sequence[str] = ()
    ports: dict[str, int] = field(default_factory=dict)
    logs: list[LogLine] = field(default_factory=list)
    runtime: Runtime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _on_log(self, level: str, text: str) -> None:
        if level == "info" and not self.verbose:
            return
        with self._lock:
            for line in text.splitlines() or [""]:
                self.logs.append(LogLine(time.monotonic(), "stderr", f"{level}: {line}"))

    def start(self) -> ReferenceServer:
        rt = Runtime(threads=RUNTIME_THREADS, memory_trace=False, on_log=self._on_log, faults=self.faults)
        self.runtime = rt
        try:
            rt.add_service(ExternalService("recorder", "127.0.0.1", self.recorder_port))
            rt.add_service(FailingService(INTERNET, INTERNET_REFUSAL))
            for scenario in self.scenarios:
                self._add_scenario(rt, scenario)
            for scenario in self.scenarios:
                for worker in scenario.served_workers:
                    name = service_name(scenario, worker)
                    self.ports[name] = rt.serve(name).port
        except BaseException:
            rt.close()
            raise
        return self

    def _add_scenario(self, rt: Runtime, scenario: Scenario) -> None:
        for worker in scenario.workers:
            source, namespace = load_worker(scenario.id, worker)
            if self.keep_dir is not None:
                (self.keep_dir / f"{scenario.id}__{worker['name']}.py").write_text(source, encoding="utf-8")
            bindings = {"RECORDER": "recorder"}
            bindings.update({b: service_name(scenario, t) for b, t in sorted(worker.get("bindings", {}).items())})
            fallback = worker.get("fallback", INTERNET)
            config = IsolateConfig(scenario.runtime.compatibility_date, tuple(worker.get("compatibility_flags", ())))
            actors = {"DO": namespace[ACTOR_CLASS]} if "durable_object" in worker else None
            rt.add_worker(service_name(scenario, worker["name"]), namespace[WORKER_CLASS], config=config,
                          bindings=bindings, durable_objects=actors,
                          global_outbound=fallback if fallback == INTERNET else service_name(scenario, fallback))

    def lines_between(self, start: float, end: float, t0: float) -> list[dict[str, Any]]:
        with self._lock:
            lines = list(self.logs)
        return [{"stream": e.stream, "line": e.line, "t": round((e.t - t0) * 1000, 1)}
                for e in lines if start <= e.t <= end]

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _groups(scenarios: Sequence[Scenario]) -> list[tuple[bool, list[Scenario]]]:
    groups: dict[bool, list[Scenario]] = {}
    for s in scenarios:
        if not s.startup_only:
            groups.setdefault(s.runtime.verbose, []).append(s)
    return sorted(groups.items())


def run_scenarios(scenarios: Sequence[Scenario], *, keep_dir: Path | None = None,
                  on_result: Callable[[dict[str, Any]], None] | None = None, faults: Sequence[str] = ()) -> BatchResult:
    """Run every scenario against the reference implementation; one observation record per scenario, in order."""
    started = time.monotonic()
    version = reference_version()
    by_id: dict[str, dict[str, Any]] = {}
    runtimes = 0
    if keep_dir is not None:
        keep_dir.mkdir(parents=True, exist_ok=True)
    for s in scenarios:
        if s.startup_only:
            record = base_record(s, version, runtime_flags(s.runtime), IMPLEMENTATION)
            record["not_implemented"] = NOT_IMPLEMENTED_STARTUP
            by_id[s.id] = record
            if on_result:
                on_result(record)
    with Recorder() as recorder:
        for verbose, group in _groups(scenarios):
            runtimes += 1
            with ReferenceServer(group, recorder.port, verbose=verbose, keep_dir=keep_dir, faults=faults) as server:
                for scenario in group:
                    record = base_record(scenario, version, runtime_flags(scenario.runtime), IMPLEMENTATION)
                    run_one(scenario, server, recorder, record)
                    by_id[scenario.id] = record
                    if on_result:
                        on_result(record)
    return BatchResult(version=version, binary=str(Path(reference_impl.__file__).parent),
                       observations=[by_id[s.id] for s in scenarios], processes_started=runtimes,
                       wall_s=time.monotonic() - started, implementation=IMPLEMENTATION)


def observed(result: BatchResult) -> Mapping[str, dict[str, Any]]:
    return {o["scenario"]: o for o in result.observations}
