"""I/O ownership: IoOwn / IoPtr / ReverseIoOwn, the DeleteQueue and its mutex, cross-context actions.

Extends the IoContext core (`model.context`).  Follows workerd's io/io-own.{h,c++} and
io/io-context.{h,c++} at commit 6552d999:

* ``addObject`` (io-context.h:1730-1740) needs the context to be current (``requireCurrent``,
  "request is not current in this isolate"); ``addObjectReverse`` (h:1798-1804) only needs
  the context's thread.  An IoPtr (`IO_PTR`) tracks no node: nothing is linked.
* Access (``IoOwn::operator->``, ``IoPtr::operator->``, release to a plain ``Own``) calls
  ``checkFarGet`` (io-own.c++:57-59, io-context.c++:1279-1287): some context must be
  current, and its queue must be the object's queue; otherwise the "different request" or
  "different Durable Object" error, chosen by the *accessing* context's kind.
* ``scheduleDeletion`` (io-own.c++:9-20), run when a handle is dropped on any thread (the GC):
  if the owner is current, unlink at once (`drop_in_owner`); otherwise take the queue's mutex
  (`drop_elsewhere`), and push the pointer if the queue is still open (`push_deletion`).
  Deletions do not wake the context.
* Queued deletions are processed under the mutex at the next ``runInContextScope`` of the
  owner (io-context.c++:1317-1326): a refinement of `enter`.
* ``~IoContext``: the ReverseIoOwn validity is cleared in the destructor body, *before* the
  members are destroyed; ``ownedObjects`` is freed (`teardown_free`, one object at a time),
  and only then is the queue closed under its mutex (`destroy_end`).  Between the two, a GC
  thread can still push a pointer to a freed node (rule INV-O9): it is dropped unread.
* ``scheduleAction`` (io-own.c++:22-55) appends an action and fulfils the cross-thread signal
  if the queue is open, else drops it (with the cross-request-promise warning if some context
  is current); the signal task (io-context.c++:1652-1675) runs all actions, FIFO, under
  ``run()``, which refuses an aborted context.

Where the seed article and the source differ: the article says a cross-thread deletion is
"polled by the owning IoContext"; the source processes it only on the next entry into the
context (nothing wakes it), which is what this model does.
"""

from __future__ import annotations

from model.context import (
    ALIVE,
    DEAD,
    NOT_ABORTED,
    TEARDOWN,
    abort_reason,
    ctx_actor,
    ctx_state,
    ctx_thread,
    current,
    entered,
)
from model.context import MODEL as CONTEXT
from model.context import (
    UNBORN as CTX_UNBORN,
)
from model.core import (
    BOOL,
    NONE,
    TRUE,
    And,
    Enum,
    Exists,
    Expr,
    ForAll,
    Iff,
    Implies,
    Int,
    Ite,
    ModelBuilder,
    Opt,
    Step,
)
from model.vocab import Ctx, Obj, Result, Thread

__all__ = ["MODEL", "ObjKind", "NodeState", "HandleState", "Warning"]

ObjKind = Enum("ObjKind", "IO_OWN IO_PTR REVERSE")
NodeState = Enum("NodeState", "UNBORN LINKED UNTRACKED FREED RELEASED")
HandleState = Enum("HandleState", "NONE LIVE GONE")
Warning = Enum("Warning", "NO_WARNING CROSS_REQUEST_PROMISE")

IO_OWN, IO_PTR, REVERSE = ObjKind.IO_OWN, ObjKind.IO_PTR, ObjKind.REVERSE
LINKED, UNTRACKED, FREED, RELEASED = NodeState.LINKED, NodeState.UNTRACKED, NodeState.FREED, NodeState.RELEASED
LIVE, GONE = HandleState.LIVE, HandleState.GONE

m = ModelBuilder(
    "ownership",
    __doc__ or "",
    extends=CONTEXT,
    bounds={"objects": 2, "max_actions": 1},
)

obj_kind = m.func("obj_kind", Obj, ObjKind, "IO_OWN", "IoOwn, IoPtr or ReverseIoOwn")
owner = m.func("owner", Obj, Opt(Ctx), NONE, "the context whose DeleteQueue the handle holds")
node = m.func("node", Obj, NodeState, "UNBORN", "the OwnedObject node in the owner's list")
handle = m.func("handle", Obj, HandleState, "NONE", "the JS-side handle (IoOwn/IoPtr/ReverseIoOwn)")
queued = m.func("queued", Obj, BOOL, False, "a pointer to the node sits in the owner's deletion queue")
queue_lock = m.func("queue_lock", Ctx, Opt(Thread), NONE, "holder of crossThreadDeleteQueue's mutex")
pushing = m.func("pushing", Thread, Opt(Obj), NONE, "the thread is inside scheduleDeletion's locked section")
actions_pending = m.func("actions_pending", Ctx, Int("Pending", 0, "max_actions"), 0, "queued cross-context actions")
signaled = m.func("signaled", Ctx, BOOL, False, "crossThreadFulfiller was fulfilled")

all_kinds = m.const("all_kinds", BOOL, True, "configurations may restrict objects to IoOwn")

created_not_current = m.var("created_not_current", BOOL, False, "addObject without the context current", ghost=True)
bad_access = m.var("bad_access", BOOL, False, "an I/O object was used outside its owner or after it died", ghost=True)
double_free = m.var("double_free", BOOL, False, "a node was freed twice (or a freed node dereferenced)", ghost=True)
freed_off_thread = m.var("freed_off_thread", BOOL, False, "a node was freed on a foreign thread", ghost=True)
unlocked_push = m.var("unlocked_push", BOOL, False, "the queue was written without its mutex", ghost=True)


def _owner(o: Expr) -> Expr:
    return owner[o].some


def _far_get_checks(o: Expr, t: Expr) -> list[tuple[str, Expr, Expr]]:
    """``checkFarGet``: a current context whose queue is the object's queue (io-context.c++:1279-1287)."""
    return [
        ("has_current", current[t] != NONE, Result.ERR_NO_CURRENT),
        ("same_context", current[t] == owner[o],
         Ite(ctx_actor[current[t].some], Result.ERR_DIFFERENT_DO, Result.ERR_DIFFERENT_REQUEST)),
    ]


def _unsafe_use(o: Expr, t: Expr) -> Expr:
    """The use would touch the object outside its owner's thread and turn, or after it was freed."""
    c = _owner(o)
    return ~((current[t] == owner[o]) & (ctx_thread[c] == t) & entered[c] & (ctx_state[c] == ALIVE)
             & ((node[o] == LINKED) | (node[o] == UNTRACKED)))


def _free(o: Expr, t: Expr) -> dict[object, object]:
    """Unlink and destroy ``o`` on thread ``t``, recording double frees and foreign threads."""
    return {
        node[o]: FREED,
        double_free: double_free | (node[o] != LINKED),
        freed_off_thread: freed_off_thread | (ctx_thread[_owner(o)] != t),
    }


def _process_deletions(c: Expr, t: Expr, when: Expr) -> dict[object, object]:
    """``runInContextScope``: under the mutex, unlink every queued node of ``c`` (io-context.c++:1317-1326)."""
    mine = lambda o: queued[o] & (owner[o] == c)
    return {
        node: lambda o: Ite(when & mine(o), FREED, node[o]),
        queued: lambda o: Ite(when & (owner[o] == c), False, queued[o]),
        double_free: double_free | (when & Exists(Obj, lambda o: mine(o) & (node[o] != LINKED))),
        freed_off_thread: freed_off_thread | (when & (ctx_thread[c] != t) & Exists(Obj, mine)),
    }


# ---- creation ----------------------------------------------------------------------------


@m.action(params={"o": Obj, "c": Ctx, "t": Thread, "kind": ObjKind}, rules=("INV-O1",),
          source="io/io-context.h:1730-1740")
def add_object(o: Expr, c: Expr, t: Expr, kind: Expr) -> Step:
    """``addObject``: wrap a new I/O object as IoOwn (linked) or IoPtr (untracked) in the current context."""
    return Step(
        guard={"fresh_object": node[o] == NodeState.UNBORN, "context_alive": ctx_state[c] == ALIVE,
               "owning_kind": kind != REVERSE, "kind_in_scope": all_kinds | (kind == IO_OWN)},
        checks=[("context_current", current[t] == c, Result.ERR_NOT_CURRENT)],
        updates={
            node[o]: Ite(kind == IO_PTR, UNTRACKED, LINKED), handle[o]: LIVE, owner[o]: c, obj_kind[o]: kind,
            created_not_current: created_not_current | (current[t] != c),
        },
    )


@m.action(params={"o": Obj, "c": Ctx, "t": Thread}, rules=("INV-O1", "INV-O8"), source="io/io-context.h:1798-1804")
def add_reverse(o: Expr, c: Expr, t: Expr) -> Step:
    """``addObjectReverse``: a KJ-side holder on the context's thread; no current context needed."""
    return Step(
        guard={"fresh_object": node[o] == NodeState.UNBORN, "context_alive": ctx_state[c] == ALIVE,
               "same_thread": ctx_thread[c] == t, "kind_in_scope": all_kinds},
        updates={node[o]: LINKED, handle[o]: LIVE, owner[o]: c, obj_kind[o]: REVERSE},
    )


# ---- use -------------------------------------------------------------------------------------


@m.action(params={"o": Obj, "t": Thread}, rules=("INV-O2", "INV-O3"),
          source=("io/io-own.h:378-398", "io/io-context.c++:1279-1287"))
def access(o: Expr, t: Expr) -> Step:
    """Dereference an IoOwn or IoPtr on thread ``t``."""
    return Step(
        guard={"held": handle[o] == LIVE, "owning_kind": obj_kind[o] != REVERSE},
        checks=_far_get_checks(o, t),
        updates={bad_access: bad_access | _unsafe_use(o, t)},
    )


@m.action(params={"o": Obj, "t": Thread}, rules=("INV-O2", "INV-O4"), source="io/io-own.h:384-392")
def release(o: Expr, t: Expr) -> Step:
    """``IoOwn -> Own<T>``: checked like an access; the node is unlinked and the object moves out."""
    return Step(
        guard={"held": handle[o] == LIVE, "io_own": obj_kind[o] == IO_OWN},
        checks=_far_get_checks(o, t),
        updates={node[o]: RELEASED, handle[o]: GONE, bad_access: bad_access | _unsafe_use(o, t)},
    )


@m.action(params={"o": Obj, "t": Thread}, rules=("INV-O8",), source="io/io-own.h:407-449")
def access_reverse(o: Expr, t: Expr) -> Step:
    """Dereference a ReverseIoOwn on its context's thread: valid only until the destructor begins."""
    c = _owner(o)
    return Step(
        guard={"held": handle[o] == LIVE, "reverse": obj_kind[o] == REVERSE, "same_thread": ctx_thread[c] == t},
        checks=[("valid", ctx_state[c] == ALIVE, Result.ERR_CONTEXT_ENDED)],
        updates={bad_access: bad_access | (node[o] != LINKED)},
    )


# ---- drop (on any thread; the GC) --------------------------------------------------------------


@m.action(params={"o": Obj, "t": Thread}, rules=("INV-O4", "INV-O10"), source="io/io-own.c++:9-20")
def drop_in_owner(o: Expr, t: Expr) -> Step:
    """Drop an IoOwn while its owner is current on this thread: delete at once."""
    return Step(
        guard={"held": handle[o] == LIVE, "io_own": obj_kind[o] == IO_OWN, "owner_current": current[t] == owner[o]},
        updates={handle[o]: GONE, **_free(o, t)},
    )


@m.action(params={"o": Obj, "t": Thread}, rules=("INV-O4", "INV-O6"), source="io/io-own.c++:9-20")
def drop_elsewhere(o: Expr, t: Expr) -> Step:
    """Drop an IoOwn while its owner is not current here: take the queue's mutex first."""
    return Step(
        guard={"held": handle[o] == LIVE, "io_own": obj_kind[o] == IO_OWN,
               "owner_not_current": current[t] != owner[o], "not_pushing": pushing[t] == NONE,
               "take_mutex": queue_lock[_owner(o)] == NONE},
        updates={handle[o]: GONE, pushing[t]: o, queue_lock[_owner(o)]: t},
    )


@m.action(params={"t": Thread}, rules=("INV-O5", "INV-O6", "INV-O7", "INV-O9"), source="io/io-own.c++:9-20")
def push_deletion(t: Expr) -> Step:
    """Inside the mutex: push the pointer if the queue is still open (else ignore it); unlock."""
    o = pushing[t].some
    c = _owner(o)
    return Step(
        guard={"pushing": pushing[t] != NONE},
        updates={
            queued[o]: Ite(ctx_state[c] != DEAD, True, queued[o]),
            queue_lock[c]: NONE,
            pushing[t]: NONE,
            unlocked_push: unlocked_push | (queue_lock[c] != t),
        },
    )


@m.action(params={"o": Obj, "t": Thread}, rules=("INV-O4",), source="io/io-own.h:231-243,363-369")
def defer_gc(o: Expr, t: Expr) -> Step:
    """``deferGcToContext``: null the handle without scheduling a deletion; the context frees it."""
    return Step(guard={"held": handle[o] == LIVE, "io_own": obj_kind[o] == IO_OWN}, updates={handle[o]: GONE})


@m.action(params={"o": Obj, "t": Thread}, rules=("INV-O4",), source="io/io-own.h:371-376")
def drop_ptr(o: Expr, t: Expr) -> Step:
    """An IoPtr is dropped: nothing happens to the pointee."""
    return Step(guard={"held": handle[o] == LIVE, "io_ptr": obj_kind[o] == IO_PTR}, updates={handle[o]: GONE})


@m.action(params={"o": Obj, "t": Thread}, rules=("INV-O4", "INV-O8"), source="io/io-own.h:407-433")
def drop_reverse(o: Expr, t: Expr) -> Step:
    """A ReverseIoOwn is destroyed on its thread: free the node if the context is still valid."""
    c = _owner(o)
    valid = ctx_state[c] == ALIVE
    return Step(
        guard={"held": handle[o] == LIVE, "reverse": obj_kind[o] == REVERSE, "same_thread": ctx_thread[c] == t},
        updates={
            handle[o]: GONE,
            node[o]: Ite(valid, FREED, node[o]),
            double_free: double_free | (valid & (node[o] != LINKED)),
        },
    )


# ---- processing and teardown -------------------------------------------------------------------


@m.refine("enter", reject_too=False)
def _enter_processes_queue(c: Expr, t: Expr) -> Step:
    """Entering takes the queue's mutex and unlinks every queued node first."""
    return Step(guard={"queue_mutex_free": queue_lock[c] == NONE}, updates=_process_deletions(c, t, TRUE))


@m.action(params={"o": Obj}, rules=("INV-O4", "INV-O10"), source="io/io-own.c++:81-91")
def teardown_free(o: Expr) -> Step:
    """``~OwnedObjectList``: the dying context frees a node still linked (on its own thread)."""
    c = _owner(o)
    return Step(
        guard={"linked": node[o] == LINKED, "owner_tearing_down": ctx_state[c] == TEARDOWN},
        updates=_free(o, ctx_thread[c].some),
    )


@m.refine("destroy_end")
def _destroy_closes_queue(c: Expr) -> Step:
    """Last member: under the mutex the queue state becomes none; queued pointers and actions are dropped."""
    return Step(
        guard={"objects_freed": ForAll(Obj, lambda o: Implies(owner[o] == c, node[o] != LINKED)),
               "queue_mutex_free": queue_lock[c] == NONE},
        updates={
            queued: lambda o: Ite(owner[o] == c, False, queued[o]),
            actions_pending[c]: 0,
            signaled[c]: False,
        },
    )


# ---- cross-context actions ---------------------------------------------------------------------


@m.action(params={"c": Ctx, "t": Thread}, rules=("INV-O5", "INV-O7"), source="io/io-own.c++:22-55")
def schedule_action(c: Expr, t: Expr) -> Step:
    """``scheduleAction`` from any thread: append and signal if open; else drop (warn if a context is current)."""
    open_ = ctx_state[c] != DEAD
    return Step(
        guard={"queue_exists": ctx_state[c] != CTX_UNBORN, "take_mutex": queue_lock[c] == NONE},
        updates={
            actions_pending[c]: Ite(open_, actions_pending[c] + 1, actions_pending[c]),
            signaled[c]: Ite(open_, True, signaled[c]),
        },
        outputs={"warning": Ite(~open_ & (current[t] != NONE), Warning.CROSS_REQUEST_PROMISE, Warning.NO_WARNING)},
    )


@m.action(params={"c": Ctx, "t": Thread}, rules=("INV-O7", "INV-A2"), source="io/io-context.c++:1652-1675")
def run_actions(c: Expr, t: Expr) -> Step:
    """The signal task: ``run()`` the queued actions, FIFO; an aborted context refuses and the task ends."""
    runs = abort_reason[c] == NOT_ABORTED
    return Step(
        guard={"signaled": signaled[c], "alive": ctx_state[c] == ALIVE, "own_thread": ctx_thread[c] == t,
               "thread_idle": current[t] == NONE, "queue_mutex_free": queue_lock[c] == NONE},
        updates={
            signaled[c]: False,
            actions_pending[c]: Ite(runs, 0, actions_pending[c]),
            **_process_deletions(c, t, runs),
        },
    )


# ---- invariants ----------------------------------------------------------------------------------


@m.invariant(rules=("INV-O1",), source="io/io-context.h:1732,1738")
def created_in_current_context() -> Expr:
    """Every IoOwn/IoPtr was created while its owner was current on the creating thread."""
    return ~created_not_current


@m.invariant(rules=("INV-O2", "INV-O3", "INV-O8"), source="io/io-context.c++:1279-1287")
def io_only_in_owning_context() -> Expr:
    """No I/O object was ever used outside its owner's turn on its owner's thread, or after it was freed."""
    return ~bad_access


@m.invariant(rules=("INV-O3", "INV-C3"), source="io/io-context.c++:162")
def dead_contexts_are_never_current() -> Expr:
    """Only live contexts are current, so no access can match a dead owner's queue."""
    return ForAll(Thread, lambda t: Implies(current[t] != NONE, ctx_state[current[t].some] == ALIVE))


@m.invariant(rules=("INV-O4",), source="io/io-own.c++:9-20")
def freed_at_most_once() -> Expr:
    """No node was freed twice, and no freed node was dereferenced through the queue."""
    return ~double_free


@m.invariant(rules=("INV-O4", "INV-T4"), source="io/io-context.h:1137-1152")
def nothing_outlives_its_context() -> Expr:
    """When a context is dead every node it owned is freed or was released to a plain Own."""
    return ForAll(Obj, lambda o: Implies(
        (owner[o] != NONE) & (obj_kind[o] != IO_PTR) & (ctx_state[_owner(o)] == DEAD),
        (node[o] == FREED) | (node[o] == RELEASED)))


@m.invariant(rules=("INV-O5",), source="io/io-own.h:186-210")
def dead_queues_are_empty() -> Expr:
    """A dead context's queue holds no pointers and no actions."""
    return ForAll(Obj, lambda o: Implies(queued[o], ctx_state[_owner(o)] != DEAD)) & ForAll(
        Ctx, lambda c: Implies(ctx_state[c] == DEAD, actions_pending[c] == 0))


@m.invariant(rules=("INV-O6",), source="io/io-own.c++:9-20")
def queue_written_under_mutex() -> Expr:
    """A thread inside scheduleDeletion holds the owner's queue mutex, and no push happened without it."""
    return ~unlocked_push & ForAll(Thread, lambda t: Implies(
        pushing[t] != NONE, queue_lock[_owner(pushing[t].some)] == t))


@m.invariant(rules=("INV-O7",), source="io/io-own.c++:22-55")
def pending_actions_are_signaled() -> Expr:
    """A live, unaborted context with queued actions has been signalled, so its signal task will run them."""
    return ForAll(Ctx, lambda c: Implies(
        (ctx_state[c] == ALIVE) & (abort_reason[c] == NOT_ABORTED) & (actions_pending[c] > 0), signaled[c]))


@m.invariant(rules=("INV-O10",), source="io/io-context.c++:1317-1326")
def freed_on_owner_thread() -> Expr:
    """Every node was destroyed on its owning context's thread."""
    return ~freed_off_thread


@m.invariant(rules=("INV-O8",), source="io/io-context.c++:716-717")
def reverse_handles_to_freed_nodes_are_invalid() -> Expr:
    """A live ReverseIoOwn whose node was freed belongs to a context that is no longer valid."""
    return ForAll(Obj, lambda o: Implies(
        (handle[o] == LIVE) & (obj_kind[o] == REVERSE) & (node[o] == FREED), ctx_state[_owner(o)] != ALIVE))


@m.invariant(rules=("INV-O9", "INV-O4"), source="io/io-context.h:1149-1152", lemma=True)
def queued_nodes_are_linked_while_alive() -> Expr:
    """Lemma: a queued pointer is an IoOwn whose handle is gone; its node is linked unless the owner is tearing down."""
    return ForAll(Obj, lambda o: Implies(
        queued[o],
        (obj_kind[o] == IO_OWN) & (handle[o] == GONE) & (owner[o] != NONE)
        & ((node[o] == LINKED) | (ctx_state[_owner(o)] == TEARDOWN))))


@m.invariant(rules=("INV-O2", "INV-O4"), source="io/io-own.h:155-178", lemma=True)
def handles_point_into_their_owner() -> Expr:
    """Lemma: a live handle has an owner; while the owner lives an IoOwn's node is linked."""
    return ForAll(Obj, lambda o: And(
        Implies(handle[o] != HandleState.NONE, owner[o] != NONE),
        Implies((handle[o] == LIVE) & (obj_kind[o] == IO_OWN) & (ctx_state[_owner(o)] == ALIVE), node[o] == LINKED),
        Implies(node[o] == NodeState.UNBORN, (handle[o] == HandleState.NONE) & ~queued[o] & (owner[o] == NONE)),
        Implies(owner[o] != NONE, ctx_state[_owner(o)] != CTX_UNBORN),
    ))


@m.invariant(rules=("INV-O6",), source="io/io-own.c++:9-20", lemma=True)
def mutex_held_only_by_pushers() -> Expr:
    """Lemma: the queue mutex is held only by a thread inside scheduleDeletion for that queue."""
    return ForAll(Ctx, lambda c: Implies(
        queue_lock[c] != NONE,
        (pushing[queue_lock[c].some] != NONE) & (owner[pushing[queue_lock[c].some].some] == c)))


@m.invariant(rules=("INV-O4", "INV-O8"), source="io/io-context.h:1730-1740,1798-1804", lemma=True)
def node_matches_kind() -> Expr:
    """Lemma: once created, an object's node is untracked exactly if it is an IoPtr, and only an IoOwn is released."""
    return ForAll(Obj, lambda o: (node[o] == NodeState.UNBORN) | (
        Iff(obj_kind[o] == IO_PTR, node[o] == UNTRACKED) & Implies(node[o] == RELEASED, obj_kind[o] == IO_OWN)))


@m.invariant(rules=("INV-O6", "INV-O4"), source="io/io-own.c++:9-20", lemma=True)
def pushers_dropped_an_io_own() -> Expr:
    """Lemma: a thread inside scheduleDeletion is deleting an IoOwn whose handle is gone and whose node is
    still linked unless its owner is being (or was) destroyed."""
    return ForAll(Thread, lambda t: Implies(pushing[t] != NONE, And(
        obj_kind[pushing[t].some] == IO_OWN, handle[pushing[t].some] == GONE,
        (node[pushing[t].some] == LINKED) | (ctx_state[_owner(pushing[t].some)] != ALIVE))))


@m.invariant(rules=("INV-O5", "INV-O7"), source="io/io-own.c++:22-55", lemma=True)
def unborn_contexts_have_empty_queues() -> Expr:
    """Lemma: a context not yet created has no queued actions, no signal and an unlocked queue."""
    return ForAll(Ctx, lambda c: Implies(
        ctx_state[c] == CTX_UNBORN, (actions_pending[c] == 0) & ~signaled[c] & (queue_lock[c] == NONE)))


m.terminal(ForAll(Ctx, lambda c: ctx_state[c] == DEAD) & ForAll(Obj, lambda o: handle[o] != LIVE)
           & ForAll(Thread, lambda t: pushing[t] == NONE))

MODEL = m.build()
