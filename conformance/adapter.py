"""How an implementation plugs into the model-level suite: the `Implementation` and `Session` protocols.

An implementation driven in-process from Python provides a factory returning an
`Implementation` (its name, version and capabilities) whose `open` starts a fresh `Session`
for one scenario.  A session has one method per operation of the operation table
(`conformance.operations.OPS`; parameters by the same names) and returns an `Observation` of
what happened.  The harness predicts every observation from the model and compares; the
adapter never sees a prediction.  ``iospec conformance --impl package.module:factory`` (or
``pytest --pyargs conformance --impl ...``) loads the factory with `load_implementation`.

Rules an adapter follows (docs/conformance.md has a worked example):

* **Identities** are the scenario's names: threads ``t0, t1, ...`` are the implementation's
  worker threads (each with its own event loop), ``gc`` is a thread that is not one;
  contexts, requests, objects, actors, isolates and handles are created by the operations
  that name them first.
* **Entering**: `enter` makes the context current on that thread and *stays* there; every
  later operation on that thread runs inside it (a JS turn) until `exit`.  Operations on
  other threads run there meanwhile.  An entered thread runs no event-loop work.
* **Errors**: report the workerd error as ``result`` (a `model.vocab.Result` name) with its
  exact ``message``; a step the implementation cannot perform at all (e.g. the handle was
  already cancelled) is a ``failure`` with a short reason.
* **Logs**: the log lines the implementation wrote during the step (warnings such as
  "failed to invoke drain() ..."), so the harness can check the predicted warnings.
* **Waiting**: ``await_*`` operations block until the implementation has done the thing
  (a drain ended, a lock was granted) or a timeout passes (then ``failure``).  Hang detection
  must fire only when a scenario asks for it (`await_hang`).
* **Trace** (optional): `Session.trace` returns the events recorded during the scenario
  (docs/trace-format.md); the harness runs the monitors over them.
* A method the implementation cannot support raises `NotImplementedError` (the scenario is
  NOT-IMPLEMENTED), as does an operation whose capability is not in `capabilities`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from iospec.errors import UserError

__all__ = [
    "CAPABILITIES",
    "BaseSession",
    "Implementation",
    "Observation",
    "Session",
    "Setup",
    "TraceLog",
    "load_implementation",
]

#: what an implementation may support (operations name the capability they need)
CAPABILITIES: dict[str, str] = {
    "contexts": "IoContexts driven directly: create, enter/exit on threads, abort, destroy",
    "objects": "I/O objects: IoOwn/IoPtr/ReverseIoOwn, access checks, drops on any thread, scheduleAction",
    "requests": "IncomingRequests driven directly: deliver, drain, finishScheduled, tasks, timers, waitUntil",
    "hang": "hang detection on request (await_hang)",
    "actors": "Durable Objects: one context per actor, shutdown, eviction",
    "actor_abort": "Actor::abort",
    "fetch": "fetch events through a WorkerEntrypoint running handler programs",
    "scheduled": "scheduled events through a WorkerEntrypoint",
    "locks": "the isolate's AsyncLock queue and Worker::Lock driven directly",
    "inspect": "state observations (inspect_context, inspect_request, inspect_object)",
    "production": "a production limit enforcer (drain and scheduled limits fire)",
    "tunnel_exceptions_off": "a WorkerEntrypoint with tunnelExceptions=false (synthetic 500s)",
}


@dataclass(frozen=True)
class Setup:
    """What a session is opened for."""

    scenario: str
    #: the model whose predictions are compared
    model: str
    #: the models the session's trace should declare in its header (the monitors run them)
    trace_models: tuple[str, ...]
    #: the worker threads the scenario uses, in order (t0, t1, ...)
    threads: tuple[str, ...]
    #: model constants: ``production`` (1: production limits), ``tunnel_exceptions``
    consts: Mapping[str, int] = field(default_factory=dict)
    seed: int = 0


@dataclass
class Observation:
    """What the implementation did in one step."""

    result: str | None = None
    message: str | None = None
    #: other observed values, by the names of the operation's ``observe`` list (phase, joined, outcome, ...)
    values: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    failure: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.result is not None:
            out["result"] = self.result
        if self.message is not None:
            out["message"] = self.message
        out.update(self.values)
        if self.logs:
            out["logs"] = self.logs
        if self.failure:
            out["failure"] = self.failure
        return out


@dataclass
class TraceLog:
    """A session's recorded trace: the header and the events (docs/trace-format.md)."""

    header: dict[str, Any]
    events: list[dict[str, Any]]
    #: scenario name -> the implementation's name for the same identity (for reports)
    names: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Session(Protocol):
    """One scenario's run against an implementation; each method is an operation of the table."""

    # IoContext
    def create_context(self, c: str, t: str) -> Observation: ...
    def create_actor(self, a: str, c: str, t: str) -> Observation: ...
    def enter(self, c: str, t: str) -> Observation: ...
    def exit(self, c: str, t: str) -> Observation: ...
    def abort(self, c: str, reason: str) -> Observation: ...
    def destroy_context(self, c: str) -> Observation: ...
    def inspect_context(self, c: str) -> Observation: ...
    # I/O objects
    def add_object(self, o: str, c: str, t: str, kind: str, io_type: str) -> Observation: ...
    def add_reverse(self, o: str, c: str, t: str) -> Observation: ...
    def access(self, o: str, t: str) -> Observation: ...
    def release(self, o: str, t: str) -> Observation: ...
    def drop(self, o: str, t: str) -> Observation: ...
    def defer_gc(self, o: str, t: str) -> Observation: ...
    def inspect_object(self, o: str) -> Observation: ...
    def schedule_action(self, c: str, t: str) -> Observation: ...
    def await_actions(self, c: str) -> Observation: ...
    # requests
    def create_request(self, r: str, c: str) -> Observation: ...
    def deliver(self, r: str) -> Observation: ...
    def destroy_request(self, r: str) -> Observation: ...
    def drain(self, r: str) -> Observation: ...
    def await_drain(self, r: str) -> Observation: ...
    def finish_scheduled(self, r: str) -> Observation: ...
    def await_scheduled(self, r: str) -> Observation: ...
    def inspect_request(self, r: str) -> Observation: ...
    def no_retry(self, c: str) -> Observation: ...
    def task(self, c: str, h: str) -> Observation: ...
    def timer(self, c: str, h: str, ms: int) -> Observation: ...
    def wait_until(self, c: str, h: str) -> Observation: ...
    def complete_task(self, h: str, ok: bool) -> Observation: ...
    def await_timer(self, h: str) -> Observation: ...
    def complete_wait_until(self, h: str, ok: bool) -> Observation: ...
    def await_hang(self, c: str) -> Observation: ...
    # actors
    def shutdown_actor(self, a: str) -> Observation: ...
    def evict_actor(self, a: str) -> Observation: ...
    def abort_actor(self, a: str, reason: str) -> Observation: ...
    # the entrypoint
    def fetch(self, r: str, c: str, t: str, handler: Sequence[Mapping[str, Any]], fallback: str,
              actor: str | None) -> Observation: ...
    def fetch_again(self, r: str) -> Observation: ...
    def cancel_fetch(self, r: str) -> Observation: ...
    def scheduled(self, r: str, c: str, t: str, handler: Sequence[Mapping[str, Any]]) -> Observation: ...
    def scheduled_again(self, r: str) -> Observation: ...
    # locks
    def lock(self, t: str, i: str, h: str) -> Observation: ...
    def await_retry(self, h: str) -> Observation: ...
    def await_grant(self, h: str) -> Observation: ...
    def unlock(self, h: str) -> Observation: ...
    def cancel_lock(self, h: str) -> Observation: ...
    def sync_lock(self, h: str, i: str) -> Observation: ...
    def sync_unlock(self, h: str, i: str) -> Observation: ...
    # the run
    def trace(self) -> TraceLog | None: ...
    def close(self) -> None: ...


class BaseSession:
    """A convenient base: every operation raises NotImplementedError until overridden; no trace."""

    def __getattr__(self, name: str) -> Any:
        from .operations import OPS

        if name in OPS:
            def missing(**_: Any) -> Observation:
                raise NotImplementedError(f"{type(self).__name__} does not implement {name}")

            return missing
        raise AttributeError(name)

    def trace(self) -> TraceLog | None:
        return None

    def close(self) -> None:
        pass


class Implementation(Protocol):
    """A factory of sessions, with what the implementation is and can do."""

    name: str
    version: str
    capabilities: frozenset[str]

    def open(self, setup: Setup) -> Session: ...


def load_implementation(spec: str) -> Implementation:
    """``reference`` (optionally ``reference[fault,fault]``) or ``package.module:factory``; UserError otherwise."""
    spec = spec.strip()
    if spec == "reference" or (spec.startswith("reference[") and spec.endswith("]")):
        from .reference_adapter import ReferenceImplementation

        faults = [f.strip() for f in spec[len("reference["):-1].split(",") if f.strip()] if "[" in spec else []
        try:
            return ReferenceImplementation(faults=faults)
        except ValueError as e:
            raise UserError(f"--impl {spec}: {e}") from None
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise UserError(f"--impl {spec!r}: expected 'reference', 'workerd' or 'package.module:factory'")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"--impl {spec}: cannot import {module}: {e}") from None
    factory = getattr(mod, attr, None)
    if factory is None:
        raise UserError(f"--impl {spec}: module {module} has no attribute {attr!r}")
    try:
        impl = factory() if callable(factory) and not _looks_like_impl(factory) else factory
    except Exception as e:  # the user's factory failed: one line
        raise UserError(f"--impl {spec}: the factory raised {type(e).__name__}: {e}") from None
    if not _looks_like_impl(impl):
        raise UserError(f"--impl {spec}: {attr} did not give an Implementation (needs name, version, "
                        "capabilities and open(setup))")
    return impl  # type: ignore[no-any-return]


def _looks_like_impl(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("name", "version", "capabilities", "open")) and not isinstance(obj, type)
