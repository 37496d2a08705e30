"""Diagrams derived from a model: project the explored state graph onto some cells, or draw a trace.

*Projection* (`project`): explore a small configuration exhaustively
(``properties.explorer``, ``graph=True``), map every reachable state to the value of one or
more *cells* (``phase[r0]``, ``ctx_state[c0]``, or a scalar variable), and keep every
transition whose action changes that value, labelled by the action's name.  The diagram
therefore shows exactly the moves the model allows for one object, and nothing drawn by hand.
The graph's edges are recomputed from the compiled model's successor function rather than
read from the networkx graph, because a ``DiGraph`` keeps one action per pair of states.

*Sequences* (`milestone_trace`, `sequence`): the shortest run that passes a list of
milestones in order (each a set of ``cell=value`` conditions), drawn as a sequence diagram
whose arrows come from a table mapping each action to its (from, to) participants.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from model.core import Config, ConfigError, DenseModel, Func, IdSort, Instance
from model.core.model import StateVar
from properties.explorer import Explorer, Trace, TraceStep

from .graph import DiagramState, DiagramTransition, Message, SequenceGraph, SequenceNote, StateGraph, safe_id

__all__ = ["Arrow", "Cell", "Milestone", "milestone_trace", "project", "resolve_cell", "sequence"]

_CELL = re.compile(r"^\s*(\w+)\s*(?:\[\s*([^\]]*)\])?\s*$")


@dataclass(frozen=True)
class Cell:
    """One slot of the dense state: a scalar variable or one cell ``f[a, b]`` of a function."""

    text: str
    name: str
    slot: int
    render: Callable[[int], str]
    #: the identities in the index (``r0`` in ``phase[r0]``), as (sort, value)
    ids: tuple[tuple[IdSort, int], ...] = ()


def resolve_cell(dm: DenseModel, text: str) -> Cell:
    """Parse ``"name"`` or ``"name[a, b]"`` (values as rendered, e.g. ``c0``) into a `Cell`; ConfigError if unknown."""
    m = _CELL.match(text)
    if not m:
        raise ConfigError(f"cell {text!r} is not NAME or NAME[INDEX, ...]")
    name, index = m.group(1), m.group(2)
    try:
        decl = dm.model.decl(name)
    except KeyError:
        names = ", ".join(d.name for d in dm.model.state)
        raise ConfigError(f"model {dm.model.name} has no variable {name!r}; its variables: {names}") from None
    sizes = dict(dm.config.sizes)
    if isinstance(decl, StateVar):
        if index is not None:
            raise ConfigError(f"cell {text!r}: {name} is a scalar variable, it takes no index")
        return Cell(text.strip(), name, dm.layout.base[decl], decl.sort.render)
    assert isinstance(decl, Func)
    parts = [p.strip() for p in (index or "").split(",") if p.strip()]
    if len(parts) != len(decl.index_sorts):
        sorts = ", ".join(s.name for s in decl.index_sorts)
        raise ConfigError(f"cell {text!r}: {name} takes {len(decl.index_sorts)} index(es) ({sorts})")
    args = []
    for part, sort in zip(parts, decl.index_sorts, strict=True):
        values = {sort.render(v): v for v in sort.values(sizes)}
        if part not in values:
            raise ConfigError(f"cell {text!r}: {part!r} is not a {sort.name} in {dm.config.describe()} "
                              f"(one of {', '.join(values)})")
        args.append(values[part])
    ids = tuple((sort, v) for sort, v in zip(decl.index_sorts, args, strict=True) if isinstance(sort, IdSort))
    return Cell(text.strip(), name, dm.layout.slot(decl, args), decl.value_sort.render, ids)


def _explore(config: Config, max_states: int) -> tuple[Explorer, list[tuple[int, ...]]]:
    ex = Explorer(config, compact=False)  # projections read cells of full states
    res = ex.run(graph=True, max_states=max_states, stop_on_violation=False, check_deadlocks=False)
    if not res.complete:
        raise ConfigError(f"{config.describe()} has more than {max_states:,} states; choose smaller bounds "
                          "for a diagram")
    assert res.graph is not None
    return ex, list(res.graph.nodes)


def project(
    config: Config,
    cells: str | Sequence[str],
    *,
    name: str,
    title: str,
    labels: Mapping[str, str] | None = None,
    max_states: int = 200_000,
) -> StateGraph:
    """The state graph of ``config`` projected onto ``cells`` (see the module docstring).

    A diagram state is one combination of the cells' values (joined with ``" · "``; a
    boolean cell shows its name when true and nothing when false).  ``labels`` renames
    values: ``{"UNBORN": "not created"}`` everywhere, ``{"handle=NONE": ""}`` for one
    variable (an empty name hides the part).  The value in the initial state is marked
    initial; values taken in the model's terminal states are marked final (the initial one
    only if nothing leaves it).  A move caused by an action on *another* identity of the
    projected object's sort (``deliver(r1)`` making ``r0`` superseded) says so in ``via``.
    """
    cell_texts = [cells] if isinstance(cells, str) else list(cells)
    ex, states = _explore(config, max_states)
    dm = ex.dm
    resolved = [resolve_cell(dm, c) for c in cell_texts]
    rename = dict(labels or {})

    def value(s: tuple[int, ...]) -> tuple[str, ...]:
        return tuple(c.render(int(s[c.slot])) for c in resolved)

    def label(v: tuple[str, ...]) -> str:
        parts = []
        for c, x in zip(resolved, v, strict=True):
            shown = rename.get(f"{c.name}={x}", rename.get(x, x))
            if x in ("true", "false"):  # a flag shows its name when set
                shown = rename.get(f"{c.name}={x}", c.name if x == "true" else "")
            if shown:
                parts.append(shown)
        return " · ".join(parts) or "(nothing)"

    order: dict[tuple[str, ...], None] = {}
    edges: dict[tuple[tuple[str, ...], tuple[str, ...], str, str], None] = {}
    ids_of_cells: dict[IdSort, set[int]] = {}
    for c in resolved:
        for sort, ident in c.ids:
            ids_of_cells.setdefault(sort, set()).add(ident)

    def via(inst: Instance) -> str:
        """``"another Req"`` when the action names identities of the projected object's sort, none of them its."""
        for sort, values in ids_of_cells.items():
            named = {v for p, v in zip(inst.action.params, inst.args, strict=True) if p.sort is sort}
            if named and not named & values:
                return f"another {sort.name}"
        return ""

    finals: set[tuple[str, ...]] = set()
    for s in states:  # BFS order: diagram states appear in the order they are first reached
        v = value(s)
        order.setdefault(v, None)
        if dm.terminal(s):
            finals.add(v)
        for i, t in dm.successors(s):
            w = value(t)
            if w != v:
                inst = dm.instances[i]
                edges.setdefault((v, w, inst.action.name, via(inst)), None)
    ids = {v: safe_id("_".join(v)) for v in order}
    if len(set(ids.values())) != len(ids):  # e.g. values differing only in punctuation
        ids = {v: f"{safe_id('_'.join(v))}_{k}" for k, v in enumerate(order)}
    init = value(dm.initial)
    if any(v == init for v, _, _, _ in edges):
        finals.discard(init)
    guards = {a.name: tuple(lbl for lbl, _ in a.guard) for a in dm.model.actions}
    graph = StateGraph(name=name, title=title)
    graph.states = [DiagramState(ids[v], label(v), initial=v == init, final=v in finals) for v in order]
    pos = {v: k for k, v in enumerate(order)}
    ranked = sorted(edges, key=lambda e: (pos[e[0]], pos[e[1]]))  # stable: discovery order among equals
    graph.transitions = [DiagramTransition(ids[v], ids[w], a, guards[a], by) for v, w, a, by in ranked]
    return graph


# ---- sequences ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Milestone:
    """A set of ``cell=value`` conditions that must all hold in one state of the run."""

    conditions: tuple[str, ...]

    @staticmethod
    def parse(text: str | Sequence[str]) -> Milestone:
        items = [text] if isinstance(text, str) else list(text)
        return Milestone(tuple(c.strip() for item in items for c in item.split("&") if c.strip()))

    def compile(self, dm: DenseModel) -> Callable[[tuple[int, ...]], bool]:
        tests = []
        for cond in self.conditions:
            cell_text, eq, want = cond.partition("=")
            if not eq:
                raise ConfigError(f"milestone condition {cond!r} is not CELL=VALUE")
            cell = resolve_cell(dm, cell_text)
            tests.append((cell.slot, cell.render, want.strip()))
        return lambda s: all(r(int(s[k])) == w for k, r, w in tests)

    def __str__(self) -> str:
        return " & ".join(self.conditions)


def milestone_trace(config: Config, milestones: Sequence[Milestone], *, max_states: int = 500_000) -> Trace:
    """The shortest run from the initial state that reaches each milestone in order (BFS over state x stage)."""
    ex = Explorer(config, compact=False)  # projections read cells of full states
    dm = ex.dm
    tests = [m.compile(dm) for m in milestones]

    def advance(s: tuple[int, ...], k: int) -> int:
        while k < len(tests) and tests[k](s):
            k += 1
        return k

    start = (dm.initial, advance(dm.initial, 0))
    parent: dict[tuple[tuple[int, ...], int], tuple[tuple[tuple[int, ...], int], int] | None] = {start: None}
    queue = deque([start])
    found = start if start[1] == len(tests) else None
    while queue and found is None:
        node = queue.popleft()
        s, k = node
        for i, t in dm.successors(s):
            if t == s:
                continue
            nxt = (t, advance(t, k))
            if nxt in parent:
                continue
            parent[nxt] = (node, i)
            if nxt[1] == len(tests):
                found = nxt
                break
            queue.append(nxt)
        if len(parent) > max_states:
            raise ConfigError(f"no run through the milestones within {max_states:,} states of {config.describe()}")
    if found is None:
        todo = " then ".join(str(m) for m in milestones)
        raise ConfigError(f"no run of {config.describe()} reaches {todo}")
    path: list[tuple[tuple[int, ...], int]] = []
    cur = found
    while parent[cur] is not None:
        prev, i = parent[cur]  # type: ignore[misc]
        path.append((prev[0], i))
        cur = prev
    path.reverse()
    states = [p for p, _ in path] + [found[0]]
    steps = []
    for (s, i), t in zip(path, states[1:], strict=True):
        inst = dm.instances[i]
        steps.append(TraceStep(inst, tuple(dm.diff(s, t)), dm.outputs(s, inst)))
    return Trace(config, tuple(states), tuple(steps), "milestones: " + " then ".join(str(m) for m in milestones))


@dataclass(frozen=True)
class Arrow:
    """How one action is drawn: from one participant to another (names may use the action's
    arguments, e.g. ``"thread {t}"``), with an optional label template (default: the action
    and its arguments) and a note drawn after it."""

    source: str
    target: str
    label: str = ""
    reply: bool = False
    note: str = ""


def sequence(trace: Trace, arrows: Mapping[str, Arrow], *, name: str, title: str,
             participants: Sequence[str] = ()) -> SequenceGraph:
    """A sequence diagram of ``trace``: one arrow per step, drawn as ``arrows[action]`` says.

    ``participants`` fixes the order of the first lifelines (others follow in order of first
    use).  A step whose action has no entry in ``arrows`` is a `ConfigError` naming it, so a
    new action in a model cannot silently vanish from the diagram.
    """
    g = SequenceGraph(name=name, title=title)
    for p in participants:
        g.participant(p)
    missing = sorted({st.instance.action.name for st in trace.steps} - set(arrows))
    if missing:
        raise ConfigError(f"diagram {name}: no arrow for action(s) {', '.join(missing)}; add them to its table")
    for st in trace.steps:
        inst = st.instance
        args = {p.name: p.sort.render(v) for p, v in zip(inst.action.params, inst.args, strict=True)}
        arrow = arrows[inst.action.name]
        src = g.participant(arrow.source.format(**args))
        dst = g.participant(arrow.target.format(**args))
        text = arrow.label.format(**args) if arrow.label else inst.render()
        outs = {k: v for k, v in st.outputs.items() if v != "OK" and not v.startswith("NO_")}  # the news only
        if outs:
            text += " → " + ", ".join(f"{k}={v}" for k, v in outs.items())
        g.items.append(Message(src, dst, text, reply=arrow.reply))
        if arrow.note:
            g.items.append(SequenceNote((src,) if src == dst else (src, dst), arrow.note.format(**args)))
    return g

