"""Load and validate HTTP-level conformance scenarios (conformance/http/scenarios/*.json).

A file is validated against the committed JSON Schema (scenario.schema.json), then for
meaning: rule ids must exist in model/rules.py, behaviours must make sense
(`conformance.http.vocabulary.check_worker`), requests must target a worker that has routes,
and expectations may only refer to requests and events that exist.  Every problem is one
`ScenarioError` line naming the file, the line and the problem (iospec's bad-input rule).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from iospec.errors import UserError
from model.rules import RULES
from model.vocab import MESSAGES

from .expect import expand, placeholders
from .vocabulary import VocabularyError, check_worker, walk_steps

__all__ = [
    "SCENARIO_DIR",
    "SCHEMA_PATH",
    "Scenario",
    "ScenarioError",
    "load_all",
    "load_file",
    "select",
]

HERE = Path(__file__).resolve().parent
SCENARIO_DIR = HERE / "scenarios"
SCHEMA_PATH = HERE / "scenario.schema.json"
DEFAULT_COMPATIBILITY_DATE = "2025-06-01"
LEVELS = ("MUST", "SHOULD", "INFORMATIONAL")


class ScenarioError(UserError):
    """A malformed or meaningless scenario file (one line: file:line: problem)."""


@dataclass(frozen=True)
class Runtime:
    """What the runtime process must provide (workerd: command-line flags)."""

    experimental: bool = False
    verbose: bool = False
    compatibility_date: str = DEFAULT_COMPATIBILITY_DATE


@dataclass(frozen=True)
class Scenario:
    """One scenario; the fields stay plain JSON data so any harness can read them."""

    id: str
    title: str
    rules: tuple[str, ...]
    level: str
    slow: bool
    runtime: Runtime
    workers: tuple[Mapping[str, Any], ...]
    requests: tuple[Mapping[str, Any], ...]
    observe_ms: int
    expect: Mapping[str, Any]
    file: str
    line: int
    description: str = ""
    #: known disagreements: implementation name -> why it differs (INFORMATIONAL scenarios only)
    differences: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def startup_only(self) -> bool:
        """The scenario checks that the runtime refuses to start; no request is sent."""
        return "startup" in self.expect

    def worker(self, name: str) -> Mapping[str, Any]:
        return next(w for w in self.workers if w["name"] == name)

    @property
    def served_workers(self) -> list[str]:
        """Workers a request is sent to (each needs a listening socket), in first-use order."""
        return list(dict.fromkeys(r["worker"] for r in self.requests))


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def _line_of(text: str, path: Sequence[str | int]) -> int:
    """Best-effort line of the JSON value at `path`: follow each key's first occurrence after the previous one."""
    position = 0
    if len(path) > 1 and path[0] == "scenarios" and isinstance(path[1], int):
        starts = _scenario_starts(text)
        if path[1] < len(starts):
            position = starts[path[1]]
        path = path[2:]
    for key in path:
        if isinstance(key, str):
            index = text.find(json.dumps(key), position)
            if index >= 0:
                position = index
    return text.count("\n", 0, position) + 1


def _json_path(path: Iterable[str | int]) -> str:
    """scenarios[0].workers[0].routes["/"][1].op"""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out or "(top level)"


def _scenario_starts(text: str) -> list[int]:
    """Offsets of each scenario's `"id"` key (the objects at depth 2 of the file's scenarios array)."""
    offsets: list[int] = []
    depth, in_string, escape = 0, False, False
    array_depth = None
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            if array_depth is None and text.startswith('"scenarios"', i) and depth == 1:
                array_depth = depth + 1  # the array's items open at depth 2 (objects at depth 3)
            elif array_depth is not None and depth == array_depth + 1 and text.startswith('"id"', i):
                offsets.append(i)
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        i += 1
    return offsets


def _defaults(data: Mapping[str, Any], file: str, line: int) -> Scenario:
    runtime = data.get("runtime", {})
    return Scenario(
        id=data["id"],
        title=data["title"],
        rules=tuple(data["rules"]),
        level=data["level"],
        slow=data.get("slow", False),
        runtime=Runtime(
            experimental=runtime.get("experimental", False),
            verbose=runtime.get("verbose", False),
            compatibility_date=runtime.get("compatibility_date", DEFAULT_COMPATIBILITY_DATE),
        ),
        workers=tuple(data["workers"]),
        requests=tuple(data.get("requests", [])),
        observe_ms=data.get("observe_ms", 0),
        expect=data["expect"],
        file=file,
        line=line,
        description=data.get("description", ""),
        differences=data.get("differences", {}),
        data=data,
    )


def _check_meaning(s: Scenario) -> None:
    """Problems the schema cannot express; raises ValueError with the message."""
    if s.differences and s.level != "INFORMATIONAL":
        raise ValueError(f"only an INFORMATIONAL scenario may list known differences, not a {s.level} one")
    for rule_id in s.rules:
        if rule_id not in RULES:
            raise ValueError(f"rule id {rule_id} is not in model/rules.py")
    names = [w["name"] for w in s.workers]
    if len(set(names)) != len(names):
        raise ValueError(f"worker names repeat: {names}")
    workers = {w["name"]: w for w in s.workers}
    for worker in s.workers:
        check_worker(worker, workers)
    request_ids = [r["id"] for r in s.requests]
    if len(set(request_ids)) != len(request_ids):
        raise ValueError(f"request ids repeat: {request_ids}")
    for request in s.requests:
        if request["worker"] not in workers:
            raise ValueError(f"request {request['id']} goes to unknown worker {request['worker']!r}")
        if not workers[request["worker"]].get("routes"):
            raise ValueError(f"request {request['id']} goes to worker {request['worker']}, which has no routes")
    expect = s.expect
    if s.startup_only and (s.requests or "responses" in expect):
        raise ValueError("a startup expectation sends no requests")
    if not s.startup_only and not s.requests:
        raise ValueError("the scenario sends no request and expects no startup refusal")
    for rid in expect.get("responses", {}):
        if rid not in request_ids:
            raise ValueError(f"expect.responses names unknown request {rid!r}")
    events = {step["event"] for worker in s.workers for steps in _step_lists(worker) for step in walk_steps(steps)
              if step["op"] == "record"}
    for e in expect.get("events", []):
        if e["event"] not in events:
            raise ValueError(f"event {e['event']}: no record step of the scenario records it")
        for key in ("after", "before"):
            if key in e:
                kind, _, ref = e[key].partition(":")
                if kind == "response" and ref not in request_ids:
                    raise ValueError(f"event {e['event']}: {key} names unknown request {ref!r}")
                if kind == "event" and ref not in events:
                    raise ValueError(f"event {e['event']}: {key} names an event no record step records: {ref!r}")
        if "min_delay_ms" in e and "after" not in e:
            raise ValueError(f"event {e['event']}: min_delay_ms needs 'after'")
    matches = [*expect.get("logs", []), *expect.get("logs_absent", [])]
    matches += [r["body"] for r in expect.get("responses", {}).values() if "body" in r]
    matches += [e["value"] for e in expect.get("events", []) if "value" in e]
    if "log" in expect.get("startup", {}):
        matches.append(expect["startup"]["log"])
    for entry in matches:
        for kind, name in placeholders(entry):
            if kind == "msg" and name not in MESSAGES:
                raise ValueError(f"{{msg:{name}}} is not a message in model/vocab.py MESSAGES")
        if "regex" in entry:
            re.compile(expand(entry["regex"], regex=True))
    pinned = set(expect) - {"source", "pinned_because"}
    if expect["source"] == "pinned" and "pinned_because" not in expect:
        raise ValueError("a pinned expectation says why the models do not predict it (pinned_because)")
    if expect["source"] == "model" and pinned and "pinned_because" not in expect:
        raise ValueError(f"expect.{sorted(pinned)[0]} is pinned in a model scenario: say why (pinned_because)")
    needs_log = bool(expect.get("logs") or expect.get("logs_absent"))
    if s.level == "MUST" and needs_log and expect["source"] == "pinned" and not expect.get("responses") \
            and not expect.get("events"):
        raise ValueError("a MUST scenario must check more than log lines (logs are SHOULD-level observations)")


def _step_lists(worker: Mapping[str, Any]) -> list[Any]:
    lists = [*worker.get("routes", {}).values(), *worker.get("durable_object", {}).get("routes", {}).values()]
    if "scheduled" in worker:
        lists.append(worker["scheduled"])
    return lists


def load_file(path: Path) -> list[Scenario]:
    """All scenarios of one file, validated; raises ScenarioError (file:line: problem)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(f"{name}: cannot read: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ScenarioError(f"{name}:{e.lineno}: not valid JSON: {e.msg}") from None
    errors = sorted(_validator().iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        assert error is not None
        where = _json_path(error.absolute_path)
        line = _line_of(text, list(error.absolute_path))
        raise ScenarioError(f"{name}:{line}: {where}: {error.message}")
    starts = _scenario_starts(text)
    scenarios = []
    for index, raw in enumerate(data["scenarios"]):
        line = text.count("\n", 0, starts[index]) + 1 if index < len(starts) else 1
        scenario = _defaults(raw, name, line)
        try:
            _check_meaning(scenario)
        except (ValueError, VocabularyError, re.error) as e:
            raise ScenarioError(f"{name}:{line}: scenario {scenario.id}: {e}") from None
        scenarios.append(scenario)
    return scenarios


def load_all(paths: Iterable[Path] | None = None) -> list[Scenario]:
    """Every scenario of the given files (default: every file in SCENARIO_DIR), ids unique."""
    files = sorted(SCENARIO_DIR.glob("*.json")) if paths is None else list(paths)
    scenarios: list[Scenario] = []
    seen: dict[str, Scenario] = {}
    for path in files:
        for s in load_file(path):
            if s.id in seen:
                first = seen[s.id]
                raise ScenarioError(f"{s.file}:{s.line}: scenario id {s.id} repeats ({first.file}:{first.line})")
            seen[s.id] = s
            scenarios.append(s)
    return scenarios


def select(scenarios: Sequence[Scenario], *, ids: Sequence[str] = (), slow: bool = False,
           levels: Sequence[str] = LEVELS) -> list[Scenario]:
    """The scenarios to run: by id (exact, or a prefix ending in '*'), slow ones only when asked."""
    chosen = []
    for s in scenarios:
        if ids and not any(s.id == i or (i.endswith("*") and s.id.startswith(i[:-1])) for i in ids):
            continue
        if s.slow and not slow and s.id not in ids:  # a slow scenario runs when asked for, or named exactly
            continue
        if s.level not in levels:
            continue
        chosen.append(s)
    if ids:
        known = {s.id for s in scenarios}
        for i in ids:
            if not i.endswith("*") and i not in known:
                raise ScenarioError(f"no scenario has id {i!r}")
    return chosen
