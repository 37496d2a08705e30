"""Expectations files: an implementation's known failures, each with a mandatory reason.

Like workerd's WPT runner (``src/wpt/*-test.ts``: ``expectedFailures`` with a comment per
entry), an implementation that does not (yet) conform lists the scenarios it is known to
fail; those run as usual and a failure is reported as XFAIL.  A listed scenario that passes
is XPASS, which fails the run: the file must be updated, so it never hides a fixed bug.

Format (JSON, so every error can name its line)::

    {
      "implementation": "my-runtime",          // optional: which --impl it is for (default: any)
      "known_failures": [
        {"id": "ownership.gc-drop-is-queued", "reason": "we free on the GC thread (issue #12)"}
      ]
    }

Every problem (not JSON, a missing or empty reason, an id listed twice, an unknown scenario id)
is a `UserError` naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iospec.errors import UserError, read_user_file

from .jsonpos import JsonError, line_of, parse

__all__ = ["Expectations", "ExpectationsError", "load_expectations", "parse_expectations"]


class ExpectationsError(UserError):
    """A malformed expectations file (one line: file:line: problem)."""


@dataclass
class Expectations:
    path: str
    implementation: str | None
    #: scenario id -> reason
    known_failures: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def reason_for(self, implementation: str, scenario_id: str) -> str | None:
        if self.implementation is not None and not _same_impl(self.implementation, implementation):
            return None
        return self.known_failures.get(scenario_id)

    def check_ids(self, known: Iterable[str]) -> None:
        """Every listed id must be a scenario of the catalogue (a typo would silently never apply)."""
        ids = set(known)
        for sid, line in self.lines.items():
            if sid not in ids and not sid.startswith(("trace:", "http.", "http:")):
                raise ExpectationsError(f"{self.path}:{line}: scenario id {sid!r} is not in the catalogue")


def _same_impl(listed: str, name: str) -> bool:
    return listed == name or name.startswith(listed + "[") or name.split(":")[-1] == listed


def parse_expectations(text: str, path: str) -> Expectations:
    try:
        data, lines = parse(text)
    except JsonError as e:
        raise ExpectationsError(f"{path}:{e.line}: {e}") from None
    if not isinstance(data, dict):
        raise ExpectationsError(f"{path}:1: an expectations file is a JSON object with \"known_failures\"")
    unknown = sorted(set(data) - {"implementation", "known_failures", "description"})
    if unknown:
        raise ExpectationsError(f"{path}:{line_of(lines, (unknown[0],))}: unknown key {unknown[0]!r} "
                                "(allowed: implementation, description, known_failures)")
    impl = data.get("implementation")
    if impl is not None and (not isinstance(impl, str) or not impl.strip()):
        raise ExpectationsError(f"{path}:{line_of(lines, ('implementation',))}: implementation must be a non-empty "
                                "string")
    entries = data.get("known_failures")
    if not isinstance(entries, list):
        raise ExpectationsError(f"{path}:{line_of(lines, ('known_failures',))}: known_failures must be a list of "
                                "{\"id\": ..., \"reason\": ...}")
    out = Expectations(path, impl)
    for k, entry in enumerate(entries):
        where = f"{path}:{line_of(lines, ('known_failures', k))}"
        if not isinstance(entry, dict):
            raise ExpectationsError(f"{where}: each known failure is an object {{\"id\": ..., \"reason\": ...}}")
        extra = sorted(set(entry) - {"id", "reason"})
        if extra:
            raise ExpectationsError(f"{where}: unknown key {extra[0]!r} (allowed: id, reason)")
        sid: Any = entry.get("id")
        reason: Any = entry.get("reason")
        if not isinstance(sid, str) or not sid.strip():
            raise ExpectationsError(f"{where}: the entry has no scenario id")
        if not isinstance(reason, str) or not reason.strip():
            raise ExpectationsError(f"{where}: known failure {sid!r} has no reason (a reason is mandatory)")
        if sid in out.known_failures:
            raise ExpectationsError(f"{where}: scenario {sid!r} is listed twice")
        out.known_failures[sid] = reason.strip()
        out.lines[sid] = line_of(lines, ("known_failures", k))
    return out


def load_expectations(path: str | Path) -> Expectations:
    p = Path(path)
    text = read_user_file(p, "an expectations file", ExpectationsError)
    return parse_expectations(text, str(p))
