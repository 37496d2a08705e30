"""Compile a model for *unbounded* runs: the engine behind the monitors and trace checking.

The dense compiler fixes every bound; a monitor cannot, because a real run creates contexts,
objects and requests without limit.  Here

* identities are interned as they appear (``"ctx-17"`` becomes the next `Ctx`), so every `Id`
  sort is open-ended;
* a function-valued variable is a dict holding only its non-default cells; quantifiers range
  over the identities seen so far plus two *fresh* ones (all of whose cells hold defaults),
  which is exact because a model cannot tell two unseen identities apart (symmetry) and no
  expression nests more than two quantifiers over one sort (checked);
* a quantifier whose body selects candidates (``forall o. owner[o] == c => ...``,
  ``exists o. queued[o] & ...``, ``forall c. current[t] == c => ...``) iterates only those
  candidates, through an inverse index kept for every identity-valued function;
* invariants are checked *incrementally*: after a step only the invariant instances whose
  cells changed are re-evaluated (following identity-valued functions backwards, so a change
  to ``ctx_state[c]`` re-checks exactly the threads whose current context is ``c``).

Every step's semantics is the reference semantics (`model.core.evaluate`); the tests compare
both on random runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import EvaluationError, ModelDefinitionError
from .expr import App, BoundVar, Const, Expr, Quant, Ref, Select, _NoneConst, conjuncts, walk
from .model import Action, Assign, Func, FuncAssign, Invariant, Model, ModelConst, StateVar
from .sorts import NONE_VALUE, BoolSort, EnumSort, IdSort, IntSort, OptSort, Sort

__all__ = ["SparseModel", "Operation", "FRESH"]

#: the least number of never-seen identities a quantifier also ranges over; per sort the
#: engine uses the model's deepest nesting of quantifiers over that sort, if larger
FRESH = 2


@dataclass
class Operation:
    """What an implementation reports: an action and, if it has checks, its rejected twin."""

    name: str
    action: Action
    rejected: Action | None
    index: int
    rejected_index: int | None


class _Code:
    """Python code generation for the sparse representation."""

    def __init__(self, sm: "SparseModel") -> None:
        self.sm = sm
        self.tmp = 0
        #: when True, state reads see the values before the last step (for transition invariants)
        self.pre = False

    def fresh(self, base: str) -> str:
        self.tmp += 1
        return f"{base}{self.tmp}"

    # expressions -------------------------------------------------------------------------
    def expr(self, e: Expr, env: Mapping[object, str]) -> str:
        sm = self.sm
        if isinstance(e, Const):
            return repr(int(e.value))
        if isinstance(e, _NoneConst):
            return "-1"
        if isinstance(e, Ref):
            d = e.decl
            if isinstance(d, StateVar):
                j = sm.var_index[d]
                return f"OLDV.get({j}, V[{j}])" if self.pre else f"V[{j}]"
            if isinstance(d, ModelConst):
                return repr(int(sm.consts[d.name]))
            if d in env:
                return env[d]
            raise ModelDefinitionError(f"unbound {d.name} in sparse compilation")
        if isinstance(e, Select):
            k = sm.func_index[e.func]
            args = [self.expr(a, env) for a in e.args]
            key = args[0] if len(args) == 1 else "(" + ", ".join(args) + ",)"
            if self.pre:
                tmp = self.fresh("kk")
                return f"(lambda {tmp}: OLD{k}.get({tmp}, D{k}.get({tmp}, d{k})))({key})"
            return f"D{k}.get({key}, d{k})"
        if isinstance(e, Quant):
            return self.quant(e, env)
        if isinstance(e, App):
            op = e.op
            a = e.args
            if op == "and":
                return "(" + " and ".join(self.expr(x, env) for x in a) + ")"
            if op == "or":
                return "(" + " or ".join(self.expr(x, env) for x in a) + ")"
            if op == "not":
                return f"(not {self.expr(a[0], env)})"
            if op == "implies":
                return f"((not {self.expr(a[0], env)}) or {self.expr(a[1], env)})"
            if op == "iff":
                return f"(bool({self.expr(a[0], env)}) == bool({self.expr(a[1], env)}))"
            if op == "ite":
                return f"({self.expr(a[1], env)} if {self.expr(a[0], env)} else {self.expr(a[2], env)})"
            sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "add": "+", "sub": "-"}.get(op)
            if sym:
                return f"({self.expr(a[0], env)} {sym} {self.expr(a[1], env)})"
            if op == "some":
                return self.expr(a[0], env)
            if op == "unwrap":
                return f"_unwrap({self.expr(a[0], env)})"
            if op == "post":
                saved, self.pre = self.pre, False
                try:
                    return self.expr(a[0], env)
                finally:
                    self.pre = saved
        raise ModelDefinitionError(f"cannot compile {type(e).__name__}")

    def candidates(self, var: BoundVar, parts: Sequence[Expr], env: Mapping[object, str]) -> str:
        """Python iterable of the values of ``var`` that can satisfy all of ``parts``."""
        sort = var.sort
        if not isinstance(sort, IdSort):
            return f"range({sort.size({})})" if not isinstance(sort, IntSort) else "()"
        best: str | None = None
        for p in parts:
            c = self._selector(var, p, env)
            if c is not None:
                best = c
                break
        return best if best is not None else f"range(N[{sort.name!r}] + {self.sm.fresh[sort.name]})"

    def _selector(self, var: BoundVar, p: Expr, env: Mapping[object, str]) -> str | None:
        sm = self.sm
        if isinstance(p, App) and p.op == "eq":
            x, y = p.args
            for lhs, rhs in ((x, y), (y, x)):
                # e == var  (e independent of var)
                if _is_var(lhs, var) and not _mentions(rhs, var):
                    v = self.expr(rhs, env)
                    return f"_one({v})"
                # F[var] == e
                if isinstance(lhs, Select) and len(lhs.args) == 1 and _is_var(lhs.args[0], var) \
                        and not _mentions(rhs, var):
                    k = sm.func_index[lhs.func]
                    v = self.expr(rhs, env)
                    total = f"N[{var.sort.name!r}] + {sm.fresh[var.sort.name]}"
                    if k in sm.inverse:
                        return f"_inv(I{k}, D{k}, {v}, d{k}, {total})"
                    return f"_nondefault(D{k}, {v}, d{k}, {total})"
        if isinstance(p, Select) and len(p.args) == 1 and _is_var(p.args[0], var) and isinstance(p.sort, BoolSort):
            k = sm.func_index[p.func]
            return f"_nondefault(D{k}, 1, d{k}, N[{var.sort.name!r}] + {sm.fresh[var.sort.name]})"
        return None

    def quant(self, q: Quant, env: Mapping[object, str]) -> str:
        name = self.fresh("q")
        local = {**env, q.var: name}
        body = q.body
        if q.kind == "forall":
            if isinstance(body, App) and body.op == "implies":
                cands = self.candidates(q.var, conjuncts(body.args[0]), env)
            else:
                cands = self.candidates(q.var, [], env)
            return f"all({self.expr(body, local)} for {name} in {cands})"
        cands = self.candidates(q.var, conjuncts(body), env)
        return f"any({self.expr(body, local)} for {name} in {cands})"


def _is_var(e: Expr, var: BoundVar) -> bool:
    while isinstance(e, App) and e.op == "some":
        e = e.args[0]
    return isinstance(e, Ref) and e.decl is var


def _mentions(e: Expr, decl: object) -> bool:
    return any(isinstance(n, Ref) and n.decl is decl for n in walk(e))


def _one(v: int) -> tuple[int, ...]:
    return (v,) if v >= 0 else ()


def _inv(inverse: dict[int, set[Any]], cells: dict[Any, int], v: int, default: int, total: int) -> Iterable[Any]:
    if v == default:
        return range(total)
    return tuple(inverse.get(v, ()))


def _nondefault(cells: dict[Any, int], v: int, default: int, total: int) -> Iterable[Any]:
    if v == default:
        return range(total)
    return [x for x, val in cells.items() if val == v]


def _unwrap(v: int) -> int:
    if v == NONE_VALUE:
        raise EvaluationError(".some of none")
    return v


# --------------------------------------------------------------------------------------
# Incremental invariant checking: which instances of an invariant a change can affect
# --------------------------------------------------------------------------------------


@dataclass
class _Part:
    """One top-level conjunct of an invariant, possibly ``forall x: S. body``."""

    invariant: int
    var: BoundVar | None
    body_fn: Callable[..., Any]
    #: func index -> how a change of that func's cell maps to instances of ``var``:
    #:   ("direct", position) / ("via", [func indices from var outward], position) / ("global",)
    deps: dict[int, tuple[Any, ...]]
    scalar_deps: set[int]


def _paths(e: Expr, var: BoundVar, aliases: dict[BoundVar, list[Func]]) -> list[tuple[Func, int, list[Func] | None]]:
    """For every cell read in ``e``: (func, index position, path from var or None if not var-anchored)."""
    out: list[tuple[Func, int, list[Func] | None]] = []

    def path_of(a: Expr, aliases: dict[BoundVar, list[Func]]) -> list[Func] | None:
        while isinstance(a, App) and a.op in ("some", "unwrap"):
            a = a.args[0]
        if isinstance(a, Ref):
            if a.decl is var:
                return []
            if isinstance(a.decl, BoundVar) and a.decl in aliases:
                return list(aliases[a.decl])
            return None
        if isinstance(a, Select) and len(a.args) == 1:
            inner = path_of(a.args[0], aliases)
            if inner is None:
                return None
            ids = a.func.value_sort.id_sort()
            return inner + [a.func] if ids is not None else None
        return None

    def visit(n: Expr, aliases: dict[BoundVar, list[Func]]) -> None:
        if isinstance(n, Select):
            anchored = [path_of(a, aliases) for a in n.args]
            found = False
            for pos, p in enumerate(anchored):
                if p is not None:
                    out.append((n.func, pos, p))
                    found = True
            if not found:
                out.append((n.func, -1, None))
            for a in n.args:
                visit(a, aliases)
            return
        if isinstance(n, Quant):
            # forall y. (P[var-path] == y) => ... makes y an alias of that path
            body = n.body
            ante = conjuncts(body.args[0]) if isinstance(body, App) and body.op == "implies" else conjuncts(body)
            new_aliases = dict(aliases)
            for c in ante:
                if isinstance(c, App) and c.op == "eq":
                    for lhs, rhs in (c.args, c.args[::-1]):
                        if _is_var(rhs, n.var):
                            p = path_of(lhs, aliases)
                            if p is not None:
                                new_aliases[n.var] = p
            visit(n.body, new_aliases)
            return
        if isinstance(n, App):
            for a in n.args:
                visit(a, aliases)

    visit(e, aliases)
    return out


class SparseModel:
    """A model compiled for unbounded runs; one instance holds one run's state."""

    def __init__(self, model: Model, consts: Mapping[str, int] | None = None) -> None:
        self.model = model
        self.consts = {c.name: c.default for c in model.consts}
        self.consts.update(consts or {})
        self.var_index: dict[StateVar, int] = {}
        self.func_index: dict[Func, int] = {}
        self.funcs: list[Func] = []
        self.vars: list[StateVar] = []
        for d in model.state:
            if isinstance(d, StateVar):
                self.var_index[d] = len(self.vars)
                self.vars.append(d)
            else:
                self.func_index[d] = len(self.funcs)
                self.funcs.append(d)
        #: funcs whose values are identities get an inverse index
        self.inverse = {k for k, f in enumerate(self.funcs) if f.value_sort.id_sort() is not None}
        self.id_sorts = {s.name: s for s in model.id_sorts}
        self._check_nesting()
        self.operations: dict[str, Operation] = {}
        for i, a in enumerate(model.actions):
            if a.rejected:
                continue
            op = a.operation or a.name
            twin = None
            twin_index = None
            for j, b in enumerate(model.actions):
                if b.rejected and (b.operation or b.name) == op:
                    twin, twin_index = b, j
            self.operations[a.name] = Operation(a.name, a, twin, i, twin_index)
        self.state_invariants = [inv for inv in model.invariants if not inv.transition]
        self.transition_invariants = [inv for inv in model.invariants if inv.transition]
        self.source = self._generate()
        ns: dict[str, Any] = {
            "_one": _one, "_inv": _inv, "_nondefault": _nondefault, "_unwrap": _unwrap,
            "EvaluationError": EvaluationError,
        }
        exec(compile(self.source, f"<sparse:{model.name}>", "exec"), ns)
        self.ns = ns
        self.reset()
        self._parts = self._incremental_parts()

    # -- validation ------------------------------------------------------------------------
    def _check_nesting(self) -> None:
        """Per Id sort, how many fresh identities quantifiers need: the deepest nesting over it.

        A formula with k nested quantifiers over a sort can only distinguish k identities it has
        not seen; so ranging over the known identities plus k fresh ones decides it exactly.
        """
        from .model import _all_exprs

        self.fresh: dict[str, int] = {name: FRESH for name in self.id_sorts}

        def depth(e: Expr, seen: dict[str, int]) -> None:
            if isinstance(e, Quant) and isinstance(e.var.sort, IdSort):
                k = seen.get(e.var.sort.name, 0) + 1
                self.fresh[e.var.sort.name] = max(self.fresh.get(e.var.sort.name, FRESH), k)
                seen = {**seen, e.var.sort.name: k}
            for c in (e.body,) if isinstance(e, Quant) else getattr(e, "args", ()):
                depth(c, seen)

        for e in _all_exprs(self.model):
            depth(e, {})

    # -- code generation ---------------------------------------------------------------------
    def _generate(self) -> str:
        code = _Code(self)
        L: list[str] = []
        nf = len(self.funcs)
        L.append(f"V = [0] * {len(self.vars)}")
        for k, f in enumerate(self.funcs):
            L.append(f"D{k} = {{}}")
            L.append(f"d{k} = {int(f.init)}")
            L.append(f"OLD{k} = {{}}")
            if k in self.inverse:
                L.append(f"I{k} = {{}}")
        L.append("OLDV = {}")
        L.append("N = {}")
        L.append(f"CH = [set() for _ in range({nf})]")
        L.append("CV = set()")
        # setters keep the inverse indexes and the change sets
        for k in range(nf):
            L.append(f"def set{k}(key, v):")
            L.append(f"    old = D{k}.get(key, d{k})")
            L.append("    if old == v:")
            L.append("        return")
            L.append(f"    if key not in OLD{k}: OLD{k}[key] = old")
            L.append(f"    if v == d{k}:")
            L.append(f"        del D{k}[key]")
            L.append("    else:")
            L.append(f"        D{k}[key] = v")
            if k in self.inverse:
                L.append("    if old >= 0:")
                L.append(f"        s_ = I{k}.get(old)")
                L.append("        if s_ is not None:")
                L.append("            s_.discard(key)")
                L.append("    if v >= 0:")
                L.append(f"        I{k}.setdefault(v, set()).add(key)")
            L.append(f"    CH[{k}].add(key)")
            L.append(f"def rebase{k}(newd, n):")
            L.append(f"    global d{k}")
            L.append("    for key in range(n):")
            L.append(f"        if key not in D{k}: D{k}[key] = d{k}")
            L.append(f"    d{k} = newd")
            L.append(f"    for key in [x for x, v in D{k}.items() if v == newd]:")
            L.append(f"        del D{k}[key]")
        for op in self.operations.values():
            for act, idx in ((op.action, op.index), (op.rejected, op.rejected_index)):
                if act is None:
                    continue
                L.extend(self._gen_action(code, act, idx))  # type: ignore[arg-type]
        for k, inv in enumerate(self.state_invariants):
            L.append(f"def inv{k}():")
            L.append(f"    return {code.expr(inv.expr, {})}")
        code.pre = True
        for k, inv in enumerate(self.transition_invariants):
            L.append(f"def tinv{k}():")
            L.append(f"    return {code.expr(inv.expr, {})}")
        code.pre = False
        return "\n".join(L) + "\n"

    def _gen_action(self, code: _Code, a: Action, idx: int) -> list[str]:
        params = [f"p_{p.name}" for p in a.params]
        env: dict[object, str] = dict(zip(a.params, params))
        sig = ", ".join(params)
        L = [f"def guard{idx}({sig}):"]
        check_labels = {lbl for lbl, _, _ in a.checks} if not a.rejected else set()
        for label, g in a.guard:
            if label in check_labels or label == "some_check_fails":
                continue
            L.append(f"    if not {code.expr(g, env)}: return {label!r}")
        L.append("    return None")
        # checks: index of the first failing check (-1: all pass)
        L.append(f"def checks{idx}({sig}):")
        for n, (_, cond, _) in enumerate(a.checks):
            L.append(f"    if not {code.expr(cond, env)}: return {n}")
        L.append("    return -1")
        L.append(f"def outputs{idx}({sig}):")
        L.append("    return {" + ", ".join(f"{k!r}: {code.expr(o, env)}" for k, o in a.outputs) + "}")
        L.append(f"def apply{idx}({sig}):")
        writes: list[str] = []
        n = 0
        for u in a.updates:
            if isinstance(u, Assign):
                n += 1
                L.append(f"    v{n} = {code.expr(u.value, env)}")
                t = u.target
                if isinstance(t, Ref):
                    j = self.var_index[t.decl]  # type: ignore[index]
                    writes.append(f"    if V[{j}] != v{n}:")
                    writes.append(f"        OLDV.setdefault({j}, V[{j}]); V[{j}] = v{n}; CV.add({j})")
                else:
                    k = self.func_index[t.func]
                    args = [code.expr(x, env) for x in t.args]
                    key = args[0] if len(args) == 1 else "(" + ", ".join(args) + ",)"
                    L.append(f"    k{n} = {key}")
                    writes.append(f"    set{k}(k{n}, v{n})")
            else:
                n += 1
                L_, W_ = self._gen_func_assign(code, u, env, n)
                L.extend(L_)
                writes.extend(W_)
        L.extend(writes)
        L.append("    return None")
        return L

    def _gen_func_assign(
        self, code: _Code, u: FuncAssign, env: Mapping[object, str], n: int
    ) -> tuple[list[str], list[str]]:
        """A whole-function update, visiting only cells that can change (see the module docstring)."""
        k = self.func_index[u.func]
        f = u.func
        body = u.body
        names = [code.fresh("x") for _ in u.vars]
        local: dict[object, str] = {**env, **dict(zip(u.vars, names))}
        key = names[0] if len(names) == 1 else "(" + ", ".join(names) + ",)"
        own = lambda e: (isinstance(e, Select) and e.func is f
                         and all(_is_var(a, v) for a, v in zip(e.args, u.vars)))
        L: list[str] = []
        W: list[str] = []
        loops: str
        bool_false_default = isinstance(f.value_sort, BoolSort) and int(f.init) == 0
        if bool_false_default and isinstance(body, App) and body.op == "and" and any(own(a) for a in body.args):
            # f[x] & X can only clear cells that are true now
            loops = f"for {key} in list(D{k})"
        else:
            if bool_false_default and isinstance(body, App) and body.op == "or" and any(own(a) for a in body.args):
                others = [a for a in body.args if not own(a)]
                sel = conjuncts(others[0]) if len(others) == 1 else []
            elif isinstance(body, App) and body.op == "ite" and own(body.args[2]):
                sel = conjuncts(body.args[0])
            else:
                sel = []
            parts = []
            bound: dict[object, str] = dict(env)
            for var, name in zip(u.vars, names):
                cands = code.candidates(var, sel, bound) if sel else f"range(N[{var.sort.name!r}])"
                parts.append(f"for {name} in {cands}")
                bound[var] = name
            known = " and ".join(f"{name} < N[{v.sort.name!r}]" for v, name in zip(u.vars, names))
            loops = " ".join(parts) + f" if {known}"
        L.append(f"    w{n} = [({key}, {code.expr(body, local)}) {loops}]")
        # the value every never-seen cell takes must stay the default
        fresh_env = dict(env)
        offsets: dict[str, int] = {}
        args = []
        for var in u.vars:
            sname = var.sort.name
            j = offsets.get(sname, 0)
            offsets[sname] = j + 1
            args.append(f"N[{sname!r}] + {j}")
        L.append(f"    fv{n} = (lambda {', '.join(names)}: {code.expr(body, local)})({', '.join(args)})")
        if len(u.vars) == 1:
            L.append(f"    n{n} = N[{u.vars[0].sort.name!r}]")
            W.append(f"    if fv{n} != d{k}: rebase{k}(fv{n}, n{n})")
        else:
            W.append(f"    if fv{n} != d{k}: raise EvaluationError('whole-function update of {f.name} changes "
                     f"every unseen cell; not supported by the sparse engine')")
        W.append(f"    for key_, val_ in w{n}:")
        W.append(f"        set{k}(key_, val_)")
        _ = fresh_env
        return L, W

    # -- incremental invariants ----------------------------------------------------------------
    def _incremental_parts(self) -> list[_Part]:
        parts: list[_Part] = []
        code = _Code(self)
        for k, inv in enumerate(self.state_invariants):
            for c in conjuncts(inv.expr):
                scalar = {
                    self.var_index[n.decl] for n in walk(c) if isinstance(n, Ref) and isinstance(n.decl, StateVar)
                }
                if isinstance(c, Quant) and c.kind == "forall" and isinstance(c.var.sort, IdSort):
                    var = c.var
                    name = "x_"
                    src = f"lambda {name}: {code.expr(c.body, {var: name})}"
                    fn = eval(src, self.ns)
                    deps: dict[int, tuple[Any, ...]] = {}
                    for func, pos, path in _paths(c.body, var, {}):
                        fk = self.func_index[func]
                        if path is None or pos < 0:
                            deps[fk] = ("global",)
                        elif fk in deps and deps[fk] != ("direct", pos) and not path:
                            deps[fk] = ("global",)
                        elif not path:
                            deps.setdefault(fk, ("direct", pos))
                        else:
                            cur = deps.get(fk)
                            new = ("via", [self.func_index[f] for f in path], pos)
                            if cur is None:
                                deps[fk] = new
                            elif cur != new:
                                deps[fk] = ("global",)
                    parts.append(_Part(k, var, fn, deps, scalar))
                else:
                    fn = eval(f"lambda: {code.expr(c, {})}", self.ns)
                    deps = {self.func_index[n.func]: ("global",) for n in walk(c) if isinstance(n, Select)}
                    parts.append(_Part(k, None, fn, deps, scalar))
        return parts

    # -- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        ns = self.ns
        V = ns["V"]
        for d, j in self.var_index.items():
            V[j] = int(d.init)
        for k, f in enumerate(self.funcs):
            ns[f"D{k}"].clear()
            ns[f"d{k}"] = int(f.init)
            if k in self.inverse:
                ns[f"I{k}"].clear()
        ns["N"].clear()
        for s in self.id_sorts:
            ns["N"][s] = 0
        self.clear_changes()

    def clear_changes(self) -> None:
        ns = self.ns
        for s in ns["CH"]:
            s.clear()
        ns["CV"].clear()
        ns["OLDV"].clear()
        for k in range(len(self.funcs)):
            ns[f"OLD{k}"].clear()

    def size(self, sort: str) -> int:
        return int(self.ns["N"][sort])

    def grow(self, sort: str, n: int) -> None:
        """Make identities ``0..n-1`` of ``sort`` known."""
        N = self.ns["N"]
        if n > N[sort]:
            N[sort] = n

    def check_invariants_incrementally(self) -> list[Invariant]:
        """The invariants violated by the last step(s), judged from the cells they changed."""
        ns = self.ns
        CH: list[set[Any]] = ns["CH"]
        CV: set[int] = ns["CV"]
        failed: dict[int, Invariant] = {}
        for part in self._parts:
            if part.invariant in failed:
                continue
            touched = bool(part.scalar_deps & CV)
            if part.var is None:
                if touched or any(CH[k] for k in part.deps):
                    if not part.body_fn():
                        failed[part.invariant] = self.state_invariants[part.invariant]
                continue
            sort = part.var.sort.name  # type: ignore[union-attr]
            if touched or any(CH[k] and d[0] == "global" for k, d in part.deps.items()):
                xs: Iterable[int] = range(ns["N"][sort] + self.fresh[sort])
            else:
                dirty: set[int] = set()
                for k, d in part.deps.items():
                    changed = CH[k]
                    if not changed:
                        continue
                    if d[0] == "direct":
                        pos = d[1]
                        if len(self.funcs[k].index_sorts) == 1:
                            dirty.update(changed)
                        else:
                            dirty.update(key[pos] for key in changed)
                    else:
                        _, path, pos = d
                        keys = set(changed) if len(self.funcs[k].index_sorts) == 1 else {key[pos] for key in changed}
                        # walk the path backwards through inverse indexes
                        for fk in reversed(path):
                            inv = ns[f"I{fk}"]
                            nxt: set[int] = set()
                            for v in keys:
                                nxt.update(inv.get(v, ()))
                            keys = nxt
                        dirty.update(keys)
                # a change of a path function itself re-anchors the instances whose path crosses it
                for d in part.deps.values():
                    if d[0] == "via":
                        for fk in d[1]:
                            if CH[fk]:
                                # instances whose path passes through a changed cell
                                dirty.update(self._preimage(d[1], fk, CH[fk]))
                xs = dirty
            fn = part.body_fn
            for x in xs:
                if not fn(x):
                    failed[part.invariant] = self.state_invariants[part.invariant]
                    break
        return list(failed.values())

    def _preimage(self, path: list[int], at: int, changed: set[Any]) -> set[int]:
        """Instances x whose path (x -> f1 -> f2 ...) reads a changed cell of the path function ``at``."""
        ns = self.ns
        idx = path.index(at)
        keys = set(changed)
        for fk in reversed(path[:idx]):
            inv = ns[f"I{fk}"]
            nxt: set[int] = set()
            for v in keys:
                nxt.update(inv.get(v, ()))
            keys = nxt
        return keys

    def check_transition_invariants(self) -> list[Invariant]:
        """Transition invariants over the last step (pre-state = values before the step)."""
        ns = self.ns
        if not (any(ns["CH"]) or ns["CV"]):
            return []
        return [inv for k, inv in enumerate(self.transition_invariants) if not ns[f"tinv{k}"]()]

    def check_invariants_fully(self) -> list[Invariant]:
        return [inv for k, inv in enumerate(self.state_invariants) if not self.ns[f"inv{k}"]()]

    # -- reading state (for reports and oracles) ----------------------------------------------------
    def read_var(self, var: StateVar) -> int:
        return int(self.ns["V"][self.var_index[var]])

    def read_cell(self, func: Func, args: tuple[int, ...]) -> int:
        k = self.func_index[func]
        key = args[0] if len(args) == 1 else args
        return int(self.ns[f"D{k}"].get(key, self.ns[f"d{k}"]))

    def domain(self, sort: Sort) -> range:
        if isinstance(sort, IdSort):
            return range(self.ns["N"][sort.name] + self.fresh[sort.name])
        return sort.values({})

    def const(self, c: ModelConst) -> int:
        return int(self.consts[c.name])

    def cells(self, func: Func) -> dict[Any, int]:
        return dict(self.ns[f"D{self.func_index[func]}"])

    def fn(self, name: str) -> Callable[..., Any]:
        return self.ns[name]  # type: ignore[no-any-return]


def enum_value(sort: Sort, text: object) -> int:
    """Encode a trace value of an Enum/Bool/Int sort."""
    if isinstance(sort, BoolSort):
        if isinstance(text, bool):
            return int(text)
        if text in ("true", "false"):
            return int(text == "true")
        raise ValueError(f"expected true/false, got {text!r}")
    if isinstance(sort, EnumSort):
        if isinstance(text, str) and text in sort.members:
            return sort.members.index(text)
        raise ValueError(f"expected one of {', '.join(sort.members)}, got {text!r}")
    if isinstance(sort, IntSort):
        if isinstance(text, int) and not isinstance(text, bool):
            return text
        raise ValueError(f"expected an integer, got {text!r}")
    if isinstance(sort, OptSort):
        raise ValueError("Opt parameters are not supported in traces")
    raise ValueError(f"cannot decode a {sort.name}")
