"""``python -m reference_impl serve``: run the demo service graph over HTTP on 127.0.0.1.

Options: ``--port`` (0: any free port; the chosen ports are printed), ``--threads``,
``--limits workerd-serve|production``, ``--trace FILE`` (write the NDJSON trace), ``--sync``
(record synchronisation in it too, for ``iospec check-trace --predict``), ``--monitor``
(run the models alongside and report at exit), ``--fault NAME`` (a faulty variant).
Stop it with Ctrl-C.

Controlled scheduling (reference_impl/scheduler.py, docs/predictive-checking.md):
``record SCENARIO --trace FILE [--strategy random|pct|priority] [--seed N] [--schedule OUT]`` runs a
scenario under the controlled scheduler and writes its trace (with synchronisation) and schedule;
``explore SCENARIO --strategy random|pct|dfs --runs N`` looks for a schedule the monitors reject;
``replay FILE`` replays a schedule file or a witness of ``iospec check-trace --predict``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from reference_impl.demo import build_demo
from reference_impl.faults import fault_names
from reference_impl.limits import PROFILES
from reference_impl.runtime import Runtime
from reference_impl.trace import NdjsonSink, Sink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_impl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the demo workers on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="port of the app worker (app-down gets port+1)")
    serve.add_argument("--threads", type=int, default=2)
    serve.add_argument("--limits", choices=PROFILES, default="workerd-serve")
    serve.add_argument("--trace", metavar="FILE", help="write the NDJSON trace here")
    serve.add_argument("--sync", action="store_true",
                       help="record lock sections and thread hand-offs in the trace (for iospec check-trace --predict)")
    serve.add_argument("--monitor", action="store_true", help="check every event against the models")
    serve.add_argument("--monitor-engine", choices=["python", "c"], default="python",
                       help="c: the compiled checker (docs/compiled-engine.md; lower overhead, keeps the accepted "
                            "events in memory until a violation or a read of the model state)")
    serve.add_argument("--fault", action="append", default=[], choices=fault_names(), help="a faulty variant")
    from reference_impl.scenarios import SCENARIOS

    for name, helptext in (("record", "run a scenario under the controlled scheduler; write its trace"),
                           ("explore", "run a scenario under many schedules until the monitors reject one")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("scenario", choices=sorted(SCENARIOS))
        p.add_argument("--strategy", default="pct", choices=["random", "pct", "priority", "dfs"])
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--depth", type=int, default=2, help="PCT: priority-change depth; DFS: decisions branched")
        p.add_argument("--order", default="gc,MainThread,thread-0,thread-1", help="priority: thread order")
        p.add_argument("--fault", action="append", default=[], choices=fault_names(), help="a faulty variant")
        p.add_argument("--schedule", metavar="OUT", help="write the schedule (JSON) here")
        if name == "record":
            p.add_argument("--trace", metavar="FILE", required=True, help="write the NDJSON trace here")
        else:
            p.add_argument("--runs", type=int, default=20, help="at most this many schedules")
    rp = sub.add_parser("replay", help="replay a schedule file or a predictive-checking witness")
    rp.add_argument("file", metavar="FILE")
    rp.add_argument("--trace", metavar="FILE", help="write the replayed run's trace here")
    args = parser.parse_args(argv)
    if args.command in ("record", "explore", "replay"):
        from reference_impl.controlled_cli import run_controlled

        return run_controlled(args)

    sinks: list[Sink] = [NdjsonSink(args.trace)] if args.trace else []
    monitor: bool | str = ("c" if args.monitor_engine == "c" else True) if args.monitor else False
    rt = Runtime(threads=args.threads, limits=args.limits, faults=args.fault, trace=sinks, memory_trace=False,
                 monitor=monitor, log_to_stderr=True, record_sync=args.sync)
    build_demo(rt)
    app = rt.serve("app", port=args.port)
    down = rt.serve("app-down", port=0 if args.port == 0 else args.port + 1)
    print(f"app:      {app.url}/  (try /throw /hang /pass /stream /wait /count /save /use /do/NAME)", flush=True)
    print(f"app-down: {down.url}/pass-down", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    rt.close()
    if rt.monitor is not None:
        print(rt.monitor.report(), file=sys.stderr)
        return 0 if rt.monitor.ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
