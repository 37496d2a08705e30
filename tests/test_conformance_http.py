"""The HTTP-level conformance harness without a runtime: scenario files, schema, vocabulary, JS
generation and the expectation checker (each check with an input it must reject)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conformance.http.expect import check
from conformance.http.jsgen import generate_worker
from conformance.http.scenarios import SCHEMA_PATH, ScenarioError, load_all, load_file, select
from conformance.http.vocabulary import IO_KINDS, OPS, walk_steps
from conformance.http.workerd import WorkerdError, build_config, resolve_workerd

SCENARIOS = load_all()


def all_steps(scenario: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for worker in scenario.workers:
        lists = [*worker.get("routes", {}).values(), *worker.get("durable_object", {}).get("routes", {}).values()]
        if "scheduled" in worker:
            lists.append(worker["scheduled"])
        for steps in lists:
            out.extend(walk_steps(steps))
    return out


# ---------------------------------------------------------------- the committed scenarios


def test_scenarios_load_and_ids_are_unique() -> None:
    assert len(SCENARIOS) >= 60
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


def test_schema_lists_exactly_the_vocabulary() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert set(schema["$defs"]["step"]["properties"]["op"]["enum"]) == set(OPS)
    assert set(schema["$defs"]["io_kind"]["enum"]) == set(IO_KINDS)


def test_every_op_and_io_kind_is_used_by_some_scenario() -> None:
    steps = [step for s in SCENARIOS for step in all_steps(s)]
    assert {step["op"] for step in steps} == set(OPS)
    assert {step["kind"] for step in steps if step["op"] == "save_io"} == set(IO_KINDS)


def test_every_level_and_the_slow_set_are_present() -> None:
    assert {s.level for s in SCENARIOS} == {"MUST", "SHOULD", "INFORMATIONAL"}
    slow = [s for s in SCENARIOS if s.slow]
    assert slow and all(s not in select(SCENARIOS) for s in slow)
    assert all(s in select(SCENARIOS, slow=True) for s in slow)


def test_select_by_id_and_prefix() -> None:
    assert [s.id for s in select(SCENARIOS, ids=["exception-sync-throw"])] == ["exception-sync-throw"]
    assert all(s.id.startswith("xreq-") for s in select(SCENARIOS, ids=["xreq-*"]))
    with pytest.raises(ScenarioError, match="no scenario has id 'nope'"):
        select(SCENARIOS, ids=["nope"])


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_generated_workers_are_valid_javascript_modules(tmp_path: Path) -> None:
    files = []
    for scenario in SCENARIOS:
        for worker in scenario.workers:
            path = tmp_path / f"{scenario.id}__{worker['name']}.mjs"
            path.write_text(generate_worker(scenario.id, worker))
            files.append(path)
    # one node process checks every module (node --check takes one file, so loop inside node)
    script = (
        "const vm = require('vm'); const fs = require('fs'); let bad = [];"
        "for (const f of process.argv.slice(1)) { try { new vm.SourceTextModule(fs.readFileSync(f, 'utf8')); }"
        " catch (e) { bad.push(f + ': ' + e.message); } }"
        "if (bad.length) { console.log(bad.join('\\n')); process.exit(1); }"
    )
    done = subprocess.run(["node", "--experimental-vm-modules", "-e", script, *map(str, files)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_names_every_worker_and_socket(tmp_path: Path) -> None:
    chosen = select(SCENARIOS, ids=["pass-through-fallback-serves", "do-two-instances"])
    config, sockets = build_config(chosen, 12345, tmp_path)
    text = config.read_text()
    assert sorted(sockets) == ["do-two-instances:main", "pass-through-fallback-serves:main"]
    assert 'globalOutbound = "pass-through-fallback-serves:origin"' in text
    assert 'durableObjectNamespaces = [(className = "Actor", uniqueKey = "do-two-instances:main")]' in text
    assert 'address = "127.0.0.1:12345"' in text
    assert (tmp_path / "do-two-instances__main.js").read_text().count("extends DurableObject") == 1


# ---------------------------------------------------------------- bad scenario files: one line, file and line


def scenario_file(tmp_path: Path, mutate: Any) -> Path:
    base = next(s for s in SCENARIOS if s.id == "exception-sync-throw")
    data = {"description": "test", "scenarios": [copy.deepcopy(base.data)]}
    data["scenarios"][0]["expect"] = {"source": "pinned", "pinned_because": "a test",
                                      "responses": {"r1": {"status": 500}}}
    mutate(data["scenarios"][0])
    path = tmp_path / "case.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def set_route(steps: list[dict[str, Any]]) -> Any:
    def mutate(s: dict[str, Any]) -> None:
        s["workers"][0]["routes"] = {"/": steps}
    return mutate


BAD_SCENARIOS = [
    ("unknown op", set_route([{"op": "explode"}]),
     r'case\.json:\d+: scenarios\[0\]\.workers\[0\]\.routes\["/"\]\[0\]\.op: \'explode\' is not one of'),
    ("missing field", lambda s: s.pop("level"), r"case\.json:\d+: .*'level' is a required property"),
    ("unknown rule", lambda s: s.update(rules=["INV-Z9"]), r"rule id INV-Z9 is not in model/rules\.py"),
    ("undefined local", set_route([{"op": "respond", "body": "{nothing}"}]), r"uses \{nothing\}"),
    ("step after the end", set_route([{"op": "throw"}, {"op": "respond"}]), r"ends its step list"),
    ("unknown binding", set_route([{"op": "fetch_service", "binding": "NOPE"}]), r"binding NOPE is not in"),
    ("no_retry in fetch", set_route([{"op": "no_retry"}]), r"only exists in a scheduled handler"),
    ("instance scope outside a DO", set_route([{"op": "save_io", "kind": "text", "slot": "x", "scope": "instance"}]),
     r"scope 'instance' only exists"),
    ("unknown message", lambda s: s["expect"]["responses"]["r1"].update(body={"equals": "{msg:NOPE}"}),
     r"\{msg:NOPE\} is not a message"),
    ("unknown request in expect", lambda s: s["expect"]["responses"].update(r9={"status": 200}),
     r"unknown request 'r9'"),
    ("request to unknown worker", lambda s: s["requests"][0].update(worker="ghost"), r"unknown worker 'ghost'"),
    ("difference in a MUST scenario", lambda s: s.update(differences={"reference": "a reason long enough"}),
     r"only an INFORMATIONAL scenario may list known differences"),
    ("difference of an unknown implementation", lambda s: s.update(level="INFORMATIONAL", differences={"x": "why not"}),
     r"differences"),
]


@pytest.mark.parametrize(("case", "mutate", "pattern"), BAD_SCENARIOS, ids=[c[0] for c in BAD_SCENARIOS])
def test_bad_scenario_is_one_line_with_file_and_line(tmp_path: Path, case: str, mutate: Any, pattern: str) -> None:
    path = scenario_file(tmp_path, mutate)
    with pytest.raises(ScenarioError, match=pattern) as info:
        load_file(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path) + ":")
    assert int(message.split(":")[1]) >= 1


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "description": "x",\n  "scenarios": [,]\n}\n')
    with pytest.raises(ScenarioError, match=r"broken\.json:3: not valid JSON"):
        load_file(path)


def test_schema_error_line_points_into_the_scenario(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, set_route([{"op": "sleep", "ms": "soon"}]))
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    line = int(str(info.value).split(":")[1])
    assert '"ms": "soon"' in path.read_text().splitlines()[line - 1]


# ---------------------------------------------------------------- the checker: every kind of check can fail


GOOD = {
    "error": None,
    "responses": {"r1": {"outcome": "response", "status": 500, "headers": {"connection": "close",
                                                                          "content-length": "21"},
                         "body": "Internal Server Error", "complete": True, "chunked": False, "connection": "closed",
                         "t_headers": 2.0, "t_done": 2.5}},
    "events": [{"event": "done", "value": "ok: 1", "worker": "main", "t": 210.0},
               {"event": "later", "value": "", "worker": "main", "t": 300.0}],
    "logs": [{"stream": "stderr", "line": "error: Uncaught exception: remote.jsg.Error: boom", "t": 2.0}],
}
EXPECT = {
    "source": "pinned",
    "responses": {"r1": {"status": 500, "headers": {"connection": "close", "content-length": "21"},
                         "headers_exact": True, "body": {"equals": "Internal Server Error"}, "complete": True,
                         "chunked": False, "connection": "closed"}},
    "events": [{"event": "done", "value": {"equals": "ok: 1"}, "after": "response:r1", "min_delay_ms": 150},
               {"event": "later", "after": "event:done"}],
    "events_exact": True,
    "events_absent": ["never"],
    "logs": [{"regex": "Uncaught exception: .*boom"}],
    "logs_absent": [{"contains": "hung"}],
}


def test_checker_accepts_a_matching_observation() -> None:
    assert check(EXPECT, GOOD) == []


def mutated(path: str, value: Any) -> dict[str, Any]:
    obs = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target: Any = obs
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is KeyError:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return obs


FAULTS = [
    ("status", mutated("responses.r1.status", 200), "status 200, expected 500"),
    ("header value", mutated("responses.r1.headers.connection", "keep-alive"), "header connection"),
    ("extra header", mutated("responses.r1.headers.x-extra", "1"), "unexpected headers ['x-extra']"),
    ("body", mutated("responses.r1.body", "nope"), "does not match equals"),
    ("truncated", mutated("responses.r1.complete", False), "complete is False"),
    ("chunked", mutated("responses.r1.chunked", True), "chunked is True"),
    ("connection kept", mutated("responses.r1.connection", "kept"), "connection is 'kept'"),
    ("no status line", mutated("responses.r1.outcome", "no_response"), "outcome no_response"),
    ("missing event", mutated("events.0.event", "other"), "event done"),
    ("event value", mutated("events.0.value", "ok: 2"), "with value equals"),
    ("event too early", mutated("events.0.t", 1.0), "is not after response:r1"),
    ("event too soon after", mutated("events.0.t", 100.0), "expected at least 150 ms"),
    ("event order", mutated("events.1.t", 200.0), "is not after event:done"),
    ("absent event recorded", mutated("events.1.event", "never"), "event never was recorded"),
    ("unexpected event", mutated("events.1.event", "surprise"), "unexpected events ['surprise']"),
    ("missing log", mutated("logs.0.line", "quiet"), "no log line matches"),
    ("forbidden log", mutated("logs.0.line", "boom: Uncaught exception: hung"), "expected none"),
    ("not run", mutated("error", "workerd exited"), "not run: workerd exited"),
]


@pytest.mark.parametrize(("name", "observation", "fragment"), FAULTS, ids=[f[0] for f in FAULTS])
def test_checker_catches_each_seeded_difference(name: str, observation: dict[str, Any], fragment: str) -> None:
    problems = check(EXPECT, observation)
    assert problems, f"{name}: the checker accepted a wrong observation"
    assert any(fragment in p for p in problems), problems


def test_before_is_checked_against_the_status_line() -> None:
    expect = {"source": "pinned", "events": [{"event": "done", "before": "response:r1"}]}
    assert check(expect, mutated("events.0.t", 1.0)) == []
    assert check(expect, GOOD) == ["event done at 210.0 ms is not before response:r1 (2.0 ms)"]


def test_startup_expectation() -> None:
    expect = {"source": "pinned", "startup": {"refused": True, "log": {"contains": "--experimental"}}}
    refused = {"error": None, "startup": {"refused": True, "exit_code": 1,
                                          "log": [{"stream": "stderr", "line": "you must pass --experimental"}]}}
    assert check(expect, refused) == []
    started = copy.deepcopy(refused)
    started["startup"]["refused"] = False
    assert check(expect, started) == ["the runtime started, expected it to refuse"]
    silent = copy.deepcopy(refused)
    silent["startup"]["log"] = []
    assert check(expect, silent) == ["no startup log line matches contains '--experimental'"]


def test_messages_come_from_the_model_vocabulary() -> None:
    from model.vocab import IO_TYPE_SUFFIX, MESSAGES

    expect = {"source": "pinned", "responses": {"r1": {"body": {"equals": "{msg:ERR_DIFFERENT_REQUEST}{io_type:X>}"}}}}
    text = MESSAGES["ERR_DIFFERENT_REQUEST"] + IO_TYPE_SUFFIX.format(io_type="X>")
    assert check(expect, mutated("responses.r1.body", text)) == []
    assert check(expect, mutated("responses.r1.body", text + ".")) != []


# ---------------------------------------------------------------- finding the binary


def test_missing_binary_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WorkerdError, match=r"workerd binary not found: .*nowhere"):
        resolve_workerd(tmp_path / "nowhere")
    with pytest.raises(WorkerdError, match=r"workerd not found under .*node_modules \(run `npm ci`"):
        resolve_workerd(None, root=tmp_path)
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    with pytest.raises(WorkerdError, match="not an executable file"):
        resolve_workerd(plain)


@pytest.mark.parametrize(("argv", "message"), [
    (["--workerd-bin", "/nonexistent/workerd", "exception-sync-throw"], "workerd binary not found: /nonexistent"),
    (["no-such-scenario"], "no scenario has id 'no-such-scenario'"),
])
def test_cli_bad_input_is_one_line_exit_2(argv: list[str], message: str) -> None:
    import sys

    done = subprocess.run([sys.executable, "-m", "conformance.http", *argv], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr
