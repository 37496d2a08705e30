"""The behaviour vocabulary: what a scenario's workers do, written once as data, no code.

A worker is a set of *routes* (URL path -> steps) for its fetch handler, optionally a
``scheduled`` step list and a Durable Object class with routes of its own.  A step is a JSON
object whose ``op`` is one of `OPS` below.  Generators turn steps into a real handler: today
`conformance.http.jsgen` (JavaScript modules for workerd); the reference implementation will
generate Python handlers from the same data.  Every op therefore names a *runtime* behaviour
(respond, throw, save an I/O object, ...) and never a language construct.

Conventions every generator follows:

* Steps run in order; ``respond``, ``respond_stream``, ``throw``, ``reject``, ``return_value``
  and ``hang`` end the list they are in.  A list that ends without one of them returns an
  empty 200 response (fetch), or returns normally (scheduled, waitUntil and timer bodies).
* A handler whose steps never wait (no op in `WAITING_OPS`) runs synchronously: ``throw`` then
  escapes the fetch call itself rather than rejecting a promise (the "sync throw" case).
* Ops with ``as`` store a *result string* in a local variable: ``"ok: <value>"`` on success,
  ``"error: <Name>: <message>"`` if the operation threw or rejected with an Error (``"error: "``
  plus the value's string form for a non-Error), and ``"pending"`` when ``within_ms`` passed
  first.  Later templates use it as ``{name}``.
* Saved objects live in named slots: ``scope: "global"`` is shared by everything in the
  worker's isolate (module globals), ``scope: "instance"`` is the Durable Object instance.
* ``record`` sends ``{scenario, worker, event, value}`` to the recorder service and waits for
  its answer; the harness timestamps each event on arrival.

Rule references are to workerd-semantics.md (sections 5 and 8) and model/rules.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "INTERNET",
    "IO_KINDS",
    "IO_OWNERSHIP",
    "IO_VALUES",
    "OPS",
    "TERMINAL_OPS",
    "WAITING_KINDS",
    "WAITING_OPS",
    "VocabularyError",
    "check_worker",
    "step_waits",
    "steps_wait",
    "template_names",
    "walk_steps",
]

#: Every step op with its meaning (the generators implement exactly these).
OPS: dict[str, str] = {
    "respond": "return a Response with `status`, `headers` and the `body` template",
    "respond_stream": "return a 200 Response whose body stream sends `chunks[0]` at once, the other chunks, then "
    "(after `after_ms`; 0 = in the same turn) ends with `then`: close, or error with `message`",
    "throw": "throw `value` (an Error / TypeError with `message`, the string `message`, a plain object, or null)",
    "reject": "return a promise rejected with an Error(`message`)",
    "return_value": "resolve the handler with `value`, which is not a Response",
    "pass_through_on_exception": "ctx.passThroughOnException(): on a later exception, forward the request to the "
    "worker's `fallback`",
    "abort": "ctx.abort(Error(`message`)), then wait forever",
    "sleep": "wait `ms` milliseconds on a timer",
    "hang": "wait on a promise nothing will ever settle (no pending I/O)",
    "save_io": "create an I/O object of `kind` (see IO_KINDS) and keep it in `slot`",
    "use_io": "use the object in `slot` the way its kind says (IO_KINDS); result in `as`",
    "read_body": "read the incoming request's body as text; result in `as`",
    "describe_request": "`as` := 'ok: METHOD URL' + one line per x-* header (sorted, 'name: value') + a blank line "
    "+ the body",
    "wait_until": "ctx.waitUntil(a task running `steps`); the handler goes on at once",
    "set_timeout": "setTimeout(`steps`, `ms`); the handler goes on at once",
    "record": "send event `event` with the `value` template to the recorder and wait for it",
    "no_retry": "controller.noRetry() (scheduled handlers only)",
    "call_scheduled": "run the scheduled handler of the worker bound as `binding` with `cron`; `as` := "
    "'ok: outcome=<outcome> noRetry=<true|false>'",
    "fetch_service": "fetch `path` (with `method` and the `body` template, default GET) from the worker bound as "
    "`binding`; `as` := 'ok: <status> <body>' (without "
    "`as` an error propagates: the handler fails)",
    "fetch_durable_object": "fetch `path` (`method`, `body` as for fetch_service) from instance `instance` (by "
    "name) of this worker's Durable Object class; `as` := 'ok: <status> <body>' (without `as` an error propagates)",
    "await_shared_promise": "create a plain promise, publish its resolver in `slot`, and wait for it (a timer "
    "of `within_ms`, if given, is pending I/O meanwhile); `as` := 'ok: <value it was resolved with>'",
    "resolve_shared_promise": "resolve the promise published in `slot` with the `value` template; `as` := 'ok: ' "
    "or the error",
}

#: The I/O object kinds of save_io and how use_io uses each one (result after 'ok: ').
IO_KINDS: dict[str, str] = {
    "request": "the incoming Request object; use: its body as text",
    "identity_transform_stream": "an IdentityTransformStream (native stream); use: write 'x' to it without "
    "waiting (the write's own outcome is ignored), then read once: 'read=<text>' or 'done=true'",
    "transform_stream": "a JS TransformStream; use: as identity_transform_stream",
    "response_string": "new Response('saved body'); use: its body as text",
    "response_js_stream": "a Response around a JS ReadableStream holding 'js stream'; use: its body as text",
    "subrequest_response": "the unread Response of fetching `path` from the worker bound as `binding`; use: its "
    "body as text",
    "fetch_promise": "the promise of fetching `path` from `binding`, not awaited; use: await it, "
    "'<status> <body>'",
    "abort_controller": "new AbortController(); use: abort() it, 'aborted=<bool>'",
    "text": "the incoming request's body, already read as text; use: that text",
}

#: How each I/O kind relates to the IoContext that created it: the fact about workerd's API objects the model
#: predictions (conformance/http/predict.py) and the reference implementation's generated handlers
#: (conformance/http/pygen.py) build on.  ``io_own:<type>``: the object holds an IoOwn of its creating context
#: (api/streams, api/http.c++: a native stream source; ``<type>`` is what workerd prints after "I/O type: ");
#: ``plain``: no I/O object (plain data, or a stream made of JS values only); ``promises``: a JS object whose pending
#: promises belong to the creating context, so using it from another context settles them from there (a cross-context
#: action, io-own.c++:22-55); ``unmodelled: <why>``: what workerd does is not decided by any model.
IO_OWNERSHIP: dict[str, str] = {
    "request": "io_own:ReadableStreamSource>",  # its body, when the request has one; a GET request has none
    "identity_transform_stream": "io_own:ReadableStreamSource>",
    "transform_stream": "promises",
    "response_string": "io_own:ReadableStreamSource>",
    "response_js_stream": "plain",
    "subrequest_response": "io_own:ReadableStreamSource>",
    "fetch_promise": "unmodelled: awaiting a subrequest's promise after its request ended gives workerd's 'can never "
    "settle' error (model.vocab PROMISE_FROM_ENDED_REQUEST); no model action produces it",
    "abort_controller": "unmodelled: workerd-semantics.md 8.4 reads an IoOwn (RefcountedCanceler) from the source, "
    "but workerd 2026-11-17 lets another request abort it; which API objects are IoOwn-backed is not in a model",
    "text": "plain",
}

#: What ``use_io`` yields (after 'ok: ') when the use succeeds, for kinds whose value is fixed by the vocabulary.
IO_VALUES: dict[str, str] = {
    "identity_transform_stream": "read=x",
    "transform_stream": "read=x",
    "response_string": "saved body",
    "response_js_stream": "js stream",
    "abort_controller": "aborted=true",
}

#: The default ``fallback``: workerd's ``internet`` network service, which refuses private (loopback) addresses, so a
#: pass-through to it fails; every adapter must give it that meaning (a fallback that always fails).
INTERNET = "internet"

#: Ops that wait (make a handler asynchronous).
WAITING_OPS = frozenset(
    {"sleep", "hang", "use_io", "read_body", "describe_request", "record", "call_scheduled", "fetch_service",
     "fetch_durable_object", "await_shared_promise", "abort"}
)
#: Ops that end the step list they are in.
TERMINAL_OPS = frozenset({"respond", "respond_stream", "throw", "reject", "return_value", "hang", "abort"})
_RESPONSE_OPS = frozenset({"respond", "respond_stream", "return_value"})
_NESTED = ("steps",)
_NAME_IN_TEMPLATE = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class VocabularyError(ValueError):
    """A behaviour that is well-formed JSON but not a meaningful program (the message says where)."""


def walk_steps(steps: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every step, nested ones (wait_until / set_timeout bodies) included, in document order."""
    for step in steps:
        yield step
        for key in _NESTED:
            if key in step:
                yield from walk_steps(step[key])


#: save_io kinds whose creation waits.
WAITING_KINDS = frozenset({"subrequest_response", "text"})


def step_waits(step: Mapping[str, Any]) -> bool:
    """Whether the step itself can wait (every step with an ``as`` result does)."""
    return step["op"] in WAITING_OPS or "as" in step or (step["op"] == "save_io" and step["kind"] in WAITING_KINDS)


def steps_wait(steps: Sequence[Mapping[str, Any]]) -> bool:
    """Whether running `steps` (not their nested task bodies) can wait, i.e. the handler is asynchronous."""
    return any(step_waits(step) for step in steps)


def template_names(template: str) -> list[str]:
    return _NAME_IN_TEMPLATE.findall(template)


def _templates(step: Mapping[str, Any]) -> Iterator[str]:
    for key in ("body", "value"):
        if isinstance(step.get(key), str) and step["op"] != "return_value":
            yield step[key]
    yield from step.get("chunks", ())


def _check_steps(steps: Sequence[Mapping[str, Any]], where: str, *, handler: str, defined: set[str],
                 bindings: Mapping[str, str], has_do: bool, in_actor: bool = False) -> None:
    defined = set(defined)  # nested bodies see the locals defined before them, not after
    for index, step in enumerate(steps):
        at = f"{where}[{index}] ({step['op']})"
        op = step["op"]
        if index < len(steps) - 1 and op in TERMINAL_OPS:
            raise VocabularyError(f"{at}: '{op}' ends its step list, but steps follow it")
        for template in _templates(step):
            for name in template_names(template):
                if name not in defined:
                    raise VocabularyError(f"{at}: template uses {{{name}}}, which no earlier step defines with 'as'")
        if op in _RESPONSE_OPS and handler != "fetch":
            raise VocabularyError(f"{at}: '{op}' only makes sense in a fetch route, not in a {handler} body")
        if op == "no_retry" and handler != "scheduled":
            raise VocabularyError(f"{at}: 'no_retry' only exists in a scheduled handler")
        if op == "pass_through_on_exception" and handler != "fetch":
            raise VocabularyError(f"{at}: 'pass_through_on_exception' only exists in a fetch route")
        if op in {"read_body", "describe_request"} and handler == "scheduled":
            raise VocabularyError(f"{at}: a scheduled handler has no request")
        if op == "save_io" and step["kind"] in {"request", "text"} and handler == "scheduled":
            raise VocabularyError(f"{at}: a scheduled handler has no request")
        binding = step.get("binding")
        if binding is not None and binding not in bindings:
            raise VocabularyError(f"{at}: binding {binding} is not in the worker's bindings {sorted(bindings)}")
        if op == "save_io" and step["kind"] in {"subrequest_response", "fetch_promise"} and binding is None:
            raise VocabularyError(f"{at}: kind {step['kind']} needs a 'binding' to fetch from")
        if step.get("scope") == "instance" and not in_actor:
            raise VocabularyError(f"{at}: scope 'instance' only exists in a durable_object route")
        if step.get("method") == "GET" and "body" in step:
            raise VocabularyError(f"{at}: a GET request has no body")
        if op == "fetch_durable_object" and not has_do:
            raise VocabularyError(f"{at}: the worker defines no durable_object")
        if op in {"wait_until", "set_timeout"}:
            _check_steps(step["steps"], f"{at}.steps", handler="task", defined=defined, bindings=bindings,
                         has_do=has_do, in_actor=in_actor)
        if "as" in step:
            defined.add(step["as"])


def check_worker(worker: Mapping[str, Any], workers: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise VocabularyError for meaning errors the JSON Schema cannot express."""
    name = worker["name"]
    bindings = worker.get("bindings", {})
    for binding, target in bindings.items():
        if target not in workers:
            raise VocabularyError(f"worker {name}: binding {binding} names unknown worker {target!r}")
    fallback = worker.get("fallback", "internet")
    if fallback != "internet" and fallback not in workers:
        raise VocabularyError(f"worker {name}: fallback names unknown worker {fallback!r}")
    has_do = "durable_object" in worker
    for path, steps in worker.get("routes", {}).items():
        _check_steps(steps, f"worker {name} route {path}", handler="fetch", defined=set(), bindings=bindings,
                     has_do=has_do)
    if "scheduled" in worker:
        _check_steps(worker["scheduled"], f"worker {name} scheduled", handler="scheduled", defined=set(),
                     bindings=bindings, has_do=has_do)
    for path, steps in worker.get("durable_object", {}).get("routes", {}).items():
        for step in walk_steps(steps):
            if step["op"] == "fetch_durable_object":
                raise VocabularyError(f"worker {name} durable_object route {path}: a Durable Object cannot "
                                      "fetch_durable_object here (no namespace binding inside the class)")
        _check_steps(steps, f"worker {name} durable_object route {path}", handler="fetch", defined=set(),
                     bindings=bindings, has_do=False, in_actor=True)
