"""A worked example: a toy runtime's IoContexts plugged into the conformance suite.

``ToyRuntime`` is a deliberately small implementation of workerd's IoContext entry rules
(io/io-context.c++ ``IoContext::runImpl``: refuse an aborted context with its abort reason,
refuse another thread with "IoContext cannot switch threads", refuse re-entry with
"IoContext entered re-entrantly"; ``abort``: the first reason wins).  `ToySession` adapts it
to the `conformance.adapter.Session` protocol, `factory` is what ``--impl`` names::

    iospec conformance --impl conformance.examples.toy_contexts:factory --rule INV-C1
    pytest --pyargs conformance --impl conformance.examples.toy_contexts:factory

It declares only the ``contexts`` capability, so every scenario needing more (objects,
requests, ...) is NOT-IMPLEMENTED; `BaseSession` makes every other operation raise
NotImplementedError.  ``factory(buggy=True)`` lets a later abort overwrite the reason, which
the suite must catch (tests/test_conformance_suite.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.adapter import BaseSession, Observation, Setup
from conformance.model_run import REASON_TEXT
from model.vocab import MESSAGES


@dataclass
class ToyContext:
    thread: str
    abort_reason: str | None = None
    entered: bool = False
    alive: bool = True


@dataclass
class ToyRuntime:
    """The implementation under test: contexts pinned to a thread, a stack of entered contexts per thread."""

    last_reason_wins: bool = False
    contexts: dict[str, ToyContext] = field(default_factory=dict)
    stacks: dict[str, list[str]] = field(default_factory=dict)

    def enter(self, name: str, thread: str) -> str | None:
        """None, or the error text (the first failing check, in workerd's order)."""
        ctx = self.contexts[name]
        if ctx.abort_reason is not None:
            return ctx.abort_reason
        if ctx.thread != thread:
            return MESSAGES["ERR_WRONG_THREAD"]
        if ctx.entered:
            return MESSAGES["ERR_REENTERED"]
        ctx.entered = True
        self.stacks.setdefault(thread, []).append(name)
        return None

    def exit(self, thread: str) -> None:
        name = self.stacks[thread].pop()
        self.contexts[name].entered = False

    def abort(self, name: str, reason: str) -> None:
        ctx = self.contexts[name]
        if ctx.abort_reason is None or self.last_reason_wins:
            ctx.abort_reason = reason


_RESULT_OF = {MESSAGES["ERR_WRONG_THREAD"]: "ERR_WRONG_THREAD", MESSAGES["ERR_REENTERED"]: "ERR_REENTERED"}


class ToySession(BaseSession):
    def __init__(self, runtime: ToyRuntime) -> None:
        self.rt = runtime

    def create_context(self, c: str, t: str) -> Observation:
        self.rt.contexts[c] = ToyContext(thread=t)
        return Observation()

    def enter(self, c: str, t: str) -> Observation:
        error = self.rt.enter(c, t)
        if error is None:
            return Observation(result="OK")
        return Observation(result=_RESULT_OF.get(error, "ERR_ABORTED"), message=error)

    def exit(self, c: str, t: str) -> Observation:
        self.rt.exit(t)
        return Observation()

    def abort(self, c: str, reason: str) -> Observation:
        self.rt.abort(c, REASON_TEXT[reason])  # the suite's two reasons have fixed texts
        return Observation()

    def destroy_context(self, c: str) -> Observation:
        self.rt.contexts[c].alive = False
        return Observation(values={"state": "DEAD"})


class ToyImplementation:
    name = "toy-contexts"
    version = "1.0"
    capabilities = frozenset({"contexts"})

    def __init__(self, buggy: bool = False) -> None:
        self.buggy = buggy
        if buggy:
            self.name = "toy-contexts-buggy"

    def open(self, setup: Setup) -> ToySession:
        return ToySession(ToyRuntime(last_reason_wins=self.buggy))


def factory(buggy: bool = False) -> ToyImplementation:
    return ToyImplementation(buggy)


def buggy_factory() -> ToyImplementation:
    return ToyImplementation(buggy=True)
