"""The diagrams' intermediate model: plain dataclasses that every renderer reads.

As in python-statemachine's ``contrib/diagram`` (a small graph model, then one renderer per
output format), a diagram is first *built* (by projecting a model's explored state graph,
see `iospec.diagrams.project`) into a `StateGraph` or a `SequenceGraph`, and only then
*rendered* (`iospec.diagrams.mermaid`, `iospec.diagrams.dot`).  Nothing here knows a model
or an output format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "FINAL",
    "INITIAL",
    "DiagramState",
    "DiagramTransition",
    "Message",
    "Participant",
    "SequenceGraph",
    "SequenceNote",
    "StateGraph",
    "safe_id",
]

#: the pseudo-state ``[*]`` of a state diagram, as a transition end (start, or end of the run)
INITIAL = "[*]"
FINAL = "[*]"


def safe_id(text: str) -> str:
    """An identifier every renderer accepts (letters, digits, underscores; not starting with a digit)."""
    out = re.sub(r"\W+", "_", text).strip("_") or "state"
    return out if not out[0].isdigit() else f"s_{out}"


@dataclass(frozen=True, slots=True)
class DiagramState:
    """One node: ``id`` is a safe identifier, ``label`` what a reader sees."""

    id: str
    label: str
    initial: bool = False
    final: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class DiagramTransition:
    """An edge labelled by the model action that causes it (and that action's guard labels).

    ``via`` says whose action it is when not the diagram object's own (``"another Req"``).
    """

    source: str
    target: str
    label: str
    guards: tuple[str, ...] = ()
    via: str = ""

    @property
    def text(self) -> str:
        """What a renderer shows: the action, and whose it is if not the object's own."""
        return f"{self.label} ({self.via})" if self.via else self.label


@dataclass
class StateGraph:
    """A state diagram or flowchart: states, labelled transitions, and free-text notes."""

    name: str
    title: str
    states: list[DiagramState] = field(default_factory=list)
    transitions: list[DiagramTransition] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def state(self, state_id: str) -> DiagramState:
        for s in self.states:
            if s.id == state_id:
                return s
        raise KeyError(f"diagram {self.name} has no state {state_id!r}")

    @property
    def initial(self) -> list[DiagramState]:
        return [s for s in self.states if s.initial]

    @property
    def finals(self) -> list[DiagramState]:
        return [s for s in self.states if s.final]

    def triples(self) -> set[tuple[str, str, str]]:
        """Every transition as ``(source label, target label, action)``, with ``[*]`` for start and end."""
        label = {s.id: s.label for s in self.states}
        out = {(label[t.source], label[t.target], t.label) for t in self.transitions}
        out |= {(INITIAL, s.label, "") for s in self.initial}
        out |= {(s.label, FINAL, "") for s in self.finals}
        return out

    def merged(self) -> list[tuple[str, str, list[str]]]:
        """Transitions grouped by (source, target), labels in first-seen order (one arrow per pair)."""
        groups: dict[tuple[str, str], list[str]] = {}
        for t in self.transitions:
            labels = groups.setdefault((t.source, t.target), [])
            if t.text not in labels:
                labels.append(t.text)
        return [(s, d, labels) for (s, d), labels in groups.items()]


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Message:
    """An arrow from one participant to another (``reply``: a dashed return arrow)."""

    source: str
    target: str
    label: str
    reply: bool = False


@dataclass(frozen=True, slots=True)
class SequenceNote:
    over: tuple[str, ...]
    text: str


@dataclass
class SequenceGraph:
    """A sequence diagram: participants in order, then messages and notes in order."""

    name: str
    title: str
    participants: list[Participant] = field(default_factory=list)
    items: list[Message | SequenceNote] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def participant(self, label: str) -> str:
        """The id of the participant called ``label``, adding it (in order of first use) if new."""
        for p in self.participants:
            if p.label == label:
                return p.id
        pid = safe_id(label)
        taken = {p.id for p in self.participants}
        base, k = pid, 2
        while pid in taken:
            pid, k = f"{base}_{k}", k + 1
        self.participants.append(Participant(pid, label))
        return pid
