"""The errors the reference implementation raises, with workerd's exact messages.

Every rule violation the runtime detects raises `WorkerdError` (a `RuntimeError`, as trio
does for API misuse) whose ``result`` is the `model.vocab.Result` member the models predict
(``ERR_WRONG_THREAD``, ``ERR_DIFFERENT_REQUEST``, ...) and whose message is the text in
`model.vocab.MESSAGES`, so the conformance suite can compare both.  `JsError` is an error
a worker's own code throws or sees (workerd's ``jsg.Error``): what a handler raises becomes
an HTTP 500, a logged waitUntil failure, or a scheduled outcome.
"""

from __future__ import annotations

from model.vocab import IO_TYPE_SUFFIX, MESSAGES

__all__ = ["AbortError", "JsError", "JsThrownValue", "JsTypeError", "WorkerdError", "describe_exception", "js_name",
           "message_for"]


def message_for(result: str, *, io_type: str | None = None, method: str | None = None) -> str:
    """The exact text workerd produces for ``result`` (``io_type`` adds the " (I/O type: X)" suffix)."""
    text = MESSAGES[result]
    if method is not None:
        text = text.format(method=method)
    if io_type is not None and result in ("ERR_DIFFERENT_REQUEST", "ERR_DIFFERENT_DO"):
        text += IO_TYPE_SUFFIX.format(io_type=io_type)
    return text


class WorkerdError(RuntimeError):
    """A check workerd performs failed; ``result`` names the `Result` member (e.g. ``ERR_WRONG_THREAD``)."""

    def __init__(self, result: str, message: str | None = None, **fmt: str) -> None:
        super().__init__(message if message is not None else message_for(result, **fmt))
        self.result = result


class JsError(Exception):
    """An exception a worker's code throws (or is thrown into it): workerd's ``jsg.Error``.

    ``JS_NAME`` is the JavaScript class name the error has in a worker (``e.name``).
    """

    JS_NAME = "Error"


class JsTypeError(JsError):
    """A JavaScript ``TypeError`` (``jsg.TypeError``), e.g. reading a neutered request body."""

    JS_NAME = "TypeError"


class JsThrownValue(JsError):
    """A thrown JavaScript value that is not an Error (a string, an object, null); ``str()`` is ``String(value)``."""

    JS_NAME = ""


def js_name(e: BaseException) -> str:
    """The JavaScript name of an exception as worker code sees it (workerd's own errors are ``Error``s)."""
    if isinstance(e, JsError):
        return e.JS_NAME
    return "Error"


def describe_exception(e: BaseException) -> str:
    """kj's description of a JavaScript exception: ``jsg.<Name>: <message>`` (what workerd logs after ``remote.``)."""
    name = js_name(e)
    return f"jsg.{name}: {e}" if name else f"jsg.Error: {e}"


class AbortError(JsError):
    """The reason a context was aborted with; ``reason`` is the original exception."""

    def __init__(self, reason: BaseException) -> None:
        super().__init__(str(reason))
        self.reason = reason


class ExceededCpu(JsError):
    """A limit enforcer's CPU-limit error (outcome ``exceededCpu``)."""


class ExceededMemory(JsError):
    """A limit enforcer's memory-limit error (outcome ``exceededMemory``)."""
