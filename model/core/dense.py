"""Compile a bounded configuration of a model into fast Python (the explorer's engine).

For a `Config` (every bound fixed) each state is a flat tuple of small ints (see
`model.core.sorts` for the encoding).  The compiler generates Python source for

* ``successors(s)``: every enabled action instance and its successor state.  Action
  parameters are unrolled to constants and each guard conjunct is tested as soon as the
  parameters it mentions are bound, so a failing conjunct prunes every instance below it;
* ``check_state(s)``: the index of the first violated state invariant, or -1;
* ``check_transition(s, t)``: the same for transition invariants (those using `Post`);
* ``terminal(s)``: the model's terminal predicate.

The generated code is checked against the reference evaluator (`model.core.evaluate`) by
the tests.  ``checked=True`` makes every runtime index and ``.some`` check its range, at
some speed cost; the monitors and the tests use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import EvaluationError, ModelDefinitionError
from .evaluate import evaluate
from .expr import App, Const, Expr, Quant, Ref, Select, _NoneConst, conjuncts
from .model import Action, ActionParam, Assign, Config, Func, Invariant, ModelConst, StateVar
from .sorts import NONE_VALUE, BoolSort, IntSort, Sort

__all__ = ["DenseModel", "compile_dense", "Instance"]


@dataclass(frozen=True)
class Instance:
    """One action with concrete parameter values."""

    index: int
    action: Action
    args: tuple[int, ...]

    def render(self) -> str:
        parts = [f"{p.name}={p.sort.render(v)}" for p, v in zip(self.action.params, self.args)]
        return f"{self.action.name}({', '.join(parts)})"

    @property
    def env(self) -> dict[object, int]:
        return dict(zip(self.action.params, self.args))


class _Layout:
    """Slot positions of the state variables; ``keep`` leaves out variables that never change.

    A variable no action instance writes holds its initial value in every reachable state, so
    a compact layout drops it from the tuple and the code generator folds it as a constant.
    """

    def __init__(self, config: Config, keep: set[object] | None = None) -> None:
        self.sizes = dict(config.sizes)
        self.base: dict[object, int] = {}
        self.strides: dict[Func, tuple[int, ...]] = {}
        self.shape: dict[Func, tuple[int, ...]] = {}
        self.slot_owner: list[tuple[object, tuple[int, ...]]] = []
        #: variables left out of the tuple, with their (constant) value
        self.fixed: dict[object, int] = {}
        n = 0
        for d in config.model.state:
            if keep is not None and d not in keep:
                self.fixed[d] = int(d.init)
                continue
            self.base[d] = n
            if isinstance(d, StateVar):
                self.slot_owner.append((d, ()))
                n += 1
            else:
                shape = tuple(s.size(self.sizes) for s in d.index_sorts)
                strides = []
                acc = 1
                for dim in reversed(shape):
                    strides.append(acc)
                    acc *= dim
                self.strides[d] = tuple(reversed(strides))
                self.shape[d] = shape
                for idx in itertools.product(*(range(k) for k in shape)):
                    self.slot_owner.append((d, idx))
                n += acc
        self.n = n

    def slot(self, func: Func, args: Sequence[int]) -> int:
        return self.base[func] + sum(a * st for a, st in zip(args, self.strides[func]))


class _NeedsVariable(Exception):
    """A compact layout left out a variable that some action instance can change."""

    def __init__(self, decl: object) -> None:
        self.decl = decl


class _DenseView:
    """A `StateView` over a dense tuple (for the reference evaluator)."""

    def __init__(self, layout: _Layout, consts: Mapping[str, int], state: Sequence[int]) -> None:
        self.layout = layout
        self.consts = consts
        self.state = state

    def read_var(self, var: StateVar) -> int:
        return int(self.state[self.layout.base[var]])

    def read_cell(self, func: Func, args: tuple[int, ...]) -> int:
        for a, k in zip(args, self.layout.shape[func]):
            if not 0 <= a < k:
                raise EvaluationError(f"{func.name} index {args} out of range")
        return int(self.state[self.layout.slot(func, args)])

    def domain(self, sort: Sort) -> range:
        return sort.values(self.layout.sizes)

    def const(self, c: ModelConst) -> int:
        return self.consts[c.name]


class _Gen:
    """Expression-to-Python code generation with constant folding."""

    def __init__(self, layout: _Layout, consts: Mapping[str, int], checked: bool) -> None:
        self.layout = layout
        self.consts = consts
        self.checked = checked
        #: slot -> value known to hold in the pre-state (from enclosing guard conjuncts)
        self.facts: dict[int, int] = {}
        #: when set, slots read from the pre-state ("s") are recorded here
        self.reads: set[int] | None = None
        #: when set, a post-state read of a slot NOT in this set is served from the pre-state
        self.written: set[int] | None = None
        #: pre-state slots at constant positions read as locals ``s<k>`` (the successor function
        #: unpacks the state once: a local is cheaper than indexing the tuple every time)
        self.unpacked = False

    def pre_slot(self, k: int) -> str:
        """The code reading pre-state slot ``k``."""
        return f"s{k}" if self.unpacked else f"s[{k}]"

    def learn(self, g: Expr, env: Mapping[object, int]) -> list[int]:
        """Record the facts conjunct ``g`` establishes when it holds; return the slots learned."""
        learned: list[int] = []
        for part in conjuncts(g):
            slot, value = self._fact(part, env)
            if slot is not None and slot not in self.facts:
                self.facts[slot] = value
                learned.append(slot)
        return learned

    def _fact(self, g: Expr, env: Mapping[object, int]) -> tuple[int | None, int]:
        neg = False
        if isinstance(g, App) and g.op == "not":
            g, neg = g.args[0], True
        if isinstance(g, (Ref, Select)) and isinstance(g.sort, BoolSort):
            slot = self._const_slot(g, env)
            return (slot, int(not neg)) if slot is not None else (None, 0)
        if not neg and isinstance(g, App) and g.op == "eq":
            a, b = g.args
            for x, y in ((a, b), (b, a)):
                slot = self._const_slot(x, env)
                if slot is not None:
                    c, v = self.expr(y, env)
                    if c:
                        return slot, int(v)
        return None, 0

    def _const_slot(self, e: Expr, env: Mapping[object, int]) -> int | None:
        while isinstance(e, App) and e.op == "some":
            e = e.args[0]
        if isinstance(e, Ref) and isinstance(e.decl, StateVar):
            return self.layout.base[e.decl]
        if isinstance(e, Select):
            vals = []
            for a in e.args:
                c, v = self.expr(a, env)
                if not c:
                    return None
                vals.append(v)
            return self.layout.slot(e.func, vals)
        return None

    def forget(self, slots: Iterable[int]) -> None:
        for k in slots:
            del self.facts[k]

    def expr(self, e: Expr, env: Mapping[object, int], state: str = "s") -> tuple[bool, Any]:
        """Return ``(True, value)`` if ``e`` folds to a constant, else ``(False, code)``."""
        if isinstance(e, Const):
            return True, e.value
        if isinstance(e, _NoneConst):
            return True, NONE_VALUE
        if isinstance(e, Ref):
            d = e.decl
            if isinstance(d, StateVar):
                if d in self.layout.fixed:
                    return True, self.layout.fixed[d]
                k = self.layout.base[d]
                return self._slot(k, state)
            if isinstance(d, ModelConst):
                return True, self.consts[d.name]
            if d in env:
                return True, env[d]
            raise ModelDefinitionError(f"unbound reference {d.name} during compilation")
        if isinstance(e, Select):
            f = e.func
            if f in self.layout.fixed:
                return True, self.layout.fixed[f]
            parts = [self.expr(a, env, state) for a in e.args]
            if all(c for c, _ in parts):
                return self._slot(self.layout.slot(f, [v for _, v in parts]), state)
            base = self.layout.base[f]
            every = range(base, base + (self.layout.strides[f][0] * self.layout.shape[f][0]))
            if state == "t" and self.written is not None and not self.written.intersection(every):
                state = "s"  # nothing of this function changes: read the pre-state
            if state == "s" and self.reads is not None:
                self.reads.update(every)
            terms = [str(self.layout.base[f])]
            for (is_c, v), stride, dim in zip(parts, self.layout.strides[f], self.layout.shape[f]):
                if is_c:
                    terms.append(str(v * stride))
                else:
                    code = f"_idx({v}, {dim})" if self.checked else v
                    terms.append(f"{code}*{stride}" if stride != 1 else f"{code}")
            return False, f"{state}[{' + '.join(terms)}]"
        if isinstance(e, Quant):
            is_and = e.kind == "forall"
            codes = []
            for v in e.var.sort.values(self.layout.sizes):
                c, x = self.expr(e.body, {**env, e.var: v}, state)
                if c:
                    if bool(x) != is_and:
                        return True, (not is_and)
                    continue
                codes.append(x)
            if not codes:
                return True, is_and
            return False, "(" + (" and " if is_and else " or ").join(codes) + ")"
        if isinstance(e, App):
            return self.app(e, env, state)
        raise ModelDefinitionError(f"cannot compile node {type(e).__name__}")

    def _slot(self, k: int, state: str) -> tuple[bool, Any]:
        if state == "t" and self.written is not None and k not in self.written:
            state = "s"
        if state == "s":
            if k in self.facts:
                return True, self.facts[k]
            if self.reads is not None:
                self.reads.add(k)
        return False, self.pre_slot(k) if state == "s" else f"{state}[{k}]"

    def app(self, e: App, env: Mapping[object, int], state: str) -> tuple[bool, Any]:
        op = e.op
        if op in ("and", "or"):
            is_and = op == "and"
            codes = []
            for a in e.args:
                c, x = self.expr(a, env, state)
                if c:
                    if bool(x) != is_and:
                        return True, (not is_and)
                    continue
                codes.append(x)
            if not codes:
                return True, is_and
            if len(codes) == 1:
                return False, codes[0]
            return False, "(" + (" and " if is_and else " or ").join(codes) + ")"
        if op == "post":
            return self.expr(e.args[0], env, "t")
        if op == "implies":
            ca, a = self.expr(e.args[0], env, state)
            if ca and not a:
                return True, True
            cb, b = self.expr(e.args[1], env, state)
            if cb and b:
                return True, True
            if ca:
                return cb, b
            if cb:
                return False, f"(not {a})"
            if a == b:
                return True, True
            return False, f"((not {a}) or {b})"
        args = [self.expr(a, env, state) for a in e.args]
        if op == "ite":
            (cc, cv), (tc, tv), (oc, ov) = args
            if cc:
                return (tc, tv) if cv else (oc, ov)
            return False, f"({_code(tc, tv)} if {cv} else {_code(oc, ov)})"
        if all(c for c, _ in args):
            vals = [v for _, v in args]
            return True, _fold(op, vals)
        codes = [_code(c, v) for c, v in args]
        if op in ("eq", "le", "iff") and codes[0] == codes[1]:
            return True, True  # generated expressions are pure: x == x
        if op in ("ne", "lt") and codes[0] == codes[1]:
            return True, False
        if op == "not":
            return False, f"(not {codes[0]})"
        if op == "implies":
            return False, f"((not {codes[0]}) or {codes[1]})"
        if op == "iff":
            return False, f"(bool({codes[0]}) == bool({codes[1]}))"
        sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "add": "+", "sub": "-"}.get(op)
        if sym is not None:
            return False, f"({codes[0]} {sym} {codes[1]})"
        if op == "some":
            return False, codes[0]
        if op == "unwrap":
            return False, (f"_unwrap({codes[0]})" if self.checked else codes[0])
        raise ModelDefinitionError(f"cannot compile operator {op}")


def _code(is_const: bool, v: Any) -> str:
    return repr(int(v)) if is_const else v


def _fold(op: str, vals: list[Any]) -> Any:
    a = vals[0]
    b = vals[1] if len(vals) > 1 else None
    if op == "not":
        return not a
    if op == "implies":
        return (not a) or bool(b)
    if op == "iff":
        return bool(a) == bool(b)
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if op == "lt":
        return a < b
    if op == "le":
        return a <= b
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op in ("some", "unwrap"):
        if op == "unwrap" and a == NONE_VALUE:
            raise EvaluationError("constant .some of none")
        return a
    raise ModelDefinitionError(f"cannot fold {op}")


def _atoms(e: Expr, env: Mapping[object, int], sizes: Mapping[str, int]) -> list[tuple[Expr, dict[object, int]]]:
    """Split an invariant into conjuncts, unrolling outer universal quantifiers."""
    if isinstance(e, App) and e.op == "and":
        return [a for x in e.args for a in _atoms(x, env, sizes)]
    if isinstance(e, Quant) and e.kind == "forall":
        return [a for v in e.var.sort.values(dict(sizes)) for a in _atoms(e.body, {**env, e.var: v}, sizes)]
    return [(e, dict(env))]


def _params_in(e: Expr, params: Sequence[ActionParam]) -> int:
    """Index (1-based) of the last action parameter ``e`` mentions, 0 if none."""
    from .expr import walk

    pos = {p: i + 1 for i, p in enumerate(params)}
    level = 0
    for n in walk(e):
        if isinstance(n, Ref) and n.decl in pos:
            level = max(level, pos[n.decl])
    return level


def _idx(v: int, n: int) -> int:
    if not 0 <= v < n:
        raise EvaluationError(f"index {v} out of range 0..{n - 1} (an unchecked .some of none?)")
    return v


def _unwrap(v: int) -> int:
    if v == NONE_VALUE:
        raise EvaluationError(".some of none")
    return v


class DenseModel:
    """A compiled configuration; see the module docstring."""

    successors: Callable[[tuple[int, ...]], list[tuple[int, tuple[int, ...]]]]
    check_state: Callable[[tuple[int, ...]], int]
    check_transition: Callable[[tuple[int, ...], tuple[int, ...]], int]
    terminal: Callable[[tuple[int, ...]], bool]

    def __init__(self, config: Config, *, checked: bool = False, compact: bool = False) -> None:
        self.config = config
        self.model = config.model
        self.checked = checked
        self.full_layout = _Layout(config)
        self.layout = self.full_layout
        self.consts = dict(config.consts)
        self.state_invariants: tuple[Invariant, ...] = tuple(i for i in self.model.invariants if not i.transition)
        self.transition_invariants: tuple[Invariant, ...] = tuple(i for i in self.model.invariants if i.transition)
        self.instances: list[Instance] = []
        self.pruned = [0]
        self._instance_index: dict[tuple[str, tuple[int, ...]], int] = {}
        for a in self.model.actions:
            domains = [p.sort.values(self.layout.sizes) for p in a.params]
            for args in itertools.product(*domains):
                idx = len(self.instances)
                self.instances.append(Instance(idx, a, tuple(args)))
                self._instance_index[(a.name, tuple(args))] = idx
        self.inst_writes: dict[int, set[int]] = {}
        #: per instance: the written slots whose value is the variable's initial constant
        self.init_writes: dict[int, set[int]] = {}
        self.source = self._generate()
        if compact:
            # keep only the variables some instance writes; folding may free more, or show
            # that a left-out variable does change: iterate to a fixpoint
            must: set[object] = set()
            keep = self._changing_variables()
            settled = keep == set(self.layout.base)
            for _ in range(2 * len(self.model.state) + 2):
                if settled:
                    break
                self.layout = _Layout(config, keep=keep)
                self.inst_writes = {}
                self.init_writes = {}
                try:
                    self.source = self._generate()
                except _NeedsVariable as need:
                    must.add(need.decl)
                    keep = keep | {need.decl}
                    continue
                now = self._changing_variables() | must
                settled = now == keep
                keep = now
            if not settled:  # pragma: no cover - no fixpoint: fall back to the full layout
                self.layout = self.full_layout
                self.inst_writes = {}
                self.source = self._generate()
        namespace: dict[str, Any] = {"_idx": _idx, "_unwrap": _unwrap, "pruned": self.pruned}
        exec(compile(self.source, f"<dense:{config.describe()}>", "exec"), namespace)
        self.successors = namespace["successors"]
        self.check_state = namespace["check_state"]
        self.check_transition = namespace["check_transition"]
        self.terminal = namespace["terminal"]
        #: per instance: check the invariants its writes can affect (t is the successor), or
        #: None when it writes nothing any invariant reads
        self.inst_check: list[Callable[[tuple[int, ...]], int] | None] = namespace["INST_CHECK"]
        #: per instance: its transition-invariant check, or None when none can be affected
        self.inst_tcheck: list[Callable[[tuple[int, ...], tuple[int, ...]], int] | None] = namespace["INST_TCHECK"]
        self.initial: tuple[int, ...] = self._initial()

    def _changing_variables(self) -> set[object]:
        """Variables some instance may set to a value other than their initial constant.

        A counter whose sort has a single value (e.g. bounded by 0) is constant too.
        """
        out: set[object] = set()
        for inst, w in self.inst_writes.items():
            for k in w - self.init_writes.get(inst, set()):
                d = self.layout.slot_owner[k][0]
                assert isinstance(d, (Func, StateVar))
                sort = d.value_sort if isinstance(d, Func) else d.sort
                if sort.size(self.layout.sizes) > 1:
                    out.add(d)
        return out

    # code generation ---------------------------------------------------------------------
    def _generate(self) -> str:
        gen = _Gen(self.layout, self.consts, self.checked)
        lines = ["def successors(s):", "    out = []", "    add = out.append"]
        if self.layout.n:
            lines.insert(1, f"    {''.join(f's{k}, ' for k in range(self.layout.n))}= s")
        gen.unpacked = True
        for a in self.model.actions:
            lines.append(f"    # {a.name}")
            lines.extend(self._gen_action(gen, a))
        gen.unpacked = False
        lines.append("    return out")
        lines.append("")
        lines.extend(self._gen_incremental_checks(gen))
        lines.append("def check_state(s):")
        for k, inv in enumerate(self.state_invariants):
            c, code = gen.expr(inv.expr, {})
            if c and not code:
                lines.append(f"    return {k}")
            elif not c:
                lines.append(f"    if not {code}: return {k}")
        lines.append("    return -1")
        lines.append("")
        lines.append("def check_transition(s, t):")
        for k, inv in enumerate(self.transition_invariants):
            c, code = gen.expr(inv.expr, {})
            if c and not code:
                lines.append(f"    return {k}")
            elif not c:
                lines.append(f"    if not {code}: return {k}")
        lines.append("    return -1")
        lines.append("")
        lines.append("def terminal(s):")
        if self.model.terminal is None:
            lines.append("    return False")
        else:
            c, code = gen.expr(self.model.terminal, {})
            lines.append(f"    return {bool(code) if c else code}")
        return "\n".join(lines) + "\n"

    def _gen_incremental_checks(self, gen: _Gen) -> list[str]:
        """Per action instance: only the invariant atoms that read a slot the instance writes."""
        sizes = self.layout.sizes
        atoms: list[tuple[int, str, frozenset[int]]] = []
        always: list[int] = []
        for k, inv in enumerate(self.state_invariants):
            for e, env in _atoms(inv.expr, {}, sizes):
                gen.reads = set()
                c, code = gen.expr(e, env)
                reads = frozenset(gen.reads)
                gen.reads = None
                if c:
                    if not code:
                        always.append(k)
                    continue
                atoms.append((k, code, reads))
        lines: list[str] = []
        groups: dict[tuple[int, ...], str] = {}
        check_names = []
        for inst in self.instances:
            w: set[int] | frozenset[int] = self.inst_writes.get(inst.index, frozenset())
            rel = tuple(i for i, (_, _, reads) in enumerate(atoms) if reads & w)
            if not rel and not always:
                check_names.append("None")
                continue
            if rel not in groups:
                name = f"chk{len(groups)}"
                groups[rel] = name
                lines.append(f"def {name}(t):")
                for k in always:
                    lines.append(f"    return {k}")
                for i in rel:
                    k, code, _ = atoms[i]
                    lines.append(f"    if not {code.replace('s[', 't[')}: return {k}")
                lines.append("    return -1")
            check_names.append(groups[rel])
        lines.append(f"INST_CHECK = [{', '.join(check_names)}]")
        # transition invariants: Post reads of unwritten slots come from the pre-state, then fold
        tatoms = [(k, e, env) for k, inv in enumerate(self.transition_invariants)
                  for e, env in _atoms(inv.expr, {}, sizes)]
        tgroups: dict[tuple[str, ...], str] = {}
        tnames = []
        for inst in self.instances:
            w = self.inst_writes.get(inst.index, frozenset())
            gen.written = set(w)
            body = []
            for k, e, env in tatoms:
                c, code = gen.expr(e, env)
                if c:
                    if not code:
                        body.append(f"    return {k}")
                    continue
                body.append(f"    if not {code}: return {k}")
            gen.written = None
            key = tuple(body)
            if not body:
                tnames.append("None")
                continue
            if key not in tgroups:
                name = f"tchk{len(tgroups)}"
                tgroups[key] = name
                lines.append(f"def {name}(s, t):")
                lines.extend(body)
                lines.append("    return -1")
            tnames.append(tgroups[key])
        lines.append(f"INST_TCHECK = [{', '.join(tnames)}]")
        lines.append("")
        return lines

    def _gen_action(self, gen: _Gen, a: Action) -> list[str]:
        params = a.params
        levels: dict[int, list[Expr]] = {}
        for _, g in a.guard:
            levels.setdefault(_params_in(g, params), []).append(g)
        domains = [list(p.sort.values(self.layout.sizes)) for p in params]

        def emit(level: int, env: dict[object, int], args: tuple[int, ...], indent: str) -> list[str]:
            conds = []
            learned: list[int] = []
            try:
                for g in levels.get(level, ()):
                    c, code = gen.expr(g, env)
                    if c:
                        if not code:
                            return []
                        continue
                    conds.append(code)
                    learned += gen.learn(g, env)
                inner_indent = indent + "    " if conds else indent
                if level == len(params):
                    body = self._gen_updates(gen, a, env, args, inner_indent)
                else:
                    body = []
                    p = params[level]
                    for v in domains[level]:
                        body.extend(emit(level + 1, {**env, p: v}, args + (v,), inner_indent))
            finally:
                gen.forget(learned)
            if not body:
                return []
            if conds:
                return [f"{indent}if {' and '.join(conds)}:"] + body
            return body

        return emit(0, {}, (), "    ")

    def _gen_updates(
        self, gen: _Gen, a: Action, env: dict[object, int], args: tuple[int, ...], indent: str
    ) -> list[str]:
        inst = self._instance_index[(a.name, args)]
        pre: list[str] = []
        writes: list[str] = []
        ranges: list[str] = []
        written: set[int] = set()
        self.inst_writes[inst] = written
        for n, u in enumerate(a.updates):
            if u.decl in self.layout.fixed:
                # a variable left out of compact states: fine only if provably unchanged
                value = u.value if isinstance(u, Assign) else u.body
                bindings = [env] if isinstance(u, Assign) else [
                    {**env, **dict(zip(u.vars, idx))}
                    for idx in itertools.product(*(s.values(self.layout.sizes) for s in u.func.index_sorts))
                ]
                sort = u.decl.value_sort if isinstance(u.decl, Func) else u.decl.sort  # type: ignore[union-attr]
                for b in bindings:
                    c, v = gen.expr(value, b)
                    if c and isinstance(sort, IntSort) and not sort.lo <= int(v) <= sort.upper(self.layout.sizes):
                        return [f"{indent}pruned[0] += 1"]  # the counter would leave its bound
                    if not c or int(v) != self.layout.fixed[u.decl]:
                        raise _NeedsVariable(u.decl)
                continue
            if isinstance(u, Assign):
                c, v = gen.expr(u.value, env)
                code = _code(c, v)
                sort = u.target.sort
                if isinstance(sort, IntSort):
                    hi = sort.upper(self.layout.sizes)
                    if c:
                        if not sort.lo <= v <= hi:
                            return [f"{indent}pruned[0] += 1"]
                    else:
                        pre.append(f"{indent}v{n} = {code}")
                        ranges.append(f"{sort.lo} <= v{n} <= {hi}")
                        code = f"v{n}"
                elif isinstance(sort, BoolSort) and c:
                    code = "True" if v else "False"
                tc, tcode = self._target(gen, u, env)
                if tc and code == gen.pre_slot(int(tcode)):
                    continue  # writes the value the slot already has
                if tc and c and gen.facts.get(int(tcode)) == int(v):
                    continue
                if tc:
                    written.add(int(tcode))
                    if c and int(v) == int(u.decl.init):
                        self.init_writes.setdefault(inst, set()).add(int(tcode))
                else:
                    f = u.target.func  # type: ignore[union-attr]
                    base = self.layout.base[f]
                    written.update(range(base, base + self.layout.strides[f][0] * self.layout.shape[f][0]))
                writes.append(f"t[{tcode}] = {code}")
            else:
                shape = self.layout.shape[u.func]
                for idx in itertools.product(*(range(k) for k in shape)):
                    local: dict[object, int] = {**env, **dict(zip(u.vars, idx))}
                    c, v = gen.expr(u.body, local)
                    slot = self.layout.slot(u.func, idx)
                    code = _code(c, v)
                    if code == gen.pre_slot(slot) or (c and gen.facts.get(slot) == int(v)):
                        continue
                    written.add(slot)
                    if c and int(v) == int(u.func.init):
                        self.init_writes.setdefault(inst, set()).add(slot)
                    writes.append(f"t[{slot}] = {code}")
        if not writes and not pre:
            return [f"{indent}add(({inst}, s))"]
        out = list(pre)
        body_indent = indent
        if ranges:
            out.append(f"{indent}if {' and '.join(ranges)}:")
            body_indent = indent + "    "
        out.append(f"{body_indent}t = list(s)")
        out.extend(f"{body_indent}{w}" for w in writes)
        out.append(f"{body_indent}add(({inst}, tuple(t)))")
        if ranges:
            out.append(f"{indent}else:")
            out.append(f"{indent}    pruned[0] += 1")
        return out

    def _target(self, gen: _Gen, u: Assign, env: Mapping[object, int]) -> tuple[bool, str]:
        t = u.target
        if isinstance(t, Ref):
            return True, str(self.layout.base[t.decl])
        saved, gen.facts, unpacked, gen.unpacked = gen.facts, {}, gen.unpacked, False
        try:
            _, code = gen.expr(t, env, "s")
        finally:
            gen.facts, gen.unpacked = saved, unpacked
        # code is "s[<slot expr>]"; strip the state name
        slot = code[2:-1]
        return slot.isdigit(), slot

    def _initial(self) -> tuple[int, ...]:
        return self.compact(self._full_initial())

    def _full_initial(self) -> tuple[int, ...]:
        out: list[int] = []
        for d in self.model.state:
            if isinstance(d, StateVar):
                out.append(_norm(d.sort, d.init))
            else:
                n = 1
                for k in self.full_layout.shape[d]:
                    n *= k
                out.extend([_norm(d.value_sort, d.init)] * n)
        return tuple(out)

    @property
    def is_compact(self) -> bool:
        return self.layout is not self.full_layout

    def expand(self, s: Sequence[int]) -> tuple[int, ...]:
        """The state with every variable (compact states leave constant variables out)."""
        if not self.is_compact:
            return tuple(s)
        full = list(self._full_initial())
        lay, fl = self.layout, self.full_layout
        for d, b in lay.base.items():
            n = 1 if isinstance(d, StateVar) else lay.strides[d][0] * lay.shape[d][0]  # type: ignore[index]
            fb = fl.base[d]
            full[fb:fb + n] = s[b:b + n]
        return tuple(full)

    def compact(self, full: Sequence[int]) -> tuple[int, ...]:
        """The compact form of a full state (identity when the layout is not compact)."""
        if not self.is_compact:
            return tuple(full)
        out: list[int] = []
        lay, fl = self.layout, self.full_layout
        for d in self.model.state:
            if d in lay.base:
                n = 1 if isinstance(d, StateVar) else lay.strides[d][0] * lay.shape[d][0]  # type: ignore[index]
                fb = fl.base[d]
                out.extend(full[fb:fb + n])
        return tuple(out)

    def slot_of(self, decl: StateVar | Func, args: Sequence[int] = ()) -> int | None:
        """Position of a cell in this model's states, or None if the variable never changes."""
        if decl not in self.layout.base:
            return None
        if isinstance(decl, StateVar):
            return self.layout.base[decl]
        return self.layout.slot(decl, args)

    # slow, checked helpers (counterexamples, replay, conformance) ----------------------------
    def view(self, s: Sequence[int]) -> _DenseView:
        return _DenseView(self.full_layout, self.consts, self.expand(s))

    def evaluate(self, e: Expr, s: Sequence[int], env: Mapping[object, int] | None = None) -> int:
        return evaluate(e, self.view(s), env or {})

    def instance(self, action: str, args: Mapping[str, int] | Sequence[int]) -> Instance:
        a = self.model.action(action)
        if isinstance(args, Mapping):
            missing = [p.name for p in a.params if p.name not in args]
            if missing:
                raise KeyError(f"{action} needs parameters {missing}")
            vals = tuple(args[p.name] for p in a.params)
        else:
            vals = tuple(args)
        try:
            return self.instances[self._instance_index[(action, vals)]]
        except KeyError:
            raise KeyError(f"{action}{vals} is outside the configuration's bounds") from None

    def failing_guards(self, s: Sequence[int], inst: Instance) -> list[str]:
        env = inst.env
        view = self.view(s)
        return [label for label, g in inst.action.guard if not evaluate(g, view, env)]

    def outputs(self, s: Sequence[int], inst: Instance) -> dict[str, str]:
        env = inst.env
        view = self.view(s)
        return {k: e.sort.render(evaluate(e, view, env)) for k, e in inst.action.outputs}

    def apply(self, s: tuple[int, ...], inst: Instance) -> tuple[int, ...] | None:
        """The successor of ``s`` under ``inst`` (reference semantics), or None if disabled."""
        view = self.view(s)
        env = inst.env
        if not all(evaluate(g, view, env) for _, g in inst.action.guard):
            return None
        layout = self.full_layout
        t = list(view.state)
        for u in inst.action.updates:
            if isinstance(u, Assign):
                v = evaluate(u.value, view, env)
                sort = u.target.sort
                if isinstance(sort, IntSort) and not sort.lo <= v <= sort.upper(layout.sizes):
                    return None
                tgt = u.target
                if isinstance(tgt, Ref):
                    t[layout.base[tgt.decl]] = _norm(sort, v)
                else:
                    idx = tuple(evaluate(x, view, env) for x in tgt.args)
                    t[layout.slot(tgt.func, idx)] = _norm(sort, v)
            else:
                for idx in itertools.product(*(range(k) for k in layout.shape[u.func])):
                    v = evaluate(u.body, view, {**env, **dict(zip(u.vars, idx))})
                    t[layout.slot(u.func, idx)] = _norm(u.func.value_sort, v)
        return self.compact(t)

    def violated(self, s: Sequence[int]) -> list[Invariant]:
        view = self.view(s)
        return [i for i in self.state_invariants if not evaluate(i.expr, view, {})]

    # presentation ------------------------------------------------------------------------
    def decode(self, s: Sequence[int]) -> dict[str, Any]:
        """``{var: value}`` with Func values as ``{"c0": "ALIVE", ...}`` (multi-index keys joined by ',')."""
        s = self.expand(s)
        out: dict[str, Any] = {}
        for d in self.model.state:
            base = self.full_layout.base[d]
            if isinstance(d, StateVar):
                out[d.name] = d.sort.render(int(s[base]))
            else:
                cells = {}
                for idx in itertools.product(*(range(k) for k in self.full_layout.shape[d])):
                    key = ",".join(sort.render(i) for sort, i in zip(d.index_sorts, idx))
                    cells[key] = d.value_sort.render(int(s[self.full_layout.slot(d, idx)]))
                out[d.name] = cells
        return out

    def diff(self, s: Sequence[int], t: Sequence[int]) -> list[str]:
        """Lines ``var[idx]: old -> new`` for every slot that changed."""
        lines = []
        for k, (a, b) in enumerate(zip(s, t)):
            if a != b:
                d, idx = self.layout.slot_owner[k]  # compact states: changed slots are kept ones
                if isinstance(d, StateVar):
                    lines.append(f"{d.name}: {d.sort.render(int(a))} -> {d.sort.render(int(b))}")
                else:
                    assert isinstance(d, Func)
                    key = ", ".join(sort.render(i) for sort, i in zip(d.index_sorts, idx))
                    lines.append(f"{d.name}[{key}]: {d.value_sort.render(int(a))} -> {d.value_sort.render(int(b))}")
        return lines

    def format_state(self, s: Sequence[int], *, only_changed_from: Sequence[int] | None = None) -> str:
        dec = self.decode(s)
        parts = []
        for name, v in dec.items():
            if isinstance(v, dict):
                parts.append(f"{name}: " + ", ".join(f"{k}={x}" for k, x in v.items()))
            else:
                parts.append(f"{name}: {v}")
        return "\n".join(parts)


def _norm(sort: Sort, v: int) -> int:
    if isinstance(sort, BoolSort):
        return bool(v)  # type: ignore[return-value]
    return int(v)


def compile_dense(config: Config, *, checked: bool = False, compact: bool = False) -> DenseModel:
    """Compile ``config`` (see `DenseModel`); ``compact`` leaves never-written variables out of states."""
    return DenseModel(config, checked=checked, compact=compact)


def iter_instances(dm: DenseModel, names: Iterable[str]) -> list[Instance]:
    wanted = set(names)
    return [i for i in dm.instances if i.action.name in wanted]
