"""Run a scenario's operations through a model: the predictions every implementation is compared with.

`ModelRun` holds one model configuration sized for one scenario (its threads, contexts,
objects... named as the scenario names them) and its current state.  `perform` expands an
operation through the operation table (`conformance.operations`): for each group of
alternatives it takes the first one whose first action the model's guards enable (or, for
an operation the implementation decides, every enabled one), applies its calls, and returns
the `Prediction`: which actions ran, their outputs (``result`` with workerd's message,
warnings, responses...), and the alternatives the implementation may choose among.  An
operation the model does not enable at all is a `ScenarioInvalid` error naming the failing
guard: the scenario asks for something workerd cannot do.

The compiled model is cached per configuration (`compiled`); `clone` copies a run cheaply
(states are tuples), which the scenario generator uses for its breadth-first search.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model.catalog import get_model
from model.core import DenseModel, compile_dense
from model.core.model import Func, Model
from model.core.sorts import BoolSort, EnumSort, IntSort, OptSort, Sort
from model.vocab import IO_TYPE_SUFFIX, MESSAGES

from .operations import OPS, Call, Group, Op, handler_calls, resume_calls

__all__ = ["ModelRun", "Prediction", "ScenarioInvalid", "Taken", "compiled", "SORT_OF_KIND"]

#: parameter kinds that are model identity sorts (by the sort's name)
SORT_OF_KIND = {"Thread": "Thread", "Ctx": "Ctx", "Req": "Req", "Obj": "Obj", "Actor": "Actor", "Isolate": "Isolate"}


class ScenarioInvalid(ValueError):
    """The scenario asks for a step the model does not allow (or misuses a handle); names the guard."""


@functools.lru_cache(maxsize=64)
def compiled(model: str, sizes: tuple[tuple[str, int], ...], consts: tuple[tuple[str, int], ...]) -> DenseModel:
    """The compiled configuration (cached: scenarios of the same shape share it)."""
    return compile_dense(get_model(model).config(**dict(sizes), **dict(consts)))


@dataclass(frozen=True)
class Taken:
    """One model action the prediction took."""

    model: str
    action: str
    args: dict[str, str]
    outputs: dict[str, str]

    def render(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.args.items())
        outs = ", ".join(f"{k}={v}" for k, v in self.outputs.items())
        return f"{self.action}({args})" + (f" -> {outs}" if outs else "")

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "args": self.args, "outputs": self.outputs}


@dataclass
class Prediction:
    """What the model predicts for one operation."""

    op: str
    taken: list[Taken] = field(default_factory=list)
    #: for choice="observed": each allowed ending with what it produces (phase, outputs) and its actions
    allowed: list[dict[str, Any]] = field(default_factory=list)
    #: the predicted observations (result, message, warnings, phase, response, ...)
    expect: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"expect": self.expect, "actions": [t.render() for t in self.taken]}
        if self.allowed:
            out["allowed"] = [{k: v for k, v in a.items() if k != "taken"} for a in self.allowed]
        return out


@dataclass
class Book:
    """What the harness tracks besides the model state: handles, actors' contexts, suspended handlers."""

    handles: dict[str, dict[str, Any]] = field(default_factory=dict)
    actor_ctx: dict[str, str] = field(default_factory=dict)
    io_types: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    fetches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> Book:
        return Book({k: dict(v) for k, v in self.handles.items()}, dict(self.actor_ctx), dict(self.io_types),
                    dict(self.reasons), {k: dict(v) for k, v in self.fetches.items()})


#: the text an adapter uses for each abort reason (the ERR_ABORTED message is the first reason's text)
REASON_TEXT = {"REASON_A": "iospec abort reason A", "REASON_B": "iospec abort reason B"}


class ModelRun:
    """One model configuration and state, advanced operation by operation."""

    def __init__(self, model: str, identities: Mapping[str, Sequence[str]], *, consts: Mapping[str, int] | None = None,
                 counters: Mapping[str, int] | None = None) -> None:
        self.model_name = model
        self.model: Model = get_model(model)
        self.ids: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        bounds = dict(self.model.bounds)
        for sort in self.model.id_sorts:
            names = list(identities.get(sort.name, ()))
            self.ids[sort.name] = names
            assert sort.bound is not None
            sizes[sort.bound] = max(1, len(names))
        for name, value in (counters or {}).items():
            if name in bounds:
                sizes[name] = max(int(value), 1)
        known = {c.name for c in self.model.consts}
        cs = {k: int(v) for k, v in (consts or {}).items() if k in known}
        self.dm = compiled(model, tuple(sorted(sizes.items())), tuple(sorted(cs.items())))
        self.index = {sort: {n: k for k, n in enumerate(names)} for sort, names in self.ids.items()}
        self.state: tuple[int, ...] = self.dm.initial
        self.book = Book()
        self.path: list[Taken] = []
        self._succ: dict[tuple[int, ...], dict[int, tuple[int, ...]]] = {}
        self.actions = {a.name for a in self.model.actions}
        #: name the failing guard in errors (the generator's search turns it off: it only needs yes or no)
        self.explain = True

    # -- copies (for search) ---------------------------------------------------------------------
    def clone(self) -> ModelRun:
        other = object.__new__(ModelRun)
        other.__dict__.update(self.__dict__)
        other.book = self.book.copy()
        other.path = list(self.path)
        return other

    # -- values -------------------------------------------------------------------------------------
    def _encode(self, sort: Sort, value: Any, where: str) -> int:
        ids = sort.id_sort()
        if ids is not None:
            if value is None and isinstance(sort, OptSort):
                return -1
            table = self.index.get(ids.name, {})
            if value not in table:
                raise ScenarioInvalid(f"{where}: {value!r} is not a {ids.name} of this scenario")
            return table[value]
        if isinstance(sort, BoolSort):
            if isinstance(value, bool):
                return int(value)
            if value in ("true", "false"):
                return int(value == "true")
        elif isinstance(sort, EnumSort):
            if isinstance(value, str) and value in sort.members:
                return sort.members.index(value)
        elif isinstance(sort, IntSort) and isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ScenarioInvalid(f"{where}: {value!r} is not a {sort.name}")

    def render(self, sort: Sort, v: int) -> str:
        ids = sort.id_sort()
        if ids is not None:
            if v < 0:
                return "none"
            names = self.ids.get(ids.name, [])
            return names[v] if v < len(names) else f"{ids.name}#{v}"
        return str(sort.render(v))

    def cell(self, name: str, *keys: str) -> str:
        """The current value of ``name[keys]`` (a scalar with no keys), rendered with the scenario's names."""
        decl = self.model.decl(name)
        if isinstance(decl, Func):
            idx = tuple(self._encode(s, k, name) for s, k in zip(decl.index_sorts, keys))
            v = self.state[self.dm.layout.slot(decl, idx)]
            return self.render(decl.value_sort, int(v))
        return self.render(decl.sort, int(self.state[self.dm.layout.base[decl]]))

    def has(self, name: str) -> bool:
        try:
            self.model.decl(name)
            return True
        except KeyError:
            return False

    # -- arguments ----------------------------------------------------------------------------------
    def resolve(self, source: Any, op_args: Mapping[str, Any]) -> Any:
        """A call argument: a literal, an operation parameter, ``x.attr`` (bookkeeping) or ``cell[x]``."""
        if not isinstance(source, str):
            return source
        if source.startswith("'"):
            return source.strip("'")
        if "[" in source:
            func, _, rest = source.partition("[")
            return self.cell(func, *(str(self.resolve(k.strip(), op_args)) for k in rest.rstrip("]").split(",")))
        if "." in source:
            name, _, attr = source.partition(".")
            ident = op_args[name]
            if attr == "ctx" and ident in self.book.actor_ctx:
                return self.book.actor_ctx[ident]
            h = self.book.handles.get(ident)
            if h is None:
                raise ScenarioInvalid(f"{ident!r} is not a handle or actor created earlier in this scenario")
            return h[attr]
        return op_args[source]

    # -- actions -------------------------------------------------------------------------------------
    def _successors(self) -> dict[int, tuple[int, ...]]:
        s = self.state
        got = self._succ.get(s)
        if got is None:
            got = dict(self.dm.successors(s))
            if len(self._succ) > 4096:
                self._succ.clear()
            self._succ[s] = got
        return got

    def _instances(self, call: Call, op_args: Mapping[str, Any]) -> list[tuple[int, dict[str, str]]]:
        """The instances a call stands for (both twins of a checked action), with rendered arguments."""
        names = [call.action]
        if any(a.name == f"{call.action}_rejected" for a in self.model.actions):
            names.append(f"{call.action}_rejected")
        action = self.model.action(call.action)
        fixed: dict[str, Any] = {}
        for p in action.params:
            if p.name == call.each:
                continue
            if p.name not in call.args:
                raise ScenarioInvalid(f"internal: {call.action} has no argument {p.name}")
            fixed[p.name] = self.resolve(call.args[p.name], op_args)
        candidates: list[dict[str, Any]] = [fixed]
        if call.each:
            param = next(p for p in action.params if p.name == call.each)
            sort = param.sort.id_sort()
            assert sort is not None
            candidates = [{**fixed, call.each: n} for n in self.ids.get(sort.name, [])]
        out = []
        for args in candidates:
            for name in names:
                act = self.model.action(name)
                vals = tuple(self._encode(p.sort, args[p.name], f"{name}.{p.name}") for p in act.params)
                inst = self.dm.instance(name, vals)
                out.append((inst.index, {p.name: self.render(p.sort, v) for p, v in zip(act.params, vals)}))
        return out

    def enabled_instance(self, call: Call, op_args: Mapping[str, Any]) -> tuple[int, dict[str, str]] | None:
        succ = self._successors()
        for idx, args in self._instances(call, op_args):
            if idx in succ:
                return idx, args
        return None

    def why_not(self, call: Call, op_args: Mapping[str, Any]) -> str:
        """Which guard stops ``call`` (for error messages)."""
        if not self.explain:
            return f"{call.action} is not enabled"
        reasons = []
        for idx, args in self._instances(call, op_args):
            inst = self.dm.instances[idx]
            if inst.action.rejected:
                continue
            try:
                failing = [g for g in self.dm.failing_guards(self.state, inst) if g != "some_check_fails"]
            except Exception:  # a guard reading an unset optional (owner[o] of an object never created)
                failing = ["(a guard reading an identity that does not exist yet)"]
            checks = {c[0] for c in inst.action.checks}
            failing = [g for g in failing if g not in checks]
            shown = ", ".join(f"{k}={v}" for k, v in args.items())
            reasons.append(f"{call.action}({shown}): guard {', '.join(failing) or '(a counter bound)'} is false")
        return "; ".join(reasons) or f"{call.action} is not enabled"

    def take(self, idx: int, args: dict[str, str]) -> Taken:
        inst = self.dm.instances[idx]
        outputs = self.dm.outputs(self.state, inst)
        self.state = self._successors()[idx]
        taken = Taken(self.model_name, inst.action.name, args, outputs)
        self.path.append(taken)
        return taken

    def _applies(self, alt: tuple[Call, ...]) -> bool:
        """An alternative applies when the model has its first required action."""
        first = next((c for c in alt if not (c.optional and c.action not in self.actions)), None)
        return first is not None and first.action in self.actions

    def run_alternative(self, alt: tuple[Call, ...], op_args: Mapping[str, Any], where: str) -> list[Taken]:
        out = []
        for call in alt:
            if call.action not in self.actions:
                if call.optional:
                    continue
                raise ScenarioInvalid(f"{where}: model {self.model_name} has no action {call.action}")
            if call.each:
                while True:
                    found = self.enabled_instance(call, op_args)
                    if found is None:
                        break
                    out.append(self.take(*found))
                continue
            found = self.enabled_instance(call, op_args)
            if found is None:
                if call.optional:
                    continue
                raise ScenarioInvalid(f"{where}: the model does not allow {self.why_not(call, op_args)}")
            out.append(self.take(*found))
        return out

    def run_group(self, group: Group, op_args: Mapping[str, Any], where: str) -> list[Taken]:
        """The first alternative whose first action is enabled."""
        tried = []
        for alt in group:
            if not self._applies(alt):
                continue
            first = next(c for c in alt if c.action in self.actions)
            if first.each or self.enabled_instance(first, op_args) is not None:
                return self.run_alternative(alt, op_args, where)
            tried.append(self.why_not(first, op_args))
        raise ScenarioInvalid(f"{where}: the model allows none of its alternatives: {'; '.join(tried) or 'none apply'}")

    # -- operations -----------------------------------------------------------------------------------
    def supports(self, op: Op, args: Mapping[str, Any]) -> bool:
        """Whether the predicting model can say anything about ``op`` (some alternative has its actions)."""
        if op.name in ("fetch", "scheduled"):
            return "request" in self.actions
        if not op.alternatives:
            return True
        return any(self._applies(alt) for alt in op.alternatives)

    def perform(self, op_name: str, args: Mapping[str, Any], where: str = "") -> Prediction:
        """Advance the model by operation ``op_name`` and return the prediction (raises ScenarioInvalid)."""
        op = OPS[op_name]
        where = where or op_name
        pred = Prediction(op_name)
        args = {**op.defaults, **args}
        self._book_before(op, args, where)
        if op.name in ("fetch", "scheduled"):
            groups, resume = handler_calls(op.name, args)
            for g in groups:
                pred.taken += self.run_group(g, args, where)
            if op.name == "fetch":
                self.book.fetches[args["r"]] = {**args, "resume": resume}
            self._predict_outputs(op, args, pred)
            return pred
        if op.name == "complete_task" and self.book.handles[args["h"]].get("resume") is not None:
            pred.taken += self.run_group(op.alternatives, args, where)
            r = self.book.handles[args["h"]]["fetch"]
            fetch = self.book.fetches[r]
            groups, again = resume_calls(fetch, self.book.handles[args["h"]]["resume"])
            for g in groups:
                pred.taken += self.run_group(g, fetch, where)
            fetch["resume"] = again
            self._predict_outputs(op, args, pred)
            return pred
        if not op.alternatives:
            self._predict_outputs(op, args, pred)
            return pred
        if op.choice == "observed":
            base = self.state
            base_path = len(self.path)
            for alt in op.alternatives:
                if not self._applies(alt):
                    continue
                first = next(c for c in alt if c.action in self.actions)
                if self.enabled_instance(first, args) is None:
                    continue
                taken = self.run_alternative(alt, args, where)
                outcome = self._observed_outputs(op, args, taken)
                pred.allowed.append({"action": taken[0].action, **outcome, "taken": taken, "state": self.state})
                self.state = base
                del self.path[base_path:]
            if not pred.allowed:
                tried = "; ".join(self.why_not(next(c for c in alt if c.action in self.actions), args)
                                  for alt in op.alternatives if self._applies(alt))
                raise ScenarioInvalid(f"{where}: no ending is possible yet: {tried}")
            return pred
        pred.taken = self.run_group(op.alternatives, args, where)
        self._predict_outputs(op, args, pred)
        return pred

    def choose(self, pred: Prediction, index: int) -> None:
        """Commit to the ``index``-th allowed ending of an observed-choice prediction."""
        chosen = pred.allowed[index]
        self.state = chosen["state"]
        self.path.extend(chosen["taken"])
        pred.taken = list(chosen["taken"])
        pred.expect = {k: v for k, v in chosen.items() if k not in ("taken", "state", "action")}

    def _book_before(self, op: Op, args: dict[str, Any], where: str) -> None:
        book = self.book
        h = args.get("h")
        if op.handle_kinds:
            if h not in book.handles:
                raise ScenarioInvalid(f"{where}: handle {h!r} was not created earlier in this scenario")
            kind = book.handles[h]["kind"]
            if kind not in op.handle_kinds:
                raise ScenarioInvalid(f"{where}: {op.name} needs a {' or '.join(op.handle_kinds)} handle; {h} is a "
                                      f"{kind} handle")
        if op.creates:
            assert isinstance(h, str)
            if h in book.handles:
                raise ScenarioInvalid(f"{where}: handle {h!r} already exists")
            book.handles[h] = {"kind": op.creates, "ctx": args.get("c"), "thread": args.get("t"),
                               "isolate": args.get("i")}
        if op.name == "create_actor":
            book.actor_ctx[args["a"]] = args["c"]
        if op.name == "add_object":
            book.io_types[args["o"]] = args.get("io_type", "TestObject")
        if op.name == "abort":
            book.reasons.setdefault(args["c"], args["reason"])
        if op.name == "await_hang":
            book.reasons.setdefault(args["c"], "HANG")
        if op.name == "fetch" and args.get("actor") is not None:
            a = args["actor"]
            if book.actor_ctx.get(a) != args["c"]:
                raise ScenarioInvalid(f"{where}: {a} is not an actor created with context {args['c']} (create_actor)")
        if op.name in ("fetch", "scheduled"):
            for step in args["handler"]:
                if step["do"] in ("wait_until", "await_io"):
                    hh = step["h"]
                    if hh in book.handles:
                        raise ScenarioInvalid(f"{where}: handle {hh!r} already exists")
                    book.handles[hh] = {"kind": "wait_until" if step["do"] == "wait_until" else "task",
                                        "ctx": args["c"], "thread": args["t"], "isolate": None,
                                        "fetch": args["r"]}
            resume_at = None
            for k, step in enumerate(args["handler"]):
                if step["do"] == "await_io":
                    resume_at = k + 1
                    book.handles[step["h"]]["resume"] = resume_at
        if op.name == "cancel_fetch":
            fetch = book.fetches.get(args["r"])
            if fetch is None or fetch.get("resume") is None:
                raise ScenarioInvalid(f"{where}: {args['r']} is not a fetch whose handler waits for I/O")
            fetch["resume"] = None

    # -- predicted observations --------------------------------------------------------------------------
    def _message(self, result: str, op: Op, args: Mapping[str, Any]) -> str | None:
        if result == "OK":
            return None
        if result == "ERR_ABORTED":
            c = args.get("c")
            reason = self.book.reasons.get(str(c)) if c is not None else None
            if reason == "HANG":  # aborted by the hang detector: workerd's hang message
                return MESSAGES["HANG"]
            return REASON_TEXT.get(reason or "", MESSAGES["ERR_ABORTED"])
        text = MESSAGES[result]
        if result == "ERR_CALLED_TWICE":
            text = text.format(method="runScheduled" if op.name == "scheduled_again" else "request")
        if result in ("ERR_DIFFERENT_REQUEST", "ERR_DIFFERENT_DO") and "o" in args:
            text += IO_TYPE_SUFFIX.format(io_type=self.book.io_types.get(args["o"], "TestObject"))
        return text

    def _observed_outputs(self, op: Op, args: Mapping[str, Any], taken: list[Taken]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in op.observe:
            if key == "phase":
                out["phase"] = self.cell("phase", args["r"])
            else:
                for t in taken:
                    if key in t.outputs:
                        out[key] = t.outputs[key]
                if key == "warning" and key not in out:
                    out[key] = "NO_WARNING"
        return out

    def _predict_outputs(self, op: Op, args: Mapping[str, Any], pred: Prediction) -> None:
        expect: dict[str, Any] = {}
        for key in op.observe:
            if key == "result":
                result = next((t.outputs["result"] for t in pred.taken if "result" in t.outputs), "OK")
                expect["result"] = result
                expect["message"] = self._message(result, op, args)
            elif key in ("phase",):
                expect["phase"] = self.cell("phase", args["r"])
            elif key == "state":
                expect["state"] = self.cell("ctx_state", args["c"])
            elif key == "aborted":
                expect["aborted"] = self.cell("abort_reason", args["c"]) != "NOT_ABORTED"
            elif key in ("node", "queued", "destroyed_on", "destructions"):
                o = args["o"]
                node = self.cell("node", o)
                if key == "node":
                    expect["node"] = node
                elif key == "queued":
                    expect["queued"] = self.cell("queued", o) == "true"
                elif key == "destructions":
                    expect["destructions"] = 1 if node == "FREED" else 0
                else:
                    owner = self.cell("owner", o)
                    expect["destroyed_on"] = self.cell("ctx_thread", owner) if node == "FREED" else None
            elif key == "response":
                responses = {}
                for t in pred.taken:
                    if "response" in t.outputs and t.outputs["response"] != "PENDING":
                        responses[t.args.get("r", "")] = t.outputs["response"]
                expect["response"] = responses
            else:
                values = [t.outputs[key] for t in pred.taken if key in t.outputs]
                if key == "log":
                    expect[key] = "ASYNC_TASK" if "ASYNC_TASK" in values else "NO_LOG"
                elif key == "warning":
                    expect[key] = next((v for v in values if v != "NO_WARNING"), "NO_WARNING")
                elif values:
                    expect[key] = values[-1]
        pred.expect = expect
