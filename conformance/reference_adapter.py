"""The reference implementation (reference_impl/) as an in-process conformance adapter.

`ReferenceImplementation` opens one `reference_impl.Runtime` per scenario (optionally with
seeded faults: ``--impl reference[fault,...]``) and `ReferenceSession` performs each operation
of the table (`conformance.operations.OPS`) with the runtime's own API, on the thread the
operation names: ``t0, t1, ...`` are the runtime's threads, ``gc`` its GC thread.

Entering follows the adapter rules of `conformance.adapter`: `enter` runs ``IoContext``'s
entry checks and entry (``runInContextScope``: io-context.c++ ``IoContext::runImpl``) on the
thread, and that thread then *blocks inside the context* serving the scenario's next
operations for it until `exit`, exactly like a JS turn: its event loop runs nothing meanwhile.

Observations are read from the runtime's behaviour (raised `WorkerdError`\\ s with their
messages, request and object states, the log lines it wrote); the harness compares them with
the model and also checks the runtime's recorded trace with the monitors.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model.vocab import MESSAGES

from .adapter import Observation, Setup, TraceLog
from .model_run import REASON_TEXT

__all__ = ["ReferenceImplementation", "ReferenceSession"]

TIMEOUT = 5.0
#: how long a lock request may take to be granted (a LIFO queue never grants the expected one)
LOCK_TIMEOUT = 2.0

#: the warnings (log texts) a step may write, by the model's name for them
WARNINGS = {MESSAGES[k]: k for k in ("DRAIN_FORGOTTEN", "DRAIN_TIMEOUT")}
WARNINGS[MESSAGES["WARN_CROSS_REQUEST_PROMISE"]] = "CROSS_REQUEST_PROMISE"
WARNINGS[MESSAGES["TASK_WITHOUT_REQUEST"]] = "TASK_WITHOUT_REQUEST"


class ReferenceImplementation:
    """The factory: ``reference`` (or with faults switched on)."""

    capabilities = frozenset({"contexts", "objects", "requests", "actors", "inspect", "fetch", "scheduled", "locks",
                              "hang", "production"})

    def __init__(self, faults: Sequence[str] = ()) -> None:
        from reference_impl.faults import check_faults

        self.faults = sorted(check_faults(list(faults)))
        self.name = "reference" + (f"[{','.join(self.faults)}]" if self.faults else "")
        import importlib.metadata

        try:
            self.version = importlib.metadata.version("iospec")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
            self.version = "0"

    def open(self, setup: Setup) -> ReferenceSession:
        return ReferenceSession(setup, self.faults)


class _Closable:
    """The object behind a test I/O object: remembers on which threads it was destroyed."""

    def __init__(self) -> None:
        self.closed_on: list[str] = []

    def close(self) -> None:
        self.closed_on.append(threading.current_thread().name)


_EXIT = object()


@dataclass
class _Driver:
    """Runs callables on one thread; while a context is entered there, through the blocked turn's queue."""

    name: str
    submit: Callable[[Callable[[], Any]], concurrent.futures.Future[Any]]
    turns: list[queue.Queue[Any]] = field(default_factory=list)

    def start(self, fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        if self.turns:
            fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
            self.turns[-1].put((fn, fut))
            return fut
        return self.submit(fn)

    def do(self, fn: Callable[[], Any]) -> Any:
        return self.start(fn).result(TIMEOUT)


def _run_on_gc(gc: Any) -> Callable[[Callable[[], Any]], concurrent.futures.Future[Any]]:
    def submit(fn: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def job() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:  # delivered to the caller
                fut.set_exception(e)

        threading.Thread(target=lambda: gc.collect(job), daemon=True).start()
        return fut

    return submit


def _error(e: BaseException) -> Observation:
    from reference_impl.errors import JsError, WorkerdError

    if isinstance(e, WorkerdError):
        return Observation(result=e.result, message=str(e))
    if isinstance(e, JsError):  # an abort reason: run() refused an aborted context
        return Observation(result="ERR_ABORTED", message=str(e))
    raise e


class _Run:
    """One handler program's run: where it is (suspended at an await_io, finished, threw)."""

    def __init__(self, session: ReferenceSession, program: Sequence[Mapping[str, Any]], c: str) -> None:
        self.session = session
        self.program = list(program)
        self.c = c
        self.suspended = threading.Event()
        self.finished = threading.Event()
        #: the event's own future (request() or runScheduled())
        self.future: concurrent.futures.Future[Any] | None = None


class _ProgramWorker:
    """A worker whose fetch and scheduled handlers run the scenario's handler program (operations.HANDLER_STEPS)."""

    async def fetch(self, request: Any, env: Any, ctx: Any) -> Any:
        run: _Run | None = getattr(request, "iospec_run", None)
        if run is None:
            from reference_impl import Response

            return Response("empty")
        return await _interpret(run, ctx, None)

    async def scheduled(self, controller: Any, env: Any, ctx: Any) -> None:
        await _interpret(_SCHEDULED_RUNS.pop(controller.cron), ctx, controller)


#: handler programs of scheduled events, by the cron string the session passes to runScheduled()
_SCHEDULED_RUNS: dict[str, _Run] = {}


async def _interpret(run: _Run, ctx: Any, controller: Any) -> Any:
    from reference_impl import IoContext, JsError, Response

    try:
        program = run.program
        for k, step in enumerate(program):
            do = step["do"]
            if do == "respond":
                return Response(step.get("body", "ok"))
            if do == "respond_stream":
                message = next((s.get("message", "stream failed") for s in program[k + 1:] if s["do"] == "throw"),
                               "stream failed")
                chunks = [c.encode() for c in step.get("chunks", ["first"])]

                async def body() -> Any:
                    for c in chunks:
                        yield c
                    raise JsError(message)

                return Response(body())
            if do == "throw":
                raise JsError(step.get("message", "handler threw"))
            if do == "pass_through_on_exception":
                ctx.pass_through_on_exception()
            elif do == "no_retry":
                controller.no_retry()
            elif do in ("wait_until", "await_io"):
                cur = IoContext.current()
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                task = cur.add_wait_until(fut) if do == "wait_until" else cur.await_io(fut)
                if do == "wait_until":
                    cur._io_pending += 1  # the harness's promise is outside I/O: it holds a PendingEvent (no hang)
                run.session.handles[step["h"]] = {"future": fut, "task": task, "ctx": run.c, "run": run,
                                                  "keep_alive": do == "wait_until"}
                if do == "await_io":
                    run.suspended.set()
                    await task
                    run.suspended.clear()
        return None
    finally:
        run.finished.set()


class ReferenceSession:
    """One scenario against a fresh `reference_impl.Runtime`."""

    def __init__(self, setup: Setup, faults: Sequence[str]) -> None:
        from reference_impl import Runtime

        self.setup = setup
        production = bool(setup.consts.get("production"))
        # production limits, shortened so a scenario that waits for one does not wait 30 s
        self.rt = Runtime(threads=max(1, len(setup.threads)), faults=faults, models=list(setup.trace_models),
                          limits="production" if production else "workerd-serve",
                          drain_seconds=0.05 if production else None, scheduled_seconds=0.05 if production else None)
        from reference_impl import FailingService, StaticService

        self.rt.add_service(StaticService("fallback-ok", b"fallback"))
        self.rt.add_service(FailingService("fallback-fail"))
        self.svc = self.rt.add_worker("w", _ProgramWorker, durable_objects={"NS": _ProgramWorker})
        self.services = {"none": self.svc,
                         "ok": self.rt.add_worker("w-ok", _ProgramWorker, global_outbound="fallback-ok"),
                         "fail": self.rt.add_worker("w-fail", _ProgramWorker, global_outbound="fallback-fail")}
        self.fetches: dict[str, dict[str, Any]] = {}
        self.drivers: dict[str, _Driver] = {f"t{k}": _Driver(t.name, t.call) for k, t in enumerate(self.rt.threads)}
        self.drivers["gc"] = _Driver("gc", _run_on_gc(self.rt.gc))
        self.thread_names = {d.name: n for n, d in self.drivers.items()}
        self.ctx: dict[str, Any] = {}
        self.req: dict[str, Any] = {}
        self.obj: dict[str, tuple[str, Any, _Closable]] = {}
        self.handles: dict[str, dict[str, Any]] = {}
        self.actors: dict[str, Any] = {}
        self.drains: dict[str, concurrent.futures.Future[Any]] = {}
        self.scheduled_results: dict[str, concurrent.futures.Future[Any]] = {}
        self.reasons: dict[str, BaseException] = {}
        self.actions_run: dict[str, list[int]] = {}
        self.actions_scheduled: dict[str, int] = {}
        #: in the context core models nothing else owns a context; with requests, its requests (and actor) do
        self.hold_contexts = setup.model in ("context", "ownership")
        self.failures: dict[str, int] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _on(self, t: str, fn: Callable[[], Any]) -> Any:
        return self.drivers[t].do(fn)

    def _ctx_thread(self, c: str) -> str:
        return self.thread_names[self.ctx[c].thread.name]

    def _logged(self, fn: Callable[[], Any]) -> tuple[Any, list[str]]:
        """Run ``fn``; the log lines the runtime wrote meanwhile."""
        before = len(self.rt.logs)
        out = fn()
        return out, [t for _, t in self.rt.logs[before:]]

    @staticmethod
    def _warning(lines: list[str]) -> str:
        for line in lines:
            for text, key in WARNINGS.items():
                if text in line:
                    return key
        return "NO_WARNING"

    def _checked(self, t: str, fn: Callable[[], Any]) -> Observation:
        def run() -> Observation:
            try:
                fn()
            except Exception as e:
                return _error(e)
            return Observation(result="OK")

        out: Observation = self._on(t, run)
        return out

    # -- IoContext -----------------------------------------------------------------------------------
    def _new_context(self, c: str, t: str, actor: str | None) -> Observation:
        from reference_impl import IoContext
        from reference_impl.worker import Actor

        def make() -> None:
            a = None
            if actor is not None:
                a = Actor(worker=self.svc.worker, actor_id=actor, thread=self.rt.threads[int(t[1:])], name=actor,
                          namespace="NS")
            ctx = IoContext(self.rt, self.svc.worker, self.svc, actor=a)
            if a is not None:
                a.set_io_context(ctx)
                self.actors[actor] = a  # type: ignore[index]
            elif self.hold_contexts:
                ctx.add_ref()  # no requests in this model: the scenario holds the context until destroy_context
            ctx._io_pending += 1  # as an in-flight I/O would: no hang detection while the scenario drives it
            self.ctx[c] = ctx

        self._on(t, make)
        return Observation()

    def create_context(self, c: str, t: str) -> Observation:
        return self._new_context(c, t, None)

    def create_actor(self, a: str, c: str, t: str) -> Observation:
        return self._new_context(c, t, a)

    def enter(self, c: str, t: str) -> Observation:
        ctx = self.ctx[c]
        driver = self.drivers[t]
        entered: concurrent.futures.Future[Observation] = concurrent.futures.Future()
        turn: queue.Queue[Any] = queue.Queue()

        def body() -> None:
            try:
                ctx._refuse_if_aborted()
                ctx._check_entry()
                ctx._enter()
            except Exception as e:
                entered.set_result(_error(e))
                return
            ctx._js_running += 1
            ctx._cancel_hang_check()
            driver.turns.append(turn)
            entered.set_result(Observation(result="OK"))
            while True:  # the JS turn: serve this thread's operations until exit
                fn, fut = turn.get()
                if fn is _EXIT:
                    break
                try:
                    fut.set_result(fn())
                except BaseException as e:  # delivered to the caller
                    fut.set_exception(e)
            driver.turns.pop()
            ctx._js_running -= 1
            ctx._exit()
            fut.set_result(None)

        if t == "gc":
            return self._checked(t, lambda: (ctx._refuse_if_aborted(), ctx._check_entry(), ctx._enter()))
        driver.start(body)
        return entered.result(TIMEOUT)

    def exit(self, c: str, t: str) -> Observation:
        driver = self.drivers[t]
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        driver.turns[-1].put((_EXIT, fut))
        fut.result(TIMEOUT)
        self._on(t, lambda: self.ctx[c]._pending_event_dropped())
        return Observation()

    def _reason(self, reason: str) -> BaseException:
        from reference_impl import JsError

        if reason not in self.reasons:
            self.reasons[reason] = JsError(REASON_TEXT[reason])
        return self.reasons[reason]

    def abort(self, c: str, reason: str) -> Observation:
        ctx = self.ctx[c]
        self._on(self._ctx_thread(c), lambda: ctx.abort(self._reason(reason)))
        return Observation()

    def destroy_context(self, c: str) -> Observation:
        ctx = self.ctx[c]

        def destroy() -> str:
            if ctx.actor is None and self.hold_contexts:
                ctx.release_ref()
            elif ctx.refs == 0 and ctx.state == "ALIVE" and not ctx.entered:
                ctx.destroy()  # nothing holds it (a context that never had a request): the adapter destroys it
            return str(ctx.state)

        return Observation(values={"state": self._on(self._ctx_thread(c), destroy)})

    def inspect_context(self, c: str) -> Observation:
        ctx = self.ctx[c]
        return Observation(values={"state": ctx.state, "aborted": ctx.abort_exception is not None})

    # -- I/O objects ------------------------------------------------------------------------------------
    def add_object(self, o: str, c: str, t: str, kind: str, io_type: str) -> Observation:
        ctx = self.ctx[c]
        value = _Closable()

        def add() -> None:
            h = ctx.add_object(value, io_type) if kind == "IO_OWN" else ctx.add_object_ptr(value, io_type)
            self.obj[o] = (kind, h, value)

        return self._checked(t, add)

    def add_reverse(self, o: str, c: str, t: str) -> Observation:
        ctx = self.ctx[c]
        value = _Closable()

        def add() -> None:
            self.obj[o] = ("REVERSE", ctx.add_object_reverse(value, "TestObject"), value)

        return self._checked(t, add)

    def access(self, o: str, t: str) -> Observation:
        return self._checked(t, self.obj[o][1].get)

    def release(self, o: str, t: str) -> Observation:
        return self._checked(t, self.obj[o][1].release)

    def drop(self, o: str, t: str) -> Observation:
        self._on(t, self.obj[o][1].drop)
        return Observation()

    def defer_gc(self, o: str, t: str) -> Observation:
        self._on(t, self.obj[o][1].defer_gc)
        return Observation()

    def inspect_object(self, o: str) -> Observation:
        kind, h, value = self.obj[o]
        if kind == "IO_PTR":
            return Observation(values={"node": "UNTRACKED", "queued": False, "destroyed_on": None, "destructions": 0})
        node = h._node if kind != "REVERSE" else None
        ctx = h._queue.ctx if kind == "IO_OWN" else h._ctx
        st = ctx.delete_queue.state
        queued = st is not None and any(n.value is value for n in st.deletions)
        if node is None:  # the handle let go of it: find it in the owner's list
            node = next((n for n in ctx.owned.newest_first() if n.value is value), None)
        if value.closed_on:
            state = "FREED"
        elif node is not None:
            state = node.state
        else:
            state = "RELEASED" if kind == "IO_OWN" and getattr(h, "_node", None) is None else "LINKED"
        on = self.thread_names.get(value.closed_on[-1]) if value.closed_on else None
        return Observation(values={"node": state, "queued": queued, "destroyed_on": on,
                                   "destructions": len(value.closed_on)})

    def schedule_action(self, c: str, t: str) -> Observation:
        ctx = self.ctx[c]
        ran = self.actions_run.setdefault(c, [])

        def schedule() -> None:
            ctx.delete_queue.schedule_action(lambda: ran.append(1))

        self.actions_scheduled[c] = self.actions_scheduled.get(c, 0) + 1
        _, logs = self._logged(lambda: self._on(t, schedule))
        return Observation(values={"warning": self._warning(logs)}, logs=logs)

    def await_actions(self, c: str) -> Observation:
        ctx = self.ctx[c]
        thread = self.rt.threads[int(self._ctx_thread(c)[1:])]
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            thread.run(asyncio.sleep(0.002), timeout=TIMEOUT)
            if not ctx.delete_queue.signaled:  # the signal task took the queued actions (or was refused)
                return Observation()
        return Observation(failure="the DeleteQueue's signal task did not run the queued actions")

    # -- requests ---------------------------------------------------------------------------------------
    def create_request(self, r: str, c: str) -> Observation:
        from reference_impl import IncomingRequest

        ctx = self.ctx[c]
        self.req[r] = self._on(self._ctx_thread(c), lambda: IncomingRequest(ctx))
        return Observation()

    def _req_thread(self, r: str) -> str:
        return self.thread_names[self.req[r].context.thread.name]

    def deliver(self, r: str) -> Observation:
        return self._checked(self._req_thread(r), self.req[r].delivered)

    def destroy_request(self, r: str) -> Observation:
        _, logs = self._logged(lambda: self._on(self._req_thread(r), self.req[r].destroy))
        return Observation(values={"warning": self._warning(logs)}, logs=logs)

    def _phase(self, r: str) -> str:
        """The request's state, which is the lifecycle model's phase (`RequestStatistics.state`)."""
        return str(self.req[r].state)

    def drain(self, r: str) -> Observation:
        req = self.req[r]

        def start() -> tuple[Any, str]:  # the phase right after drain()'s synchronous part, before it can end
            task = asyncio.ensure_future(req.drain())
            return task, self._phase(r)

        task, phase = self._on(self._req_thread(r), start)
        self.drains[r] = asyncio.run_coroutine_threadsafe(_await(task), req.context.loop)
        return Observation(values={"phase": phase})

    def await_drain(self, r: str) -> Observation:
        fut = self.drains.get(r)
        if fut is None:
            return Observation(failure=f"{r} was not drained")
        before = len(self.rt.logs)
        try:
            fut.result(TIMEOUT)
        except concurrent.futures.TimeoutError:
            return Observation(values={"phase": self._phase(r)}, failure="the drain did not end")
        except BaseException:  # the drain's own failure: the phase says how it ended
            pass
        logs = [t for _, t in self.rt.logs[before:]]
        return Observation(values={"phase": self._phase(r), "warning": self._warning(logs)}, logs=logs)

    def finish_scheduled(self, r: str) -> Observation:
        req = self.req[r]
        task = self._on(self._req_thread(r), lambda: asyncio.ensure_future(req.finish_scheduled()))
        self._on(self._req_thread(r), lambda: None)  # its synchronous part has run
        self.scheduled_results[r] = asyncio.run_coroutine_threadsafe(_await(task), req.context.loop)
        return Observation()

    def await_scheduled(self, r: str) -> Observation:
        from reference_impl.io_context import _model_outcome

        try:
            res = self.scheduled_results[r].result(TIMEOUT)
        except concurrent.futures.TimeoutError:
            return Observation(failure="finishScheduled() did not return")
        return Observation(values={"outcome": _model_outcome(res.outcome), "no_retry": str(res.no_retry).lower()})

    def inspect_request(self, r: str) -> Observation:
        return Observation(values={"phase": self._phase(r)})

    def no_retry(self, c: str) -> Observation:
        ctx = self.ctx[c]
        self._on(self._ctx_thread(c), ctx.set_no_retry)
        return Observation()

    def _future(self, c: str) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self.ctx[c].loop)

    def task(self, c: str, h: str) -> Observation:
        ctx = self.ctx[c]

        def start() -> None:
            fut = self._future(c)
            self.handles[h] = {"future": fut, "task": ctx.await_io(fut), "ctx": c}

        self._on(self._ctx_thread(c), start)
        return Observation()

    def wait_until(self, c: str, h: str) -> Observation:
        ctx = self.ctx[c]

        def start() -> None:
            fut = self._future(c)
            self.handles[h] = {"future": fut, "task": ctx.add_wait_until(fut), "ctx": c}

        _, logs = self._logged(lambda: self._on(self._ctx_thread(c), start))
        return Observation(values={"warning": self._warning(logs)}, logs=logs)

    def _settle(self, h: str, ok: bool) -> list[str]:
        from reference_impl import JsError
        from reference_impl.io_context import ExceededWallTime

        hd = self.handles[h]
        c = hd["ctx"]
        before = len(self.rt.logs)

        def settle() -> None:
            if not hd["future"].done():
                if ok:
                    hd["future"].set_result(None)
                else:  # the first failure in a context is an Error, later ones a limit error (see the scenario)
                    n = self.failures[c] = self.failures.get(c, 0) + 1
                    hd["future"].set_exception(JsError(f"{h} failed") if n == 1 else ExceededWallTime(f"{h} failed"))

        self._on(self._ctx_thread(c), settle)
        task = hd["task"]
        loop = self.ctx[c].loop
        try:
            asyncio.run_coroutine_threadsafe(_settled(task), loop).result(TIMEOUT)
        except concurrent.futures.TimeoutError:
            pass
        self._on(self._ctx_thread(c), lambda: None)  # let the done callbacks run
        if hd.pop("keep_alive", False):
            ctx = self.ctx[c]

            def release() -> None:
                ctx._io_pending -= 1
                ctx._pending_event_dropped()

            self._on(self._ctx_thread(c), release)
        return [t for _, t in self.rt.logs[before:]]

    def complete_task(self, h: str, ok: bool) -> Observation:
        run = self.handles[h].get("run")
        if run is not None and run.future is not None:
            run.suspended.clear()
        logs = self._settle(h, ok)
        if run is not None and run.future is not None:  # a fetch handler resumes: until it waits again or ends
            self._wait_run(run, run.future)
            self._quiet(run.future)
        return Observation(logs=logs)

    def complete_wait_until(self, h: str, ok: bool) -> Observation:
        logs = self._settle(h, ok)
        failed = any("Uncaught (in promise)" in line for line in logs)
        return Observation(values={"log": "ASYNC_TASK" if failed else "NO_LOG"}, logs=logs)

    def timer(self, c: str, h: str, ms: int) -> Observation:
        fired = threading.Event()

        def arm() -> None:  # inside the entered turn: the loop's timer hook makes it a task of c
            asyncio.get_running_loop().call_later(ms / 1000, fired.set)

        self._on(self._ctx_thread(c), arm)
        self.handles[h] = {"fired": fired, "ctx": c}
        return Observation()

    def await_timer(self, h: str) -> Observation:
        hd = self.handles[h]
        if not hd["fired"].wait(TIMEOUT):
            return Observation(failure=f"timer {h} did not fire")
        self._on(self._ctx_thread(hd["ctx"]), lambda: None)
        return Observation()

    def await_hang(self, c: str) -> Observation:
        ctx = self.ctx[c]

        def release() -> None:  # the scenario's keep-alive goes: nothing pending any more
            ctx._io_pending -= 1
            ctx._pending_event_dropped()

        self._on(self._ctx_thread(c), release)
        for _ in range(int(TIMEOUT / 0.005)):
            if ctx.abort_exception is not None:
                return Observation()
            self.rt.threads[int(self._ctx_thread(c)[1:])].run(asyncio.sleep(0.005), timeout=TIMEOUT)
        return Observation(failure="the hang detector did not abort the context")

    # -- actors ---------------------------------------------------------------------------------------------
    def shutdown_actor(self, a: str) -> Observation:
        actor = self.actors[a]
        self._on(self.thread_names[actor.thread.name], actor.shutdown)
        return Observation()

    def evict_actor(self, a: str) -> Observation:
        actor = self.actors[a]
        dropped = self._on(self.thread_names[actor.thread.name], actor.drop_io_context)
        return Observation() if dropped else Observation(failure="the actor still lists a request")

    def abort_actor(self, a: str, reason: str) -> Observation:
        raise NotImplementedError("reference_impl has no Actor::abort (docs/reference-implementation.md)")

    # -- the entrypoint ----------------------------------------------------------------------------------------
    def _wait_run(self, run: _Run, fut: concurrent.futures.Future[Any]) -> None:
        """Until the handler is suspended at an await_io, or the event is over."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not fut.done() and not run.suspended.is_set():
            concurrent.futures.wait([fut], timeout=0.002)

    def _response(self, r: str) -> str:
        """What the client of fetch r saw, as the entrypoint model's Response."""
        f = self.fetches[r]
        fut, sink = f["future"], f["sink"]
        if not fut.done():
            return "PENDING"
        err = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or isinstance(err, (asyncio.CancelledError, concurrent.futures.CancelledError)):
            return "NO_RESPONSE"
        if sink.status is None:
            if err is None:
                return "NO_RESPONSE"
            return "EXCEPTION_TO_ACTOR_CALLER" if f["actor"] else "LISTENER_500"
        if not sink.ended:
            return "TRUNCATED"
        if sink.body == b"fallback":
            return "FALLBACK_RESPONSE"
        if sink.status == 500 and not sink.body:
            return "FALLBACK_500_EMPTY" if f["fallback"] != "none" else "SYNTHETIC_500"
        return "WORKER_RESPONSE"

    def fetch(self, r: str, c: str, t: str, handler: Sequence[Mapping[str, Any]], fallback: str,
              actor: str | None) -> Observation:
        from reference_impl import Request
        from reference_impl.api import CollectingResponse
        from reference_impl.entrypoint import WorkerEntrypoint

        run = _Run(self, handler, c)
        svc = self.services[fallback]
        request = Request("GET", f"http://iospec/{r}")
        request.iospec_run = run  # type: ignore[attr-defined]
        sink = CollectingResponse()

        def start() -> Any:
            ep = WorkerEntrypoint(svc, actor=self.actors[actor] if actor is not None else None)
            self.ctx[c] = ep.context
            self.req[r] = ep.incoming_request
            return ep, asyncio.ensure_future(ep.request(request, sink))

        ep, task = self._on(t, start)
        fut = asyncio.run_coroutine_threadsafe(_await(task), self.rt.threads[int(t[1:])].loop)
        run.future = fut
        self.fetches[r] = {"ep": ep, "task": task, "future": fut, "sink": sink, "run": run, "actor": actor is not None,
                           "fallback": fallback, "t": t}
        self._wait_run(run, fut)
        self._quiet(fut)
        resp = self._response(r)
        return Observation(values={"response": {r: resp} if resp != "PENDING" else {}})

    @staticmethod
    def _quiet(fut: concurrent.futures.Future[Any]) -> None:
        try:
            fut.result(0.05)
        except BaseException:  # the outcome is read from the response sink and the exception kind
            pass

    def fetch_again(self, r: str) -> Observation:
        from reference_impl.api import CollectingResponse

        f = self.fetches[r]
        t = f["t"]

        from reference_impl import Request

        return self._checked_async(t, lambda: f["ep"].request(Request(), CollectingResponse()))

    def _checked_async(self, t: str, make: Callable[[], Any]) -> Observation:
        try:
            self.rt.threads[int(t[1:])].run(make(), timeout=TIMEOUT)
        except Exception as e:
            return _error(e)
        return Observation(result="OK")

    def cancel_fetch(self, r: str) -> Observation:
        f = self.fetches[r]
        t = f["t"]
        self._on(t, f["task"].cancel)
        self._quiet(f["future"])
        self._on(t, lambda: None)
        resp = self._response(r)
        return Observation(values={"response": {r: resp} if resp != "PENDING" else {}})

    def scheduled(self, r: str, c: str, t: str, handler: Sequence[Mapping[str, Any]]) -> Observation:
        from reference_impl.entrypoint import WorkerEntrypoint

        run = _Run(self, handler, c)
        before = len(self.rt.logs)

        key = f"iospec-{id(self)}-{r}"

        def start() -> Any:
            ep = WorkerEntrypoint(self.svc)
            self.ctx[c] = ep.context
            self.req[r] = ep.incoming_request
            _SCHEDULED_RUNS[key] = run
            return ep, asyncio.ensure_future(ep.run_scheduled(cron=key))

        ep, task = self._on(t, start)
        self.fetches[r] = {"ep": ep, "t": t}
        self.scheduled_results[r] = asyncio.run_coroutine_threadsafe(_await(task), self.rt.threads[int(t[1:])].loop)
        run.finished.wait(TIMEOUT)
        self._on(t, lambda: None)
        self._on(t, lambda: None)  # the handler task's done callback has logged
        logs = [line for _, line in self.rt.logs[before:]]
        failed = any("Uncaught (in promise)" in line for line in logs)
        return Observation(values={"log": "ASYNC_TASK" if failed else "NO_LOG"}, logs=logs)

    def scheduled_again(self, r: str) -> Observation:
        f = self.fetches[r]
        return self._checked_async(f["t"], lambda: f["ep"].run_scheduled())

    # -- locks ------------------------------------------------------------------------------------------------
    def _queue(self, i: str) -> Any:
        from reference_impl import IsolateConfig

        return self.rt.isolate_for(IsolateConfig(compatibility_flags=(f"iospec-{i}",))).lock_queue

    def lock(self, t: str, i: str, h: str) -> Observation:
        q = self._queue(i)
        thread = self.rt.threads[int(t[1:])]

        def start() -> tuple[Any, str]:
            w = getattr(thread, "async_waiter", None)
            joined = "QUEUED" if w is None else ("COALESCED" if w.queue is q else "BLOCKED")
            return asyncio.ensure_future(q.lock()), joined

        task, joined = self._on(t, start)
        self._on(t, lambda: None)  # the request's synchronous part has run
        self.handles[h] = {"lock_task": task, "t": t, "i": i, "future": asyncio.run_coroutine_threadsafe(
            _await(task), thread.loop)}
        return Observation(values={"joined": joined})

    def await_retry(self, h: str) -> Observation:
        hd = self.handles[h]
        q = self._queue(hd["i"])
        thread = self.rt.threads[int(hd["t"][1:])]
        for _ in range(int(LOCK_TIMEOUT / 0.002)):
            w = getattr(thread, "async_waiter", None)
            if w is not None and w.queue is q:
                return Observation(values={"joined": "QUEUED"})
            thread.run(asyncio.sleep(0.002), timeout=TIMEOUT)
        return Observation(failure=f"blocked lock request {h} did not retry")

    def await_grant(self, h: str) -> Observation:
        try:
            self.handles[h]["future"].result(LOCK_TIMEOUT)
        except concurrent.futures.TimeoutError:
            return Observation(failure=f"lock request {h} was not granted")
        return Observation()

    def unlock(self, h: str) -> Observation:
        hd = self.handles[h]
        lock = hd["future"].result(LOCK_TIMEOUT)
        self._on(hd["t"], lock.release)
        return Observation()

    def cancel_lock(self, h: str) -> Observation:
        hd = self.handles[h]
        self._on(hd["t"], hd["lock_task"].cancel)
        self._quiet(hd["future"])
        self._on(hd["t"], lambda: None)
        return Observation()

    def sync_lock(self, h: str, i: str) -> Observation:
        from reference_impl.locks import WorkerLock

        hd = self.handles[h]
        lock = hd["future"].result(LOCK_TIMEOUT)

        def take() -> None:
            wl = WorkerLock(self._queue(i), lock)
            wl.__enter__()
            hd.setdefault("sync", {})[i] = wl

        return self._checked(hd["t"], take)

    def sync_unlock(self, h: str, i: str) -> Observation:
        hd = self.handles[h]
        self._on(hd["t"], lambda: hd["sync"].pop(i).__exit__(None, None, None))
        return Observation()

    # -- the run ---------------------------------------------------------------------------------------------
    def trace(self) -> TraceLog | None:
        for d, t in zip(self.drivers.values(), self.rt.threads):  # let what the last steps started run
            if not d.turns:
                t.run(asyncio.sleep(0.005), timeout=TIMEOUT)
        sink = self.rt.trace
        if sink is None:
            return None
        return TraceLog(dict(sink.head or {}), list(sink.events))

    def close(self) -> None:
        for d in self.drivers.values():  # leave any turn a failing scenario left open
            while d.turns:
                done: concurrent.futures.Future[Any] = concurrent.futures.Future()
                d.turns[-1].put((_EXIT, done))
                done.result(TIMEOUT)
        self.rt.close()


async def _await(task: Any) -> Any:
    return await task


async def _settled(task: Any) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), TIMEOUT)
    except BaseException:  # settled (or cancelled) either way
        pass
