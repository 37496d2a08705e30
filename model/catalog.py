"""The models and their standard configurations.

A *standard configuration* is a named set of bounds for one model, explored by the tests and
the benchmarks; `model/standard_configs.json` records each one's expected state and
transition counts, so a change to a rule that changes the state space shows up in review
(as tlaplus/Examples does with its manifest).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.core import Config, ConfigError, Model

__all__ = ["MODELS", "get_model", "StandardConfig", "standard_configs", "parse_bounds"]

#: model name -> module defining ``MODEL``
MODELS: dict[str, str] = {
    "context": "model.context",
    "ownership": "model.ownership",
    "lifecycle": "model.lifecycle",
    "entrypoint": "model.entrypoint",
    "actor": "model.actor",
    "locks": "model.locks",
}

CONFIG_FILE = Path(__file__).with_name("standard_configs.json")


def get_model(name: str) -> Model:
    """The model called ``name``; a `ConfigError` (one line) if there is none."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return importlib.import_module(MODELS[name]).MODEL  # type: ignore[no-any-return]


def parse_bounds(text: str | None) -> dict[str, int]:
    """``"threads=3,contexts=2"`` -> ``{"threads": 3, "contexts": 2}``; ConfigError on bad syntax."""
    out: dict[str, int] = {}
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"bound {part!r} is not NAME=VALUE (e.g. threads=3)")
        v = value.strip().lower()
        if v in ("true", "false"):
            out[key.strip()] = int(v == "true")
            continue
        try:
            out[key.strip()] = int(v)
        except ValueError:
            raise ConfigError(f"bound {key.strip()}={value!r} is not an integer") from None
    return out


@dataclass(frozen=True)
class StandardConfig:
    name: str
    model_name: str
    bounds: dict[str, int]
    symmetry: bool
    expected: dict[str, int]
    description: str
    #: explored by the test suite (large configurations are for the benchmarks only)
    ci: bool = True

    def config(self) -> Config:
        return get_model(self.model_name).config(**self.bounds)


def standard_configs(path: Path = CONFIG_FILE) -> list[StandardConfig]:
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return [
        StandardConfig(
            name=d["name"],
            model_name=d["model"],
            bounds=dict(d.get("bounds", {})),
            symmetry=bool(d.get("symmetry", False)),
            expected=dict(d.get("expected", {})),
            description=d.get("description", ""),
            ci=bool(d.get("ci", True)),
        )
        for d in data
    ]
