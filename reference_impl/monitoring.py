"""The live monitor: the models running alongside the reference implementation, event by event.

`attach_monitor` adds a callback sink to a runtime's recorder that feeds every event to a
`properties.monitor.Monitor` over the models the runtime's events belong to (those of
`TRACE_MODELS` that `model.catalog` knows).  Because the recorder emits each event inside its
lock, the monitor sees the real interleaving.  A violation never raises into the runtime
(that would change what the runtime does); the first one is kept in `LiveMonitor.violation`
and checking stops there.

With ``engine="c"`` the events go to the compiled checker (`properties.compiled`: C generated
from the same models).  The sink is a builtin function of the library that reads the event dict
itself and logs it; the library's own thread checks the logged events without the GIL (or the
runtime's thread right away, ``thread=False``); every reader of the verdict first waits until
every event recorded before it was checked (docs/compiled-engine.md).  The Python monitor is
built only when something needs it (a stop of the compiled engine, whose report the Python
engine then produces by replaying the accepted events; `after_step`; a read of ``.monitor``),
and takes over from then on.

Oracles read the model state and predictions through `LiveMonitor.cells`, `held`, `state`,
`predict` and `check_all`: from the compiled engine while it runs (its C state, after every
event recorded so far: `CompiledStepper`'s reads, docs/compiled-engine.md), from the Python
monitor otherwise, and the Python monitor takes over where the C cannot answer (`NotCurrent`:
it stopped at an event; `NotDecided`: a prediction or evaluation it leaves to Python).  Reads
of the compiled engine keep it running: no Python step per event.  `reset` readies a monitor for
another run (the compiled engine starts again from a fresh state, even after a take-over).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from model.catalog import MODELS, get_model
from model.core.model import Invariant
from properties.monitor import Monitor, MonitorViolation
from reference_impl.trace import Sink

if TYPE_CHECKING:
    from reference_impl.runtime import Runtime

__all__ = ["LiveMonitor", "attach_monitor", "available_models", "feed_monitor", "known_operations",
           "monitor_consts"]


def available_models(wanted: Iterable[str]) -> list[str]:
    """The models of ``wanted`` that exist in this checkout's catalog (others are still being written)."""
    return [m for m in wanted if m in MODELS]


def known_operations(models: Iterable[str]) -> frozenset[str]:
    """Every operation name (trace ``op``) of ``models``."""
    ops: set[str] = set()
    for name in models:
        for a in get_model(name).actions:
            ops.add(a.operation or a.name)
    return frozenset(ops)


def monitor_consts(runtime: Runtime | None = None) -> dict[str, int]:
    """Model constants for watching a run: ``production`` follows the runtime's limit profile."""
    production = runtime is not None and runtime.limits.profile == "production"
    return {"production": int(production)}


#: events a violation report lists (the Python monitor's ``recent``)
HISTORY = 20


class LiveMonitor:
    """A `Monitor` fed by the recorder; keeps the first violation instead of raising."""

    def __init__(self, models: list[str], consts: Mapping[str, int] | None = None, *, engine: str = "python",
                 thread: bool = True) -> None:
        self.models = models
        self.consts = dict(consts or {})
        self._monitor: Monitor | None = None
        #: a Python monitor built before and reset (building one compiles every model): `_take_over` reuses it
        self._spare: Monitor | None = None
        #: the compiled engine while it runs (None: the Python monitor)
        self.compiled: Any = None
        #: the compiled engine, also after a take-over (`reset` starts it again)
        self._stepper: Any = None
        #: the compiled engine counting held values (`count_held`; None: not counting)
        self._counting: Any = None
        #: the compiled engine takes the event dicts itself (`CompiledStepper.sink_event`: it checks them on its
        #: own thread and calls `on_event` with any it does not take); False: it is not running
        self._dict_sink = False
        #: taking over from the compiled engine and the Python monitor's steps, one thread at a time
        self._lock = threading.RLock()
        if engine == "c":
            from properties.compiled.engine import compiled_stepper

            stepper = compiled_stepper(models, self.consts, HISTORY, thread)
            if stepper is not None and stepper.sink_event is not None:
                stepper.set_fallback(self.on_event)
                self.compiled, self._dict_sink, self._stepper = stepper, True, stepper
            elif stepper is not None:  # no builtin entry (no ctypes.pythonapi, no thread): the Python monitor checks
                stepper.close()
        if self.compiled is None:
            self._monitor = Monitor(models, consts=self.consts, history=HISTORY)
        self._violation: MonitorViolation | None = None
        self._events = 0
        self._after_step: Callable[[Mapping[str, Any], dict[str, str]], None] | None = None

    @property
    def after_step(self) -> Callable[[Mapping[str, Any], dict[str, str]], None] | None:
        """Called after every event the models accepted, with the event and what the models predicted for it
        (``result`` and outputs); runs under the recorder's lock, so it sees the state right after that event
        (tests use it for coverage and to keep predictions).  It needs the Python monitor."""
        return self._after_step

    @after_step.setter
    def after_step(self, callback: Callable[[Mapping[str, Any], dict[str, str]], None] | None) -> None:
        if callback is not None and self._dict_sink:
            # the events recorded so far are checked without it; every later one comes to on_event, which
            # lets the Python monitor take over (forwarded first: an event recorded meanwhile precedes the callback)
            self.compiled.forward()
            self.compiled.drain()
        self._after_step = callback

    def sink_event(self) -> Callable[[Any], object]:
        """What the recorder's sink calls per event: the compiled engine's builtin, or `on_event`."""
        if self._dict_sink:
            return self.compiled.sink_event  # type: ignore[no-any-return]
        return self.on_event

    def _sync(self) -> None:
        """Before reading the verdict: the compiled engine's thread checks what it was given; a stop there makes
        the Python monitor take over (it writes the report)."""
        if self._dict_sink:
            self.compiled.drain()
            if self.compiled.status()[2] is not None:
                self._take_over()

    @property
    def violation(self) -> MonitorViolation | None:
        """The first violation (None: none so far)."""
        self._sync()
        return self._violation

    @violation.setter
    def violation(self, value: MonitorViolation | None) -> None:
        self._violation = value  # a caller reusing this monitor (after resetting its models) clears it

    @property
    def events(self) -> int:
        """Events checked (notes are not)."""
        self._sync()
        if self._dict_sink:
            return self._events + int(self.compiled.accepted_count)
        return self._events

    @events.setter
    def events(self, value: int) -> None:
        self._events = value - (int(self.compiled.accepted_count) if self._dict_sink else 0)

    @property
    def monitor(self) -> Monitor:
        """The Python monitor (built from the compiled engine's accepted events on first use)."""
        if self._monitor is None:
            self._take_over()
        assert self._monitor is not None
        return self._monitor

    def _take_over(self) -> None:
        with self._lock:
            if self._monitor is not None:
                return
            mon, self._spare = self._spare or Monitor(self.models, consts=self.consts, history=HISTORY), None
            accepted: list[Mapping[str, Any]] = []
            pending: list[Mapping[str, Any]] = []
            if self._dict_sink:
                self.compiled.forward()  # no event goes to the C from now on
                accepted, pending = self.compiled.accepted_and_pending()
                self._events += len(accepted)
                self.compiled.close()
            self.compiled, self._dict_sink = None, False
            self._monitor = mon
            for e in accepted:  # accepted by the compiled engine: the Python engine decides if they disagree
                try:
                    mon.step(e, line=int(e.get("seq", 0)))
                except MonitorViolation as v:
                    self._violation = v
                    return
            for e in pending:  # given to the compiled engine, not accepted (from the one it stopped at)
                # recorded before after_step was set (it forwards first), so like the accepted ones they get no
                # callback; this may run on a reader's thread, outside the recorder's lock
                self._python_step(e, notify=False)

    # -- reads for oracles: the compiled engine while it runs, else the Python monitor --------------------------
    @property
    def engine(self) -> str:
        """Which engine answers the reads now: ``"c"`` (the compiled engine runs) or ``"python"``."""
        return "c" if self._dict_sink else "python"

    def _from_c(self, read: Callable[[Any], Any]) -> tuple[bool, Any]:
        """``read(compiled engine)`` while it runs; (False, None) if the Python monitor must answer (it then has
        taken over: the C stopped at an event, or leaves this read to Python)."""
        if self._dict_sink:
            from properties.compiled.engine import NotCurrent, NotDecided

            try:
                return True, read(self.compiled)
            except (NotCurrent, NotDecided):
                self._take_over()
        return False, None

    def cells(self, model: str, func: str) -> dict[str, str]:
        """``Monitor.state(model)[func]``: the non-default cells of one function after every event recorded so far,
        rendered as `Monitor.state` renders them (call while no event is recorded, e.g. under the recorder's
        ``atomic()``)."""
        done, out = self._from_c(lambda c: c.cells(model, func))
        return out if done else self.monitor.func_cells(model, func)  # type: ignore[no-any-return]

    def held(self, model: str, func: str) -> set[int]:
        """The values (the model's encoding) that one function's non-default cells hold: coverage counts."""
        done, out = self._from_c(lambda c: c.held(model, func))
        if done:
            return out  # type: ignore[no-any-return]
        w, d = self.monitor.tracked_func(model, func)
        return set(w.sm.cells(d).values())

    def state(self, model: str) -> dict[str, Any]:
        """`Monitor.state` of ``model`` after every event recorded so far."""
        done, out = self._from_c(lambda c: c.state(model))
        return out if done else self.monitor.state(model)  # type: ignore[no-any-return]

    def predict(self, event: Mapping[str, Any]) -> dict[str, str] | None:
        """`Monitor.predict` of ``event`` (its ``op`` and ``args``) now: the ``result`` and outputs the models
        predict, or None if a guard forbids it.  Raises `MonitorViolation` where the monitor does (an unknown op)."""
        done, out = self._from_c(lambda c: c.predict(event))
        return out if done else self.monitor.predict(event)  # type: ignore[no-any-return]

    def check_all(self) -> list[tuple[str, Invariant]]:
        """`Monitor.check_all`: every state invariant evaluated in full (the end of a run)."""
        done, out = self._from_c(lambda c: c.check_all())
        return out if done else self.monitor.check_all()  # type: ignore[no-any-return]

    def count_held(self, funcs: list[tuple[str, str]]) -> bool:
        """Count, in the compiled engine, after every event it accepts from now on, the values each of ``funcs``
        ((model, function)) holds (`CompiledStepper.count_held`; `held_counts` reads them): coverage without a
        Python callback per event.  False if the compiled engine does not run (count with `after_step` then);
        after a take-over the counts stop at the events the compiled engine accepted."""
        if not self._dict_sink:
            return False
        self.compiled.count_held(funcs)
        self._counting = self.compiled
        return True

    def held_counts(self) -> list[dict[int, int]]:
        """The counts `count_held` started (also after a take-over: those of the events the C accepted)."""
        return self._counting.held_counts() if self._counting is not None else []

    def reset(self) -> None:
        """Ready for another run (a caller reusing this monitor, whose runtime is gone): no event, no violation,
        no `after_step`, the models in their initial state; the compiled engine (if this monitor has one) checks
        again, from a fresh state, even after the Python monitor took over."""
        with self._lock:
            if self._stepper is not None:
                if self._monitor is not None:
                    self._monitor.reset()
                    self._spare, self._monitor = self._monitor, None
                if self._stepper.restart():
                    self.compiled, self._dict_sink = self._stepper, True
                else:  # the C could not start again: the Python monitor checks this run
                    self.compiled, self._dict_sink = None, False
                    self._monitor, self._spare = self._spare or Monitor(self.models, consts=self.consts,
                                                                         history=HISTORY), None
            else:
                self.monitor.reset()
            self._violation, self._events, self._after_step = None, 0, None
            if self._counting is not None:
                self._counting.count_held([])
                self._counting = None

    def on_event(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            if self._dict_sink:
                # the compiled engine did not take this event (a stop, an event it cannot decode exactly, or
                # after_step needs the Python monitor): the Python engine replays what it accepted, checks
                # what it did not, and then this event
                self._take_over()
            self._python_step(event)

    def _python_step(self, event: Mapping[str, Any], notify: bool = True) -> None:
        """The Python monitor steps ``event``; ``notify``: then `after_step` (if set) is called with it."""
        if self._violation is not None or str(event.get("op", "")).startswith("note."):
            return
        self._events += 1
        try:
            predicted = self.monitor.step(event, line=int(event.get("seq", 0)))
        except MonitorViolation as v:
            self._violation = v
            return
        if notify and self.after_step is not None:
            self.after_step(event, predicted)

    def close(self) -> None:
        """Stop the compiled engine's thread (the runtime is closing; the verdict stays readable)."""
        if self._dict_sink:
            self._sync()
        if self._dict_sink:
            self.compiled.drain()
            self.compiled.close()

    @property
    def ok(self) -> bool:
        return self.violation is None

    def report(self) -> str:
        violation = self.violation
        if violation is None:
            return f"monitor ({', '.join(self.models)}): {self.events} events, no violation"
        return violation.report()


class _EventSink(Sink):
    """The live monitor's sink: ``event`` is the callback itself (the compiled engine's builtin: no Python frame);
    ``closes``: closing the runtime closes the monitor (not for a monitor reused by the next runtime)."""

    def __init__(self, live: LiveMonitor, closes: bool = True) -> None:
        self.event = live.sink_event()  # type: ignore[method-assign,assignment]
        self._live = live
        self._closes = closes

    def close(self) -> None:
        if self._closes:
            self._live.close()


def feed_monitor(runtime: Runtime, live: LiveMonitor) -> None:
    """Send ``runtime``'s events to ``live``, a monitor reused across runtimes (after its `reset`): closing the
    runtime leaves it running."""
    runtime.recorder.add_sink(_EventSink(live, closes=False))


def attach_monitor(runtime: Runtime, engine: str = "python", *, thread: bool = True) -> LiveMonitor:
    """A live monitor of ``runtime``'s events (``engine="c"``: the compiled engine, checking on its own thread
    unless ``thread`` is False)."""
    live = LiveMonitor(list(runtime.recorder.header["models"]), monitor_consts(runtime), engine=engine, thread=thread)
    runtime.recorder.add_sink(_EventSink(live))
    return live


def compare_with_model(runtime: Runtime, live: LiveMonitor | None = None,
                       state: Mapping[str, Any] | None = None, contexts: Iterable[Any] | None = None,
                       stats: Mapping[int, Any] | None = None) -> list[str]:
    """Differences between the runtime's `statistics()` views and the model state the monitor tracks.

    Compared per context: its state, whether it is entered, its abort reason and kind; and the
    DeleteQueue's queued deletions.  An empty list means the runtime and the models agree.
    ``state``: the monitor's ``state(model)``, if the caller already has it; ``contexts``: the
    contexts to compare (default: every context of the runtime); ``stats``: their `statistics()` by ``id``, if
    the caller already read them.
    """
    live = live or runtime.monitor
    if live is None:
        raise ValueError("the runtime has no live monitor (Runtime(monitor=True))")
    model = "ownership" if "ownership" in live.models else "context"
    if state is None:
        state = live.state(model)
    out: list[str] = []
    # the model's queued deletions by owner, gathered once for every context compared
    queued_by_owner: dict[Any, set[Any]] = {}
    if model == "ownership":
        owner = state.get("owner", {})
        for o, v in state.get("queued", {}).items():
            if str(v).lower() == "true":
                queued_by_owner.setdefault(owner.get(o), set()).add(o)
    for ctx in list(runtime.contexts if contexts is None else contexts):
        st = stats[id(ctx)] if stats is not None else ctx.statistics()
        expect = {
            "ctx_state": st.state,
            "entered": str(st.entered).lower(),
            "abort_reason": st.abort_reason,
            "ctx_actor": str(st.actor).lower(),
        }
        for var, value in expect.items():
            got = state.get(var, {}).get(ctx.name, _default(model, var))
            if str(got).lower() != str(value).lower():
                out.append(f"{ctx.name}: runtime {var}={value}, model {var}={got}")
        if model == "ownership":
            q = ctx.delete_queue.statistics()
            queued = queued_by_owner.get(ctx.name, set())
            if set(q.queued_deletions) != queued:
                out.append(f"{ctx.name}: runtime queued={sorted(q.queued_deletions)}, model queued={sorted(queued)}")
    return out


@functools.cache
def _default(model: str, var: str) -> str:
    """The rendered initial value of a model function's cells (the sparse state omits them)."""
    decl: Any = get_model(model).decl(var)
    sort = getattr(decl, "value_sort", None) or decl.sort
    return str(sort.render(decl.init))
