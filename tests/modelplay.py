"""Replay short step lists through a model (test helper for the lifecycle, entrypoint and actor tests).

A step is written as in a trace: ``"deliver r=r0"`` or ``"task_done c=c0 ok=false"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model.catalog import get_model
from model.core import ConfigError, compile_dense
from properties.explorer import Trace, replay

__all__ = ["Played", "enabled", "play", "step"]


def step(text: str) -> dict[str, Any]:
    """``"deliver r=r0"`` -> ``{"action": "deliver", "args": {"r": "r0"}}``."""
    name, *pairs = text.split()
    return {"action": name, "args": dict(p.split("=", 1) for p in pairs)}


@dataclass
class Played:
    trace: Trace
    broken: list[str]
    state: dict[str, Any]

    def outputs(self, index: int = -1) -> dict[str, str]:
        """The outputs of step ``index`` (default: the last step)."""
        return self.trace.steps[index].outputs


def play(model: str, bounds: dict[str, int], steps: list[str]) -> Played:
    """Replay ``steps``; raises `ConfigError` naming the first step that is not enabled."""
    config = get_model(model).config(**bounds)
    trace, broken = replay(config, [step(s) for s in steps])
    state = compile_dense(config).decode(trace.states[-1])
    return Played(trace, broken, state)


def enabled(model: str, bounds: dict[str, int], steps: list[str], last: str) -> bool:
    """Whether ``last`` is enabled after ``steps`` (which must all be enabled)."""
    play(model, bounds, steps)
    try:
        play(model, bounds, [*steps, last])
    except ConfigError:
        return False
    return True
