"""Errors raised by the modelling core.

`ModelDefinitionError` is raised while a model is being *defined* (at import time of a
model module), never while it is explored: every message says what is wrong and how to
fix it, in the spirit of Hypothesis's ``InvalidDefinition``.

`ConfigError` is raised when a model is instantiated with bad bounds (unknown name,
empty domain); the CLI turns it into a one-line message with exit code 2.
"""

from __future__ import annotations

__all__ = ["ModelDefinitionError", "ConfigError", "EvaluationError"]


class ModelDefinitionError(Exception):
    """A model, action, invariant or expression is malformed."""


class ConfigError(ValueError):
    """A model was instantiated with an unknown or out-of-range bound."""


class EvaluationError(RuntimeError):
    """An expression could not be evaluated on a concrete state (e.g. unwrap of none)."""
