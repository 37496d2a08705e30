"""Seeded faults: variant models with one rule broken, which the checks must catch.

Every invariant of every model is broken by at least one fault here (checked by
tests/test_faults.py), so no check is one that cannot fail.  Each fault names the invariants
it must break and a small configuration in which the explorer finds the violation.  The z3
backend (BMC and induction) is run against the same variants.

Faults are defined per model in ``model/faults/<model>.py`` and collected here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from model.core import ConfigError, Model

__all__ = ["Fault", "FAULTS", "fault_variant", "faults_for", "faults_in_lineage"]

#: modules defining ``FAULTS: list[Fault]``
FAULT_MODULES = [
    "model.faults.context",
    "model.faults.ownership",
    "model.faults.lifecycle",
    "model.faults.entrypoint",
    "model.faults.actor",
    "model.faults.locks",
]


@dataclass(frozen=True)
class Fault:
    name: str
    model: str
    description: str
    #: invariants the explorer must report (at least one of them) on this variant
    breaks: tuple[str, ...]
    build: Callable[[Model], list]  # returns the replacement actions (and invariants)
    #: bounds in which the violation is reachable (small, so the test is fast)
    bounds: dict[str, int] = field(default_factory=dict)

    def variant(self, base: Model) -> Model:
        from model.core.model import Action, Invariant

        parts = self.build(base)
        return base.variant(
            f"{base.name}~{self.name}",
            self.description,
            actions=[p for p in parts if isinstance(p, Action)],
            invariants=[p for p in parts if isinstance(p, Invariant)],
        )


def _collect() -> list[Fault]:
    out: list[Fault] = []
    for mod in FAULT_MODULES:
        out.extend(importlib.import_module(mod).FAULTS)
    return out


FAULTS: list[Fault] = _collect()


def faults_for(model_name: str) -> list[Fault]:
    """The faults defined for ``model_name`` itself."""
    return [f for f in FAULTS if f.model == model_name]


def faults_in_lineage(model_name: str) -> list[Fault]:
    """Faults of ``model_name`` and of the models it extends.

    An inherited invariant is the same definition as in the base model, where its fault shows
    it can fail; these faults also apply to the extended model (``iospec explore --fault``).
    """
    from model.catalog import get_model

    lineage = {model_name, *get_model(model_name).bases}
    return [f for f in FAULTS if f.model in lineage]


def fault_variant(model_name: str, fault_name: str) -> Model:
    from model.catalog import get_model

    for f in faults_in_lineage(model_name):
        if f.name == fault_name:
            return f.variant(get_model(model_name))
    names = ", ".join(f.name for f in faults_for(model_name)) or "(none)"
    raise ConfigError(f"model {model_name} has no fault {fault_name!r}; its faults: {names}")
