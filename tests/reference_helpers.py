"""Helpers for the reference implementation's tests: runtimes that close, contexts made by hand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from reference_impl import IncomingRequest, IoContext, Runtime, WorkerService
from reference_impl.worker import Actor


class Empty:
    """A worker with a trivial fetch handler."""

    async def fetch(self, request: Any, env: Any, ctx: Any) -> Any:
        from reference_impl import Response

        return Response("empty")


@contextmanager
def runtime(*, direct: bool = False, **kw: Any) -> Iterator[Runtime]:
    """A monitored runtime, closed afterwards.

    ``direct``: the test builds contexts and requests by hand (`new_context`), without a
    WorkerEntrypoint, so its trace is not for the entrypoint model.
    """
    kw.setdefault("monitor", True)
    if direct:
        from reference_impl.runtime import TRACE_MODELS

        kw.setdefault("models", [m for m in TRACE_MODELS if m != "entrypoint"])
    rt = Runtime(**kw)
    try:
        yield rt
    finally:
        rt.close()


def service(rt: Runtime, name: str = "w", cls: type = Empty, **kw: Any) -> WorkerService:
    if name in rt.services:
        svc = rt.services[name]
        assert isinstance(svc, WorkerService)
        return svc
    return rt.add_worker(name, cls, **kw)


def new_context(rt: Runtime, thread: int = 0, *, actor: bool = False, deliver: bool = True,
                svc: WorkerService | None = None, keep_alive: bool = True) -> tuple[IoContext, IncomingRequest]:
    """A context (stateless or an actor's) with one IncomingRequest, created on ``thread``.

    ``keep_alive`` holds a PendingEvent (as an in-flight I/O would) until `drain`, so hang
    detection does not abort a context the test drives by hand while its thread is idle.
    """
    s = svc or service(rt)

    def make() -> tuple[IoContext, IncomingRequest]:
        a = None
        if actor:
            n = len(rt.contexts)
            a = Actor(worker=s.worker, actor_id=f"a{n}", thread=rt.threads[thread], name=f"NS:a{n}", namespace="NS")
        ctx = IoContext(rt, s.worker, s, actor=a)
        if a is not None:
            a.set_io_context(ctx)
        r = IncomingRequest(ctx)
        if deliver:
            r.delivered()
        if keep_alive:
            ctx._io_pending += 1
            ctx.keep_alive = True  # type: ignore[attr-defined]
        return ctx, r

    return rt.threads[thread].call(make).result(10)


def on(rt: Runtime, thread: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` on runtime thread ``thread`` and return its result (re-raising its error)."""
    return rt.threads[thread].call(fn).result(10)


def run_in(rt: Runtime, ctx: IoContext, fn: Callable[[], Any]) -> Any:
    """``ctx.run(fn)`` on the context's own thread (the normal way in)."""
    return ctx.thread.run(ctx.run(fn), timeout=10)


def release_keep_alive(rt: Runtime, ctx: IoContext) -> None:
    def release() -> None:
        if getattr(ctx, "keep_alive", False):
            ctx.keep_alive = False  # type: ignore[attr-defined]
            ctx._io_pending -= 1

    ctx.thread.call(release).result(10)


def drain(rt: Runtime, r: IncomingRequest) -> None:
    release_keep_alive(rt, r.context)
    r.context.thread.run(r.drain(), timeout=10)


def assert_monitor_ok(rt: Runtime) -> None:
    assert rt.monitor is not None
    assert rt.monitor.ok, rt.monitor.report()


async def never() -> None:
    await asyncio.get_running_loop().create_future()
