"""Seeded faults for the IoContext core (model.context)."""

from __future__ import annotations

from model.context import DEAD, NOT_ABORTED, UNBORN, current, outer
from model.core import NONE, Model
from model.faults import Fault
from model.faults._edit import set_update

SMALL = {"threads": 2, "contexts": 2}


def _enter_any_thread(m: Model) -> list:
    return [m.action("enter").without_guard("pinned_thread")]


def _reenter(m: Model) -> list:
    return [m.action("enter").without_guard("not_entered")]


def _run_after_abort(m: Model) -> list:
    return [m.action("enter").without_guard("not_aborted")]


def _abort_overwrites(m: Model) -> list:
    return [set_update(m.action("abort"), "abort_reason", lambda c, reason, *_: reason)]


def _recycle_ids(m: Model) -> list:
    return [set_update(m.action("destroy_end"), "ctx_state", lambda c, *_: UNBORN)]


def _destroy_while_running(m: Model) -> list:
    return [m.action("destroy_begin").without_guard("not_running")]


def _exit_forgets_outer(m: Model) -> list:
    return [set_update(m.action("exit"), "current", lambda c, t, *_: NONE)]


def _exit_keeps_outer(m: Model) -> list:
    return [m.action("exit").without_update("outer")]


FAULTS = [
    Fault("enter_on_any_thread", "context", "run() does not check the context's thread",
          ("runs_on_pinned_thread", "current_is_pinned_here"), _enter_any_thread, SMALL),
    Fault("reenter", "context", "runInContextScope does not refuse re-entry",
          ("never_reentered", "current_is_top_of_stack", "saved_outer_is_unique"), _reenter, SMALL),
    Fault("run_after_abort", "context", "run() does not check abortException",
          ("no_js_after_abort",), _run_after_abort, SMALL),
    Fault("abort_overwrites_reason", "context", "a second abort() replaces the first reason",
          ("first_abort_reason_wins",), _abort_overwrites, SMALL),
    Fault("recycle_ids", "context", "a destroyed context's id is reused",
          ("ids_never_reused", "unborn_contexts_are_unpinned"), _recycle_ids, SMALL),
    Fault("destroy_while_running", "context", "a context is destroyed while entered",
          ("entered_contexts_are_alive",), _destroy_while_running, SMALL),
    Fault("exit_forgets_outer", "context", "leaving a nested context clears current instead of restoring it",
          ("entered_is_on_a_stack",), _exit_forgets_outer, SMALL),
    Fault("exit_keeps_outer", "context", "leaving a context does not clear its saved outer context",
          ("outer_contexts_are_entered", "current_is_top_of_stack"), _exit_keeps_outer, SMALL),
]

_ = (DEAD, NOT_ABORTED, current, outer)
