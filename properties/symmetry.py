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

It is about half the explorer's time on symmetric configurations, so the generated code is
tuned, without changing a single representative (the recorded state counts would show it):
the state is unpacked into locals once; histogram counts come from a table when the slots'
values are few; each sort is ordered by a generated stable insertion-sort decision tree whose
leaves, when the orders are few, return the permuted state directly.  And since a
representative's keys are already in order (they are label-free, so sorting the identities by
them leaves them sorted), a successor of a representative only needs the sorts whose keys the
action's writes can change: `Canonicalizer.for_instance` holds that cheaper variant per action
instance, or None when the action changes no key at all (the successor is its own
representative).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from model.core.dense import DenseModel
from model.core.expr import Const, walk
from model.core.model import Func, Model, StateVar, _all_exprs
from model.core.sorts import IdSort, OptSort

#: sorts with at most this many identities are sorted by a generated decision tree (n! leaves)
MAX_SORT_TREE = 5
#: at most this many combined orders are returned from the leaves of nested decision trees
#: (each leaf is one tuple expression); more go through a cache of specialised functions
MAX_INLINE_ORDERS = 150
#: histograms whose slots can hold at most this many value combinations are counted by table lookup
MAX_COUNT_TABLE = 4096

__all__ = ["symmetric_sorts", "compile_canonicalizer", "compile_canonicalizers", "Canonicalizer"]


class _OrderNumbering:
    """Numbers for the orders (permutations) of one sort's identities; the identity is 0."""

    def __init__(self, n: int, *, enumerate_all: bool) -> None:
        self.count = math.factorial(n)
        self.orders: list[tuple[int, ...]] = list(itertools.permutations(range(n))) if enumerate_all else [
            tuple(range(n))]
        self.index = {o: k for k, o in enumerate(self.orders)}

    def number(self, order: tuple[int, ...]) -> int:
        k = self.index.get(order)
        if k is None:
            k = self.index[order] = len(self.orders)
            self.orders.append(order)
        return k


def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    """Old identity -> its new number under ``order`` (which lists old identities in their new order); the
    extra last entry maps the none value (-1) to itself."""
    inverse = [0] * (len(order) + 1)
    inverse[len(order)] = -1
    for pos, x in enumerate(order):
        inverse[x] = pos
    return tuple(inverse)


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


State = tuple[int, ...]


@dataclass(frozen=True)
class Canonicalizer:
    """The generated representative functions of one compiled configuration."""

    #: the representative of any state
    canon: Callable[[State], State]
    #: per action instance, for successors of a *representative*: a version of ``canon`` that
    #: recomputes only the keys the instance's writes can change, or None when it changes no key
    #: (the successor is then its own representative).  Exact, not an approximation: the
    #: keys of a representative are in order (they are label-free, so permuting a state by
    #: their order leaves them sorted), and keys the instance cannot change stay in order.
    for_instance: list[Callable[[State], State] | None]
    source: str


def compile_canonicalizer(dm: DenseModel) -> tuple[Callable[[State], State] | None, str]:
    """Generate ``canon(state) -> representative`` for ``dm``; None if nothing is symmetric."""
    c = compile_canonicalizers(dm)
    return (c.canon, c.source) if c is not None else (None, "")


def compile_canonicalizers(dm: DenseModel) -> Canonicalizer | None:
    """Generate the representative functions for ``dm`` (see `Canonicalizer`); None if nothing is symmetric."""
    sizes = dm.layout.sizes
    sym = {s.name: s for s in symmetric_sorts(dm.model) if s.size(sizes) > 1}
    if not sym:
        return None
    layout = dm.layout
    # Slots no action instance ever writes keep their initial value in every reachable state:
    # they carry no information, so they are left out of the keys and copied as constants.
    written: set[int] = set().union(*dm.inst_writes.values()) if dm.inst_writes else set()
    fixed = {k: dm.initial[k] for k in range(layout.n) if k not in written}

    def is_sym(sort: Any) -> str | None:
        ids = sort.id_sort()
        return ids.name if ids is not None and ids.name in sym else None

    # 1. reference histograms for functions/vars whose values are symmetric identities: the
    #    live slots holding such references; identity x's count is ``h_<var>.count(x)``, or, when
    #    the slots' possible values are few, ``c_<var>[x]`` from a table of all their counts
    #    (one lookup instead of a count per identity)
    hists: dict[str, list[int]] = {}
    hist_names: dict[str, list[str]] = {name: [] for name in sym}
    count_tables: dict[str, dict[tuple[int, ...], tuple[int, ...]]] = {}
    for d in dm.model.state:
        if d not in layout.base:
            continue  # never changes (left out of compact states)
        vs = d.value_sort if isinstance(d, Func) else d.sort
        target = is_sym(vs)
        if target is None:
            continue
        if isinstance(d, StateVar):
            slot_list = [layout.base[d]]
        else:
            slot_list = [layout.slot(d, idx) for idx in itertools.product(*(range(k) for k in layout.shape[d]))]
        live = [k for k in slot_list if k not in fixed]
        if live:
            hists[f"h_{d.name}"] = live
            hist_names[target].append(f"h_{d.name}")
            n = sym[target].size(sizes)
            if (n + 1) ** len(live) <= MAX_COUNT_TABLE:
                count_tables[f"COUNTS_{d.name}"] = {
                    values: tuple(values.count(x) for x in range(n))
                    for values in itertools.product(range(-1, n), repeat=len(live))}

    def hist_count(h: str, x: int) -> str:
        """How often identity ``x`` occurs in histogram ``h``."""
        return f"c_{h[2:]}[{x}]" if f"COUNTS_{h[2:]}" in count_tables else f"{h}.count({x})"

    def hist_line(h: str) -> str:
        slots = f"({', '.join(f's{k}' for k in hists[h])},)"
        return f"    c_{h[2:]} = COUNTS_{h[2:]}[{slots}]" if f"COUNTS_{h[2:]}" in count_tables else f"    {h} = {slots}"

    # 2. one key per identity of each symmetric sort, over the unpacked slots ``s<k>``
    keys: dict[str, list[str]] = {}
    key_slots: dict[str, set[int]] = {}
    for name, sort in sym.items():
        n = sort.size(sizes)
        keys[name] = []
        reads = key_slots[name] = set().union(*(hists[h] for h in hist_names[name]))
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
                        reads.add(k)
                        vals.append(f"(s{k} >= 0)" if vsym else f"s{k}")
                    if not vals:
                        continue
                    multiset = any(is_sym(d.index_sorts[q]) for q in range(len(d.index_sorts)) if q != p)
                    if multiset:
                        parts.append(f"tuple(sorted(({', '.join(vals)},)))")
                    else:
                        parts.extend(vals)
            parts.extend(hist_count(h, x) for h in hist_names[name])
            keys[name].append("(" + ", ".join(parts) + ",)")
    orders = list(sym)
    # every order of each sort, numbered (0 is the identity); an order lists the old labels in
    # their new positions, as `sorted(range(n), key=...)` returns them
    # (large sorts number their orders as they turn up, rather than enumerating n! of them)
    numbering = {name: _OrderNumbering(sym[name].size(sizes), enumerate_all=sym[name].size(sizes) <= MAX_SORT_TREE)
                 for name in orders}

    Leaf = Callable[[tuple[int, ...], str], list[str]]

    def sort_tree(name: str, indent: str, leaf: Leaf | None = None) -> list[str]:
        """Straight-line stable sort of the keys ``k_<name>_<x>``: an insertion-sort decision
        tree whose leaves set ``o_<name>`` to the number of the order, or run ``leaf(order)``
        (at most n(n-1)/2 comparisons; the first path tried is the identity, the common case)."""
        n = len(keys[name])

        def place(order: list[int], indent: str) -> list[str]:
            if len(order) == n:
                if leaf is not None:
                    return leaf(tuple(order), indent)
                return [f"{indent}o_{name} = {numbering[name].number(tuple(order))}"]
            j = len(order)
            return insert(order, j, len(order) - 1, indent)

        def insert(order: list[int], j: int, p: int, indent: str) -> list[str]:
            # k_j is below every key right of position p; stable: j goes after equal keys
            if p < 0:
                return place([j, *order], indent)
            return [f"{indent}if k_{name}_{order[p]} <= k_{name}_{j}:",
                    *place([*order[:p + 1], j, *order[p + 1:]], indent + "    "),
                    f"{indent}else:",
                    *insert(order, j, p - 1, indent + "    ")]

        return place([0], indent)

    def order_lines(sorts: list[str], numbered: bool = True, leaf: Leaf | None = None) -> list[str]:
        """Unpack the state, compute the keys of each of ``sorts``, then their stable orders:
        ``o_<sort>`` is the order's number (``numbered``) or the order itself.  With ``leaf``,
        only the first sort's tree is written, and its leaves run ``leaf`` (see `sort_tree`)."""
        out = [f"    {', '.join(f's{k}' for k in range(layout.n))}, = s"]
        needed = {h for name in sorts for h in hist_names[name]}
        out += [hist_line(h) for h in hists if h in needed]
        for name in sorts:
            out += [f"    k_{name}_{x} = {expr}" for x, expr in enumerate(keys[name])]
        if leaf is not None:
            return out + sort_tree(sorts[0], "    ", leaf)
        for name in sorts:
            ks = [f"k_{name}_{x}" for x in range(len(keys[name]))]
            if len(ks) <= MAX_SORT_TREE:
                out += sort_tree(name, "    ")
            else:
                out.append(f"    o_{name} = NUMBER_{name}(tuple(sorted(range({len(ks)}), "
                           f"key=({', '.join(ks)},).__getitem__)))")
            if not numbered:
                out.append(f"    o_{name} = ORDERS_{name}[o_{name}]")
        return out

    inverse_lines: list[str] = []
    for name in orders:
        n = sym[name].size(sizes)
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
        maps = {name: _inverse(o) for name, o in order.items()}
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

    #: the inverse permutations the inlined leaves use, by name
    inverse_maps: dict[str, tuple[int, ...]] = {}

    def permuted_locals(order: dict[str, tuple[int, ...]]) -> str:
        """The state permuted by ``order`` (sorts left out keep theirs), over the unpacked slots."""
        full = {n: order.get(n, tuple(range(len(keys[n])))) for n in orders}
        for name, o in order.items():
            inverse_maps[f"M_{name}_{numbering[name].number(o)}"] = _inverse(o)
        parts = []
        for c in out_cells:
            if isinstance(c, FixedCell):
                parts.append(repr(c.value))
                continue
            slot = c.offset + sum(full[n][j] * st for n, j, st in c.permuted)
            relabel = order.get(c.value_sort) if c.value_sort else None
            if relabel is not None and relabel != tuple(range(len(relabel))):  # values of a permuted sort
                parts.append(f"M_{c.value_sort}_{numbering[c.value_sort].number(relabel)}[s{slot}]")  # type: ignore[index]
            else:
                parts.append(f"s{slot}")
        return "(" + ", ".join(parts) + ",)"

    def canon_lines(fname: str, sorts: list[str]) -> list[str]:
        """``fname(s)``: the representative of ``s``, recomputing only the orders of ``sorts``.

        Each other sort's keys must be in order already (see `Canonicalizer.for_instance`).  When
        the orders of ``sorts`` are few (`MAX_INLINE_ORDERS`), nested decision trees return the
        permuted state from their leaves; otherwise the permutation is applied by straight-line
        code specialised for it, generated on first use and cached in APPLY under its number.
        """
        if all(len(keys[n]) <= MAX_SORT_TREE for n in sorts) and math.prod(
                numbering[n].count for n in sorts) <= MAX_INLINE_ORDERS:

            def nested(k: int, chosen: dict[str, tuple[int, ...]]) -> Leaf:
                def leaf(order: tuple[int, ...], indent: str) -> list[str]:
                    now = {**chosen, sorts[k]: order}
                    if k + 1 < len(sorts):
                        return sort_tree(sorts[k + 1], indent, nested(k + 1, now))
                    if all(o == tuple(range(len(o))) for o in now.values()):
                        return [f"{indent}return s"]
                    return [f"{indent}return {permuted_locals(now)}"]
                return leaf

            return [f"def {fname}(s):", *order_lines(sorts, leaf=nested(0, {}))]
        out = [f"def {fname}(s):", *order_lines(sorts)]
        out.append(f"    if not ({' or '.join(f'o_{name}' for name in sorts)}):")
        out.append("        return s")
        number, scale = [], 1
        for name in reversed(orders):
            if name in sorts:
                number.append(f"o_{name} * {scale}" if scale > 1 else f"o_{name}")
            scale *= numbering[name].count
        out.append(f"    key = {' + '.join(reversed(number))}")
        out.append("    f = APPLY.get(key)")
        out.append("    if f is None:")
        out.append("        f = APPLY[key] = SPECIALISE(key)")
        out.append("    return f(s)")
        return out

    def specialise_number(key: int) -> Callable[[State], State]:
        order: dict[str, tuple[int, ...]] = {}
        for name in reversed(orders):
            key, k = divmod(key, numbering[name].count)
            order[name] = numbering[name].orders[k]
        return specialised(order)

    lines = canon_lines("canon", orders)
    # per instance: the sorts whose keys its writes can change
    variant_of: list[str | None] = []
    variants: dict[tuple[str, ...], str] = {}
    for inst in dm.instances:
        writes = dm.inst_writes.get(inst.index, set())
        touched = tuple(name for name in orders if key_slots[name] & writes)
        if not touched:
            variant_of.append(None)
            continue
        if touched not in variants:
            variants[touched] = fname = "canon_" + "_".join(touched)
            lines += canon_lines(fname, list(touched))
        variant_of.append(variants[touched])
    # canon_perm (counterexamples only): the general version, also returning the permutation
    perm_lines = ["def canon_perm(s):", *order_lines(orders, numbered=False), *inverse_lines]
    perms = ", ".join(f"{name!r}: p_{name}[:{sort.size(sizes)}]" for name, sort in sym.items())
    perm_lines.append(f"    return {symbolic()}, {{{perms}}}")
    source = "\n".join(lines + perm_lines) + "\n"
    ns: dict[str, Any] = {"APPLY": {}, "SPECIALISE": specialise_number, **inverse_maps, **count_tables}
    for name in orders:
        ns[f"ORDERS_{name}"] = numbering[name].orders
        ns[f"NUMBER_{name}"] = numbering[name].number
    exec(compile(source, f"<canon:{dm.config.describe()}>", "exec"), ns)
    dm.canon_perm = ns["canon_perm"]  # type: ignore[attr-defined]
    return Canonicalizer(ns["canon"], [ns[f] if f is not None else None for f in variant_of], source)
