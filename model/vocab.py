"""The vocabulary the models share: identity sorts, enums, and workerd's exact messages.

Models that are composed must use the *same* sort objects, so they are declared here once.
`MESSAGES` maps each `Result` error to the text workerd produces (io-context.c++ and
io-own.c++ at commit 6552d999); the conformance suite compares implementations against it.
"""

from __future__ import annotations

from model.core import Enum, Id

__all__ = [
    "Thread",
    "Ctx",
    "Obj",
    "Req",
    "Isolate",
    "Actor",
    "Result",
    "MESSAGES",
    "IO_TYPE_SUFFIX",
]

Thread = Id("Thread", bound="threads", prefix="t")
Ctx = Id("Ctx", bound="contexts", prefix="c")
Obj = Id("Obj", bound="objects", prefix="o")
Req = Id("Req", bound="requests", prefix="r")
Isolate = Id("Isolate", bound="isolates", prefix="i")
#: A Worker::Actor (Durable Object instance); the bound is not "actors", which is the context core's feature flag.
Actor = Id("Actor", bound="durable_objects", prefix="a")

#: Outcome of an operation an implementation can attempt; ``OK`` or the error workerd raises.
Result = Enum(
    "Result",
    "OK ERR_WRONG_THREAD ERR_REENTERED ERR_ABORTED ERR_NO_CURRENT ERR_NOT_CURRENT "
    "ERR_DIFFERENT_REQUEST ERR_DIFFERENT_DO ERR_CONTEXT_ENDED ERR_DELIVERED_TWICE "
    "ERR_CALLED_TWICE ERR_LOCK_OTHER_ISOLATE",
)

_DIFFERENT = (
    "I/O objects (such as streams, request/response bodies, and others) created in the context of one {what} "
    "cannot be accessed from a different {whose}. This is a limitation of Cloudflare Workers which allows us to "
    "improve overall performance."
)

#: Exact texts (``{io_type}`` is replaced by the object's type name; see `IO_TYPE_SUFFIX`).
MESSAGES: dict[str, str] = {
    "ERR_WRONG_THREAD": "IoContext cannot switch threads",
    "ERR_REENTERED": "IoContext entered re-entrantly",
    "ERR_ABORTED": "(the context's abort reason)",
    "ERR_NO_CURRENT": "there is no current request on this thread",
    "ERR_NOT_CURRENT": "request is not current in this isolate",
    "ERR_DIFFERENT_REQUEST": "Cannot perform I/O on behalf of a different request. "
    + _DIFFERENT.format(what="request handler", whose="request's handler"),
    "ERR_DIFFERENT_DO": "Cannot perform I/O on behalf of a different Durable Object. "
    + _DIFFERENT.format(what="Durable Object", whose="Durable Object in the same isolate"),
    "ERR_CONTEXT_ENDED": "Couldn't complete operation because the execution context has ended.",
    "ERR_DELIVERED_TWICE": "delivered() can only be called once",
    "ERR_CALLED_TWICE": "{method}() can only be called once",
    "ERR_LOCK_OTHER_ISOLATE": "async lock was taken against a different isolate than the synchronous lock",
    "WARN_CROSS_REQUEST_PROMISE": "A promise was resolved or rejected from a different request context than the "
    "one it was created in. However, the creating request has already been completed or canceled. Continuations "
    "for that request are unlikely to run safely and have been canceled. If this behavior breaks your worker, "
    "consider setting the `no_handle_cross_request_promise_resolution` compatibility flag for your worker.",
    "HANG": "The Workers runtime canceled this request because it detected that your Worker's code had hung and "
    "would never generate a response. Refer to: https://developers.cloudflare.com/workers/observability/errors/",
    "DRAIN_TIMEOUT": "waitUntil() tasks did not complete within the allowed time after invocation end and have "
    "been cancelled. See: https://developers.cloudflare.com/workers/runtime-apis/context/#waituntil",
    "DRAIN_FORGOTTEN": "failed to invoke drain() on IncomingRequest before destroying it",
    "CONTEXT_CANCELED": "The execution context responding to this call was canceled.",
    "TASK_WITHOUT_REQUEST": "Adding task to IoContext with no current IncomingRequest",
    "NO_CURRENT_INCOMING_REQUEST": "the IoContext has no current IncomingRequest",
    "LISTENER_500_BODY": "Internal Server Error",
    # api/global-scope.c++:50-63 (the neutered request body) and the pinned workerd's text for a
    # promise saved from an ended request (workerd-observed.md "Cross-request I/O").
    "REQUEST_BODY_AFTER_RESPONSE": "Can't read from request stream after response has been sent.",
    "REQUEST_BODY_AFTER_EXCEPTION": "Can't read from request stream after responding with an exception.",
    "PROMISE_FROM_ENDED_REQUEST": "This promise was created by a request that has since ended, so it can never settle. "
    "With the handle_cross_request_promise_resolution compatibility flag, a promise can only settle in the request "
    "that created it, and settling it after that request ends is dropped.",
}

#: Appended to ERR_DIFFERENT_* when the object's type is known (io-context.c++:1615-1642).
IO_TYPE_SUFFIX = " (I/O type: {io_type})"
