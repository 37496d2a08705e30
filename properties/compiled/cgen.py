"""Generate C for the watched models: a compiled backend of `model/core/sparse.py`.

The C is generated from the same expressions and the same analysis as the Python the sparse
engine runs: the `SparseModel` objects of a `properties.monitor.Monitor` give the actions
(guard, checks, outputs, updates), the invariant parts, their read sites and gates; this module
only *emits* them in C instead of Python, construct for construct:

* a function-valued variable is a `ufunc` (one index: cells in an array, a value index, the
  non-default keys) or a `bfunc` (two indexes: a hash map and the two positional indexes),
  with the old value and the change set of the current step (`runtime.c`);
* a quantifier is a loop over the candidate set its selectors give: the choice of index is
  sparse.py's (`Selector`, `candidate_selector`); `_CCode.render` only renders it (`cs_one`,
  `uf_idx`, `bf_pidx`, `cs_min`, `cs_union` for `_one`, `_idx`, `_pidx`, `_smallest`, `_union`);
* an incremental check visits, per changed cell and read site, the instances the flip analysis
  enumerates (`en*`): the loops and their selectors are sparse.py's (`key_bindings`,
  `binding_order`); this module emits them and evaluates each part's body;
* `.some` of none sets `g_err` (sparse.py raises `EvaluationError`): where sparse.py catches it
  (filters, enumerator fallbacks) the C does the same; anywhere else the step stops with BAIL
  and the Python engine decides;
* the reads (`_reads`, `_READS`): tables of each model's functions and variables for the state
  export, and per (model, op) a prediction (`_predict_fn`: the step's guard, checks and outputs
  in `Monitor._evaluate`'s order, nothing applied).

Which workerd rules are checked is exactly what the models say: nothing here names a rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from model.core.errors import ModelDefinitionError
from model.core.expr import App, BoundVar, Const, Expr, Quant, Ref, Select, _NoneConst, conjuncts
from model.core.model import Action, Assign, FuncAssign, ModelConst, StateVar
from model.core.sorts import BoolSort, EnumSort, IdSort, IntSort, OptSort, Sort
from model.core.sparse import (
    Operation,
    Selector,
    SelValue,
    SparseModel,
    _atoms,
    _bound_vars,
    _is_var,
    _Part,
    _Site,
    binding_order,
    candidate_selector,
    key_bindings,
    render_value,
)

__all__ = ["generate", "RUNTIME"]

RUNTIME = Path(__file__).with_name("runtime.c")


def _cstr(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _CCode:
    """C expressions for one model (prefix ``m{M}_``): `model.core.sparse._Code`'s renderings in C."""

    def __init__(self, sm: SparseModel, prefix: str, sort_index: Mapping[str, int]) -> None:
        self.sm = sm
        self.p = prefix
        self.sort_index = sort_index
        self.tmp = 0
        self.pre = False

    def fresh(self, base: str) -> str:
        self.tmp += 1
        return f"{base}{self.tmp}"

    def n(self, sort: Sort) -> str:
        return f"tab[{self.sort_index[sort.name]}].n"

    def total(self, sort: Sort) -> str:
        return f"({self.n(sort)} + {self.sm.fresh[sort.name]})"

    def f(self, k: int) -> str:
        return f"&{self.p}F{k}"

    def unary(self, k: int) -> bool:
        return len(self.sm.funcs[k].index_sorts) == 1

    # -- expressions -------------------------------------------------------------------------
    def expr(self, e: Expr, env: Mapping[Any, str]) -> str:
        sm = self.sm
        if isinstance(e, Const):
            return f"((i64){int(e.value)})"
        if isinstance(e, _NoneConst):
            return "((i64)-1)"
        if isinstance(e, Ref):
            d = e.decl
            if isinstance(d, StateVar):
                j = sm.var_index[d]
                return f"{self.p}PREV({j})" if self.pre else f"{self.p}V[{j}]"
            if isinstance(d, ModelConst):
                return f"((i64){int(sm.consts[d.name])})"
            if d in env:
                return env[d]
            raise ModelDefinitionError(f"unbound {d.name} in C compilation")
        if isinstance(e, Select):
            k = sm.func_index[e.func]
            args = [self.expr(a, env) for a in e.args]
            if self.unary(k):
                return f"uf_{'pre' if self.pre else 'get'}({self.f(k)}, {args[0]})"
            return f"bf_{'pre' if self.pre else 'get'}({self.f(k)}, {args[0]}, {args[1]})"
        if isinstance(e, Quant):
            return self.quant(e, env)
        if isinstance(e, App):
            op = e.op
            a = e.args
            if op == "and":
                return "(" + " && ".join(self.expr(x, env) for x in a) + ")"
            if op == "or":
                return "(" + " || ".join(self.expr(x, env) for x in a) + ")"
            if op == "not":
                return f"(!{self.expr(a[0], env)})"
            if op == "implies":
                return f"((!{self.expr(a[0], env)}) || {self.expr(a[1], env)})"
            if op == "iff":
                return f"((!!{self.expr(a[0], env)}) == (!!{self.expr(a[1], env)}))"
            if op == "ite":
                return f"({self.expr(a[0], env)} ? {self.expr(a[1], env)} : {self.expr(a[2], env)})"
            sym = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "add": "+", "sub": "-"}.get(op)
            if sym:
                cast = "(i64)" if op in ("eq", "ne", "lt", "le") else ""
                return f"({cast}({self.expr(a[0], env)} {sym} {self.expr(a[1], env)}))"
            if op == "some":
                return self.expr(a[0], env)
            if op == "unwrap":
                return f"rt_unwrap({self.expr(a[0], env)})"
            if op == "post":
                saved, self.pre = self.pre, False
                try:
                    return self.expr(a[0], env)
                finally:
                    self.pre = saved
        raise ModelDefinitionError(f"cannot compile {type(e).__name__} to C")

    # -- candidate selection (the analysis is sparse.py's `selectors`; rendered here as C sets) -------
    def render(self, sel: Selector, env: Mapping[Any, str], slots: Mapping[str, str] | None = None) -> str:
        """A C ``cset`` for ``sel`` (`model.core.sparse._Code.render` in C); ``slots`` names the locals."""
        def val(v: SelValue) -> str:
            return render_value(v, lambda e: self.expr(e, env), slots, "((i64)1)")

        saved, self.pre = self.pre, sel.pre
        try:
            pre = "_pre" if sel.pre else ""
            if sel.kind == "one":
                return f"cs_one({val(sel.value)})"
            if sel.kind == "two":
                return f"cs_two({val(sel.value)}, {val(sel.value2)})"
            if sel.kind == "keys":
                return f"uf_keys{pre}({self.f(sel.func)})"
            if sel.kind in ("cell", "cell2"):
                assert sel.sort is not None
                total = self.total(sel.sort)
                if sel.kind == "cell":
                    return f"uf_idx{pre}({self.f(sel.func)}, {val(sel.value)}, {total})"
                assert sel.rest is not None
                rest = self.expr(sel.rest, env)
                return f"bf_pidx{pre}({self.f(sel.func)}, {sel.pos}, {rest}, {val(sel.value)}, {total})"
            return _fold("cs_union" if sel.kind == "union" else "cs_min",
                         [self.render(x, env, slots) for x in sel.parts])
        finally:
            self.pre = saved

    def candidates(self, var: BoundVar, atoms: Sequence[Expr], env: Mapping[Any, str]) -> str:
        sort = var.sort
        if not isinstance(sort, IdSort):
            return f"cs_range({sort.size({})})"
        sel = candidate_selector(self.sm, var, atoms, set(env), self.pre)
        return f"cs_range{self.total(sort)}" if sel is None else self.render(sel, env)

    def quant(self, q: Quant, env: Mapping[Any, str]) -> str:
        name = self.fresh("q")
        s, i, r, mk = self.fresh("s"), self.fresh("ix"), self.fresh("r"), self.fresh("mk")
        local = {**env, q.var: name}
        body = q.body
        if q.kind == "forall":
            atoms = conjuncts(body.args[0]) if isinstance(body, App) and body.op == "implies" else []
            cands = self.candidates(q.var, atoms, env)
            init, stop = 1, f"if (!({self.expr(body, local)})) {{ {r} = 0; break; }}"
        else:
            cands = self.candidates(q.var, conjuncts(body), env)
            init, stop = 0, f"if ({self.expr(body, local)}) {{ {r} = 1; break; }}"
        return (f"({{ i64 {r} = {init}; i64 {mk} = arena_top; cset {s} = {cands}; "
                f"for (i64 {i} = 0; {i} < {s}.n; {i}++) {{ i64 {name} = CS_AT({s}, {i}); {stop} }} "
                f"arena_top = {mk}; {r}; }})")


def _fold(fn: str, items: Sequence[str]) -> str:
    out = items[0]
    for x in items[1:]:
        out = f"{fn}({out}, {x})"
    return out


# --------------------------------------------------------------------------------------
# One model
# --------------------------------------------------------------------------------------


class _ModelGen:
    def __init__(self, sm: SparseModel, m: int, sort_index: Mapping[str, int]) -> None:
        self.sm = sm
        self.m = m
        self.p = f"m{m}_"
        self.code = _CCode(sm, self.p, sort_index)
        self.sort_index = sort_index
        self.L: list[str] = []

    def emit(self) -> list[str]:
        sm, p, L = self.sm, self.p, self.L
        nv = max(1, len(sm.vars))
        L.append(f"/* ---- model {sm.model.name} */")
        L.append(f"static i64 {p}V[{nv}], {p}VO[{nv}];")
        L.append(f"static uint32_t {p}VS[{nv}];")
        L.append(f"#define {p}PREV(j) ({p}VS[j] == g_stamp ? {p}VO[j] : {p}V[j])")
        for k, f in enumerate(sm.funcs):
            kind = "ufunc" if len(f.index_sorts) == 1 else "bfunc"
            L.append(f"static {kind} {p}F{k}; /* {f.name} */")
        L.append(f"static void {p}init(void) {{")
        for d, j in sm.var_index.items():
            L.append(f"    {p}V[{j}] = {int(d.init)};")
        for k, f in enumerate(sm.funcs):
            kind = "uf" if len(f.index_sorts) == 1 else "bf"
            L.append(f"    {kind}_reset(&{p}F{k}, {int(f.init)});")
        L.append("}")
        L.append(f"static void {p}clear(void) {{")
        for k in range(len(sm.funcs)):
            L.append(f"    {p}F{k}.ch.n = 0;")
        L.append("    g_stamp++;")
        L.append("}")
        emitted: set[int] = set()
        for op in sm.operations.values():
            for act, idx in ((op.action, op.index), (op.rejected, op.rejected_index)):
                if act is None or idx is None or idx in emitted:
                    continue
                emitted.add(idx)
                self.action(act, idx)
        self.incremental()
        return L

    # -- actions (sparse._gen_action) -----------------------------------------------------------
    def sig(self, a: Action) -> tuple[str, dict[object, str]]:
        params = [f"p_{x.name}" for x in a.params]
        return ", ".join(f"i64 {x}" for x in params) or "void", dict(zip(a.params, params))

    def action(self, a: Action, idx: int) -> None:
        code, p, L = self.code, self.p, self.L
        sig, env = self.sig(a)
        L.append(f"static int {p}guard{idx}({sig}) {{")
        check_labels = {lbl for lbl, _, _ in a.checks} if not a.rejected else set()
        for n, (label, g) in enumerate(a.guard):
            if label in check_labels or label == "some_check_fails":
                continue
            L.append(f"    if (!({code.expr(g, env)})) return {n}; /* {label} */")
        L.append("    return -1;")
        L.append("}")
        L.append(f"static int {p}checks{idx}({sig}) {{")
        for n, (_, cond, _) in enumerate(a.checks):
            L.append(f"    if (!({code.expr(cond, env)})) return {n};")
        L.append("    return -1;")
        L.append("}")
        for name, o in a.outputs:
            L.append(f"static i64 {p}out{idx}_{name}({sig}) {{ return {code.expr(o, env)}; }}")
        L.append(f"static void {p}apply{idx}({sig}) {{")
        writes: list[str] = []
        n = 0
        for u in a.updates:
            n += 1
            if isinstance(u, Assign):
                L.append(f"    i64 v{n} = {code.expr(u.value, env)};")
                t = u.target
                if isinstance(t, Ref):
                    j = self.sm.var_index[t.decl]  # type: ignore[index]
                    writes.append(f"    if ({p}V[{j}] != v{n}) {{ if ({p}VS[{j}] != g_stamp) {{ {p}VS[{j}] = g_stamp; "
                                  f"{p}VO[{j}] = {p}V[{j}]; }} {p}V[{j}] = v{n}; }}")
                else:
                    k = self.sm.func_index[t.func]
                    args = [code.expr(x, env) for x in t.args]
                    for i, x in enumerate(args):
                        L.append(f"    i64 k{n}_{i} = {x};")
                    if len(args) == 1:
                        writes.append(f"    uf_set({code.f(k)}, k{n}_0, v{n});")
                    else:
                        writes.append(f"    bf_set({code.f(k)}, k{n}_0, k{n}_1, v{n});")
            else:
                self.func_assign(u, env, n, writes)
        L.extend(writes)
        L.append("}")

    def func_assign(self, u: FuncAssign, env: Mapping[Any, str], n: int, writes: list[str]) -> None:
        """sparse._gen_func_assign: rows (key, value) of the cells that can change, then the writes."""
        code, L = self.code, self.L
        k = self.sm.func_index[u.func]
        f = u.func
        body = u.body
        arity = len(u.vars)
        names = [code.fresh("x") for _ in u.vars]
        local: dict[object, str] = {**env, **dict(zip(u.vars, names))}
        own = lambda e: (isinstance(e, Select) and e.func is f
                         and all(_is_var(a, v) for a, v in zip(e.args, u.vars)))
        bool_false_default = isinstance(f.value_sort, BoolSort) and int(f.init) == 0
        L.append(f"    i64 w{n}_start = wbuf_n;")
        push = " ".join(f"wbuf_push({x});" for x in names) + f" wbuf_push({code.expr(body, local)});"
        if bool_false_default and isinstance(body, App) and body.op == "and" and any(own(a) for a in body.args):
            # every non-default cell (a snapshot: the writes come after)
            i = code.fresh("ix")
            L.append(f"    for (i64 {i} = 0; {i} < {code.f(k)[1:]}.keys.n; {i}++) {{")
            if arity == 1:
                L.append(f"        i64 {names[0]} = {code.f(k)[1:]}.keys.a[{i}];")
            else:
                L.append(f"        const bentry *e_ = &{code.f(k)[1:]}.e[{code.f(k)[1:]}.keys.a[{i}]];")
                L.append(f"        i64 {names[0]} = e_->a, {names[1]} = e_->b;")
            L.append(f"        {push}")
            L.append("    }")
        else:
            conds: list[Expr] | None
            if bool_false_default and isinstance(body, App) and body.op == "or" and any(own(a) for a in body.args):
                conds = [a for a in body.args if not own(a)]
            else:
                conds = []
                e = body
                while isinstance(e, App) and e.op == "ite":
                    conds.append(e.args[0])
                    e = e.args[2]
                if not own(e):
                    conds = None
            bound: dict[object, str] = dict(env)
            depth = 0
            L.append(f"    {{ i64 mkw{n} = arena_top;")
            for var, name in zip(u.vars, names):
                if conds:
                    sels = [code.candidates(var, conjuncts(c), bound) for c in conds]
                    cands = sels[0] if len(sels) == 1 else _fold("cs_union", sels)
                else:
                    cands = f"cs_range({code.n(var.sort)})"
                s, i = code.fresh("s"), code.fresh("ix")
                L.append(f"    {{ cset {s} = {cands}; for (i64 {i} = 0; {i} < {s}.n; {i}++) {{ "
                         f"i64 {name} = CS_AT({s}, {i});")
                bound[var] = name
                depth += 1
            known = " && ".join(f"{name} < {code.n(v.sort)}" for v, name in zip(u.vars, names))
            L.append(f"        if ({known}) {{ {push} }}")
            L.append("    " + "}} " * depth + f"arena_top = mkw{n}; }}")
        # the value every never-seen cell takes must stay the default
        offsets: dict[str, int] = {}
        fresh_env: dict[object, str] = dict(env)
        for var in u.vars:
            j = offsets.get(var.sort.name, 0)
            offsets[var.sort.name] = j + 1
            fresh_env[var] = f"({code.n(var.sort)} + {j})"
        L.append(f"    i64 fv{n} = {code.expr(body, fresh_env)};")
        L.append(f"    i64 w{n}_end = wbuf_n;")
        writes.append(f"    if (fv{n} != {int(f.init)}) g_bail = 1;")
        row = arity + 1
        if arity == 1:
            writes.append(f"    for (i64 r_ = w{n}_start; r_ < w{n}_end; r_ += {row}) "
                          f"uf_set({code.f(k)}, wbuf[r_], wbuf[r_ + 1]);")
        else:
            writes.append(f"    for (i64 r_ = w{n}_start; r_ < w{n}_end; r_ += {row}) "
                          f"bf_set({code.f(k)}, wbuf[r_], wbuf[r_ + 1], wbuf[r_ + 2]);")

    # -- incremental invariants (sparse._gen_incremental) ---------------------------------------------
    def incremental(self) -> None:
        sm, code, p, L = self.sm, self.code, self.p, self.L
        by_func: dict[int, list[tuple[int, str | None]]] = {}
        by_var: dict[int, list[int]] = {}
        seen: dict[tuple[int, int, str], str] = {}
        for pi, part in enumerate(sm.parts):
            names = [f"x{i}" for i in range(len(part.vars))]
            env = dict(zip(part.vars, names))
            code.pre = part.transition
            L.append(f"static int {p}body{pi}({', '.join(f'i64 {x}' for x in names) or 'void'}) {{ "
                     f"return ({code.expr(part.body, env)}) != 0; }}")
            code.pre = False
            # every instance (sparse's all{pi}): 1 if one fails
            L.append(f"static int {p}all{pi}(void) {{")
            loops = []
            for v, x in zip(part.vars, names):
                loops.append(f"for (i64 {x} = 0; {x} < {code.total(v.sort)}; {x}++)")
            call = f"{p}body{pi}({', '.join(names)})"
            L.append(f"    {' '.join(loops)} {{ if (INST_FAILS({call})) return 1; }}")
            L.append("    return 0;")
            L.append("}")
            for site in part.sites:
                if site.func is None:
                    assert site.var is not None
                    j = sm.var_index[site.var]
                    if pi not in by_var.setdefault(j, []):
                        by_var[j].append(pi)
                    continue
                k = sm.func_index[site.func]
                if not part.vars:
                    entry: tuple[int, str | None] = (pi, "")
                elif SparseModel._direct(part, site):
                    entry = (pi, None)
                else:
                    src, name = self.enumerator(pi, part, site, len(seen))
                    key3 = (pi, k, src)
                    if key3 not in seen:
                        seen[key3] = name
                        L.extend(src.replace("@NAME@", name).splitlines())
                    entry = (pi, seen[key3])
                if entry not in by_func.setdefault(k, []):
                    by_func[k].append(entry)
        nparts = max(1, len(sm.parts))
        L.append("/* 1 if an invariant instance the last step can have falsified is false */")
        L.append(f"static int {p}check_step(void) {{")
        wholes_possible = sorted({pi for entries in by_func.values() for pi, _ in entries if not sm.parts[pi].vars}
                                 | {pi for pis in by_var.values() for pi in pis})
        if wholes_possible:
            L.append(f"    unsigned char whole[{nparts}];")
            for pi in wholes_possible:
                L.append(f"    whole[{pi}] = 0;")
        for k, entries in sorted(by_func.items()):
            wholes = [pi for pi, en in entries if not sm.parts[pi].vars]
            if wholes:
                L.append(f"    if ({p}F{k}.ch.n) {{ " + " ".join(f"whole[{pi}] = 1;" for pi in wholes) + " }")
        for j, pis in sorted(by_var.items()):
            L.append(f"    if ({p}VS[{j}] == g_stamp) {{ " + " ".join(f"whole[{pi}] = 1;" for pi in pis) + " }")
        for pi in wholes_possible:
            L.append(f"    if (whole[{pi}] && {p}all{pi}()) return 1;")
        for k, entries in sorted(by_func.items()):
            unary = len(sm.funcs[k].index_sorts) == 1
            todo = [(pi, en) for pi, en in entries if sm.parts[pi].vars]
            if not todo:
                continue
            L.append(f"    if ({p}F{k}.ch.n) {{")
            for pi, en in todo:
                guard = f"if (!whole[{pi}]) " if pi in wholes_possible else ""
                L.append(f"    {guard}for (i64 c_ = 0; c_ < {p}F{k}.ch.n; c_++) {{")
                if unary:
                    L.append(f"        i64 k0 = {p}F{k}.ch.a[c_];")
                    args = "k0"
                else:
                    L.append(f"        const bentry *e_ = &{p}F{k}.e[{p}F{k}.ch.a[c_]]; i64 k0 = e_->a, k1 = e_->b;")
                    args = "k0, k1"
                if en is None:
                    L.append(f"        if (INST_FAILS({p}body{pi}({args}))) return 1;")
                else:
                    L.append(f"        if ({en}({args})) return 1;")
                L.append("    }")
            L.append("    }")
        L.append("    return 0;")
        L.append("}")

    def enumerator(self, pi: int, part: _Part, site: _Site, serial: int) -> tuple[str, str]:
        """sparse._gen_enumerator in C: every instance whose flipping path may end at ``site`` is checked."""
        assert site.func is not None
        sm, code, p = self.sm, self.code, self.p
        k = sm.func_index[site.func]
        unary = len(site.args) == 1
        name = f"{p}en{pi}_{serial}"
        w1_pre = not part.transition
        mode = {"W1": w1_pre, "W2": part.transition}
        params = "i64 k0" if unary else "i64 k0, i64 k1"
        L = [f"static int @NAME@({params}) {{"]
        known: dict[BoundVar, str] = {}
        comps = ["k0"] if unary else ["k0", "k1"]
        old, new = "o_", "n_"
        slots = {f"k{i}": c for i, c in enumerate(comps)} | {"old": old, "new": new}
        bindings, arg_slots = key_bindings(site)
        for v, i in bindings:
            if v in known:
                L.append(f"    if ({known[v]} != {comps[i]}) return 0;")
            else:
                known[v] = code.fresh("b")
                L.append(f"    i64 {known[v]} = {comps[i]};")
        arg_atoms = [(arg, slots[slot.name]) for arg, slot in arg_slots]
        atoms = _atoms(site.gates)
        if site.partner is not None:
            if unary:
                L.append(f"    i64 {old} = uf_pre(&{p}F{k}, k0), {new} = uf_get(&{p}F{k}, k0);")
            else:
                L.append(f"    i64 {old} = bf_pre(&{p}F{k}, k0, k1), {new} = bf_get(&{p}F{k}, k0, k1);")
        L.append("    int saved_err = g_err; g_err = 0;")
        order: list[tuple[BoundVar, str]] = []
        needed = [v for v in part.vars if v not in known]
        for v, sel in binding_order(sm, site, needed, set(known), arg_slots, mode):
            sel_code = f"cs_range{code.total(v.sort)}" if sel is None else code.render(sel, known, slots)
            known[v] = code.fresh("b")
            order.append((v, sel_code))
        # filters, each at the outermost loop that binds its variables (as sparse.py)
        conds: list[tuple[str, set[BoundVar]]] = []
        env = dict(known)
        for arg, comp in arg_atoms:
            if _bound_vars(arg) <= set(env):
                code.pre = mode["W2"]
                conds.append((f"({code.expr(arg, env)} == {comp})", _bound_vars(arg)))
                code.pre = False
        if site.partner is not None and _bound_vars(site.partner) <= set(env):
            code.pre = mode["W1"]
            p1 = code.expr(site.partner, env)
            code.pre = mode["W2"]
            p2 = code.expr(site.partner, env)
            code.pre = False
            conds.append((f"(({{ i64 t_ = {p1}; t_ == {old} || t_ == {new}; }}) || "
                          f"({{ i64 t_ = {p2}; t_ == {old} || t_ == {new}; }}))", _bound_vars(site.partner)))
        for expr, world, truth in atoms:
            if not _bound_vars(expr) <= set(env):
                continue
            code.pre = mode[world]
            c = code.expr(expr, env)
            code.pre = False
            conds.append((c if truth else f"(!{c})", _bound_vars(expr)))
        loop_vars = [v for v, _ in order]

        def level(vars_: set[BoundVar]) -> int:
            return max((loop_vars.index(v) + 1 for v in vars_ if v in loop_vars), default=0)

        inner = [c for c, vs in conds if level(vs) == len(loop_vars)]
        exits_at: dict[int, list[str]] = {}
        for c, vs in conds:
            lv = level(vs)
            if lv < len(loop_vars):
                skip = "goto done_;" if lv == 0 else "continue;"
                # sparse.py: try: if not (c): skip / except EvaluationError: pass
                exits_at.setdefault(lv, []).append(
                    f"{{ int e_ = g_err; g_err = 0; i64 c_ = {c}; int raised_ = g_err; g_err = e_; "
                    f"if (!raised_ && !c_) {skip} }}")
        body: list[str] = []
        indent = "    "
        for i, (v, sel_code) in enumerate(order):
            for x in exits_at.get(i, []):
                body.append(indent + x)
            cs, j = code.fresh("s"), code.fresh("ix")
            body.append(f"{indent}{{ cset {cs} = {sel_code}; for (i64 {j} = 0; {j} < {cs}.n; {j}++) {{ "
                        f"i64 {known[v]} = CS_AT({cs}, {j});")
            indent += "    "
        inst = ", ".join(known[v] for v in part.vars)
        check = f"if (INST_FAILS({p}body{pi}({inst}))) {{ g_err = saved_err; return 1; }}"
        if inner:
            body.append(f"{indent}{{ int e_ = g_err; g_err = 0; int ok_ = ({' && '.join(inner)}) != 0; "
                        f"if (g_err) ok_ = 1; g_err = e_; if (ok_) {check} }}")
        else:
            body.append(f"{indent}{check}")
        for _ in order:
            indent = indent[:-4]
            body.append(f"{indent}}} }}")
        L.extend(body)
        L.append("    if (g_err) { g_err = saved_err; return " + f"{p}all{pi}(); }}")
        if any(lv == 0 for lv in exits_at):
            L.append("done_:")
        L.append("    g_err = saved_err;")
        L.append("    return 0;")
        L.append("}")
        return "\n".join(L), name


# --------------------------------------------------------------------------------------
# The whole checker
# --------------------------------------------------------------------------------------


def _render_check(sort: Sort, value: str, text: str, n: str) -> str:
    """C: the reported text (``text``, ``n`` bytes) equals ``sort.render(value)``."""
    if isinstance(sort, BoolSort):
        return f'text_is({text}, {n}, {value} ? "true" : "false")'
    if isinstance(sort, EnumSort):
        table = "(const char *[]){" + ", ".join(_cstr(m) for m in sort.members) + "}"
        return (f"({value} >= 0 && {value} < {len(sort.members)} && "
                f"text_is({text}, {n}, {table}[{value}]))")
    if isinstance(sort, IntSort):
        return f'render_is({text}, {n}, "", {value}, 0)'
    if isinstance(sort, IdSort):
        return f"render_is({text}, {n}, {_cstr(sort.prefix)}, {value}, 0)"
    if isinstance(sort, OptSort):
        return f"render_is({text}, {n}, {_cstr(sort.inner.prefix)}, {value}, 1)"
    raise ModelDefinitionError(f"cannot render {sort.name} in C")


def generate(watched: Sequence[SparseModel], by_op: Mapping[str, Sequence[int]]) -> tuple[str, list[str]]:
    """C source of a checker for ``watched`` (in the monitor's order); ``by_op``: op -> watched indexes.

    Returns the source (runtime included) and the operation names in the order of the per-op counts.
    """
    sorts: list[str] = []
    for sm in watched:
        for s in sm.id_sorts:
            if s not in sorts:
                sorts.append(s)
    sort_index = {s: i for i, s in enumerate(sorts)}
    L: list[str] = [RUNTIME.read_text()]
    L.append(f"static itable tab[{max(1, len(sorts))}]; /* {', '.join(sorts)} */")
    gens = [_ModelGen(sm, m, sort_index) for m, sm in enumerate(watched)]
    for g in gens:
        L.extend(g.emit())
    ops = sorted(by_op)
    # per (model, op): decode, predict, compare, guard, apply, check (properties.monitor._step_model)
    for oi, op in enumerate(ops):
        for m in by_op[op]:
            L.extend(_step_fn(gens[m], op, oi))
        L.append(f"static int op{oi}(const event *ev) {{ /* {op} */")
        for m in by_op[op]:
            L.append(f"    {{ int r = m{m}_op{oi}(ev); if (r) return r; }}")
        L.append("    return 0;")
        L.append("}")
    L.append("typedef int (*opfn)(const event *);")
    L.append(f"static const char *op_names[] = {{{', '.join(_cstr(o) for o in ops)}}};")
    L.append(f"static const opfn op_fns[] = {{{', '.join(f'op{i}' for i in range(len(ops)))}}};")
    L.append(f"#define N_OPS {len(ops)}")
    L.append("static int op_lookup(const jval *op) {")
    L.append("    switch (op->len) {")
    for n in sorted({len(o.encode()) for o in ops}):
        L.append(f"    case {n}:")
        for i, o in enumerate(ops):
            if len(o.encode()) == n:
                L.append(f"        if (!memcmp(op->s, {_cstr(o)}, {n})) return {i};")
        L.append("        return -1;")
    L.append("    }")
    L.append("    return -1;")
    L.append("}")
    L.extend(_reads(gens, sorts, ops, by_op))
    L.append("static void init_all(void) {")
    L.append(f"    for (int i = 0; i < {max(1, len(sorts))}; i++) itable_reset(&tab[i]);")
    L.append("    spool_n = 0; g_err = 0; g_bail = 0; g_kind = 0;")
    for g in gens:
        L.append(f"    {g.p}init();")
    L.append("}")
    L.append(_DRIVER)
    L.append(_READS)
    return "\n".join(L) + "\n", ops


def predict_stride(watched: Sequence[SparseModel]) -> int:
    """The ``i64``s a prediction writes per model (`_predict_fn`): the action, the failing check, its outputs."""
    return 2 + max((len(a.outputs) for sm in watched for a in sm.model.actions), default=0)


def _reads(gens: Sequence[_ModelGen], sorts: Sequence[str], ops: Sequence[str],
           by_op: Mapping[str, Sequence[int]]) -> list[str]:
    """Tables of the sparse state for the state export, and the predictions (`_READS` reads them)."""
    L = ["/* ---- the state export and predictions (engine.py: CompiledStepper.state, cells, predict) */"]
    L.append(f"#define N_SORTS {len(sorts)}")
    L.append(f"#define N_MODELS {len(gens)}")
    L.append(f"#define PREDICT_STRIDE {predict_stride([g.sm for g in gens])}")
    L.append(f"static const char *const sort_names[] = {{{', '.join(_cstr(x) for x in sorts) or '0'}}};")
    funcs = [f"&{g.p}F{k}" for g in gens for k in range(len(g.sm.funcs))]
    arity = [str(len(f.index_sorts)) for g in gens for f in g.sm.funcs]
    first = [0]
    for g in gens:
        first.append(first[-1] + len(g.sm.funcs))
    L.append(f"static void *const func_of[] = {{{', '.join(funcs) or '0'}}};")
    L.append(f"static const int func_arity[] = {{{', '.join(arity) or '0'}}};")
    L.append(f"static const int func_first[] = {{{', '.join(map(str, first))}}};")
    L.append(f"static i64 *const vars_of[] = {{{', '.join(f'{g.p}V' for g in gens) or '0'}}};")
    L.append(f"static const int var_count[] = {{{', '.join(str(len(g.sm.vars)) for g in gens) or '0'}}};")
    for oi, op in enumerate(ops):
        for m in by_op[op]:
            L.extend(_predict_fn(gens[m], op, oi))
        L.append(f"static int pr{oi}(const event *ev, i64 *o) {{ /* {op} */")
        for t, m in enumerate(by_op[op]):
            L.append(f"    {{ int r = m{m}_pr{oi}(ev, o + {t} * PREDICT_STRIDE); if (r) return r; }}")
        L.append("    return 0;")
        L.append("}")
    L.append("typedef int (*prfn)(const event *, i64 *);")
    L.append(f"static const prfn pr_fns[] = {{{', '.join(f'pr{i}' for i in range(len(ops))) or '0'}}};")
    L.append(f"static const int pr_targets[] = {{{', '.join(str(len(by_op[op])) for op in ops) or '0'}}};")
    first_of_op = [0]
    for op in ops:
        first_of_op.append(first_of_op[-1] + len(by_op[op]))
    L.append(f"static const int op_models_first[] = {{{', '.join(map(str, first_of_op))}}};")
    L.append(f"static const int op_models[] = {{{', '.join(str(m) for op in ops for m in by_op[op]) or '0'}}};")
    # Monitor.check_all: every state invariant's parts over every identity (the incremental check's all{pi})
    L.append("/* every state invariant part evaluated in full: rows (model, part index) of the failing ones,")
    L.append(" * into out if they fit in cap rows; returns how many fail */")
    L.append("static i64 check_all_parts(i64 *out, i64 cap) {")
    L.append("    i64 n = 0;")
    for g in gens:
        for pi, part in enumerate(g.sm.parts):
            if not part.transition:
                row = f"out[2 * n] = {g.m}; out[2 * n + 1] = {pi};"
                L.append(f"    if ({g.p}all{pi}()) {{ if (n < cap) {{ {row} }} n++; }}")
    L.append("    return n;")
    L.append("}")
    return L


def _predict_fn(g: _ModelGen, op: str, oi: int) -> list[str]:
    """One model's prediction for an event of ``op``, not applied (`Monitor._evaluate` with ``predict=True``).

    Writes ``o[0]`` the action that applies (the operation or its rejected twin), ``o[1]`` the first failing check
    (-1: none), ``o[2 + j]`` the value of that action's output j.  Returns 0 (allowed), 1 (a guard forbids it) or
    K_BAIL (the monitor raises, or the C does not decide)."""
    sm, p = g.sm, g.p
    operation = _operation_of(sm, op)
    act = operation.action
    L = [f"static int {p}pr{oi}(const event *ev, i64 *o) {{"]
    args = ", ".join(_decode_args(g, act, L))
    L.append(f"    o[0] = {operation.index}; o[1] = -1;")
    if act.checks:
        rejected, ridx = operation.rejected, operation.rejected_index
        assert rejected is not None and ridx is not None
        L.append(f"    int failing = {p}checks{operation.index}({args});")
        L.append("    if (g_err) return K_BAIL;")
        if rejected.name == op:
            # the event names the rejected twin: with every check passing, the monitor reports a wrong result
            L.append("    if (failing < 0) return K_BAIL;")
        L.append("    if (failing >= 0) {")
        L.append(f"        o[0] = {ridx}; o[1] = failing;")
        # the monitor evaluates the twin's outputs (its result) before the twin's guard
        for j, (name, _) in enumerate(rejected.outputs):
            L.append(f"        o[{2 + j}] = {p}out{ridx}_{name}({args});")
        L.append("        if (g_err) return K_BAIL;")
        L.append(f"        if ({p}guard{ridx}({args}) >= 0) return g_err ? K_BAIL : 1;")
        L.append("        return g_err ? K_BAIL : 0;")
        L.append("    }")
    L.append(f"    if ({p}guard{operation.index}({args}) >= 0) return g_err ? K_BAIL : 1;")
    L.append("    if (g_err) return K_BAIL;")
    # outputs are evaluated where the guard holds (as the monitor does)
    for j, (name, _) in enumerate(act.outputs):
        L.append(f"    o[{2 + j}] = {p}out{operation.index}_{name}({args});")
    L.append("    return g_err ? K_BAIL : 0;")
    L.append("}")
    return L


def _operation_of(sm: SparseModel, op: str) -> Operation:
    """The Operation the op name ``op`` reports (the operation itself or its rejected twin's name)."""
    operation = None
    for o in sm.operations.values():
        if o.name == op or (o.rejected is not None and o.rejected.name == op):
            operation = o
    assert operation is not None, op
    return operation


def _decode_args(g: _ModelGen, act: Action, L: list[str]) -> list[str]:
    """C decoding the event's arguments of ``act`` into locals ``p_*`` (interning identities in parameter order, as
    `Monitor._decode_args`); a missing or undecodable argument returns K_BAIL.  Returns the locals' names."""
    L.append("    const jval *a_;")
    vals = []
    for prm in act.params:
        v = f"p_{prm.name}"
        vals.append(v)
        L.append(f"    a_ = ev_arg(ev, {_cstr(prm.name)}, {len(prm.name.encode())}); if (!a_) return K_BAIL;")
        sort = prm.sort
        if isinstance(sort, IdSort):
            L.append(f"    i64 {v} = intern_arg(tab, {g.sort_index[sort.name]}, a_);")
        elif isinstance(sort, OptSort):
            L.append(f"    i64 {v} = a_->kind == J_NULL ? -1 : intern_arg(tab, {g.sort_index[sort.inner.name]}, a_);")
        elif isinstance(sort, BoolSort):
            L.append(f"    i64 {v} = bool_arg(a_);")
        elif isinstance(sort, EnumSort):
            conds = " : ".join(f"jstr_is(a_, {_cstr(m)}) ? {i}" for i, m in enumerate(sort.members))
            L.append(f"    i64 {v} = {conds} : (g_bail = 1, 0);")
        elif isinstance(sort, IntSort):
            L.append(f"    i64 {v} = int_arg(a_);")
        else:
            L.append("    return K_BAIL;")
        L.append("    if (g_bail) return K_BAIL;")
    return vals


def _step_fn(g: _ModelGen, op: str, oi: int) -> list[str]:
    sm, p = g.sm, g.p
    operation = _operation_of(sm, op)
    act = operation.action
    names_rejected = operation.rejected is not None and operation.rejected.name == op
    L = [f"static int {p}op{oi}(const event *ev) {{"]
    vals = _decode_args(g, act, L)
    args = ", ".join(vals)
    chosen = operation.index
    L.append(f"    int chosen = {chosen};")
    if act.checks:
        assert operation.rejected is not None and operation.rejected_index is not None
        ridx = operation.rejected_index
        result_sort = act.checks[0][2].sort
        L.append(f"    int failing = {p}checks{chosen}({args});")
        L.append("    if (g_err) return K_BAIL;")
        L.append("    const char *rep = ev->has_result ? ev->result.s : NULL;")
        L.append("    i64 rlen = ev->has_result ? ev->result.len : 0;")
        if names_rejected:
            L.append('    if (!rep) { rep = "(some error)"; rlen = 12; }')
        L.append("    if (!rep) return K_BAIL;")
        L.append("    if (failing < 0) {")
        L.append('        if (!text_is(rep, rlen, "OK")) return K_WRONG_RESULT;')
        L.append("    } else {")
        L.append(f"        chosen = {ridx};")
        L.append(f"        i64 res = {p}out{ridx}_result({args});")
        L.append("        if (g_err) return K_BAIL;")
        same = _render_check(result_sort, "res", "rep", "rlen")
        L.append(f'        if (!text_is(rep, rlen, "(some error)") && !({same}))')
        L.append("            return K_WRONG_RESULT;")
        L.append("    }")
    else:
        L.append('    if (ev->has_result && !jstr_is(&ev->result, "OK")) return K_WRONG_RESULT;')
    # the action that applies: guard, outputs (always evaluated, as the monitor does), apply
    actions = [(chosen, act)]
    if operation.rejected is not None and operation.rejected_index is not None:
        actions.append((operation.rejected_index, operation.rejected))
    for idx, a in actions:
        L.append(f"    if (chosen == {idx}) {{")
        L.append(f"        if ({p}guard{idx}({args}) >= 0) return g_err ? K_BAIL : K_NOT_ALLOWED;")
        L.append("        if (g_err) return K_BAIL;")
        outs = list(a.outputs)
        # outputs are evaluated where the guard holds (as the monitor does): an evaluation error is the Python engine's
        for n, _ in outs:
            L.append(f"        i64 o_{n} = {p}out{idx}_{n}({args}); (void)o_{n};")
        L.append("        if (g_err) return K_BAIL;")
        others = [(n, o) for n, o in outs if n != "result"]
        if others:
            L.append("        for (int j = 0; j < ev->nouts; j++) {")
            L.append("            const jpair *q = &ev->outs[j]; char buf[32]; const char *s; i64 n;")
            for n, out_expr in others:
                L.append(f"            if (q->klen == {len(n)} && !memcmp(q->k, {_cstr(n)}, {len(n)})) {{")
                L.append("                if (!output_text(&q->v, buf, &s, &n)) return K_BAIL;")
                same = _render_check(out_expr.sort, f"o_{n}", "s", "n")
                L.append(f"                if (!({same})) return K_WRONG_OUTPUT;")
                L.append("            }")
            L.append("        }")
        L.append(f"        {p}apply{idx}({args});")
        L.append("    }")
    L.append("    if (g_err || g_bail) return K_BAIL;")
    L.append(f"    int broken = {p}check_step();")
    L.append(f"    {p}clear();")
    L.append("    if (g_err || g_bail) return K_BAIL;")
    L.append("    return broken ? K_INVARIANT : 0;")
    L.append("}")
    return L


_DRIVER = r"""
static inline int py_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }
/* the engine's state between lines: the last seq */
static i64 g_last_seq;
static int g_have_seq;

/* one line (ls..le, stripped); K_CLEAN or the verdict; *counted: an event (not a bad line) */
static int g_last_op = -1; /* the op of the last event stepped (-1: a note) */

static int step_event(event *ev, i64 *out, i64 *events) {
    if (g_have_seq && ev->seq <= g_last_seq) return K_BAIL;
    g_have_seq = 1;
    g_last_seq = ev->seq;
    (*events)++;
    g_last_op = -1;
    if (ev->op.len >= 5 && !memcmp(ev->op.s, "note.", 5)) return K_CLEAN;
    int oi = op_lookup(&ev->op);
    if (oi < 0) return K_BAIL;
    g_last_op = oi;
    out[4 + oi]++;
    arena_top = 0;
    wbuf_n = 0;
    g_err = 0;
    int r = op_fns[oi](ev);
    if (g_bail) r = K_BAIL;
    return r;
}

static int step_line(const char *ls, const char *le, i64 *out, i64 *events) {
    event ev;
    if (ls == le || parse_event(ls, le, &ev)) return K_BAIL;
    return step_event(&ev, out, events);
}

/* out: [0] verdict kind (K_*), [1] line of the stop (0: clean), [2] events read, [3] reserved,
 * [4 + i]: events of op i (the operation names' order).  Returns 0, or -1 if the file cannot be read. */
int iospec_check(const char *path, i64 offset, i64 first_line, i64 *out) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) { close(fd); return -1; }
    i64 size = st.st_size;
    const char *base = NULL;
    if (size > 0) {
        base = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (base == MAP_FAILED) { close(fd); return -1; }
    }
    close(fd);
    init_all();
    g_have_seq = 0;
    for (int i = 0; i < 4 + N_OPS; i++) out[i] = 0;
    const char *p = base + offset, *end = base + size;
    i64 line = first_line - 1, events = 0;
    int kind = K_CLEAN;
    while (offset < size && p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *ls = p;
        p = nl ? nl + 1 : end;
        /* bytes.strip(): ASCII whitespace at both ends */
        while (ls < le && py_space(*ls)) ls++;
        while (le > ls && py_space(le[-1])) le--;
        kind = step_line(ls, le, out, &events);
        if (kind) break;
    }
    if (base) munmap((void *)base, (size_t)size);
    out[0] = kind;
    out[1] = kind == K_CLEAN ? 0 : line;
    out[2] = events;
    return 0;
}

/* the live monitor: a fresh state, then one event line at a time (K_CLEAN or the verdict) */
void iospec_reset(i64 *out) {
    init_all();
    g_have_seq = 0;
    for (int i = 0; i < 4 + N_OPS; i++) out[i] = 0;
}

int iospec_step(const char *line, i64 len, i64 *out) {
    i64 events = 0;
    return step_line(line, line + len, out, &events);
}

/* ================================================================ the live monitor
 * `iospec_py_setup` starts the engine's own thread (`live_consumer`).  The recorder's sink calls the builtin
 * made from `py_sink_def` with each event dict, under the recorder's lock and the GIL: it decodes the dict
 * (runtime.c's event_from_dict), appends its line to the log, holds the dict in the ring, and publishes it
 * (`g_pub`).  The consumer checks the published lines in order without the GIL (on the other core), so the
 * runtime thread pays for decoding, not for checking (without the thread, ``thread`` 0, the producer checks
 * each event right after publishing it).  While events come it naps LIVE_NAP_NS between batches;
 * after two empty naps it sleeps until the producer wakes it; `iospec_drain`, which every reader of the
 * verdict calls first, wakes it and waits: a reader always sees the verdict of every event recorded before it.
 * The consumer stops at the first event it does not accept (`g_stop`, at event number `g_cons`); from then
 * on, and for any event the producer cannot decode or log exactly, the builtin calls the Python fallback
 * (LiveMonitor.on_event), which drains, replays the accepted events into the Python monitor and checks the
 * rest itself.  The producer never runs more than LIVE_LAG events ahead. */
#define LIVE_LAG 256

static i64 *g_py_out;
static int g_timing;
static i64 g_timers[5], g_t_last;
static i64 g_pub;   /* events published (producer writes, atomically) */
static i64 g_cons;  /* events checked and accepted (consumer writes, atomically) */
static int g_stop;  /* the consumer's verdict on event g_cons (K_*), 0 while it runs */
static int g_forward;
static int g_sleeping, g_wake, g_quit, g_thread_on;
static pthread_t g_thread;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static i64 now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (i64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static void timing_mark(int part) {
    i64 now = now_ns();
    g_timers[part] += now - g_t_last;
    g_t_last = now;
}

/* how long the consumer naps between batches while events keep coming (the producer does not wake it: a
 * wake-up is a system call on the runtime's thread) */
#define LIVE_NAP_NS 300000

/* coverage counts (engine.py: CompiledStepper.count_held): after each accepted event, for each counted function of
 * the models that took the event, each value its non-default cells hold is counted once; values of identity
 * sorts count as none (slot 0: -1) or some (slot 1), of integer sorts as 0 (slot 0) or not (slot 1), others as
 * themselves (slot = the value). */
#define COVER_MAX 128
#define COVER_VALS 32
static int g_cover_n;
static int g_cover_m[COVER_MAX], g_cover_f[COVER_MAX], g_cover_kind[COVER_MAX];
static i64 g_cover[COVER_MAX][COVER_VALS];

static inline void cover_value(int t, unsigned char *seen, i64 v) {
    int kind = g_cover_kind[t];
    i64 slot = kind == 0 ? v : kind == 1 ? (v != 0) : (v >= 0);
    if (slot >= 0 && slot < COVER_VALS && !seen[slot]) { seen[slot] = 1; g_cover[t][slot]++; }
}

static void cover_func(int t) {
    unsigned char seen[COVER_VALS];
    memset(seen, 0, sizeof seen);
    int f = func_first[g_cover_m[t]] + g_cover_f[t];
    if (func_arity[f] == 1) {
        const ufunc *u = func_of[f];
        if (u->nidx <= 2 * u->keys.n + 16) { /* the value index's non-empty buckets (as iospec_held) */
            for (i64 slot = 0; slot < u->nidx; slot++)
                if (u->idx[slot].n) cover_value(t, seen, slot - 1);
        } else {
            for (i64 i = 0; i < u->keys.n; i++) cover_value(t, seen, u->val[u->keys.a[i]]);
        }
        return;
    }
    const bfunc *b = func_of[f];
    for (i64 i = 0; i < b->keys.n; i++) cover_value(t, seen, b->e[b->keys.a[i]].val);
}

static void cover_event(int oi) {
    if (oi < 0) return;
    for (int j = op_models_first[oi]; j < op_models_first[oi + 1]; j++)
        for (int t = 0; t < g_cover_n; t++)
            if (g_cover_m[t] == op_models[j]) cover_func(t);
}

/* check the published events not checked yet, in order, up to the first one not accepted; 1 if there were any */
static int live_check_published(void) {
    i64 pub = __atomic_load_n(&g_pub, __ATOMIC_ACQUIRE);
    i64 cons = g_cons;
    int worked = cons < pub;
    while (cons < pub && !g_stop) {
        i64 t0 = g_timing ? now_ns() : 0;
        i64 len;
        const char *line = log_next(&len);
        i64 events = 0;
        int r = step_line(line, line + len, g_py_out, &events);
        if (g_timing) __atomic_fetch_add(&g_timers[4], now_ns() - t0, __ATOMIC_RELAXED);
        if (r) { __atomic_store_n(&g_stop, r, __ATOMIC_RELEASE); break; }
        /* counted before the event counts as checked: readers drain first */
        if (__atomic_load_n(&g_cover_n, __ATOMIC_ACQUIRE)) cover_event(g_last_op);
        cons++;
        __atomic_store_n(&g_cons, cons, __ATOMIC_RELEASE);
    }
    return worked;
}

static void *live_consumer(void *arg) {
    (void)arg;
    int idle = 0;
    for (;;) {
        int worked = live_check_published();
        idle = worked ? 0 : idle + 1;
        pthread_mutex_lock(&g_mu);
        if (!g_quit && !g_wake) {
            if (idle >= 2 || g_stop) {
                /* nothing came during two naps: sleep until the producer or a reader wakes it */
                __atomic_store_n(&g_sleeping, 2, __ATOMIC_SEQ_CST);
                while (!g_quit && !g_wake && (g_stop || __atomic_load_n(&g_pub, __ATOMIC_SEQ_CST) == g_cons))
                    pthread_cond_wait(&g_cv, &g_mu);
            } else {
                __atomic_store_n(&g_sleeping, 1, __ATOMIC_SEQ_CST);
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += LIVE_NAP_NS;
                if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
                pthread_cond_timedwait(&g_cv, &g_mu, &until);
            }
        }
        g_wake = 0;
        __atomic_store_n(&g_sleeping, 0, __ATOMIC_SEQ_CST);
        int quit = g_quit;
        pthread_mutex_unlock(&g_mu);
        if (quit) return (void *)0;
    }
}

static void live_wake(void) {
    pthread_mutex_lock(&g_mu);
    g_wake = 1;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* wait until the consumer checked every published event, or stopped (the caller holds the GIL: the consumer
 * never needs it) */
void iospec_drain(void) {
    if (!g_thread_on) return;
    int woken = 0;
    while (__atomic_load_n(&g_cons, __ATOMIC_ACQUIRE) < __atomic_load_n(&g_pub, __ATOMIC_RELAXED) &&
           !__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
        if (!woken || __atomic_load_n(&g_sleeping, __ATOMIC_SEQ_CST)) { live_wake(); woken = 1; }
        sched_yield();
    }
}

/* stop the consumer thread (after draining); any later event goes to the Python fallback */
void iospec_close(void) {
    g_forward = 1;
    if (!g_thread_on) return;
    iospec_drain();
    pthread_mutex_lock(&g_mu);
    g_quit = 1;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pthread_join(g_thread, (void **)0);
    g_thread_on = 0;
}

/* a forked child has no consumer thread: every event goes to the Python fallback, which checks what was not */
static void live_after_fork(void) {
    g_thread_on = 0;
    g_forward = 1;
    pthread_mutex_init(&g_mu, (const pthread_mutexattr_t *)0);
    pthread_cond_init(&g_cv, (const pthread_condattr_t *)0);
}

/* ``ring``: how many checked event dicts to hold (the Python monitor's history).  Starts the consumer.
 * Returns 0, or -1 (out of memory, no thread: the live monitor uses the Python monitor instead). */
int iospec_py_setup(void **api, pyobj **objs, i64 *out, i64 ring, int thread) {
    if (g_thread_on || py_ready) return -1; /* one live monitor per copy of the library */
    void **slot = (void **)&py;
    for (size_t i = 0; i < sizeof py / sizeof(void *); i++) slot[i] = api[i];
    for (int i = 0; i < PY_NOBJ; i++) pyo[i] = objs[i];
    g_py_out = out;
    for (int i = 0; i < 4 + N_OPS; i++) out[i] = 0;
    init_all();
    g_have_seq = 0;
    g_pub = g_cons = 0;
    g_stop = g_forward = g_quit = g_wake = g_sleeping = 0;
    if (log_open()) return -1;
    g_ring_cap = (ring > 0 ? ring : 0) + (thread ? LIVE_LAG : 0) + 1; /* + the events not checked yet */
    g_ring = calloc((size_t)g_ring_cap, sizeof *g_ring);
    if (!g_ring) return -1;
    if (thread) {
        if (pthread_create(&g_thread, (const pthread_attr_t *)0, live_consumer, (void *)0) != 0) return -1;
        pthread_atfork((void (*)(void))0, (void (*)(void))0, live_after_fork);
        g_thread_on = 1;
    }
    py_ready = 1;
    return 0;
}

/* the producer's part for one event dict: -1 a note (not checked, not kept), 0 published, else K_BAIL (the
 * dict is not decoded or logged exactly: not published) */
static int publish_dict(pyobj *d) {
    event ev;
    int shape = event_from_dict(d, &ev);
    if (shape == 2) return -1;
    if (shape) return K_BAIL;
    if (g_timing) timing_mark(0);
    if (log_event(&ev)) return K_BAIL;
    i64 n = g_pub;
    while (g_thread_on && n - __atomic_load_n(&g_cons, __ATOMIC_ACQUIRE) >= LIVE_LAG &&
           !__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
        live_wake();
        sched_yield();
    }
    ring_put(n, d);
    __atomic_store_n(&g_pub, n + 1, __ATOMIC_SEQ_CST);
    if (!g_thread_on) { /* checked here and now (no engine thread) */
        if (g_timing) timing_mark(1);
        live_check_published();
        return 0;
    }
    /* wake the consumer from a deep sleep (once per quiet spell), or when it falls behind */
    int sleeping = __atomic_load_n(&g_sleeping, __ATOMIC_SEQ_CST);
    if ((sleeping == 2 || (sleeping && n + 1 - __atomic_load_n(&g_cons, __ATOMIC_RELAXED) >= LIVE_LAG / 2)) &&
        !__atomic_load_n(&g_wake, __ATOMIC_RELAXED))
        live_wake();
    if (g_timing) timing_mark(1);
    return 0;
}

/* the recorder sink's ``event`` as a builtin function (METH_O): a ctypes call costs ~0.5 us, a builtin's
 * call ~0.05 us */
typedef pyobj *(*pycfunction)(pyobj *, pyobj *);
typedef struct { const char *name; pycfunction meth; int flags; const char *doc; } pymethoddef;

static pyobj *py_sink_event(pyobj *self, pyobj *d) {
    (void)self;
    if (!g_forward && !__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
        if (g_timing) g_t_last = now_ns();
        int r = publish_dict(d);
        if (r == 0 && g_timing) g_timers[2]++;
        if (r <= 0) {
            py.incref(pyo[PO_NONE]);
            return pyo[PO_NONE];
        }
    }
    g_forward = 1;
    return py.call(pyo[PO_FALLBACK], d, (pyobj *)0);
}

/* METH_O = 0x0008 (Include/methodobject.h, stable ABI) */
static pymethoddef py_sink_def = {"compiled_monitor_event", py_sink_event, 0x0008, (const char *)0};

/* the PyMethodDef of the sink's builtin (Python makes the function with PyCFunction_NewEx) */
void *iospec_py_sink_def(void) { return &py_sink_def; }

/* from now on every event goes to the Python fallback */
void iospec_py_forward(void) { g_forward = 1; }

/* after `iospec_close` (the consumer thread joined): a fresh state, log and ring, and the consumer started again
 * (``thread``); the live monitor reused for another run.  0, or -1 (no setup, out of memory, no thread). */
int iospec_py_restart(int thread) {
    if (!py_ready || g_thread_on) return -1;
    for (i64 i = 0; i < g_ring_cap; i++)
        if (g_ring[i]) { pyobj *old = g_ring[i]; g_ring[i] = (pyobj *)0; py.decref(old); }
    init_all();
    g_have_seq = 0;
    for (int i = 0; i < 4 + N_OPS; i++) g_py_out[i] = 0;
    g_pub = g_cons = 0;
    g_stop = g_quit = g_wake = g_sleeping = 0;
    memset(g_cover, 0, sizeof g_cover);
    if (log_open()) return -1;
    if (thread) {
        if (pthread_create(&g_thread, (const pthread_attr_t *)0, live_consumer, (void *)0) != 0) return -1;
        g_thread_on = 1;
    }
    g_forward = 0;
    return 0;
}

/* after `iospec_drain`: [0] events accepted, [1] events published, [2] the verdict on event [0] (0: none) */
void iospec_py_status(i64 *into) {
    into[0] = __atomic_load_n(&g_cons, __ATOMIC_ACQUIRE);
    into[1] = g_pub;
    into[2] = __atomic_load_n(&g_stop, __ATOMIC_ACQUIRE);
}

/* count, per event from now on, the values n functions hold (rows: model, function, kind: 0 values, 1 integers
 * 0 / not 0, 2 identities none / some), from zero; n = 0 stops counting.  0, or -1 (too many functions) */
int iospec_cover_setup(const i64 *rows, int n) {
    if (n < 0 || n > COVER_MAX) return -1;
    for (int t = 0; t < n; t++)
        if (rows[3 * t] < 0 || rows[3 * t] >= N_MODELS || rows[3 * t + 1] < 0 ||
            rows[3 * t + 1] >= func_first[rows[3 * t] + 1] - func_first[rows[3 * t]]) return -1;
    iospec_drain();
    g_cover_n = 0;
    for (int t = 0; t < n; t++) {
        g_cover_m[t] = (int)rows[3 * t];
        g_cover_f[t] = (int)rows[3 * t + 1];
        g_cover_kind[t] = (int)rows[3 * t + 2];
    }
    memset(g_cover, 0, sizeof g_cover);
    __atomic_store_n(&g_cover_n, n, __ATOMIC_SEQ_CST);
    return 0;
}

/* after draining: the counts (n functions of COVER_VALS slots) into out; returns COVER_VALS */
int iospec_cover_counts(i64 *out) {
    iospec_drain();
    for (int t = 0; t < g_cover_n; t++)
        for (int v = 0; v < COVER_VALS; v++) out[t * COVER_VALS + v] = g_cover[t][v];
    return COVER_VALS;
}

/* the log's chunk i (bytes of complete lines in *len), or NULL past the last */
const char *iospec_log_chunk(i64 i, i64 *len) {
    if (i < 0 || i >= g_nchunks) return (const char *)0;
    *len = __atomic_load_n(&g_chunk_len[i], __ATOMIC_RELAXED);
    return g_chunks[i];
}

/* the held event dicts numbered first..g_pub-1, appended to the Python list ``into`` (0, or -1: not held) */
int iospec_py_held(i64 first, pyobj *into) {
    if (first < 0 || g_pub - first > g_ring_cap) return -1;
    for (i64 i = first; i < g_pub; i++)
        if (py.list_append(into, g_ring[i % g_ring_cap]) < 0) return -1;
    return 0;
}

/* timers while ``on`` (a benchmark's breakdown), copied into ``timers``: [0] ns decoding event dicts, [1] ns
 * logging and publishing them, [2] events published, [3] unused, [4] ns the engine's thread spent checking */
void iospec_py_timing(int on, i64 *timers) {
    iospec_drain();
    for (int i = 0; i < 5; i++) timers[i] = __atomic_load_n(&g_timers[i], __ATOMIC_RELAXED);
    if (on && !g_timing) memset(g_timers, 0, sizeof g_timers);
    g_timing = on;
}
"""


_READS = r"""
/* ================================================================ state export and predictions
 * Read between events by the thread that records them (it holds the GIL, so no event is published meanwhile).
 * `iospec_current` first waits until the engine's thread checked every published event (iospec_drain): then
 * that thread touches no model state until the next event is published, and the reads see every event
 * recorded before them.  After a stop (or once events go to the Python monitor) the C state is not the run's. */

/* wait until every published event was checked; 0: the C state is the state after every event recorded so far,
 * 1: it is not (a stop, events forwarded).  ``counts``: the identities known per sort (order: iospec_sort_name) */
int iospec_current(i64 *counts) {
    iospec_drain();
    for (int s = 0; s < N_SORTS; s++) counts[s] = tab[s].n;
    return (__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE) || g_forward || g_bail) ? 1 : 0;
}

int iospec_nsorts(void) { return N_SORTS; }
const char *iospec_sort_name(int s) { return s >= 0 && s < N_SORTS ? sort_names[s] : (const char *)0; }
int iospec_nmodels(void) { return N_MODELS; }
int iospec_predict_stride(void) { return PREDICT_STRIDE; }

/* the interned keys of sort s's identities from, from + 1, ... ('s' + the string's bytes, or 'i' + the integer's 8
 * bytes), concatenated into buf (cap bytes) with their lengths in lens (nlens); returns how many it wrote */
i64 iospec_names(int s, i64 from, char *buf, i64 cap, i64 *lens, i64 nlens) {
    if (s < 0 || s >= N_SORTS || from < 0) return 0;
    const itable *t = &tab[s];
    i64 used = 0, k = 0;
    for (i64 id = from; id < t->n && k < nlens; id++, k++) {
        const ientry *e = &t->t[t->by_id[id]];
        if (used + e->len > cap) break;
        memcpy(buf + used, spool + e->off, (size_t)e->len);
        used += e->len;
        lens[k] = e->len;
    }
    return k;
}

/* iospec_current, then model m's function k (sparse.py's D{k}): its non-default cells as rows (key, value) or (key0,
 * key1, value), written to buf if they fit in cap i64s; returns how many there are (-1: no such function, -2: the
 * state is not current) */
i64 iospec_cells(int m, int k, i64 *buf, i64 cap, i64 *counts) {
    if (iospec_current(counts)) return -2;
    if (m < 0 || m >= N_MODELS || k < 0 || k >= func_first[m + 1] - func_first[m]) return -1;
    int f = func_first[m] + k;
    if (func_arity[f] == 1) {
        const ufunc *u = func_of[f];
        i64 n = u->keys.n;
        if (2 * n <= cap)
            for (i64 i = 0; i < n; i++) {
                i64 key = u->keys.a[i];
                buf[2 * i] = key;
                buf[2 * i + 1] = u->val[key];
            }
        return n;
    }
    const bfunc *b = func_of[f];
    i64 n = b->keys.n;
    if (3 * n <= cap)
        for (i64 i = 0; i < n; i++) {
            const bentry *e = &b->e[b->keys.a[i]];
            buf[3 * i] = e->a;
            buf[3 * i + 1] = e->b;
            buf[3 * i + 2] = e->val;
        }
    return n;
}

/* iospec_current, then the values model m's function k holds in its non-default cells, into buf if they fit in cap
 * (a value may come more than once); returns how many there are (-1: no such function, -2: not current) */
i64 iospec_held(int m, int k, i64 *buf, i64 cap, i64 *counts) {
    if (iospec_current(counts)) return -2;
    if (m < 0 || m >= N_MODELS || k < 0 || k >= func_first[m + 1] - func_first[m]) return -1;
    int f = func_first[m] + k;
    i64 n = 0;
    if (func_arity[f] == 1) {
        const ufunc *u = func_of[f];
        if (u->nidx <= 2 * u->keys.n + 16) { /* the value index's non-empty buckets: each value once */
            for (i64 slot = 0; slot < u->nidx; slot++)
                if (u->idx[slot].n) { if (n < cap) buf[n] = slot - 1; n++; }
            return n;
        }
        for (i64 i = 0; i < u->keys.n; i++) { if (n < cap) buf[n] = u->val[u->keys.a[i]]; n++; }
        return n;
    }
    const bfunc *b = func_of[f];
    for (i64 i = 0; i < b->keys.n; i++) { if (n < cap) buf[n] = b->e[b->keys.a[i]].val; n++; }
    return n;
}

/* Monitor.check_all after every event recorded so far: the failing state invariant parts as rows (model, part
 * index of sparse.py's parts), into out if they fit in cap rows; returns how many fail (-1: the state is not
 * current, -2: an evaluation error, which the Python engine reports) */
i64 iospec_check_all(i64 *out, i64 cap, i64 *counts) {
    if (iospec_current(counts)) return -1;
    i64 mark = arena_top;
    int err0 = g_err;
    g_err = 0;
    i64 n = check_all_parts(out, cap);
    arena_top = mark;
    g_err = err0;
    if (g_bail) { g_bail = 0; return -2; } /* nothing was applied: the next event is checked as before */
    return n;
}

/* model m's scalar variables (sparse.py's V), into ``into``; returns how many */
i64 iospec_vars(int m, i64 *into) {
    if (m < 0 || m >= N_MODELS) return -1;
    for (int j = 0; j < var_count[m]; j++) into[j] = vars_of[m][j];
    return var_count[m];
}

/* Monitor.predict of the event dict d (its op and args; nothing else is read), not applied, after every event
 * recorded so far: 0 allowed, 1 a guard forbids it, K_BAIL not decided here (the monitor raises, or the C leaves it to
 * the Python engine), -1 the state is not current.  out: per model of the op (in the monitor's order) PREDICT_STRIDE
 * values (`_predict_fn`).  New identities are interned, as the monitor interns them. */
int iospec_py_predict(pyobj *d, i64 *out, i64 *counts) {
    if (iospec_current(counts)) return -1;
    if (!py_ready) return K_BAIL;
    event ev;
    if (op_from_dict(d, &ev) || args_from_dict(d, &ev)) return K_BAIL;
    int oi = op_lookup(&ev.op);
    if (oi < 0) return K_BAIL;
    memset(out, 0, (size_t)pr_targets[oi] * PREDICT_STRIDE * sizeof *out); /* unused slots: 0 (Python keys on them) */
    i64 mark = arena_top;
    g_err = 0;
    int r = pr_fns[oi](&ev, out);
    arena_top = mark;
    g_err = 0;
    if (g_bail) { g_bail = 0; r = K_BAIL; } /* nothing was applied: the next event is checked as before */
    return r;
}
"""
