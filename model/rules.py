"""The rule ids every model, scenario and report refers to, with workerd's source for each.

Ids ``INV-*`` are the invariants of workerd-semantics.md section 9 and ``G1``..``G7`` the
IncomingRequest guards of section 1.9, all read at workerd commit 6552d999 (paths relative to
``src/workerd/``).  Ids marked ``added=True`` are rules found while modelling that section 9
does not list; each says where in the source it comes from.

`LEFT_OUT` lists the ids no model implements, each with the reason (the foundation issue's
"implemented or listed with the reason it is left out").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.core.model import Model

from dataclasses import dataclass

__all__ = ["Rule", "RULES", "LEFT_OUT", "rule", "rule_coverage", "coverage_problems"]

WORKERD_COMMIT = "6552d999c79ef651b5463c6d692d065a8ce6f859"


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    source: str
    text: str
    added: bool = False

    @property
    def url(self) -> str:
        path, _, lines = self.source.partition(":")
        first = lines.split(",")[0]
        anchor = "#L" + first.replace("-", "-L") if first else ""
        return f"https://github.com/cloudflare/workerd/blob/{WORKERD_COMMIT}/src/workerd/{path}{anchor}"


_RULES = [
    # IncomingRequest guards (section 1.9)
    Rule("G1", "delivered() only once", "io/io-context.c++:254",
         'A second delivered() fails with KJ_REQUIRE "delivered() can only be called once".'),
    Rule("G2", "drain() requires delivered()", "io/io-context.h:90-99",
         "drain() of an undelivered request is a precondition violation (undefined), not a runtime error."),
    Rule("G3", "a linked request is unlinked by its destructor", "io/io-context.c++:311-368",
         "A delivered request is removed from the context's list when destroyed; never destroyed while linked."),
    Rule("G4", "forgetting drain() only warns", "io/io-context.c++:332-335",
         'Destroying a delivered front request without drain while waitUntil tasks remain logs '
         '"failed to invoke drain() on IncomingRequest before destroying it".'),
    Rule("G5", "one IncomingRequest per stateless context", "io/worker-entrypoint.c++:292-302",
         "WorkerEntrypoint::init creates a fresh IoContext for every non-actor request."),
    Rule("G6", "finishScheduled() never on an actor", "io/io-context.c++:660-661",
         "finishScheduled()/runScheduled on an actor context fails a KJ_ASSERT."),
    Rule("G7", "drain()/finishScheduled() consume the request", "io/io-context.c++:601",
         "Both take ownership of the request on every path (incoming-request-test.c++:100)."),
    # IncomingRequest / current request
    Rule("INV-R1", "delivered at most once", "io/io-context.c++:254",
         "r.wasDelivered goes false to true at most once."),
    Rule("INV-R2", "membership", "io/io-context.c++:268,312-318,367",
         "r is in C.incomingRequests iff it was delivered and not destroyed."),
    Rule("INV-R3", "recency order", "io/io-context.c++:268",
         "incomingRequests is newest-delivered first; current(C) is its head."),
    Rule("INV-R4", "stateless cardinality", "io/worker-entrypoint.c++:292-302",
         "A non-actor context holds at most one IncomingRequest."),
    Rule("INV-R5", "single drainer", "io/io-context.c++:604-607,261-265",
         "Only the head has a live drain; draining a non-head returns at once; a new delivery cancels the old "
         "head's actor drain."),
    Rule("INV-R6", "ownership transfer", "io/io-context.c++:601",
         "After drain() or finishScheduled() the caller's handle is null on every path."),
    Rule("INV-R7", "drain obligation (soft)", "io/io-context.c++:332-335",
         "A delivered head destroyed without drain while waitUntil tasks remain logs a warning."),
    Rule("INV-R8", "JS needs a request", "io/io-context.h:1273-1277",
         "Entering C to run JS requires at least one live delivered request."),
    Rule("INV-R9", "scheduled never to actors", "io/io-context.c++:660",
         "finishScheduled or runScheduled on an actor context is an assertion failure."),
    Rule("INV-R10", "attribution", "io/io-context.c++:259,329",
         "Metrics, subrequests, timer and now() refer to the head; CPU time is charged to the head of each interval."),
    # IoContext
    Rule("INV-C1", "thread affinity", "io/io-context.c++:1302",
         'Every runInContextScope(C) runs on C.threadId ("IoContext cannot switch threads").'),
    Rule("INV-C2", "no re-entry", "io/io-context.c++:1307-1308",
         "C is never entered while already entered; different contexts may nest."),
    Rule("INV-C3", "current iff entered", "io/io-context.c++:1523-1531",
         "isCurrent(C) iff the thread-local is C and C holds its lock in the entered isolate."),
    Rule("INV-C4", "owners", "io/io-context.h:220-222",
         "A context is alive iff a request holds it or its actor does; a stateless context dies with its request."),
    Rule("INV-C5", "one context per actor", "io/worker.c++:4365",
         "setIoContext at most once per Actor; every entrypoint for the actor reuses it."),
    Rule("INV-C6", "ids", "io/io-context.c++:1533-1537",
         "C.id is unique and never reused."),
    # Abort
    Rule("INV-A1", "abort is monotone, first reason wins", "io/io-context.c++:488-491",
         "abortException goes none to some once; later abort() calls are ignored."),
    Rule("INV-A2", "no JS after abort", "io/io-context.h:1337-1339,1358-1361",
         "Once aborted, no functor passed to run() runs, even one queued earlier."),
    Rule("INV-A3", "abort does not cancel synchronously", "io/io-context.h:391-395",
         "abort() only records the reason; tasks are cleared later by ~IncomingRequest or ~IoContext."),
    Rule("INV-A4", "abort terminates waits", "io/io-context.c++:632-634",
         "After an abort every pending drain, finishScheduled and awaitJs completes."),
    Rule("INV-A5", "hang detection", "io/io-context.c++:723-749,1583-1594",
         "Stateless only: abort for hanging only with no PendingEvent and an idle thread; actors never hang-abort."),
    # Tasks / waitUntil
    Rule("INV-T1", "actor task routing", "io/io-context.c++:516-521",
         "In an actor context addTask is addWaitUntil."),
    Rule("INV-T2", "waitUntil status is sticky", "io/io-context.c++:1258-1264",
         "waitUntilStatusValue changes at most once, from OK to the first failure's outcome."),
    Rule("INV-T3", "failure logging", "io/io-context.c++:1268-1272",
         "Every failed task is logged exactly once as ASYNC_TASK."),
    Rule("INV-T4", "destruction cancels all", "io/io-context.c++:700-721",
         "When C is destroyed every task, timer and canceler-wrapped promise is cancelled."),
    Rule("INV-T5", "stateless drain scope", "io/io-context.c++:632-634",
         "A stateless drain waits for waitUntil tasks only, not for plain tasks or timers."),
    # Ownership
    Rule("INV-O1", "creation in context", "io/io-context.h:1730-1740",
         "addObject only while C is current; addObjectReverse only on C's thread."),
    Rule("INV-O2", "access in owning context", "io/io-context.c++:1279-1287",
         "Deref or release of IoOwn/IoPtr succeeds iff the current context's queue is the object's queue."),
    Rule("INV-O3", "dead owner is inaccessible", "io/io-context.c++:162",
         "After the owner is destroyed every access through its queue throws."),
    Rule("INV-O4", "exactly-once destruction", "io/io-own.c++:9-20",
         "Each owned node is freed exactly once: immediate unlink, queued unlink, release, or context teardown."),
    Rule("INV-O5", "queue closed at death", "io/io-context.h:1137-1152",
         "When C dies its queue state becomes none after ownedObjects is freed; later deletions/actions are ignored."),
    Rule("INV-O6", "mutex discipline", "io/io-own.c++:9-55",
         "The queue state is read or written only under crossThreadDeleteQueue's lock."),
    Rule("INV-O7", "deletion wakeups", "io/io-context.c++:1317-1326,1652-1675",
         "Deletions do not signal C; actions do. Deletions run at the next entry, actions in the signal task, FIFO."),
    Rule("INV-O8", "ReverseIoOwn validity", "io/io-own.h:407-449",
         "validity is cleared in ~IoContext before owned objects are freed; deref of an invalid handle throws."),
    # Locks
    Rule("INV-L1", "mutual exclusion", "io/async-lock-scheduler.h:202-230",
         "At most one thread holds an isolate's AsyncLock turn, and within it at most one Worker::Lock."),
    Rule("INV-L2", "one chase per thread", "io/async-lock-scheduler.h:242-273",
         "A thread has at most one outstanding waiter; same-isolate requests coalesce, others wait for release."),
    Rule("INV-L3", "FIFO across threads", "io/async-lock-scheduler.h:202-230",
         "Waiters are granted in enqueue order."),
    Rule("INV-L4", "sync lock matches async lock", "io/worker.c++:577-578",
         "Worker::Lock(asyncLock) only for the same isolate."),
    # Entrypoint
    Rule("INV-E1", "single use", "io/worker-entrypoint.c++:377-399",
         'Each WorkerEntrypoint handles one event; a second call throws "<m>() can only be called once".'),
    Rule("INV-E2", "delivery before JS", "io/worker-entrypoint.c++:396",
         "delivered() happens before any user JS of the event."),
    Rule("INV-E3", "drain on every exit", "io/worker-entrypoint.c++:418-444",
         "Every delivered event path drains or finishScheduleds, including on cancellation."),
    Rule("INV-E4", "exactly one error disposition", "io/worker-entrypoint.c++:568-633",
         "Actor tunnel, fail-open, tunnel and synthetic 5xx are mutually exclusive, in that priority order."),
    Rule("INV-E5", "no late status", "io/worker-entrypoint.c++:554-566",
         "Once a response was sent, no synthetic status is sent and fail-open is disabled."),
    Rule("INV-E6", "output gate before error egress", "io/worker-entrypoint.c++:502",
         "In an actor an exception leaves only after waitForOutputLocks()."),
    # Rules found while modelling (not in section 9)
    Rule("INV-E7", "the listener's 500", "server/server.c++:6581-6591",
         "In standalone workerd (tunnelExceptions=true) an exception tunnelled out of a stateless fetch reaches the "
         "HTTP listener, which sends 500 'Internal Server Error' (body 'Internal Server Error', Connection: close) "
         "if no response was started, else closes the connection mid-body.", added=True),
    Rule("INV-S1", "finishScheduled outcome", "io/io-context.c++:652-689",
         "finishScheduled resolves only after every waitUntil task: outcome = first failure (or ok), "
         "retry = !noRetry; with production limits, exceededWallTime.", added=True),
    Rule("INV-S2", "drain limit (production profile)", "io/io-context.c++:621-631",
         "A stateless drain ends at the limit enforcer's drain limit, cancelling unfinished waitUntil tasks with "
         "a warning; standalone workerd's limitDrain() never fires (server/server.c++:4563-4565).", added=True),
    Rule("INV-O9", "late pushes are harmless", "io/io-context.h:1149-1152",
         "Between freeing ownedObjects and closing the queue a GC thread may still push a pointer to a freed "
         "node; the pointer is dropped, never dereferenced, because the queue is never processed again.",
         added=True),
    Rule("INV-O10", "queued deletions run on the owner's thread", "io/io-context.c++:1317-1326",
         "Every object is destroyed on its owning context's thread: immediately when the owner is current, "
         "else at the owner's next entry, else at teardown.", added=True),
    Rule("INV-T6", "timers in actors are waitUntil tasks", "io/io-context.c++:915,939-946",
         "An armed timer holds a PendingEvent; in an actor it also holds a waitUntil task, so actor drains wait for "
         "timers; a stateless drain does not.", added=True),
    Rule("INV-T7", "waitUntil without a request warns", "io/io-context.c++:547-550",
         'addWaitUntil on a context with no current IncomingRequest logs "Adding task to IoContext with no current '
         'IncomingRequest" (fatal in debug builds).', added=True),
    Rule("INV-R11", "actor drains end at shutdown", "io/io-context.c++:608-620",
         "An actor drain has no time limit: it ends when every task is done, a newer request is delivered, the "
         "actor shuts down (onShutdown) or is aborted (abortCanceler).", added=True),
    Rule("INV-A6", "Actor::abort cancels every event", "io/worker.c++:4039-4068",
         "Actor::abort aborts the context, fulfils shutdown, cancels every wrapped event and drain (their requests "
         "are destroyed synchronously) and then drops the IoContext if no request is listed.", added=True),
    Rule("INV-L5", "lock progress", "io/async-lock-scheduler-test.c++:296-330",
         "Every thread's lock requests are eventually granted or cancelled: with no cancellation, no state where "
         "requests are outstanding is stuck (a deadlock); many threads contending for many isolates all progress.",
         added=True),
    Rule("INV-E7", "the HTTP listener's 500", "server/server.c++:6581-6591",
         "In standalone workerd an exception that escapes a stateless fetch before any response (tunnelled, "
         "branch 3 of INV-E4) reaches the HTTP listener, which logs \"Uncaught exception\" at ERROR and answers "
         "500 \"Internal Server Error\" with Connection: close; a fail-open fallback failure instead gets the "
         "entrypoint's synthetic 500 with an empty body.", added=True),
    Rule("INV-E8", "request body neutered after the event", "api/global-scope.c++:50-63",
         "After the event's response was sent, reading the incoming request body fails with \"Can't read from "
         "request stream after response has been sent.\" (also for a later request to the same actor).",
         added=True),
    Rule("INV-P1", "cross-request promise settlement", "io/worker.c++:1233-1345",
         "A promise settled from another request's context runs its continuations in the creating context; if "
         "that context is gone they are dropped with the cross-request promise warning.", added=True),
    Rule("INV-H1", "hang abort message", "io/io-context.c++:1583-1594",
         "A stateless request with nothing pending and an idle thread is aborted with the hang message "
         "(a 500 at the HTTP level).", added=True),
]

RULES: dict[str, Rule] = {r.id: r for r in _RULES}

# Rule ids no model implements, with the reason; checked by tests/test_rules.py.
LEFT_OUT: dict[str, str] = {
    "INV-E6": "input and output gates are not modelled (the actor model leaves the actor's gates out); "
              "the entrypoint tunnels an actor's exception without waiting for output locks",
    "INV-R10": "metrics, tracing and CPU attribution are not observable through the conformance interface and "
               "are not modelled; the request they are attributed to, the head of the list, is (INV-R3, "
               "model.lifecycle.is_front)",
    "INV-E8": "request body streams are not modelled (the models stop at the request's lifecycle); checked at "
              "the HTTP level by the scenarios in conformance/http/scenarios/wait_until.json and durable_objects.json",
    "INV-P1": "JS promises and their continuations are below the models' granularity; checked at the HTTP level "
              "by conformance/http/scenarios/cross_request_io.json and durable_objects.json",
}


def rule(rule_id: str) -> Rule:
    return RULES[rule_id]


def rule_coverage(models: Iterable[Model]) -> dict[str, list[str]]:
    """Each rule id -> the ``model.action`` / ``model.invariant`` names that cite it."""
    cited: dict[str, list[str]] = {r: [] for r in RULES}
    for m in models:
        for name, rules in [(a.name, a.rules) for a in m.actions] + [(i.name, i.rules) for i in m.invariants]:
            for r in rules:
                cited.setdefault(r, []).append(f"{m.name}.{name}")
    return cited


def coverage_problems(models: Iterable[Model], left_out: Mapping[str, str] = LEFT_OUT) -> list[str]:
    """Rule ids neither cited by a model nor left out with a reason, and left-out ids a model cites."""
    cited = rule_coverage(models)
    problems = [f"{r}: no model implements it and LEFT_OUT gives no reason" for r, by in cited.items()
                if not by and not left_out.get(r, "").strip()]
    problems += [f"{r}: listed in LEFT_OUT but implemented by {', '.join(cited[r])}" for r in left_out
                 if cited.get(r)]
    problems += [f"{r}: listed in LEFT_OUT but not a rule id" for r in left_out if r not in RULES]
    return problems
