"""Scenarios generated from the models: a shortest operation path to every transition.

For each model with in-process operations (context, ownership, lifecycle, actor) a small
universe of identities (threads t0, t1 and gc; contexts c0, c1; one object; one request per
context...) is explored breadth-first *at the level of operations*: each candidate
operation is performed through the model (`conformance.model_run.ModelRun.perform`, which
applies the operation table's alternatives under the model's guards), so every path is a
sequence of operations the model allows, and the first path that takes a model transition
not yet reached becomes a scenario ``gen.<model>.<action>`` checking that action's rules.
Since the search runs over the model definitions, the generated catalogue grows with the
model: a new action or a relaxed guard yields a new scenario.

The result is committed as ``conformance/generated.json`` (a scenario file like the others;
``python -m conformance.generate`` rewrites it, and tests/test_conformance_generate.py checks
it is current), so a run does not repeat the search.
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model.catalog import get_model

from .model_run import ModelRun, ScenarioInvalid
from .operations import OPS
from .scenario import Scenario, ScenarioError, load_file

__all__ = ["GENERATED_FILE", "generate", "generated_text", "load_generated"]

GENERATED_FILE = Path(__file__).with_name("generated.json")

#: the identities of each model's universe, per sort
UNIVERSE: dict[str, dict[str, list[str]]] = {
    "context": {"Thread": ["t0", "t1", "gc"], "Ctx": ["c0", "c1"]},
    "ownership": {"Thread": ["t0", "t1", "gc"], "Ctx": ["c0", "c1"], "Obj": ["o1"]},
    "lifecycle": {"Thread": ["t0"], "Ctx": ["c0"], "Req": ["r0", "r1"]},
    "actor": {"Thread": ["t0"], "Ctx": ["c0"], "Req": ["r0", "r1"], "Actor": ["a0"]},
    "locks": {"Thread": ["t0", "t1"], "Isolate": ["i0", "i1"]},
    "entrypoint": {"Thread": ["t0"], "Ctx": ["c0"], "Req": ["r0"]},
}

#: handler programs the entrypoint search tries (each with the fallbacks that matter for it)
PROGRAMS: list[tuple[list[dict[str, Any]], str]] = [
    ([{"do": "respond"}], "none"),
    ([{"do": "throw", "message": "boom"}], "none"),
    ([{"do": "pass_through_on_exception"}, {"do": "throw", "message": "boom"}], "ok"),
    ([{"do": "pass_through_on_exception"}, {"do": "throw", "message": "boom"}], "fail"),
    ([{"do": "respond_stream", "chunks": ["first"]}, {"do": "throw", "message": "broke"}], "none"),
    ([{"do": "await_io", "h": "k1"}, {"do": "respond"}], "none"),
]
COUNTERS = {"max_tasks": 3, "max_actions": 2, "lock_requests": 1}
MAX_DEPTH = 9
MAX_STATES = 2500


def _candidates(model: str) -> list[tuple[str, dict[str, Any]]]:
    u = UNIVERSE[model]
    threads, ctxs = u["Thread"], u.get("Ctx", [])
    workers = [t for t in threads if t != "gc"]
    out: list[tuple[str, dict[str, Any]]] = []
    if model == "locks":
        handles = {("t0", "i0"): "l1", ("t0", "i1"): "l2", ("t1", "i0"): "l3"}
        for (t, i), h in handles.items():
            out += [("lock", {"t": t, "i": i, "h": h}), ("await_grant", {"h": h}), ("await_retry", {"h": h}),
                    ("unlock", {"h": h}), ("cancel_lock", {"h": h})]
            out += [("sync_lock", {"h": h, "i": j}) for j in ("i0", "i1")]
            out += [("sync_unlock", {"h": h, "i": j}) for j in ("i0", "i1")]
        return out
    if model == "entrypoint":
        out += [("fetch", {"r": "r0", "c": "c0", "t": "t0", "handler": prog, "fallback": fb}) for prog, fb in PROGRAMS]
        out += [("scheduled", {"r": "r0", "c": "c0", "t": "t0", "handler": [{"do": "respond"}]}),
                ("scheduled", {"r": "r0", "c": "c0", "t": "t0", "handler": [{"do": "throw", "message": "x"}]}),
                ("fetch_again", {"r": "r0"}), ("scheduled_again", {"r": "r0"}), ("cancel_fetch", {"r": "r0"}),
                ("complete_task", {"h": "k1", "ok": True}), ("await_scheduled", {"r": "r0"})]
        return out
    if model == "actor":
        out.append(("create_actor", {"a": "a0", "c": "c0", "t": "t0"}))
    else:
        out += [("create_context", {"c": c, "t": t}) for c in ctxs for t in workers]
    out += [("enter", {"c": c, "t": t}) for c in ctxs for t in threads]
    out += [("exit", {"c": c, "t": t}) for c in ctxs for t in workers]
    out += [("abort", {"c": c, "reason": "REASON_A"}) for c in ctxs]
    out += [("destroy_context", {"c": c}) for c in ctxs]
    if model == "ownership":
        for c in ctxs:
            for t in threads:
                out.append(("add_object", {"o": "o1", "c": c, "t": t}))
            out.append(("add_reverse", {"o": "o1", "c": c, "t": workers[ctxs.index(c) % len(workers)]}))
            out.append(("schedule_action", {"c": c, "t": "t1"}))
            out.append(("await_actions", {"c": c}))
        for t in threads:
            out += [("access", {"o": "o1", "t": t}), ("release", {"o": "o1", "t": t}), ("drop", {"o": "o1", "t": t}),
                    ("defer_gc", {"o": "o1", "t": t})]
    if model in ("lifecycle", "actor"):
        reqs = u["Req"]
        for r in reqs:
            out += [("create_request", {"r": r, "c": "c0"}), ("deliver", {"r": r}), ("destroy_request", {"r": r}),
                    ("drain", {"r": r}), ("await_drain", {"r": r})]
            if model == "lifecycle":
                out += [("finish_scheduled", {"r": r}), ("await_scheduled", {"r": r})]
        out += [("wait_until", {"c": "c0", "h": "w1"}), ("complete_wait_until", {"h": "w1", "ok": False}),
                ("task", {"c": "c0", "h": "k1"}), ("complete_task", {"h": "k1", "ok": True}),
                ("no_retry", {"c": "c0"})]
        if model == "actor":
            out += [("shutdown_actor", {"a": "a0"}), ("evict_actor", {"a": "a0"})]
    return out


def _paths(model: str) -> Iterator[tuple[list[tuple[str, dict[str, Any]]], ModelRun]]:
    """Breadth-first operation paths (each with its model run), one per newly reached model state."""
    start = ModelRun(model, UNIVERSE[model], counters=COUNTERS)
    start.explain = False
    cands = _candidates(model)
    env = [(op, args) for op, args in cands if OPS[op].environment]
    seen = {start.state}
    frontier: collections.deque[tuple[list[tuple[str, dict[str, Any]]], ModelRun]] = collections.deque([([], start)])
    while frontier and len(seen) < MAX_STATES:
        path, run = frontier.popleft()
        if len(path) >= MAX_DEPTH:
            continue
        # Implementations end drains, run queued actions... as soon as they can: once an environment
        # operation is possible, a deterministic scenario waits for it before doing anything else.
        ready = [(op, args) for op, args in env if _possible(run, op, args)]
        for op, args in ready or cands:
            nxt = run.clone()
            try:
                pred = nxt.perform(op, args)
            except (ScenarioInvalid, KeyError):
                continue
            if pred.allowed:
                nxt.choose(pred, 0)
            if nxt.state in seen:
                continue
            seen.add(nxt.state)
            step = [*path, (op, args)]
            yield step, nxt
            frontier.append((step, nxt))


def _possible(run: ModelRun, op: str, args: dict[str, Any]) -> bool:
    try:
        run.clone().perform(op, args)
    except (ScenarioInvalid, KeyError):
        return False
    return True


def generate() -> dict[str, Any]:
    """The generated scenario file's content."""
    scenarios = []
    for model in UNIVERSE:
        m = get_model(model)
        wanted = {a.name for a in m.actions}
        rules_of = {a.name: list(dict.fromkeys(a.rules)) for a in m.actions}
        reached: set[str] = set()
        for path, run in _paths(model):
            new = [t.action for t in run.path if t.action in wanted and t.action not in reached]
            if not new:
                continue
            reached.update(t.action for t in run.path)
            target = new[-1]
            rules = rules_of.get(target) or ["INV-C4"]
            scenarios.append({
                "id": f"gen.{model}.{target.replace('_', '-')}",
                "title": f"generated: a shortest path taking {model} transition {target}",
                "rules": rules,
                "level": "MUST",
                "model": model,
                "steps": [{"op": op, **args} for op, args in path],
            })
            if reached >= wanted:
                break
    return {"description": "Generated by `python -m conformance.generate` from the models (a shortest operation "
                           "path to every transition reachable in small universes); do not edit by hand.",
            "scenarios": scenarios}


def generated_text() -> str:
    return json.dumps(generate(), indent=1) + "\n"


def load_generated() -> list[Scenario]:
    if not GENERATED_FILE.exists():
        return []
    scs = load_file(GENERATED_FILE)
    return [Scenario(**{**s.__dict__, "generated": True}) for s in scs]


if __name__ == "__main__":  # pragma: no cover - the regeneration command
    text = generated_text()
    GENERATED_FILE.write_text(text)
    try:
        n = len(load_file(GENERATED_FILE))
    except ScenarioError as e:
        print(f"generated file does not load: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"wrote {GENERATED_FILE} ({n} scenarios)", file=sys.stderr)
