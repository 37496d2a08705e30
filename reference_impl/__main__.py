"""``python -m reference_impl serve``: run the demo service graph over HTTP on 127.0.0.1.

Options: ``--port`` (0: any free port; the chosen ports are printed), ``--threads``,
``--limits workerd-serve|production``, ``--trace FILE`` (write the NDJSON trace), ``--monitor``
(run the models alongside and report at exit), ``--fault NAME`` (a faulty variant).
Stop it with Ctrl-C.
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
    serve.add_argument("--monitor", action="store_true", help="check every event against the models")
    serve.add_argument("--fault", action="append", default=[], choices=fault_names(), help="a faulty variant")
    args = parser.parse_args(argv)

    sinks: list[Sink] = [NdjsonSink(args.trace)] if args.trace else []
    rt = Runtime(threads=args.threads, limits=args.limits, faults=args.fault, trace=sinks, memory_trace=False,
                 monitor=args.monitor, log_to_stderr=True)
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
