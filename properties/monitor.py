"""Monitors: the models running alongside an implementation, one event at a time.

A `Monitor` holds one `SparseModel` per model it watches.  Each event (see
docs/trace-format.md) names a model action and its parameters; for every watched model that
has the action the monitor

1. maps the event's identities to model identities (interning new ones per sort),
2. predicts the result of an operation with checks (``OK`` or the first failing check's
   error) and compares it with what the implementation reported,
3. requires the guard of the action that applies (a step the model does not allow is a
   violation of the rules that action implements),
4. compares any reported outputs with the predicted ones,
5. applies the step and re-checks, incrementally, the invariants whose cells changed.

The first problem stops the run with a `MonitorViolation` naming the rule ids, the event, the
model state of the identities involved, and the last events.  This is how "real runs never
touch I/O across contexts and never delete on the wrong thread" is checked on every run.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model.catalog import get_model
from model.core import Model
from model.core.model import Action, Func, Invariant, StateVar
from model.core.render import render_expr
from model.core.sorts import IdSort, OptSort, Sort
from model.core.sparse import Operation, SparseModel, enum_value

__all__ = ["Monitor", "MonitorViolation", "cell_label", "external_name", "render_cells", "render_outputs",
           "render_result", "render_value"]


@dataclass
class MonitorViolation(Exception):
    """A step the models do not allow, a wrong result, or a broken invariant."""

    kind: str  # not_allowed | wrong_result | wrong_output | invariant | unknown_op | bad_event
    message: str
    rules: tuple[str, ...] = ()
    event: Mapping[str, Any] | None = None
    model: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    recent: list[Mapping[str, Any]] = field(default_factory=list)
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        rules = f" [{', '.join(self.rules)}]" if self.rules else ""
        return f"{where}{self.message}{rules}"

    def report(self) -> str:
        lines = [str(self)]
        if self.event is not None:
            lines.append(f"  event: {_compact(self.event)}")
        if self.state:
            lines.append(f"  model state ({self.model}):")
            for k, v in self.state.items():
                lines.append(f"    {k} = {v}")
        if self.recent:
            lines.append(f"  last {len(self.recent)} events:")
            for e in self.recent:
                lines.append(f"    {_compact(e)}")
        return "\n".join(lines)


def _compact(e: Mapping[str, Any]) -> str:
    import json

    return json.dumps(e, separators=(",", ":"), sort_keys=False)


@dataclass
class _Evaluation:
    """One event decoded for one model: the action that applies, its arguments, a blocking guard, predictions."""

    action: Action
    index: int
    vals: list[int]
    blocked: str | None
    predicted: dict[str, str]


class _Watched:
    def __init__(self, model: Model, consts: Mapping[str, int]) -> None:
        self.model = model
        self.sm = SparseModel(model, {k: v for k, v in consts.items() if k in {c.name for c in model.consts}})
        self.ops: dict[str, Operation] = dict(self.sm.operations)
        for op in list(self.sm.operations.values()):
            if op.rejected is not None:
                self.ops[op.rejected.name] = op
        fns = self.sm.fn
        self.guard = {i: fns(f"guard{i}") for i in range(len(model.actions)) if f"guard{i}" in self.sm.ns}
        self.checks = {i: fns(f"checks{i}") for i in range(len(model.actions)) if f"checks{i}" in self.sm.ns}
        self.outputs = {i: fns(f"outputs{i}") for i in range(len(model.actions)) if f"outputs{i}" in self.sm.ns}
        self.apply = {i: fns(f"apply{i}") for i in range(len(model.actions)) if f"apply{i}" in self.sm.ns}


class Monitor:
    """Run ``models`` alongside an implementation; `step` raises `MonitorViolation`."""

    def __init__(
        self,
        models: Sequence[str | Model],
        *,
        history: int = 20,
        consts: Mapping[str, int] | None = None,
        check_invariants: bool = True,
    ) -> None:
        self.models = [get_model(m) if isinstance(m, str) else m for m in models]
        # A model another watched model extends is checked by the extension: refinement conjoins
        # the base's guards and checks and copies its invariants, so stepping both is redundant work.
        extended = {b for m in self.models for b in m.bases}
        self.watched = [_Watched(m, consts or {}) for m in self.models if m.name not in extended or m.fault]
        #: a skipped base model -> the watched extension whose state includes the base's variables
        self.covered: dict[str, _Watched] = {
            m.name: next(w for w in self.watched if m.name in w.model.bases)
            for m in self.models if m.name in extended and not m.fault
        }
        self.by_op: dict[str, list[_Watched]] = collections.defaultdict(list)
        for w in self.watched:
            for name in w.ops:
                self.by_op[name].append(w)
        self.ids: dict[str, dict[Any, int]] = collections.defaultdict(dict)
        self.names: dict[str, list[Any]] = collections.defaultdict(list)
        self.recent: collections.deque[Mapping[str, Any]] = collections.deque(maxlen=history)
        self.check_invariants = check_invariants
        self.events = 0
        self.per_op: collections.Counter[str] = collections.Counter()
        #: ``"model.action"`` -> how often that transition was taken (rejected twins counted separately)
        self.per_action: collections.Counter[str] = collections.Counter()

    # -- the step ----------------------------------------------------------------------------
    def step(self, event: Mapping[str, Any], line: int | None = None, *, predict: bool = False) -> dict[str, str]:
        """Check and apply one event; returns what the models predict for it (``result`` and outputs).

        With ``predict=True`` the event need not report a ``result``: the models' prediction is
        taken (the conformance suite replays behaviours this way to derive expected observations).
        """
        try:
            return self._step(event, predict=predict)
        except MonitorViolation as v:
            v.line = line
            v.recent = list(self.recent)
            raise
        finally:
            self.recent.append(event)

    def predict(self, event: Mapping[str, Any]) -> dict[str, str] | None:
        """What the models predict for ``event`` without applying it; None if some watched model's guard forbids it."""
        op = event.get("op")
        targets = self.by_op.get(op) if isinstance(op, str) else None
        if not targets:
            raise MonitorViolation("unknown_op", f"no watched model has an action {op!r}", event=event)
        out: dict[str, str] = {}
        for w in targets:
            evaluated = self._evaluate(w, str(op), event.get("args", {}), event, predict=True)
            if evaluated.blocked is not None:
                return None
            out.update(evaluated.predicted)
        return out

    def reset(self) -> None:
        """Forget every state change and identity: the models are back in their initial state."""
        for w in self.watched:
            w.sm.reset()
        self.ids.clear()
        self.names.clear()
        self.recent.clear()
        self.events = 0
        self.per_op.clear()
        self.per_action.clear()

    def _step(self, event: Mapping[str, Any], *, predict: bool = False) -> dict[str, str]:
        op = event.get("op")
        if not isinstance(op, str):
            raise MonitorViolation("bad_event", "event has no 'op' string", event=event)
        if op.startswith("note."):
            return {}
        targets = self.by_op.get(op)
        if not targets:
            raise MonitorViolation(
                "unknown_op",
                f"no watched model ({', '.join(m.name for m in self.models)}) has an action {op!r}",
                event=event,
            )
        args = event.get("args", {})
        if not isinstance(args, Mapping):
            raise MonitorViolation("bad_event", "'args' must be an object", event=event)
        self.events += 1
        self.per_op[op] += 1
        predicted: dict[str, str] = {}
        for w in targets:
            predicted.update(self._step_model(w, op, args, event, predict=predict))
        return predicted

    def _decode_args(self, w: _Watched, action: Action, args: Mapping[str, Any], event: Mapping[str, Any]) -> list[int]:
        out = []
        for p in action.params:
            if p.name not in args:
                raise MonitorViolation(
                    "bad_event", f"{action.operation or action.name}: missing argument {p.name!r}", event=event,
                    model=w.model.name,
                )
            v = args[p.name]
            sort = p.sort
            if isinstance(sort, IdSort):
                out.append(self._intern(sort.name, v))
            elif isinstance(sort, OptSort):
                out.append(-1 if v is None else self._intern(sort.inner.name, v))
            else:
                try:
                    out.append(enum_value(sort, v))
                except ValueError as e:
                    raise MonitorViolation("bad_event", f"argument {p.name}: {e}", event=event) from None
        return out

    def _intern(self, sort: str, external: Any) -> int:
        table = self.ids[sort]
        key = external if isinstance(external, (str, int)) and not isinstance(external, bool) else repr(external)
        v = table.get(key)
        if v is None:
            v = len(table)
            table[key] = v
            self.names[sort].append(key)
            for w in self.watched:
                if sort in w.sm.id_sorts:
                    w.sm.grow(sort, v + 1)
        return v

    def _evaluate(self, w: _Watched, op: str, args: Mapping[str, Any], event: Mapping[str, Any], *,
                  predict: bool) -> _Evaluation:
        """Decode the event for one model; predict the result and outputs; compare what the event reports."""
        operation = w.ops[op]
        act = operation.action
        vals = self._decode_args(w, act, args, event)
        chosen_index = operation.index
        chosen = act
        predicted: dict[str, str] = {}
        if act.checks:
            failing = w.checks[operation.index](*vals)
            if failing < 0:
                predicted_result = "OK"
            else:
                assert operation.rejected is not None and operation.rejected_index is not None
                chosen, chosen_index = operation.rejected, operation.rejected_index
                predicted_result = render_result(act, w.outputs[chosen_index](*vals)["result"])
            predicted["result"] = predicted_result
            reported = event.get("result")
            if op == operation.rejected.name if operation.rejected else False:
                reported = reported or "(some error)"
            if reported is None and predict:
                reported = predicted_result
            if reported is None:
                raise MonitorViolation(
                    "bad_event",
                    f"{op} has checks, so the event must report a 'result' (the model predicts {predicted_result})",
                    event=event, model=w.model.name,
                )
            if reported != predicted_result and not (reported == "(some error)" and predicted_result != "OK"):
                label = act.checks[failing][0] if failing >= 0 else None
                why = f" (check {label!r} fails: {render_expr(act.checks[failing][1])})" if label else ""
                raise MonitorViolation(
                    "wrong_result",
                    f"{w.model.name}: {op} reported {reported}, the model predicts {predicted_result}{why}",
                    rules=act.rules, event=event, model=w.model.name, state=self._excerpt(w, act, vals),
                )
        elif "result" in event and event["result"] not in ("OK", None):
            raise MonitorViolation(
                "wrong_result", f"{w.model.name}: {op} cannot fail, but reported {event['result']}",
                rules=act.rules, event=event, model=w.model.name,
            )
        blocked = w.guard[chosen_index](*vals)
        # outputs are defined where the guard holds (they may unwrap what the guard checked)
        if blocked is None and chosen_index in w.outputs:
            predicted.update(render_outputs(chosen, w.outputs[chosen_index](*vals)))
        return _Evaluation(chosen, chosen_index, vals, blocked, predicted)

    def _step_model(self, w: _Watched, op: str, args: Mapping[str, Any], event: Mapping[str, Any], *,
                    predict: bool = False) -> dict[str, str]:
        ev = self._evaluate(w, op, args, event, predict=predict)
        chosen, chosen_index, vals, sm = ev.action, ev.index, ev.vals, w.sm
        label = ev.blocked
        if label is not None:
            g = dict(chosen.guard)[label]
            raise MonitorViolation(
                "not_allowed",
                f"{w.model.name}: {op} is not allowed here: guard {label!r} is false ({render_expr(g)})",
                rules=chosen.rules, event=event, model=w.model.name, state=self._excerpt(w, chosen, vals),
            )
        reported_outputs = event.get("outputs")
        if reported_outputs:
            for name, value in reported_outputs.items():
                if name in ev.predicted and name != "result":
                    pv = ev.predicted[name]
                    got = ("true" if value else "false") if isinstance(value, bool) else str(value)
                    if got != pv:
                        raise MonitorViolation(
                            "wrong_output", f"{w.model.name}: {op} output {name}={value}, the model predicts {pv}",
                            rules=chosen.rules, event=event, model=w.model.name,
                        )
        w.apply[chosen_index](*vals)
        self.per_action[f"{w.model.name}.{chosen.name}"] += 1
        if self.check_invariants:
            # one incremental check for both kinds (each of check_invariants_incrementally and
            # check_transition_invariants runs the whole check and keeps its half): state ones first
            judged = sm.check_step()
            broken: list[Invariant] = ([inv for inv in judged if not inv.transition]
                                       + [inv for inv in judged if inv.transition])
            if broken:
                inv = broken[0]
                sm.clear_changes()
                raise MonitorViolation(
                    "invariant",
                    f"{w.model.name}: after {op}, invariant {inv.name} is violated: {inv.doc.splitlines()[0]}",
                    rules=inv.rules, event=event, model=w.model.name, state=self._excerpt(w, chosen, vals),
                )
        sm.clear_changes()
        return ev.predicted

    # -- views --------------------------------------------------------------------------------
    def _excerpt(self, w: _Watched, act: Action, vals: Sequence[int]) -> dict[str, Any]:
        """The cells of the identities the event mentions, plus the scalar variables."""
        sm = w.sm
        involved: dict[str, set[int]] = collections.defaultdict(set)
        for p, v in zip(act.params, vals):
            ids = p.sort.id_sort()
            if ids is not None and v >= 0:
                involved[ids.name].add(v)
        # one hop: identities the involved cells point to (owner[o] = c shows c's cells too)
        unary = [d for d in w.model.state if isinstance(d, Func) and len(d.index_sorts) == 1
                 and d.index_sorts[0].id_sort() is not None]
        for d in unary:
            target = d.value_sort.id_sort()
            if target is None:
                continue
            for x in list(involved.get(d.index_sorts[0].name, ())):
                v = sm.read_cell(d, (x,))
                if v >= 0:
                    involved[target.name].add(v)
        out: dict[str, Any] = {}
        for var in w.model.state:
            if isinstance(var, StateVar):
                if var.ghost and not sm.read_var(var):
                    continue
                out[var.name] = var.sort.render(sm.read_var(var))
        for d in unary:
            sname = d.index_sorts[0].name
            for x in sorted(involved.get(sname, ())):
                out[f"{d.name}[{self.external(sname, x)}]"] = self._render(d.value_sort, sm.read_cell(d, (x,)))
        return out

    def _render(self, sort: Any, v: int) -> str:
        return render_value(self.names, sort, v)

    def external(self, sort: str, v: int) -> Any:
        return external_name(self.names, sort, v)

    def tracked(self, model: str) -> tuple[_Watched, list[StateVar | Func]]:
        """The watched model that holds ``model``'s variables, and those variables (its declarations of them).

        A base model that an extension covers (`covered`) is read from the extension."""
        watched = [(w, w.model) for w in self.watched]
        if model in self.covered:  # the base's variables, as the extension tracks them
            watched = [(self.covered[model], next(m for m in self.models if m.name == model))]
        for w, declared in watched:
            if declared.name == model:
                return w, [w.model.decl(x.name) for x in declared.state]
        raise KeyError(model)

    def state(self, model: str) -> dict[str, Any]:
        """The model state, with identities shown by the implementation's names."""
        w, decls = self.tracked(model)
        sm = w.sm
        return {d.name: render_value(self.names, d.sort, sm.read_var(d)) if isinstance(d, StateVar)
                else render_cells(self.names, d, sm.cells(d)) for d in decls}

    def check_all(self) -> list[tuple[str, Invariant]]:
        """Every invariant, evaluated in full (e.g. at the end of a run)."""
        return [(w.model.name, inv) for w in self.watched for inv in w.sm.check_invariants_fully()]

    def tracked_func(self, model: str, func: str) -> tuple[_Watched, Func]:
        """The watched model that holds ``model``'s function ``func`` (`tracked`), and its declaration of it."""
        w, decls = self.tracked(model)
        d = next((x for x in decls if x.name == func), None)
        if not isinstance(d, Func):
            raise KeyError(f"{model} has no function {func!r}")
        return w, d

    def func_cells(self, model: str, func: str) -> dict[str, str]:
        """``state(model)[func]``, rendering only that function."""
        w, d = self.tracked_func(model, func)
        return render_cells(self.names, d, w.sm.cells(d))


# -- rendering (shared with the compiled engine's state and predictions: properties/compiled/engine.py) --------------
def external_name(names: Mapping[str, Sequence[Any]], sort: str, v: int) -> Any:
    """The implementation's name of identity ``v`` of ``sort`` (``names``: per sort, the names by identity)."""
    known = names.get(sort, ())
    return known[v] if v < len(known) else f"<fresh {sort} {v}>"


def render_value(names: Mapping[str, Sequence[Any]], sort: Sort, v: int) -> str:
    """A value as `Monitor.state` shows it: identities by name (or none), other values as the sort renders them."""
    ids = sort.id_sort()
    if ids is not None:
        return "none" if v < 0 else str(external_name(names, ids.name, v))
    return str(sort.render(v))


def cell_label(names: Mapping[str, Sequence[Any]], d: Func, key: Any) -> str:
    """The label `Monitor.state` shows for the cell ``key`` of ``d`` (an identity or value, or a tuple of them)."""
    ks = key if isinstance(key, tuple) else (key,)
    return ",".join(
        str(external_name(names, s.name, k)) if s.id_sort() is not None else s.render(k)
        for s, k in zip(d.index_sorts, ks)
    )


def render_cells(names: Mapping[str, Sequence[Any]], d: Func, cells: Mapping[Any, int]) -> dict[str, str]:
    """The non-default ``cells`` of ``d`` (key: an identity or a tuple of them) as `Monitor.state` shows them."""
    return {cell_label(names, d, key): render_value(names, d.value_sort, v) for key, v in cells.items()}


def render_result(action: Action, value: int) -> str:
    """The predicted ``result`` of an operation with checks whose first failing check gives ``value``."""
    return action.checks[0][2].sort.render(value)


def render_outputs(action: Action, values: Mapping[str, int]) -> dict[str, str]:
    """The predicted outputs (``result`` aside) of ``action`` from their values."""
    sorts = dict(action.outputs)
    return {name: sorts[name].sort.render(v) for name, v in values.items() if name != "result"}


def run_events(models: Sequence[str | Model], events: Iterable[Mapping[str, Any]]) -> Monitor:
    """Feed ``events`` to a fresh monitor (raises on the first violation)."""
    mon = Monitor(models)
    for i, e in enumerate(events, 1):
        mon.step(e, line=i)
    return mon
