"""Generate a Python worker for the reference implementation from a behaviour description.

The Python twin of `conformance.http.jsgen`: one coroutine per route, each vocabulary op
(conformance/http/vocabulary.py) a few statements against the reference implementation's
Workers API (`reference_impl.api`: Request, Response, ctx, ReadableStream, TransformStream,
IdentityTransformStream, Promise; `reference_impl.service`: service bindings and Durable
Object stubs).  The generated module defines ``Worker`` (the default export: ``fetch`` and,
if the scenario has one, ``scheduled``) and, for a worker with a Durable Object, ``Actor``.

Handler shapes follow workerd's entry points as the reference implementation models them
(api/global-scope.c++:268-492 ServiceWorkerGlobalScope::request, 525-564 startScheduled); the
generated code is plain so a reader can check it against the vocabulary and against jsgen.
A Python coroutine has no synchronous part a ``throw`` could escape from, so the vocabulary's
"sync throw" and "rejected promise" both raise inside the coroutine: workerd treats the two
alike (both reach the listener as an exception).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.http.codewriter import CodeWriter, local, saved_names, slots_of, template_expr
from conformance.http.vocabulary import TERMINAL_OPS

__all__ = ["ACTOR_CLASS", "WORKER_CLASS", "generate_worker", "load_worker"]

WORKER_CLASS = "Worker"
ACTOR_CLASS = "Actor"

_PRELUDE = r'''
import asyncio
import json

from reference_impl.api import (IdentityTransformStream, NativeBody, Promise, ReadableStream, Request, Response,
                                TransformStream)
from reference_impl.errors import JsError, JsThrownValue, JsTypeError, js_name
from reference_impl.io_context import IoContext

SCENARIO = %(scenario)s
WORKER = %(worker)s
G = {}  # slots with scope "global": module globals, shared by the whole isolate


def describe_error(e):
    name = js_name(e)
    return "error: " + (name + ": " + str(e) if name else str(e))


async def attempt(fn, within_ms=None):
    """The vocabulary's result string: "ok: <value>", "error: <Name>: <message>" or "pending"."""
    async def work():
        try:
            return "ok: " + str(await fn())
        except Exception as e:  # a JS catch: every thrown value
            return describe_error(e)
    if within_ms is None:
        return await work()
    task = asyncio.ensure_future(work())  # a promise chain of this context
    done, _ = await asyncio.wait([task], timeout=within_ms / 1000)  # the race's timer is pending I/O meanwhile
    return task.result() if done else "pending"


async def record(env, event, value):
    body = json.dumps({"scenario": SCENARIO, "worker": WORKER, "event": event, "value": str(value)})
    response = await env.RECORDER.fetch(Request("POST", "http://recorder/record", [], body.encode()))
    await response.text()


def readable(chunks, then="close", message="stream failed", after_ms=0):
    """A JS ReadableStream: the first chunk at once, the rest (and the end) now or after `after_ms` on a timer."""
    def start(c):
        c.enqueue(chunks[0].encode())

        def finish():
            for chunk in chunks[1:]:
                c.enqueue(chunk.encode())
            c.close() if then == "close" else c.error(JsError(message))
        if after_ms:
            asyncio.get_running_loop().call_later(after_ms / 1000, finish)
        else:
            finish()
    return ReadableStream(start)


class AbortController:
    """new AbortController(): the reference implementation has no abort signals; a plain JS object."""

    def __init__(self):
        self.aborted = False

    def abort(self):
        self.aborted = True


def outgoing(binding, path, method="GET", body=None):
    return Request(method, "http://" + binding.lower() + path, [], (body or "").encode())


async def make_io(kind, request, env, binding, path):
    if kind == "subrequest_response":
        return await env[binding].fetch(outgoing(binding, path))
    if kind == "text":
        return await request.text()
    if kind == "request":
        return request
    if kind == "identity_transform_stream":
        return IdentityTransformStream(IoContext.current())
    if kind == "transform_stream":
        return TransformStream()
    if kind == "response_string":
        return Response(NativeBody("saved body"))
    if kind == "response_js_stream":
        return Response(readable(["js stream"]))
    if kind == "fetch_promise":
        task = asyncio.ensure_future(env[binding].fetch(outgoing(binding, path)))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # promise.catch(() => {})
        return task
    if kind == "abort_controller":
        return AbortController()
    raise JsError("unknown I/O kind " + kind)


async def use_io(saved):
    if saved is None:
        raise JsError("nothing saved in this slot")
    kind, o = saved
    if kind in ("request", "response_string", "response_js_stream", "subrequest_response"):
        return await o.text()
    if kind == "identity_transform_stream":
        try:  # write one chunk (not awaited; the write side's own error is not the observation), then read
            o.write(b"x")
        except Exception:
            pass
        await asyncio.sleep(0)
        data = o.read()
        return "read=" + data.decode() if data else "done=true"
    if kind == "transform_stream":
        try:
            o.write(b"x")
        except Exception:
            pass
        return "read=" + (await o.read()).decode()
    if kind == "fetch_promise":
        response = await o
        return str(response.status) + " " + await response.text()
    if kind == "abort_controller":
        o.abort()
        return "aborted=" + ("true" if o.aborted else "false")
    if kind == "text":
        return o
    raise JsError("unknown I/O kind " + kind)


async def describe_request(request):
    lines = [request.method + " " + request.url]
    for name, value in sorted((k.lower(), v) for k, v in request.headers if k.lower().startswith("x-")):
        lines.append(name + ": " + value)
    return "\n".join(lines) + "\n\n" + await request.text()


async def fetch_text(target, request):
    response = await target.fetch(request)
    return str(response.status) + " " + await response.text()


async def hang():
    await asyncio.get_running_loop().create_future()  # nothing will ever settle it; no pending I/O
'''


def _py(value: Any) -> str:
    return repr(value)


def _template(template: str) -> str:
    return template_expr(template, _py)


class _Writer(CodeWriter):
    indent = "    "



def _steps(w: _Writer, steps: Sequence[Mapping[str, Any]], *, body: str) -> None:
    """Emit `steps`; `body` is 'fetch' (fall-through returns an empty 200) or 'task'."""
    names = saved_names(steps)
    for name in names:
        w.line(f"{local(name)} = None")
    for step in steps:
        _step(w, step)
    if body == "fetch" and (not steps or steps[-1]["op"] not in TERMINAL_OPS):
        w.line('return Response("")')
    elif not steps or body == "task":
        w.line("return None")


def _task(w: _Writer, steps: Sequence[Mapping[str, Any]], prefix: str) -> str:
    """A nested coroutine function (a wait_until / setTimeout body) that sees the enclosing locals."""
    name = w.fresh(prefix)
    w.line(f"async def {name}():")
    w.depth += 1
    _steps(w, steps, body="task")
    w.depth -= 1
    return name


def _step(w: _Writer, step: Mapping[str, Any]) -> None:
    op = step["op"]
    if op == "respond":
        headers = [(k, v) for k, v in step.get("headers", {}).items()]
        w.line(f"return Response({_template(step.get('body', ''))}, status={step.get('status', 200)}, "
               f"headers={_py(headers)})")
    elif op == "respond_stream":
        chunks = "[" + ", ".join(_template(c) for c in step["chunks"]) + "]"
        w.line(f"return Response(readable({chunks}, {_py(step['then'])}, {_py(step.get('message', 'stream failed'))}, "
               f"{step.get('after_ms', 0)}))")
    elif op == "throw":
        message = _py(step.get("message", "boom"))
        thrown = {"error": f"JsError({message})", "type_error": f"JsTypeError({message})",
                  "string": f"JsThrownValue({message})", "object": "JsThrownValue('[object Object]')",
                  "null": "JsThrownValue('null')"}[step.get("value", "error")]
        w.line(f"raise {thrown}")
    elif op == "reject":
        w.line(f"raise JsError({_py(step.get('message', 'boom'))})")
    elif op == "return_value":
        w.line(f"return {_py(step['value'])}")
    elif op == "pass_through_on_exception":
        w.line("ctx.pass_through_on_exception()")
    elif op == "abort":
        w.line(f"ctx.abort(JsError({_py(step.get('message', 'aborted'))}))")
        w.line("await hang()")
    elif op == "sleep":
        w.line(f"await asyncio.sleep({step['ms'] / 1000!r})")
    elif op == "hang":
        w.line("await hang()")
    elif op == "save_io":
        kind = step["kind"]
        args = f"{_py(kind)}, request, env, {_py(step.get('binding'))}, {_py(step.get('path', '/'))}"
        w.line(f"{slots_of(step)}[{_py(step['slot'])}] = ({_py(kind)}, await make_io({args}))")
    elif op == "use_io":
        within = f", {step['within_ms']}" if "within_ms" in step else ""
        target = f"{slots_of(step)}.get({_py(step['slot'])})"
        w.line(f"{local(step['as'])} = await attempt(lambda: use_io({target}){within})")
    elif op == "read_body":
        w.line(f"{local(step['as'])} = await attempt(lambda: request.text())")
    elif op == "describe_request":
        w.line(f"{local(step['as'])} = await attempt(lambda: describe_request(request))")
    elif op == "wait_until":
        name = _task(w, step["steps"], "wait_until")
        w.line(f"ctx.wait_until({name}())")
    elif op == "set_timeout":
        name = _task(w, step["steps"], "timer")
        io = w.fresh("io")
        w.line(f"{io} = IoContext.current()")
        w.line(f"asyncio.get_running_loop().call_later({step['ms'] / 1000!r}, lambda: {io}.spawn({name}()))")
    elif op == "record":
        w.line(f"await record(env, {_py(step['event'])}, {_template(step.get('value', ''))})")
    elif op == "no_retry":
        w.line("controller.no_retry()")
    elif op == "call_scheduled":
        cron = _py(step.get("cron", "* * * * *"))
        w.line(f"{local(step['as'])} = await attempt(lambda: scheduled_result(env[{_py(step['binding'])}], {cron}))")
    elif op in ("fetch_service", "fetch_durable_object"):
        if op == "fetch_service":
            target = f"env[{_py(step['binding'])}]"
            host = step["binding"]
        else:
            target = f"env.DO.get({_py(step['instance'])})"
            host = "DO"
        method = _py(step.get("method", "GET"))
        body = _template(step["body"]) if "body" in step else "None"
        request = f"outgoing({_py(host)}, {_py(step.get('path', '/'))}, {method}, {body})"
        if "as" in step:
            w.line(f"{local(step['as'])} = await attempt(lambda: fetch_text({target}, {request}))")
        else:  # no result wanted: an error propagates out of the handler
            w.line(f"await (await {target}.fetch({request})).text()")
    elif op == "await_shared_promise":
        within = f", {step['within_ms']}" if "within_ms" in step else ""
        promise = w.fresh("promise")
        w.line(f"{promise} = Promise()")
        w.line(f"G[{_py(step['slot'])}] = {promise}.resolve")
        w.line(f"{local(step['as'])} = await attempt(lambda: awaited({promise}){within})")
    elif op == "resolve_shared_promise":
        call = f"G[{_py(step['slot'])}]({_template(step.get('value', ''))})"
        if "as" in step:
            w.line(f"{local(step['as'])} = await attempt(lambda: resolved(lambda: {call}))")
        else:
            w.line(call)
    else:  # the schema lists every op; reaching here means the vocabulary grew without the generator
        raise AssertionError(f"pygen has no translation for op {op!r}")


_HELPERS = r'''

async def scheduled_result(target, cron):
    result = await target.scheduled(cron)
    return "outcome=" + result.outcome + " noRetry=" + ("true" if result.no_retry else "false")


async def awaited(promise):
    return await promise


async def resolved(call):
    call()
    return ""
'''


def _route_table(w: _Writer, table: str, routes: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    names = []
    for path, steps in routes.items():
        name = w.fresh(f"{table.lower()}_route")
        names.append((path, name))
        w.line(f"async def {name}(request, env, ctx, I):")
        w.depth += 1
        _steps(w, steps, body="fetch")
        w.depth -= 1
        w.line("")
    w.line(f"{table} = {{" + ", ".join(f"{_py(path)}: {name}" for path, name in names) + "}")
    w.line("")


def _dispatch(w: _Writer, table: str, slots: str) -> None:
    w.line("async def fetch(self, request, env, ctx):")
    w.line(f"    route = {table}.get('/' + request.url.split('/', 3)[3].split('?')[0] "
           "if request.url.count('/') >= 3 else '/')")
    w.line("    if route is None:")
    w.line('        return Response("no route", status=404)')
    w.line(f"    return await route(request, env, ctx, {slots})")


def generate_worker(scenario_id: str, worker: Mapping[str, Any]) -> str:
    """The complete Python module for one worker of a scenario."""
    w = _Writer()
    w.line(f"# Generated by iospec (conformance/http/pygen.py) from scenario {scenario_id}, worker {worker['name']}.")
    w.line("# Do not edit: change the scenario file instead.")
    w.lines.extend((_PRELUDE % {"scenario": _py(scenario_id), "worker": _py(worker["name"])}).splitlines())
    w.lines.extend(_HELPERS.splitlines())
    w.line("")
    _route_table(w, "ROUTES", worker.get("routes", {}))
    w.line(f"class {WORKER_CLASS}:")
    w.depth += 1
    _dispatch(w, "ROUTES", "None")
    if "scheduled" in worker:
        w.line("")
        w.line("async def scheduled(self, controller, env, ctx):")
        w.depth += 1
        _steps(w, worker["scheduled"], body="task")
        w.depth -= 1
    w.depth -= 1
    w.line("")
    if "durable_object" in worker:
        _route_table(w, "ACTOR_ROUTES", worker["durable_object"]["routes"])
        w.line(f"class {ACTOR_CLASS}:")
        w.depth += 1
        w.line("def __init__(self):")
        w.line("    self.slots = {}")
        w.line("")
        _dispatch(w, "ACTOR_ROUTES", "self.slots")
        w.depth -= 1
    return w.text() + "\n"


def load_worker(scenario_id: str, worker: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Generate and execute the module; returns (source, namespace) with ``Worker`` (and ``Actor``)."""
    source = generate_worker(scenario_id, worker)
    namespace: dict[str, Any] = {"__name__": f"iospec_generated.{scenario_id}.{worker['name']}"}
    exec(compile(source, f"<{scenario_id}:{worker['name']}.py>", "exec"), namespace)
    return source, namespace
