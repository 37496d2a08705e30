"""The error the CLI reports as one line with exit code 2 (bad input, never a traceback)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["UserError", "read_user_file"]


class UserError(Exception):
    """Bad input from the user: a file, an option, a model name.  Printed as one line; exit 2."""


def read_user_file(path: Path, kind: str, error: type[UserError] = UserError) -> str:
    """The text of a file the user named; an unreadable one is a one-line ``error`` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not {kind}") from None
    except UnicodeDecodeError:
        raise error(f"{path}:1: not UTF-8 text") from None
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
