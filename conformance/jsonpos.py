"""Line numbers of the values in a JSON text, so every error can name ``file:line``.

`parse` returns the decoded value (``json.loads``) and a map from each value's path
(``("scenarios", 3, "steps", 2, "op")``) to the line it starts on.  A text that is not JSON
raises `JsonError` with the line and column ``json`` reports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["JsonError", "Path", "line_of", "parse"]

Path = tuple[str | int, ...]


class JsonError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


_WS = " \t\r\n"


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _string_end(text: str, i: int) -> int:
    """Index after the closing quote of the string starting at ``text[i] == '"'``."""
    i += 1
    while True:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1


def parse(text: str) -> tuple[Any, dict[Path, int]]:
    """Decode ``text`` and index the starting line of every value by its path."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise JsonError(f"not JSON: {e.msg} (column {e.colno})", e.lineno) from None
    lines: dict[Path, int] = {}
    # line number at each offset, computed lazily through a prefix count
    newlines = [k for k, ch in enumerate(text) if ch == "\n"]

    def line(pos: int) -> int:
        lo, hi = 0, len(newlines)
        while lo < hi:
            mid = (lo + hi) // 2
            if newlines[mid] < pos:
                lo = mid + 1
            else:
                hi = mid
        return lo + 1

    def value_at(i: int, path: Path) -> int:
        i = _skip(text, i)
        lines[path] = line(i)
        ch = text[i]
        if ch == "{":
            i = _skip(text, i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                i = _skip(text, i)
                end = _string_end(text, i)
                key = json.loads(text[i:end])
                i = _skip(text, end)
                assert text[i] == ":"
                i = value_at(i + 1, (*path, key))
                i = _skip(text, i)
                if text[i] == ",":
                    i += 1
                    continue
                return i + 1
        if ch == "[":
            i = _skip(text, i + 1)
            if text[i] == "]":
                return i + 1
            k = 0
            while True:
                i = value_at(i, (*path, k))
                k += 1
                i = _skip(text, i)
                if text[i] == ",":
                    i += 1
                    continue
                return i + 1
        if ch == '"':
            return _string_end(text, i)
        while i < len(text) and text[i] not in ",]}" + _WS:
            i += 1
        return i

    value_at(0, ())
    return value, lines


def line_of(lines: dict[Path, int], path: Sequence[str | int]) -> int:
    """The line of ``path``, or of its nearest indexed ancestor."""
    p = tuple(path)
    while p and p not in lines:
        p = p[:-1]
    return lines.get(p, 1)
