"""The execution hierarchy: ``Worker::Isolate`` → ``Worker::Script`` → ``Worker`` → ``Worker::Actor``.

Follows io/worker.h at workerd commit 6552d999 (h:104-242, 246-318, 333-584, 849-1078):

* an `Isolate` is shared by every worker with identical configuration (compatibility date
  and flags, the seed article's "isolates can be shared across workers that have identical
  configuration"); it owns one `AsyncLockQueue` and the synchronous lock, so workers sharing
  it never run concurrently.  It has no fixed thread: it runs wherever its lock is held.
* a `Script` is a worker's code bound to an isolate (here: a Python class with ``fetch`` /
  ``scheduled`` methods, the analogue of an ES module's default export).
* a `Worker` is a script instantiated with its bindings (``env``), one global scope.
* an `Actor` is one Durable Object inside a worker: it lives on one thread and owns ONE
  IoContext shared by all its requests (worker.c++:3757-3758, 4364-4375, "setIoContext at
  most once").
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reference_impl.locks import AsyncLockQueue

if TYPE_CHECKING:
    from reference_impl.io_context import IoContext
    from reference_impl.loop import RuntimeThread
    from reference_impl.runtime import Runtime

__all__ = ["Actor", "Isolate", "IsolateConfig", "IsolateStatistics", "Script", "Worker"]


@dataclass(frozen=True)
class IsolateConfig:
    """What decides whether two workers may share an isolate."""

    compatibility_date: str = "2025-06-01"
    compatibility_flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class IsolateStatistics:
    name: str
    config: IsolateConfig
    thread: str | None  # where the isolate ran last (it moves with its lock)
    scripts: int


class Isolate:
    """``Worker::Isolate``: one (simulated) V8 isolate and its lock queue."""

    def __init__(self, name: str, config: IsolateConfig, runtime: Runtime) -> None:
        self.name = name
        self.config = config
        self.lock_queue = AsyncLockQueue(name, runtime)
        self.sync_lock = threading.Lock()
        self.thread: str | None = None
        self.scripts: list[Script] = []

    def statistics(self) -> IsolateStatistics:
        return IsolateStatistics(self.name, self.config, self.thread, len(self.scripts))

    def __repr__(self) -> str:
        return f"<Isolate {self.name} {self.config}>"


class Script:
    """``Worker::Script``: a worker's code (a handler class) compiled into an isolate."""

    def __init__(self, isolate: Isolate, handler_class: type, name: str) -> None:
        self.isolate = isolate
        self.handler_class = handler_class
        self.name = name
        isolate.scripts.append(self)


class Worker:
    """``Worker``: a script instantiated with bindings; its handler object is the global scope."""

    def __init__(self, script: Script, env: Mapping[str, Any], name: str) -> None:
        self.script = script
        self.env = dict(env)
        self.name = name
        # One instance: like a module's globals, shared by all requests in the isolate.
        self.handler = script.handler_class()

    @property
    def isolate(self) -> Isolate:
        return self.script.isolate


@dataclass
class Actor:
    """``Worker::Actor``: one Durable Object; pinned to a thread, one IoContext for its whole life."""

    worker: Worker
    actor_id: str
    thread: RuntimeThread
    name: str  # the trace identity: a new one for every Actor object, even for the same id
    namespace: str = ""
    io_context: IoContext | None = None
    handler: Any = None
    shut_down: bool = False
    shutdown_waiters: list[Any] = field(default_factory=list)

    def set_io_context(self, ctx: IoContext) -> None:
        """``setIoContext``: at most once per actor (worker.c++:4365); the actor holds a reference."""
        if self.io_context is not None:
            raise RuntimeError("actor already has an IoContext")
        rec = ctx.runtime.recorder
        with rec.atomic():
            self.io_context = ctx
            ctx.add_ref()
            rec.emit("set_io_context", {"a": self.name, "c": ctx.name})

    def shutdown(self) -> None:
        """``Actor::shutdown`` (worker.c++:4013-4029): fulfil ``onShutdown()``, which ends actor drains."""
        ctx = self.io_context
        if self.shut_down or ctx is None:
            return
        rec = ctx.runtime.recorder
        with rec.atomic():
            self.shut_down = True
            rec.emit("actor_shutdown", {"a": self.name})
        waiters, self.shutdown_waiters = self.shutdown_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def drop_io_context(self) -> bool:
        """``impl->ioContext = none`` once no delivered request is listed; the context dies if nothing else holds it."""
        ctx = self.io_context
        if ctx is None or ctx.incoming:
            return False
        rec = ctx.runtime.recorder
        with rec.atomic():
            self.io_context = None
            rec.emit("drop_actor_context", {"c": ctx.name})
        ctx.release_ref()
        return True
