"""Record the example traces in examples/traces/ from the reference implementation.

Each example runs the demo service graph (`reference_impl.demo`) through a fixed list of
requests, one at a time, on the reference implementation or on one of its seeded faulty
variants (`reference_impl.faults`), and writes the trace (docs/trace-format.md) with the
timestamps left out (so a re-recording is byte-identical).  `examples/traces/manifest.json`
says what ``iospec check-trace`` must find in each file: nothing, or the rule ids and the
operation of the first violating event (language-neutral, like test262's metadata).

    python scripts/record_example_traces.py            # rewrite examples/traces/
    python scripts/record_example_traces.py --check    # exit 1 if a committed trace is out of date
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reference_impl import Request, Runtime
from reference_impl.demo import DemoWorker, build_demo
from reference_impl.trace import NdjsonSink

OUT = Path(__file__).resolve().parent.parent / "examples" / "traces"

#: the requests every example sends, in order (paths of the demo worker `app`)
REQUESTS: list[tuple[str, str, bytes]] = [
    ("GET", "/", b""),
    ("GET", "/throw", b""),
    ("GET", "/pass", b""),
    ("GET", "/stream", b""),
    ("GET", "/wait", b""),
    ("POST", "/save", b"kept body"),
    ("GET", "/use", b""),
    ("GET", "/do/a", b""),
    ("GET", "/do/a", b""),
]

#: name -> (faults switched on, what check-trace must report: None = clean, else the rule id expected)
EXAMPLES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "clean_demo": ((), None),
    "fault_access_check_missing": (("access_check_missing",), "INV-O2"),
    "fault_pass_through_ignored": (("pass_through_ignored",), "INV-E4"),
    "fault_exception_after_headers_500": (("exception_after_headers_500",), "INV-E5"),
}


class _Untimed(NdjsonSink):
    """NDJSON without the ``ts`` field (wall-clock times would make every recording differ)."""

    def event(self, event: Mapping[str, Any]) -> None:  # type: ignore[override]
        self._write({k: v for k, v in event.items() if k != "ts"})


def record(faults: tuple[str, ...]) -> str:
    """The trace of the fixed requests against the demo graph with ``faults`` on."""
    buf = io.StringIO()
    DemoWorker.finished.clear()
    DemoWorker.saved.clear()
    with Runtime(threads=1, faults=faults, trace=[_Untimed(buf)], memory_trace=False) as rt:
        build_demo(rt)
        for method, path, body in REQUESTS:
            try:
                rt.fetch("app", Request(method, f"http://example.com{path}", body=body))
            except Exception:  # an exception tunnelled to the listener is part of the example
                pass
            rt.settle()
    return buf.getvalue()


def manifest() -> dict[str, Any]:
    return {
        "about": "example traces of the reference implementation; expect: what `iospec check-trace` reports",
        "requests": [f"{m} {p}" for m, p, _ in REQUESTS],
        "traces": [
            {"file": f"{name}.ndjson", "faults": list(faults),
             "expect": "clean" if rule is None else {"violation": rule}}
            for name, (faults, rule) in EXAMPLES.items()
        ],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = p.parse_args(argv)
    wanted = {f"{name}.ndjson": record(faults) for name, (faults, _) in EXAMPLES.items()}
    wanted["manifest.json"] = json.dumps(manifest(), indent=2) + "\n"
    stale = []
    for name, text in wanted.items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)} (run python scripts/record_example_traces.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
