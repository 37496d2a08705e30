"""Compare an observation record with an expectation (pinned now, predicted by the model later).

`check(expect, observation)` returns the list of mismatches, each one readable line; an empty
list means the observation satisfies the expectation.  An expectation is a *partial*
description (the fields scenario.schema.json allows under ``expect``): only what it names is
checked, so a pinned expectation and a model prediction in the same format can both be
checked against one observation and against each other's observations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from model.vocab import IO_TYPE_SUFFIX, MESSAGES

__all__ = ["check", "describe_match", "expand", "placeholders", "text_matches"]


_PLACEHOLDER = re.compile(r"\{(msg|io_type):([A-Za-z_>]+)\}")


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
