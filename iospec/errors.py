"""The error the CLI reports as one line with exit code 2 (bad input, never a traceback)."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input from the user: a file, an option, a model name.  Printed as one line; exit 2."""
