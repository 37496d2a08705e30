"""Throughput of the reference implementation: requests/s and trace events/s, monitor off and on.

Runs N requests (programmatic, then over HTTP on loopback) against a small worker in one
process and prints the figures measured in this run, e.g.::

    python benchmarks/reference_throughput.py --requests 300
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import time
from typing import Any

from reference_impl import Request, Response, Runtime


class Bench:
    async def fetch(self, request: Request, env: Any, ctx: Any) -> Response:
        await asyncio.sleep(0)
        stream = ctx.create_stream()
        stream.write(b"x")

        async def later() -> None:
            await asyncio.sleep(0)

        ctx.wait_until(later())
        return Response(stream.read())


def run(n: int, monitor: bool, over_http: bool) -> tuple[float, int]:
    with Runtime(threads=2, monitor=monitor) as rt:
        rt.add_worker("b", Bench)
        t0 = time.perf_counter()
        if over_http:
            listener = rt.serve("b")
            conn = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=10)
            for _ in range(n):
                conn.request("GET", "/")
                conn.getresponse().read()
            conn.close()
        else:
            for i in range(n):
                rt.fetch("b", Request(), thread=i % 2)
        rt.settle()
        elapsed = time.perf_counter() - t0
        assert rt.monitor is None or rt.monitor.ok, rt.monitor.report()
        assert rt.trace is not None
        return elapsed, len(rt.trace.events)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=300)
    args = p.parse_args()
    n = args.requests
    for over_http in (False, True):
        for monitor in (False, True):
            elapsed, events = run(n, monitor, over_http)
            print(f"{'http' if over_http else 'direct':6s} monitor={'on ' if monitor else 'off'}  "
                  f"{n / elapsed:8.0f} requests/s  {events / elapsed:9.0f} events/s  ({events / n:.0f} events/request)")


if __name__ == "__main__":
    main()
