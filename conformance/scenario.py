"""Load, validate and select model-level scenarios (conformance/scenarios/*.json).

A scenario file is JSON validated by the committed schema (`conformance.schema`), then for
meaning: rule ids must exist in model/rules.py, every operation must be one the predicting
model can speak about, and the steps must be possible in the model (the loader runs them
through `conformance.model_run.ModelRun`: a step the model does not allow, an unknown
handle, a pinned prediction that differs from the model's are errors).  Every problem is a
`ScenarioError`, one line ``file:line: problem``.

`Selection` picks scenarios by id (shell-style patterns), rule id and level; it applies to
every suite (model, http, trace), since all describe their cases by the same three fields.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from iospec.errors import UserError, read_user_file
from model.core.errors import EvaluationError
from model.rules import RULES, Rule

from .jsonpos import JsonError, line_of, parse
from .model_run import SORT_OF_KIND, ModelRun, ScenarioInvalid
from .operations import OPS
from .schema import SCHEMA_PATH

__all__ = ["LEVELS", "SCENARIO_DIR", "Scenario", "ScenarioError", "Selection", "Step", "load_all", "load_file",
           "load_text"]

HERE = Path(__file__).resolve().parent
SCENARIO_DIR = HERE / "scenarios"
LEVELS = ("MUST", "SHOULD", "INFORMATIONAL")
#: at most this many identities of one sort per scenario (the model configuration is sized by them)
MAX_IDENTITIES = 6


class ScenarioError(UserError):
    """A malformed or impossible scenario (one line: file:line: problem)."""


@dataclass(frozen=True)
class Step:
    op: str
    args: dict[str, Any]
    line: int
    pin: dict[str, Any] | None = None

    def render(self) -> str:
        parts = []
        for k, v in self.args.items():
            if k == "handler":
                parts.append("handler=[" + ", ".join(_render_handler_step(s) for s in v) + "]")
            elif v is not None:
                parts.append(f"{k}={json.dumps(v) if not isinstance(v, str) else v}")
        return f"{self.op}({', '.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, **self.args}
        if self.pin is not None:
            out["expect"] = self.pin
        return out


def _render_handler_step(s: Mapping[str, Any]) -> str:
    extra = ", ".join(f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}" for k, v in s.items() if k != "do")
    return f"{s['do']}({extra})" if extra else s["do"]


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    rules: tuple[str, ...]
    level: str
    model: str
    steps: tuple[Step, ...]
    file: str
    line: int
    description: str = ""
    consts: dict[str, int] = field(default_factory=dict)
    generated: bool = False

    @property
    def rule_objects(self) -> list[Rule]:
        return [RULES[r] for r in self.rules]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def identities(self) -> dict[str, list[str]]:
        """Identity names per model sort, in order of first mention."""
        out: dict[str, list[str]] = {s: [] for s in SORT_OF_KIND.values()}
        for st in self.steps:
            op = OPS[st.op]
            for p, kind in op.params.items():
                v = st.args.get(p)
                if kind in SORT_OF_KIND and v is not None and v not in out[SORT_OF_KIND[kind]]:
                    out[SORT_OF_KIND[kind]].append(v)
        return out

    def threads(self) -> list[str]:
        """The implementation's worker threads the scenario uses (t0, t1, ...), sorted."""
        return sorted((t for t in self.identities()["Thread"] if t != "gc"), key=lambda t: int(t[1:]))

    def counters(self) -> dict[str, int]:
        """Bounds for the model's counters, large enough for every step."""
        tasks = actions = locks = 0
        for st in self.steps:
            if st.op in ("task", "timer", "wait_until"):
                tasks += 1
            elif st.op in ("fetch", "scheduled"):
                tasks += 1 + sum(1 for s in st.args["handler"] if s["do"] in ("wait_until", "await_io"))
            elif st.op == "schedule_action":
                actions += 1
            elif st.op == "lock":
                locks += 1
        return {"max_tasks": tasks + 1, "max_actions": actions + 1, "lock_requests": locks + 1}

    def model_run(self) -> ModelRun:
        return ModelRun(self.model, self.identities(), consts=self.consts, counters=self.counters())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "title": self.title, "rules": list(self.rules), "level": self.level,
                               "model": self.model}
        if self.description:
            out["description"] = self.description
        if self.consts:
            out["consts"] = {k: bool(v) for k, v in self.consts.items()}
        out["steps"] = [s.to_json() for s in self.steps]
        return out


@functools.cache
def _validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _path_text(path: Iterable[str | int]) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(top level)"


def _best_error(errors: list[Any]) -> Any:
    """The most specific schema error (deepest path; for an op, the branch that matched its name)."""
    return max(errors, key=lambda e: (len(list(e.absolute_path)), -len(e.message)))


def load_text(text: str, file: str, *, check_model: bool = True) -> list[Scenario]:
    """Parse and validate one scenario file's text (``file`` names it in errors)."""
    try:
        data, lines = parse(text)
    except JsonError as e:
        raise ScenarioError(f"{file}:{e.line}: {e}") from None
    errors = list(_validator().iter_errors(data))
    if errors:
        err = _best_error(errors)
        path = list(err.absolute_path)
        what = err.message if len(err.message) <= 300 else err.message[:297] + "..."
        raise ScenarioError(f"{file}:{line_of(lines, path)}: {_path_text(path)}: {what}")
    out = []
    for k, sd in enumerate(data["scenarios"]):
        out.append(_scenario(sd, file, lines, ("scenarios", k), check_model=check_model))
    ids = [s.id for s in out]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise ScenarioError(f"{file}:{out[ids.index(dup)].line}: scenario id {dup!r} appears twice")
    return out


def _scenario(sd: Mapping[str, Any], file: str, lines: dict[Any, int], path: tuple[Any, ...], *,
              check_model: bool = True, generated: bool = False) -> Scenario:
    line = line_of(lines, path)
    for r in sd["rules"]:
        if r not in RULES:
            raise ScenarioError(f"{file}:{line_of(lines, (*path, 'rules'))}: rule id {r} is not in model/rules.py")
    steps = []
    for j, st in enumerate(sd["steps"]):
        args = {k: v for k, v in st.items() if k not in ("op", "expect", "note")}
        steps.append(Step(st["op"], args, line_of(lines, (*path, "steps", j)), st.get("expect")))
    sc = Scenario(
        id=sd["id"], title=sd["title"], rules=tuple(sd["rules"]), level=sd["level"], model=sd["model"],
        steps=tuple(steps), file=file, line=line, description=sd.get("description", ""),
        consts={k: int(v) for k, v in sd.get("consts", {}).items()}, generated=generated,
    )
    if check_model:
        check_against_model(sc)
    return sc


def check_against_model(sc: Scenario) -> ModelRun:
    """Run the steps through the model: every step must be possible and every pin must hold."""
    for sort, names in sc.identities().items():
        if len(names) > MAX_IDENTITIES:
            raise ScenarioError(f"{sc.where}: {sc.id}: {len(names)} identities of sort {sort} ({', '.join(names[:4])}, "
                                f"...); a scenario may use at most {MAX_IDENTITIES} (the model is sized by them)")
    try:
        run = sc.model_run()
    except Exception as e:  # a configuration the model rejects (ConfigError), kept to one line
        raise ScenarioError(f"{sc.where}: {sc.id}: cannot build the model configuration: {e}") from None
    for k, st in enumerate(sc.steps, 1):
        op = OPS[st.op]
        where = f"{sc.file}:{st.line}: {sc.id} step {k} {st.op}"
        if not run.supports(op, st.args):
            raise ScenarioError(f"{where}: model {sc.model} has none of this operation's actions "
                                f"({', '.join(dict.fromkeys(op.actions())) or 'entrypoint'}); use a model that does")
        try:
            pred = run.perform(st.op, st.args, where=where)
        except ScenarioInvalid as e:
            raise ScenarioError(str(e) if str(e).startswith(sc.file) else f"{where}: {e}") from None
        except (KeyError, ValueError, TypeError, EvaluationError) as e:  # an argument the model cannot read
            raise ScenarioError(f"{where}: the model cannot perform this step ({type(e).__name__}: {e})") from None
        if pred.allowed:
            run.choose(pred, 0)
        if st.pin is not None:
            mismatch = {k2: (v, pred.expect.get(k2)) for k2, v in st.pin.items() if pred.expect.get(k2) != v}
            if mismatch:
                shown = "; ".join(f"{k2}: pinned {v!r}, the model predicts {m!r}" for k2, (v, m) in mismatch.items())
                raise ScenarioError(f"{where}: pinned prediction differs from the model: {shown}")
    return run


def load_file(path: Path | str, *, check_model: bool = True) -> list[Scenario]:
    p = Path(path)
    text = read_user_file(p, "a scenario file", ScenarioError)
    return load_text(text, _display(p), check_model=check_model)


def _display(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(p)


@functools.cache
def _load_dir(directory: str) -> tuple[Scenario, ...]:
    out: list[Scenario] = []
    for f in sorted(Path(directory).glob("*.json")):
        out += load_file(f)
    ids = [s.id for s in out]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        first = next(s for s in out if s.id == dup)
        raise ScenarioError(f"{first.where}: scenario id {dup!r} appears in more than one place")
    return tuple(out)


def load_all(directory: Path | None = None, *, generated: bool = False) -> list[Scenario]:
    """Every scenario of the catalogue (hand-written, then generated ones)."""
    out = list(_load_dir(str(directory or SCENARIO_DIR)))
    if generated and directory is None:
        from .generate import load_generated

        seen = {s.id for s in out}
        out += [s for s in load_generated() if s.id not in seen]
    return out


@dataclass(frozen=True)
class Selection:
    """Which scenarios to run: id patterns, rule ids and levels (empty = all)."""

    ids: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()

    def __call__(self, item: Mapping[str, Any] | Scenario) -> bool:
        if isinstance(item, Scenario):
            sid, rules, level = item.id, item.rules, item.level
        else:
            sid, rules, level = item.get("id", ""), tuple(item.get("rules", ())), item.get("level", "MUST")
        if self.ids and not any(fnmatch.fnmatchcase(sid, p) for p in self.ids):
            return False
        if self.rules and not set(rules) & set(self.rules):
            return False
        return not (self.levels and level not in self.levels)

    @staticmethod
    def parse(ids: Sequence[str] = (), rules: Sequence[str] = (), levels: Sequence[str] = ()) -> Selection:
        """From option values (each may hold comma-separated items); UserError for an unknown rule or level."""
        def split(values: Sequence[str]) -> tuple[str, ...]:
            return tuple(x.strip() for v in values for x in v.split(",") if x.strip())

        rs, ls = split(rules), tuple(x.upper() for x in split(levels))
        bad = [r for r in rs if r not in RULES]
        if bad:
            raise UserError(f"unknown rule id {bad[0]!r}; see model/rules.py (e.g. INV-O2, G1)")
        badl = [x for x in ls if x not in LEVELS]
        if badl:
            raise UserError(f"unknown level {badl[0]!r}; levels: {', '.join(LEVELS)}")
        return Selection(split(ids), rs, ls)
