"""Sorts (types) of model values and how each is encoded as a small integer.

Every backend agrees on one encoding, so a state is a flat tuple of small ints:

========  ==========================================  =================================
sort      values                                      encoding
========  ==========================================  =================================
Bool      false / true                                ``False`` / ``True`` (ints 0 / 1)
Enum      named members                               member index ``0..n-1``
Int       bounded counter ``lo..hi``                  the integer itself
Id        interchangeable identities (threads, ...)   ``0..size-1``; size is a *bound*
Opt(Id)   an identity or none                         ``-1`` for none, else the id
========  ==========================================  =================================

`Id` sorts are the sorts a configuration is *parameterised* by: the explorer fixes their
size, the z3 backend can leave them uninterpreted (any size), and symmetry reduction
permutes them.  An `Id` sort is *symmetric* unless the model compares its values by order
or names a specific value; the compiler checks this before it permutes anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import ModelDefinitionError

if TYPE_CHECKING:
    from .expr import Const

__all__ = [
    "Sort",
    "BoolSort",
    "EnumSort",
    "IntSort",
    "IdSort",
    "OptSort",
    "BOOL",
    "Enum",
    "Int",
    "Id",
    "Opt",
    "NONE_VALUE",
]

NONE_VALUE = -1


class Sort:
    """Base class of all sorts."""

    __slots__ = ("name",)
    name: str

    def size(self, sizes: dict[str, int]) -> int:
        """Number of values of this sort under the given Id-sort sizes."""
        raise NotImplementedError

    def values(self, sizes: dict[str, int]) -> range:
        """All encoded values, in order."""
        raise NotImplementedError

    def render(self, value: int) -> str:
        """Human-readable form of an encoded value."""
        raise NotImplementedError

    def id_sort(self) -> "IdSort | None":
        """The Id sort whose values this sort holds (itself or the Id inside an Opt)."""
        return None

    def __repr__(self) -> str:
        return self.name


class BoolSort(Sort):
    __slots__ = ()

    def __init__(self) -> None:
        self.name = "Bool"

    def size(self, sizes: dict[str, int]) -> int:
        return 2

    def values(self, sizes: dict[str, int]) -> range:
        return range(2)

    def render(self, value: int) -> str:
        return "true" if value else "false"


BOOL = BoolSort()


class EnumSort(Sort):
    """A finite set of named members; ``S.MEMBER`` is a constant expression."""

    __slots__ = ("members", "_index", "_consts")

    def __init__(self, name: str, members: tuple[str, ...]) -> None:
        if not members:
            raise ModelDefinitionError(
                f"enum {name!r} has no members; give at least one, e.g. Enum({name!r}, 'A B')"
            )
        if len(set(members)) != len(members):
            raise ModelDefinitionError(f"enum {name!r} lists a member twice: {members}")
        for m in members:
            if not m.isidentifier():
                raise ModelDefinitionError(f"enum {name!r} member {m!r} is not an identifier")
        self.name = name
        self.members = members
        self._index = {m: i for i, m in enumerate(members)}
        self._consts: dict[str, Const] = {}

    def index(self, member: str) -> int:
        try:
            return self._index[member]
        except KeyError:
            raise ModelDefinitionError(
                f"{member!r} is not a member of enum {self.name}; members: {', '.join(self.members)}"
            ) from None

    def __getattr__(self, member: str) -> "Const":
        # Only called for attributes not found normally: ``CtxState.ALIVE``.
        if member.startswith("_"):
            raise AttributeError(member)
        consts = object.__getattribute__(self, "_consts")
        if member not in consts:
            from .expr import Const

            consts[member] = Const(self, self.index(member))
        return consts[member]

    def size(self, sizes: dict[str, int]) -> int:
        return len(self.members)

    def values(self, sizes: dict[str, int]) -> range:
        return range(len(self.members))

    def render(self, value: int) -> str:
        return self.members[value]


class IntSort(Sort):
    """A bounded integer ``lo..hi``; ``hi`` may name a model bound (e.g. ``"max_tasks"``)."""

    __slots__ = ("lo", "hi")

    def __init__(self, name: str, lo: int, hi: int | str) -> None:
        self.name = name
        self.lo = lo
        self.hi = hi

    def upper(self, sizes: dict[str, int]) -> int:
        return sizes[self.hi] if isinstance(self.hi, str) else self.hi

    def size(self, sizes: dict[str, int]) -> int:
        return self.upper(sizes) - self.lo + 1

    def values(self, sizes: dict[str, int]) -> range:
        return range(self.lo, self.upper(sizes) + 1)

    def render(self, value: int) -> str:
        return str(value)


class IdSort(Sort):
    """Interchangeable identities whose number is the model bound ``bound``."""

    __slots__ = ("bound", "prefix", "_opt")

    def __init__(self, name: str, bound: str, prefix: str | None = None) -> None:
        if not name.isidentifier():
            raise ModelDefinitionError(f"Id sort name {name!r} is not an identifier")
        self.name = name
        self.bound = bound
        self.prefix = prefix if prefix is not None else name[0].lower()
        self._opt: OptSort | None = None

    def id_sort(self) -> "IdSort":
        return self

    def size(self, sizes: dict[str, int]) -> int:
        return sizes[self.bound]

    def values(self, sizes: dict[str, int]) -> range:
        return range(sizes[self.bound])

    def render(self, value: int) -> str:
        return f"{self.prefix}{value}"

    @property
    def opt(self) -> "OptSort":
        if self._opt is None:
            self._opt = OptSort(self)
        return self._opt


class OptSort(Sort):
    """An `IdSort` value or none (encoded ``-1``)."""

    __slots__ = ("inner",)

    def __init__(self, inner: IdSort) -> None:
        self.name = f"Opt[{inner.name}]"
        self.inner = inner

    def id_sort(self) -> IdSort:
        return self.inner

    def size(self, sizes: dict[str, int]) -> int:
        return self.inner.size(sizes) + 1

    def values(self, sizes: dict[str, int]) -> range:
        return range(-1, self.inner.size(sizes))

    def render(self, value: int) -> str:
        return "none" if value == NONE_VALUE else self.inner.render(value)


def Enum(name: str, members: str | tuple[str, ...]) -> EnumSort:
    """Declare an enum: ``Phase = Enum("Phase", "CREATED CURRENT DESTROYED")``."""
    return EnumSort(name, tuple(members.split()) if isinstance(members, str) else members)


def Int(name: str, lo: int, hi: int | str) -> IntSort:
    """Declare a bounded counter sort."""
    if isinstance(hi, int) and hi < lo:
        raise ModelDefinitionError(f"Int sort {name!r} has an empty range {lo}..{hi}")
    return IntSort(name, lo, hi)


def Id(name: str, bound: str, prefix: str | None = None) -> IdSort:
    """Declare an identity sort sized by the model bound ``bound``."""
    return IdSort(name, bound, prefix)


def Opt(inner: IdSort) -> OptSort:
    """The sort ``inner`` or none; one shared instance per Id sort."""
    return inner.opt


def iter_values(sort: Sort, sizes: dict[str, int]) -> Iterator[int]:
    return iter(sort.values(sizes))
