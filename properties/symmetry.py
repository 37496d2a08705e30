"""Symmetry reduction over interchangeable identities (threads, contexts, objects, requests).

Identities of an `Id` sort are interchangeable when the model never names one of them
(no constant of the sort appears in any guard, update, output or invariant; identities
cannot be ordered, and initial values cannot name one, by construction).  Then permuting
them maps reachable states to reachable states and preserves every invariant, so the
explorer may store one representative per orbit.

The representative used here is *sound but not always canonical*: each identity gets a
label-free key (its own cells, with references to other identities abstracted to
"some"/"none" and multi-index rows taken as multisets, plus how often it is referenced), the
identities are sorted by key (ties keep their order), and the permutation is applied.  Two
symmetric states usually get the same representative; when they do not, the explorer merely
stores both.  Every verdict is unchanged, which a test checks on every standard
configuration.  The function is generated as straight-line Python, like the successor code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from model.core.dense import DenseModel
from model.core.expr import Const, walk
from model.core.model import Func, Model, StateVar, _all_exprs
from model.core.sorts import IdSort, OptSort

__all__ = ["symmetric_sorts", "compile_canonicalizer"]


def symmetric_sorts(model: Model) -> list[IdSort]:
    """The Id sorts of ``model`` that no expression names a specific value of."""
    named: set[str] = set()
    for e in _all_exprs(model):
        for n in walk(e):
            if isinstance(n, Const) and isinstance(n.sort, (IdSort, OptSort)) and n.value >= 0:
                ids = n.sort.id_sort()
                assert ids is not None
                named.add(ids.name)
    return [s for s in model.id_sorts if s.name not in named]


def compile_canonicalizer(dm: DenseModel) -> tuple[Callable[[tuple[int, ...]], tuple[int, ...]] | None, str]:
    """Generate ``canon(state) -> representative`` for ``dm``; None if nothing is symmetric."""
    sizes = dm.layout.sizes
    sym = {s.name: s for s in symmetric_sorts(dm.model) if s.size(sizes) > 1}
    if not sym:
        return None, ""
    layout = dm.layout
    # Slots no action instance ever writes keep their initial value in every reachable state:
    # they carry no information, so they are left out of the keys and copied as constants.
    written: set[int] = set().union(*dm.inst_writes.values()) if dm.inst_writes else set()
    fixed = {k: dm.initial[k] for k in range(layout.n) if k not in written}
    lines = ["def canon(s):"]
    inverse_lines: list[str] = []

    def is_sym(sort: Any) -> str | None:
        ids = sort.id_sort()
        return ids.name if ids is not None and ids.name in sym else None

    # 1. reference histograms for functions/vars whose values are symmetric identities
    hist_names: dict[str, list[str]] = {name: [] for name in sym}
    for d in dm.model.state:
        if d not in layout.base:
            continue  # never changes (left out of compact states)
        vs = d.value_sort if isinstance(d, Func) else d.sort
        target = is_sym(vs)
        if target is None:
            continue
        n = sym[target].size(sizes)
        h = f"h_{d.name}"
        hist_names[target].append(h)
        lines.append(f"    {h} = [0] * {n + 1}")
        if isinstance(d, StateVar):
            slot_list = [layout.base[d]]
        else:
            slot_list = [layout.slot(d, idx) for idx in itertools.product(*(range(k) for k in layout.shape[d]))]
        live = [k for k in slot_list if k not in fixed]
        if not live:
            hist_names[target].pop()
            lines.pop()
            continue
        lines.append(f"    for v in ({', '.join(f's[{k}]' for k in live)},):")
        lines.append(f"        {h}[v] += 1")

    # 2. keys and orders per symmetric sort
    orders: list[str] = []
    for name, sort in sym.items():
        n = sort.size(sizes)
        keys = []
        for x in range(n):
            parts: list[str] = []
            for d in dm.model.state:
                if not isinstance(d, Func) or d not in layout.base:
                    continue
                vsym = is_sym(d.value_sort)
                for p, isort in enumerate(d.index_sorts):
                    if isort is not sort:
                        continue
                    others = [range(k) if q != p else [x] for q, k in enumerate(layout.shape[d])]
                    cells = list(itertools.product(*others))
                    vals = []
                    for idx in cells:
                        k = layout.slot(d, idx)
                        if k in fixed:
                            continue
                        slot = f"s[{k}]"
                        vals.append(f"({slot} >= 0)" if vsym else slot)
                    if not vals:
                        continue
                    multiset = any(is_sym(d.index_sorts[q]) for q in range(len(d.index_sorts)) if q != p)
                    if multiset:
                        parts.append(f"tuple(sorted(({', '.join(vals)},)))")
                    else:
                        parts.extend(vals)
            parts.extend(f"{h}[{x}]" for h in hist_names[name])
            keys.append("(" + ", ".join(parts) + ",)")
        lines.append(f"    k_{name} = ({', '.join(keys)},)")
        lines.append(f"    o_{name} = tuple(sorted(range({n}), key=k_{name}.__getitem__))")
        orders.append(name)
        # the inverse permutation (old label -> new label; -1 "no identity" stays -1)
        inverse_lines.append(f"    p_{name} = [0] * {n + 1}")
        inverse_lines.append(f"    p_{name}[{n}] = -1")
        inverse_lines.append(f"    for i, x in enumerate(o_{name}):")
        inverse_lines.append(f"        p_{name}[x] = i")

    # 3. the permuted state, slot by slot.  A cell is a constant (`FixedCell`) or the source slot
    #    `offset + sum(order[sort][position] * stride)` (`SourceCell`), whose value is remapped
    #    through the inverse permutation when the value sort is symmetric.
    @dataclass(frozen=True)
    class FixedCell:
        value: Any

    @dataclass(frozen=True)
    class SourceCell:
        offset: int
        #: (symmetric sort, position in that sort's order, stride)
        permuted: tuple[tuple[str, int, int], ...]
        value_sort: str | None

    out_cells: list[FixedCell | SourceCell] = []
    for d in dm.model.state:
        if d not in layout.base:
            continue
        vsym = is_sym(d.value_sort if isinstance(d, Func) else d.sort)
        if isinstance(d, StateVar):
            k0 = layout.base[d]
            out_cells.append(FixedCell(fixed[k0]) if k0 in fixed else SourceCell(k0, (), vsym))
            continue
        strides = layout.strides[d]
        every = list(itertools.product(*(range(k) for k in layout.shape[d])))
        cells_fixed = all(layout.slot(d, idx) in fixed for idx in every)
        for idx in every:
            if cells_fixed:
                out_cells.append(FixedCell(fixed[layout.slot(d, idx)]))
                continue
            offset = layout.base[d]
            permuted: list[tuple[str, int, int]] = []
            for j, isort, stride in zip(idx, d.index_sorts, strides):
                iname = is_sym(isort) if isinstance(isort, IdSort) else None
                if iname:
                    permuted.append((iname, j, stride))
                else:
                    offset += j * stride
            out_cells.append(SourceCell(offset, tuple(permuted), vsym))

    def symbolic() -> str:
        """The permuted state as an expression over the orders `o_<sort>` and inverses `p_<sort>`."""
        parts = []
        for c in out_cells:
            if isinstance(c, FixedCell):
                parts.append(repr(c.value))
                continue
            terms = [str(c.offset)] + [f"o_{n}[{j}]" + (f"*{st}" if st != 1 else "") for n, j, st in c.permuted]
            slot = f"s[{' + '.join(terms)}]"
            parts.append(f"p_{c.value_sort}[{slot}]" if c.value_sort else slot)
        return "(" + ", ".join(parts) + ",)"

    def specialised(order: dict[str, tuple[int, ...]]) -> Callable[[tuple[int, ...]], tuple[int, ...]]:
        """One permutation as straight-line code with constant slot indices."""
        maps: dict[str, tuple[int, ...]] = {}
        for name, o in order.items():
            p = [0] * (len(o) + 1)
            p[len(o)] = -1
            for pos, x in enumerate(o):
                p[x] = pos
            maps[name] = tuple(p)
        parts = []
        for c in out_cells:
            if isinstance(c, FixedCell):
                parts.append(repr(c.value))
                continue
            slot = c.offset + sum(order[n][j] * st for n, j, st in c.permuted)
            parts.append(f"p_{c.value_sort}[s[{slot}]]" if c.value_sort else f"s[{slot}]")
        env = {f"p_{name}": m for name, m in maps.items()}
        code = "lambda s: (" + ", ".join(parts) + ",)"
        return eval(code, env)  # generated from the layout

    identity = " and ".join(f"o_{name} == {tuple(range(sym[name].size(sizes)))!r}" for name in orders)
    key = "(" + ", ".join(f"o_{name}" for name in orders) + ",)"
    # canon: compute the orders, then apply the permutation through straight-line code
    # specialised for that permutation (generated on first use, cached in APPLY)
    canon_lines = list(lines)
    if identity:
        canon_lines.append(f"    if {identity}:")
        canon_lines.append("        return s")
    canon_lines.append(f"    key = {key}")
    canon_lines.append("    f = APPLY.get(key)")
    canon_lines.append("    if f is None:")
    canon_lines.append(f"        f = APPLY[key] = SPECIALISE(dict(zip({list(orders)!r}, key)))")
    canon_lines.append("    return f(s)")
    # canon_perm (counterexamples only): the general version, also returning the permutation
    perm_lines = ["def canon_perm(s):", *lines[1:], *inverse_lines]
    perms = ", ".join(f"{name!r}: p_{name}[:{sort.size(sizes)}]" for name, sort in sym.items())
    perm_lines.append(f"    return {symbolic()}, {{{perms}}}")
    source = "\n".join(canon_lines + perm_lines) + "\n"
    ns: dict[str, Any] = {"APPLY": {}, "SPECIALISE": specialised}
    exec(compile(source, f"<canon:{dm.config.describe()}>", "exec"), ns)
    dm.canon_perm = ns["canon_perm"]  # type: ignore[attr-defined]
    return ns["canon"], source
