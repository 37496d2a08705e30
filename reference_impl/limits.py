"""Limit enforcers: ``LimitEnforcer`` with workerd's two behaviours (standalone and production).

workerd asks an ``IoContext::LimitEnforcer`` (io/limit-enforcer.h:130-195) how long a drain
may take after the response (``limitDrain()``, io-context.c++:621-631) and how long a
scheduled event may run (``limitScheduled()``, c++:652-689).  Standalone workerd's
enforcer never fires either (server/server.c++:4555-4589: both are ``NEVER_DONE``); the
Cloudflare edge cuts drains after ~30 s (cancelling unfinished waitUntil tasks with the
"waitUntil() tasks did not complete within the allowed time..." warning) and gives scheduled
events that run too long the ``exceededWallTime`` outcome.

Profiles: ``workerd-serve`` (`WorkerdServeLimits`) and ``production`` (`ProductionLimits`,
with limits in seconds so tests can use milliseconds).  In workerd the service that runs a
worker *is* its limit enforcer (server.c++ ``WorkerService``); `reference_impl.service`
follows that, delegating to one of these.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

__all__ = ["PROFILES", "LimitEnforcer", "ProductionLimits", "WorkerdServeLimits", "make_limits"]


class LimitEnforcer(Protocol):
    """The hooks an IoContext uses; each returns a future that resolves when the limit is reached."""

    @property
    def profile(self) -> str: ...

    def limit_drain(self) -> asyncio.Future[None]: ...

    def limit_scheduled(self) -> asyncio.Future[None]: ...


def _never() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def _after(seconds: float) -> asyncio.Future[None]:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    handle = loop.call_later(seconds, lambda: None if fut.done() else fut.set_result(None))
    fut.add_done_callback(lambda _f: handle.cancel())
    return fut


@dataclass(frozen=True)
class WorkerdServeLimits:
    """``workerd serve``: no drain limit, no scheduled limit (server.c++:4563-4568)."""

    profile: str = "workerd-serve"

    def limit_drain(self) -> asyncio.Future[None]:
        return _never()

    def limit_scheduled(self) -> asyncio.Future[None]:
        return _never()


@dataclass(frozen=True)
class ProductionLimits:
    """The edge: a drain limit (default 30 s) and a scheduled wall-time limit (default 15 min)."""

    drain_seconds: float = 30.0
    scheduled_seconds: float = 900.0
    profile: str = "production"

    def limit_drain(self) -> asyncio.Future[None]:
        return _after(self.drain_seconds)

    def limit_scheduled(self) -> asyncio.Future[None]:
        return _after(self.scheduled_seconds)


PROFILES = ("workerd-serve", "production")


def make_limits(profile: str = "workerd-serve", *, drain_seconds: float | None = None,
                scheduled_seconds: float | None = None) -> LimitEnforcer:
    """The enforcer for ``profile``; ValueError (one line) for an unknown profile."""
    if profile == "workerd-serve":
        return WorkerdServeLimits()
    if profile == "production":
        return ProductionLimits(
            drain_seconds=30.0 if drain_seconds is None else drain_seconds,
            scheduled_seconds=900.0 if scheduled_seconds is None else scheduled_seconds,
        )
    raise ValueError(f"unknown limit profile {profile!r}; profiles: {', '.join(PROFILES)}")
