"""A compact set of 64-bit state fingerprints (the explorer's visited-state store).

TLC keeps 64-bit fingerprints of visited states rather than the states; so do we.  A Python
``set`` of ints costs 60-90 bytes per entry (the int object plus the table slot); this store
is an open-addressing table of unsigned 64-bit words in an `array.array`, 8 bytes per slot,
kept between 50 % and 75 % full, i.e. 10.7-16 bytes per stored fingerprint.

The fingerprint of a state tuple is ``hash(state)``: CPython's tuple hash is a 64-bit
xxHash-style mix that is *not* salted for tuples of ints, so runs are reproducible.  Two
distinct states collide with probability about n²/2⁶⁵ (≈3·10⁻⁶ for 10⁷ states), which the
explorer reports, as TLC does.
"""

from __future__ import annotations

from array import array

__all__ = ["FingerprintSet", "fingerprint"]

_MASK = (1 << 64) - 1


def fingerprint(state: tuple[int, ...]) -> int:
    """A non-zero 64-bit fingerprint of a state tuple (0 marks an empty slot)."""
    return (hash(state) & _MASK) or 1


class FingerprintSet:
    """Open addressing with linear probing over an ``array('Q')``; grows by 1.5x at 75 % load."""

    __slots__ = ("table", "capacity", "count", "limit")

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.capacity = max(16, capacity)
        self.table = array("Q", bytes(8 * self.capacity))
        self.count = 0
        self.limit = (self.capacity * 3) // 4

    def add(self, fp: int) -> bool:
        """Insert ``fp`` (non-zero); return True if it was not present."""
        table = self.table
        cap = self.capacity
        i = fp % cap
        while True:
            v = table[i]
            if v == fp:
                return False
            if v == 0:
                table[i] = fp
                self.count += 1
                if self.count > self.limit:
                    self._grow()
                return True
            i += 1
            if i == cap:
                i = 0

    def __contains__(self, fp: int) -> bool:
        table = self.table
        cap = self.capacity
        i = fp % cap
        while True:
            v = table[i]
            if v == fp:
                return True
            if v == 0:
                return False
            i += 1
            if i == cap:
                i = 0

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        return self.capacity * 8

    @property
    def bytes_per_entry(self) -> float:
        return self.nbytes / max(1, self.count)

    def _grow(self) -> None:
        old = self.table
        cap = (self.capacity * 3) // 2 + 1
        table = array("Q", bytes(8 * cap))
        for fp in old:
            if fp:
                i = fp % cap
                while table[i]:
                    i += 1
                    if i == cap:
                        i = 0
                table[i] = fp
        self.table = table
        self.capacity = cap
        self.limit = (cap * 3) // 4
