"""Compare an observation record with an expectation (pinned now, predicted by the model later).

`check(expect, observation)` returns the list of mismatches, each one readable line; an empty
list means the observation satisfies the expectation.  An expectation is a *partial*
description (the fields scenario.schema.json allows under ``expect``): only what it names is
checked, so a pinned expectation and a model prediction in the same format can both be
checked against one observation and against each other's observations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from model.vocab import IO_TYPE_SUFFIX, MESSAGES

__all__ = ["TIMING_KEYS", "check", "conflicts", "describe_match", "expand", "fields", "merge", "overlap",
           "placeholders", "text_matches", "unfields"]


_PLACEHOLDER = re.compile(r"\{(msg|io_type):([A-Za-z0-9_>]+)\}")


def expand(pattern: str, *, regex: bool = False) -> str:
    """Replace {msg:NAME} by model.vocab.MESSAGES[NAME] and {io_type:T} by the I/O type suffix.

    The expected texts of workerd's errors thereby come from model/vocab.py, their one home.
    """

    def substitute(m: re.Match[str]) -> str:
        text = MESSAGES[m.group(2)] if m.group(1) == "msg" else IO_TYPE_SUFFIX.format(io_type=m.group(2))
        return re.escape(text) if regex else text

    return _PLACEHOLDER.sub(substitute, pattern)


def placeholders(match: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for value in match.values() for m in _PLACEHOLDER.finditer(value)]


def text_matches(match: Mapping[str, str], text: str) -> bool:
    if "equals" in match:
        return text == expand(match["equals"])
    if "contains" in match:
        return expand(match["contains"]) in text
    return re.search(expand(match["regex"], regex=True), text) is not None


def describe_match(match: Mapping[str, str]) -> str:
    kind, value = next(iter(match.items()))
    return f"{kind} {_clip(value, 200)}"


def _clip(text: str, limit: int = 160) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


def _check_response(rid: str, want: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    where = f"response {rid}"
    outcome = want.get("outcome", "response")
    if got.get("outcome") != outcome:
        detail = f" (status {got.get('status')})" if got.get("outcome") == "response" else ""
        return [f"{where}: outcome {got.get('outcome')}{detail}, expected {outcome}"]
    if "status" in want and got.get("status") != want["status"]:
        out.append(f"{where}: status {got.get('status')}, expected {want['status']}")
    headers = got.get("headers", {})
    for name, value in want.get("headers", {}).items():
        if headers.get(name.lower()) != value:
            out.append(f"{where}: header {name} is {headers.get(name.lower())!r}, expected {value!r}")
    if want.get("headers_exact"):
        extra = sorted(set(headers) - {n.lower() for n in want.get("headers", {})})
        if extra:
            out.append(f"{where}: unexpected headers {extra}")
    if "body" in want and not text_matches(want["body"], got.get("body", "")):
        out.append(f"{where}: body {_clip(got.get('body', ''))} does not match {describe_match(want['body'])}")
    for key in ("complete", "chunked", "connection"):
        if key in want and got.get(key) != want[key]:
            out.append(f"{where}: {key} is {got.get(key)!r}, expected {want[key]!r}")
    return out


def _time_of(ref: str, observation: Mapping[str, Any], edge: str) -> float | None:
    """Time (ms) of 'response:ID' (its end for 'after', its status line for 'before') or 'event:NAME'."""
    kind, _, name = ref.partition(":")
    if kind == "response":
        response = observation.get("responses", {}).get(name, {})
        if edge == "after":
            value = response.get("t_done")
        else:
            value = response.get("t_headers", response.get("t_done"))
        return float(value) if value is not None else None
    times = [e["t"] for e in observation.get("events", []) if e["event"] == name]
    if not times:
        return None
    return float(min(times) if edge == "after" else max(times))


def _check_events(expect: Mapping[str, Any], observation: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    events: Sequence[Mapping[str, Any]] = observation.get("events", [])
    for want in expect.get("events", []):
        name = want["event"]
        candidates = [e for e in events if e["event"] == name]
        if "value" in want:
            candidates = [e for e in candidates if text_matches(want["value"], e["value"])]
        if not candidates:
            seen = [(e["event"], e["value"]) for e in events if e["event"] == name]
            detail = f"; recorded with values {[_clip(v, 120) for _, v in seen]}" if seen else ""
            required = f" with value {describe_match(want['value'])}" if "value" in want else ""
            out.append(f"event {name}{required} was not recorded{detail}")
            continue
        t = candidates[0]["t"]
        if "after" in want:
            ref_t = _time_of(want["after"], observation, "after")
            if ref_t is None:
                out.append(f"event {name}: {want['after']} did not happen, so 'after' cannot hold")
            elif t < ref_t:
                out.append(f"event {name} at {t} ms is not after {want['after']} ({ref_t} ms)")
            elif "min_delay_ms" in want and t - ref_t < want["min_delay_ms"]:
                out.append(f"event {name} came {t - ref_t:.1f} ms after {want['after']}, expected at least "
                           f"{want['min_delay_ms']} ms")
        if "before" in want:
            ref_t = _time_of(want["before"], observation, "before")
            if ref_t is not None and t > ref_t:
                out.append(f"event {name} at {t} ms is not before {want['before']} ({ref_t} ms)")
    for name in expect.get("events_absent", []):
        hits = [e for e in events if e["event"] == name]
        if hits:
            out.append(f"event {name} was recorded ({len(hits)}x, value {_clip(hits[0]['value'], 120)}), "
                       "expected none")
    if expect.get("events_exact"):
        named = {w["event"] for w in expect.get("events", [])}
        extra = sorted({e["event"] for e in events} - named)
        if extra:
            out.append(f"unexpected events {extra}")
    return out


def _check_logs(expect: Mapping[str, Any], observation: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    lines = [entry["line"] for entry in observation.get("logs", [])]
    for want in expect.get("logs", []):
        if not any(text_matches(want, line) for line in lines):
            out.append(f"no log line matches {describe_match(want)} ({len(lines)} lines logged)")
    for want in expect.get("logs_absent", []):
        hits = [line for line in lines if text_matches(want, line)]
        if hits:
            out.append(f"log line {_clip(hits[0])} matches {describe_match(want)}, expected none")
    return out


def check(expect: Mapping[str, Any], observation: Mapping[str, Any]) -> list[str]:
    """Every way `observation` differs from `expect` (empty: it conforms)."""
    if observation.get("error"):
        return [f"not run: {observation['error']}"]
    out: list[str] = []
    if "startup" in expect:
        startup = observation.get("startup")
        if startup is None:
            return ["expected a startup refusal, but the runtime was not started alone"]
        if not startup["refused"]:
            out.append("the runtime started, expected it to refuse")
        want_log = expect["startup"].get("log")
        if want_log and not any(text_matches(want_log, e["line"]) for e in startup["log"]):
            out.append(f"no startup log line matches {describe_match(want_log)}")
        return out
    for rid, want in expect.get("responses", {}).items():
        got = observation.get("responses", {}).get(rid)
        if got is None:
            out.append(f"response {rid}: no such request was observed")
        else:
            out.extend(_check_response(rid, want, got))
    out.extend(_check_events(expect, observation))
    out.extend(_check_logs(expect, observation))
    return out


# --------------------------------------------------------------------------- expectations as fields

#: Keys of an event expectation that only a pin can give: the models order steps, they do not time them.
TIMING_KEYS = ("after", "before", "min_delay_ms")

Field = tuple[str, ...]


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def fields(expect: Mapping[str, Any]) -> dict[Field, Any]:
    """An expectation as flat fields (``("responses", "r1", "status") -> 500``), for merging and comparing."""
    out: dict[Field, Any] = {}
    for rid, want in expect.get("responses", {}).items():
        for key, value in want.items():
            if key == "headers":
                for name, header in value.items():
                    out[("responses", rid, "headers", name.lower())] = header
            else:
                out[("responses", rid, key)] = value
    for entry in expect.get("events", []):
        name = entry["event"]
        out[("events", name)] = True
        for key, value in entry.items():
            if key != "event":
                out[("events", name, key)] = value
    for name in expect.get("events_absent", []):
        out[("events_absent", name)] = True
    if "events_exact" in expect:
        out[("events_exact",)] = expect["events_exact"]
    for kind in ("logs", "logs_absent"):
        for match in expect.get(kind, []):
            out[(kind, _key(match))] = match
    if "startup" in expect:
        out[("startup",)] = expect["startup"]
    return out


def unfields(flat: Mapping[Field, Any], source: str) -> dict[str, Any]:
    """The expectation the fields describe (the inverse of `fields`)."""
    expect: dict[str, Any] = {"source": source}
    events: dict[str, dict[str, Any]] = {}
    for path, value in flat.items():
        kind = path[0]
        if kind == "responses":
            want = expect.setdefault("responses", {}).setdefault(path[1], {})
            if path[2] == "headers":
                want.setdefault("headers", {})[path[3]] = value
            else:
                want[path[2]] = value
        elif kind == "events":
            entry = events.setdefault(path[1], {"event": path[1]})
            if len(path) == 3:
                entry[path[2]] = value
        elif kind == "events_absent":
            expect.setdefault("events_absent", []).append(path[1])
        elif kind == "events_exact":
            expect["events_exact"] = value
        elif kind in ("logs", "logs_absent"):
            expect.setdefault(kind, []).append(value)
        elif kind == "startup":
            expect["startup"] = value
    if events:
        expect["events"] = list(events.values())
    return expect


def _values_agree(path: Field, a: Any, b: Any) -> bool:
    if path[-1] in ("body", "value") and isinstance(a, Mapping) and isinstance(b, Mapping):
        if "equals" in a and "equals" in b:
            return expand(a["equals"]) == expand(b["equals"])
        if "equals" in a:
            return text_matches(b, expand(a["equals"]))
        if "equals" in b:
            return text_matches(a, expand(b["equals"]))
        return dict(a) == dict(b)
    return bool(a == b)


def conflicts(model: Mapping[str, Any], pinned: Mapping[str, Any]) -> list[str]:
    """Every field both expectations give where they disagree (one line each)."""
    a, b = fields(model), fields(pinned)
    out = [f"{'.'.join(path)}: the model predicts {a[path]!r}, the pin says {b[path]!r}"
           for path in a.keys() & b.keys() if not _values_agree(path, a[path], b[path])]
    for path in a:
        if path[0] == "events" and len(path) == 2 and ("events_absent", path[1]) in b:
            out.append(f"event {path[1]}: the model predicts it is recorded, the pin says it is absent")
        if path[0] == "events_absent" and ("events", path[1]) in b:
            out.append(f"event {path[1]}: the model predicts it is absent, the pin says it is recorded")
    return sorted(out)


def overlap(model: Mapping[str, Any], pinned: Mapping[str, Any]) -> list[Field]:
    """Fields a pin gives although the model predicts them (a second copy; timing and event presence excepted)."""
    a, b = fields(model), fields(pinned)
    return sorted(path for path in a.keys() & b.keys() if not (path[0] == "events" and len(path) == 2))


def merge(model: Mapping[str, Any], pinned: Mapping[str, Any]) -> dict[str, Any]:
    """The expectation to check: the model's prediction plus the pinned observations it does not cover."""
    flat = fields(model)
    for path, value in fields(pinned).items():
        flat.setdefault(path, value)
    return unfields(flat, "model" if len(fields(model)) else "pinned")
