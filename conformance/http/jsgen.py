"""Generate a JavaScript module worker (ES module syntax, for workerd) from a behaviour description.

One function per route; each vocabulary op (conformance/http/vocabulary.py) becomes a few
statements.  The generated code is deliberately plain so a reader can check it against the
vocabulary: no helpers beyond `attempt` (turns an outcome into a result string), `record`
(the recorder call) and the per-kind `makeIo` / `useIo`.

The handler shapes follow workerd's entry points: `fetch(request, env, ctx)` for routes
(api/global-scope.c++:268-492, ServiceWorkerGlobalScope::request), `scheduled(controller, env,
ctx)` (global-scope.c++:525-564, startScheduled) and a `DurableObject` subclass for actors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.http.codewriter import CodeWriter, local, saved_names, slots_of, template_expr
from conformance.http.vocabulary import TERMINAL_OPS, steps_wait

__all__ = ["ACTOR_CLASS", "generate_worker"]

ACTOR_CLASS = "Actor"

_PRELUDE = r"""
const SCENARIO = %(scenario)s;
const WORKER = %(worker)s;
const G = {};  // slots with scope "global": module globals, shared by the whole isolate
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function describeError(e) {
  return "error: " + (e instanceof Error ? e.name + ": " + e.message : String(e));
}

// The vocabulary's result string: "ok: <value>", "error: <Name>: <message>" or "pending".
async function attempt(fn, withinMs) {
  const work = (async () => "ok: " + (await fn()))().catch(describeError);
  if (withinMs === undefined) return await work;
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(() => resolve("pending"), withinMs); });
  try { return await Promise.race([work, late]); } finally { clearTimeout(timer); }
}

async function record(env, event, value) {
  const response = await env.RECORDER.fetch("http://recorder/record", {
    method: "POST",
    body: JSON.stringify({ scenario: SCENARIO, worker: WORKER, event, value: String(value) }),
  });
  await response.arrayBuffer();
}

// The kinds in vocabulary.WAITING_KINDS: creating them waits.
async function makeIo(kind, request, env, binding, path) {
  switch (kind) {
    case "subrequest_response": return await env[binding].fetch("http://" + binding.toLowerCase() + path);
    case "text": return await request.text();
  }
  throw new Error("I/O kind " + kind + " is created without waiting");
}

function makeIoSync(kind, request, binding, env, path) {
  switch (kind) {
    case "request": return request;
    case "identity_transform_stream": return new IdentityTransformStream();
    case "transform_stream": return new TransformStream();
    case "response_string": return new Response("saved body");
    case "response_js_stream":
      return new Response(new ReadableStream({ start(c) { c.enqueue(encoder.encode("js stream")); c.close(); } }));
    case "fetch_promise": {
      const promise = env[binding].fetch("http://" + binding.toLowerCase() + path);
      promise.catch(() => {});
      return promise;
    }
    case "abort_controller": return new AbortController();
  }
  throw new Error("I/O kind " + kind + " cannot be created without waiting");
}

async function useIo(saved) {
  if (saved === undefined) throw new Error("nothing saved in this slot");
  const o = saved.object;
  switch (saved.kind) {
    case "request": case "response_string": case "response_js_stream": case "subrequest_response":
      return await o.text();
    case "identity_transform_stream": case "transform_stream": {
      // write one chunk (not awaited; the write side's own error is not the observation), then read
      try { const writer = o.writable.getWriter(); writer.write(encoder.encode("x")).catch(() => {}); }
      catch (e) { /* see above */ }
      const chunk = await o.readable.getReader().read();
      return chunk.done ? "done=true" : "read=" + decoder.decode(chunk.value);
    }
    case "fetch_promise": { const response = await o; return response.status + " " + (await response.text()); }
    case "abort_controller": o.abort(); return "aborted=" + o.signal.aborted;
    case "text": return o;
  }
  throw new Error("unknown I/O kind " + saved.kind);
}

async function describeRequest(request) {
  const lines = [request.method + " " + request.url];
  const names = [...request.headers.keys()].filter((n) => n.startsWith("x-")).sort();
  for (const name of names) lines.push(name + ": " + request.headers.get(name));
  return lines.join("\n") + "\n\n" + (await request.text());
}
"""


def _js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _template(template: str) -> str:
    return template_expr(template, _js)


class _Writer(CodeWriter):
    indent = "  "



def _steps(w: _Writer, steps: Sequence[Mapping[str, Any]], *, body: str) -> None:
    """Emit `steps`; `body` is 'fetch' (fall-through returns an empty 200) or 'task'."""
    names = saved_names(steps)
    if names:
        w.line("let " + ", ".join(local(n) for n in names) + ";")
    for step in steps:
        _step(w, step)
    if body == "fetch" and (not steps or steps[-1]["op"] not in TERMINAL_OPS):
        w.line('return new Response("");')


def _function(w: _Writer, key: str | None, head: str, steps: Sequence[Mapping[str, Any]], *, body: str,
              tail: str = "") -> None:
    """A function (`key: [async] function head`) or, without key, a method (`[async] head`)."""
    prefix = "async " if steps_wait(steps) else ""
    w.line((f"{key}: {prefix}function {head}" if key is not None else prefix + head) + " {")
    w.depth += 1
    _steps(w, steps, body=body)
    w.depth -= 1
    w.line("}" + tail)


def _step(w: _Writer, step: Mapping[str, Any]) -> None:
    op = step["op"]
    if op == "respond":
        init = {"status": step.get("status", 200), "headers": step.get("headers", {})}
        w.line(f"return new Response({_template(step.get('body', ''))}, {_js(init)});")
    elif op == "respond_stream":
        chunks = "[" + ", ".join(_template(c) for c in step["chunks"]) + "]"
        failure = _js(step.get("message", "stream failed"))
        end = "c.close()" if step["then"] == "close" else f"c.error(new Error({failure}))"
        after = step.get("after_ms", 0)
        w.line("{")
        w.depth += 1
        w.line(f"const chunks = {chunks};")
        w.line("const finish = (c) => { for (const chunk of chunks.slice(1)) c.enqueue(encoder.encode(chunk)); "
               f"{end}; }};")
        w.line("const stream = new ReadableStream({ start(c) { c.enqueue(encoder.encode(chunks[0])); "
               + ("finish(c); } });" if after == 0 else f"setTimeout(() => finish(c), {after}); }} }});"))
        w.line("return new Response(stream);")
        w.depth -= 1
        w.line("}")
    elif op == "throw":
        message = _js(step.get("message", "boom"))
        thrown = {"error": f"new Error({message})", "type_error": f"new TypeError({message})", "string": message,
                  "object": f"{{ message: {message} }}", "null": "null"}[step.get("value", "error")]
        w.line(f"throw {thrown};")
    elif op == "reject":
        w.line(f"return Promise.reject(new Error({_js(step.get('message', 'boom'))}));")
    elif op == "return_value":
        w.line(f"return {_js(step['value'])};")
    elif op == "pass_through_on_exception":
        w.line("ctx.passThroughOnException();")
    elif op == "abort":
        w.line(f"ctx.abort(new Error({_js(step.get('message', 'aborted'))}));")
        w.line("await new Promise(() => {});")
    elif op == "sleep":
        w.line(f"await sleep({step['ms']});")
    elif op == "hang":
        w.line("await new Promise(() => {});")
    elif op == "save_io":
        kind, slots = step["kind"], slots_of(step)
        args = f"{_js(kind)}, request, env, {_js(step.get('binding'))}, {_js(step.get('path', '/'))}"
        if kind in ("subrequest_response", "text"):
            w.line(f"{slots}[{_js(step['slot'])}] = {{ kind: {_js(kind)}, object: await makeIo({args}) }};")
        else:
            sync_args = f"{_js(kind)}, request, {_js(step.get('binding'))}, env, {_js(step.get('path', '/'))}"
            w.line(f"{slots}[{_js(step['slot'])}] = {{ kind: {_js(kind)}, object: makeIoSync({sync_args}) }};")
    elif op == "use_io":
        within = f", {step['within_ms']}" if "within_ms" in step else ""
        w.line(f"{local(step['as'])} = await attempt(() => useIo({slots_of(step)}[{_js(step['slot'])}]){within});")
    elif op == "read_body":
        w.line(f"{local(step['as'])} = await attempt(() => request.text());")
    elif op == "describe_request":
        w.line(f"{local(step['as'])} = await attempt(() => describeRequest(request));")
    elif op in ("wait_until", "set_timeout"):
        w.line("ctx.waitUntil((async () => {" if op == "wait_until" else "setTimeout(async () => {")
        w.depth += 1
        _steps(w, step["steps"], body="task")
        w.depth -= 1
        w.line("})());" if op == "wait_until" else f"}}, {step['ms']});")
    elif op == "record":
        w.line(f"await record(env, {_js(step['event'])}, {_template(step.get('value', ''))});")
    elif op == "no_retry":
        w.line("controller.noRetry();")
    elif op == "call_scheduled":
        call = f"env[{_js(step['binding'])}].scheduled({{ cron: {_js(step.get('cron', '* * * * *'))} }})"
        w.line(f"{local(step['as'])} = await attempt(async () => {{ const r = await {call}; "
               'return "outcome=" + r.outcome + " noRetry=" + r.noRetry; });')
    elif op in ("fetch_service", "fetch_durable_object"):
        if op == "fetch_service":
            target = f"env[{_js(step['binding'])}]"
            url = _js("http://" + step["binding"].lower() + step.get("path", "/"))
        else:
            target = f"env.DO.get(env.DO.idFromName({_js(step['instance'])}))"
            url = _js("http://do" + step["path"])
        if "body" in step or step.get("method", "GET") != "GET":
            method, payload = _js(step.get("method", "GET")), _template(step.get("body", ""))
            url = f"{url}, {{ method: {method}, body: {payload} }}"
        if "as" in step:
            w.line(f"{local(step['as'])} = await attempt(async () => {{ const r = await {target}.fetch({url}); "
                   'return r.status + " " + (await r.text()); });')
        else:  # no result wanted: an error propagates out of the handler
            w.line(f"await (await {target}.fetch({url})).arrayBuffer();")
    elif op == "await_shared_promise":
        within = f", {step['within_ms']}" if "within_ms" in step else ""
        w.line(f"{local(step['as'])} = await attempt(() => new Promise((resolve) => {{ G[{_js(step['slot'])}] = "
               f"resolve; }}){within});")
    elif op == "resolve_shared_promise":
        call = f"G[{_js(step['slot'])}]({_template(step.get('value', ''))})"
        if "as" in step:
            w.line(f'{local(step["as"])} = await attempt(async () => {{ {call}; return ""; }});')
        else:
            w.line(call + ";")
    else:  # the schema lists every op; reaching here means the vocabulary grew without the generator
        raise AssertionError(f"jsgen has no translation for op {op!r}")


def generate_worker(scenario_id: str, worker: Mapping[str, Any]) -> str:
    """The complete ES module for one worker of a scenario."""
    w = _Writer()
    w.line(f"// Generated by iospec (conformance/http/jsgen.py) from scenario {scenario_id}, worker {worker['name']}.")
    w.line("// Do not edit: change the scenario file instead.")
    if "durable_object" in worker:
        w.line('import { DurableObject } from "cloudflare:workers";')
    w.lines.extend((_PRELUDE % {"scenario": _js(scenario_id), "worker": _js(worker["name"])}).splitlines())
    w.line("const routes = {")
    w.depth += 1
    for path, steps in worker.get("routes", {}).items():
        _function(w, _js(path), "(request, env, ctx, I)", steps, body="fetch", tail=",")
    w.depth -= 1
    w.line("};")
    w.line("")
    w.line("export default {")
    w.depth += 1
    w.line("fetch(request, env, ctx) {")
    w.line("  const route = routes[new URL(request.url).pathname];")
    w.line('  if (route === undefined) return new Response("no route", { status: 404 });')
    w.line("  return route(request, env, ctx, null);")
    w.line("},")
    if "scheduled" in worker:
        _function(w, None, "scheduled(controller, env, ctx)", worker["scheduled"], body="task", tail=",")
    w.depth -= 1
    w.line("};")
    if "durable_object" in worker:
        w.line("")
        w.line("const actorRoutes = {")
        w.depth += 1
        for path, steps in worker["durable_object"]["routes"].items():
            _function(w, _js(path), "(request, env, ctx, I)", steps, body="fetch", tail=",")
        w.depth -= 1
        w.line("};")
        w.line(f"export class {ACTOR_CLASS} extends DurableObject {{")
        w.line("  constructor(ctx, env) { super(ctx, env); this.slots = {}; }")
        w.line("  fetch(request) {")
        w.line("    const route = actorRoutes[new URL(request.url).pathname];")
        w.line('    if (route === undefined) return new Response("no route", { status: 404 });')
        w.line("    return route(request, this.env, this.ctx, this.slots);")
        w.line("  }")
        w.line("}")
    return w.text() + "\n"
