"""z3 verification speed: per-invariant proof times for every model, and BMC to depth 30 on the standard configurations.

Measures (wall clock and this process's CPU time: z3 runs in-process and single-threaded, so
CPU time is what a quiet machine would see as wall time; the lead measures final figures on
a quiet machine):

1. **Proofs for every depth**, per model, with the strongest method the project claims for
   it: the parametric proof (any number of each identity, `ParametricEncoding`) for the
   models in ``PARAMETRIC``, the induction proof in the model's default bounded configuration
   (`BoundedEncoding`) for the others.  One line per invariant: status, method, solver
   seconds charged to it (`Proof.seconds`), the lemmas its proof used.  Each model is timed
   twice: the proof alone (`minimize=False`) and with the deletion queries that make each
   proof's set of lemmas minimal (what `iospec verify` reports).  Target: every invariant of
   every model in under 10 s in total.
2. **BMC to depth N** (default 30) on every standard configuration (`model/standard_configs.json`),
   plain (every depth unrolled) and with the inductive shortcut (`bmc(shortcut=True)`: stops
   when the invariants not violated are inductive).  Target: under 10 s per model.

Usage::

    python benchmarks/bench_verify.py                   # everything
    python benchmarks/bench_verify.py --models lifecycle --skip-bmc
    python benchmarks/bench_verify.py --depth 30 --bmc-timeout 60 --skip-proofs

Exit code 0 whatever the figures (this prints measurements; it does not assert them), 1 if an
invariant is not proved or BMC finds a violation on a standard configuration (a defect).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass

import z3

from model.catalog import MODELS, get_model, standard_configs
from properties.z3.bmc import bmc
from properties.z3.encoding import BoundedEncoding, ParametricEncoding
from properties.z3.induction import prove

#: models whose invariants are proved for any number of identities (the rest: default bounded configuration)
PARAMETRIC = ("context", "ownership", "locks")


@dataclass
class Clock:
    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> "Clock":
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c


def bench_proofs(models: list[str], timeout_ms: int) -> tuple[float, float, int]:
    total_wall = total_cpu = 0.0
    bare_wall = bare_cpu = 0.0
    failures = 0
    print("== proofs for every depth (per invariant: status, method, solver seconds, lemmas used)")
    for name in models:
        model = get_model(name)
        if name in PARAMETRIC:
            enc = ParametricEncoding(model)
            scope, max_k = "parametric (any number of identities)", 1
        else:
            enc = BoundedEncoding(model.config())  # type: ignore[assignment]
            scope, max_k = f"bounded {model.config().describe()}", 3
        with Clock() as c0:  # the proof alone (supports: unminimised unsat cores)
            bare = prove(type(enc)(enc.model) if name in PARAMETRIC else BoundedEncoding(model.config()),
                         timeout_ms=timeout_ms, max_k=max_k, minimize=False)
        bare_wall += c0.wall
        bare_cpu += c0.cpu
        with Clock() as c:
            run = prove(enc, timeout_ms=timeout_ms, max_k=max_k)
        total_wall += c.wall
        total_cpu += c.cpu
        proved = sum(p.proved for p in run.proofs.values())
        if sum(p.proved for p in bare.proofs.values()) != proved:
            failures += 1
            print(f"{name}: the proof without minimised supports proves a different number of invariants")
        print(f"{name}: {proved}/{len(run.proofs)} proved, {scope}; proof alone: wall {c0.wall:.2f}s, "
              f"cpu {c0.cpu:.2f}s ({bare.queries} queries); with minimal lemma sets: wall {c.wall:.2f}s, "
              f"cpu {c.cpu:.2f}s ({run.queries} queries)")
        for p in run.proofs.values():
            method = f"{p.method}" + (f" k={p.k}" if p.method == "k-induction" else "")
            uses = ", ".join(p.support) if p.support else "-"
            if p.method == "k-induction":
                uses = f"all {len(p.support)} invariants proved by induction"
            print(f"  {p.status:8s} {p.name:48s} {method:14s} {p.seconds:7.3f}s  uses: {uses}")
            if not p.proved:
                failures += 1
                print(f"           {p.detail[:300]}")
    print(f"TOTAL proofs alone: wall {bare_wall:.2f}s, cpu {bare_cpu:.2f}s; with minimal lemma sets: "
          f"wall {total_wall:.2f}s, cpu {total_cpu:.2f}s (target: < 10 s on 2 cores)")
    return total_wall, total_cpu, failures


def bench_bmc(models: list[str], depth: int, timeout_ms: int | None, plain: bool) -> int:
    failures = 0
    print(f"\n== BMC to depth {depth} on the standard configurations (plain: every depth unrolled; "
          "shortcut: stops once the rest is inductive)")
    per_model: dict[str, list[float]] = {}
    for sc in standard_configs():
        if sc.model_name not in models:
            continue
        cfg = sc.config()
        line = f"{sc.name:28s} ({sc.expected.get('distinct', '?')} states, depth {sc.expected.get('depth', '?')})"
        with Clock() as c1:
            r1 = bmc(cfg, depth, timeout_ms=timeout_ms, shortcut=True)
        line += f"  shortcut: wall {c1.wall:6.2f}s cpu {c1.cpu:6.2f}s (inductive at {r1.inductive_at})"
        acc = per_model.setdefault(sc.model_name, [0.0, 0.0, 0.0, 0.0])
        acc[0] += c1.wall
        acc[1] += c1.cpu
        if r1.traces:
            failures += 1
            line += f"  VIOLATED: {sorted(r1.traces)}"
        if plain:
            with Clock() as c2:
                r2 = bmc(cfg, depth, timeout_ms=timeout_ms, shortcut=False)
            reached = len(r2.per_depth) - 1
            done = "" if reached >= depth else f" (stopped at depth {reached}: timeout)"
            line += f"  plain: wall {c2.wall:7.2f}s cpu {c2.cpu:7.2f}s{done}"
            acc[2] += c2.wall
            acc[3] += c2.cpu
            if r2.traces:
                failures += 1
        print(line, flush=True)
    for name, (w1, c1_, w2, c2_) in per_model.items():
        plain_s = f"; plain wall {w2:.2f}s cpu {c2_:.2f}s" if plain else ""
        print(f"TOTAL BMC {name}: shortcut wall {w1:.2f}s cpu {c1_:.2f}s{plain_s} (target: < 10 s per model)")
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS), help="default: every model")
    ap.add_argument("--depth", type=int, default=30, help="BMC depth (default 30)")
    ap.add_argument("--timeout", type=float, default=20.0, help="per proof query, seconds")
    ap.add_argument("--bmc-timeout", type=float, default=0.0, help="per BMC query, seconds (0: none)")
    ap.add_argument("--skip-proofs", action="store_true")
    ap.add_argument("--skip-bmc", action="store_true")
    ap.add_argument("--no-plain", action="store_true", help="BMC with the inductive shortcut only")
    args = ap.parse_args(argv)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        print(f"bench_verify: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    print(f"python {platform.python_version()}, z3 {z3.get_version_string()}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.1f}")
    failures = 0
    if not args.skip_proofs:
        failures += bench_proofs(args.models, int(args.timeout * 1000))[2]
    if not args.skip_bmc:
        failures += bench_bmc(args.models, args.depth, int(args.bmc_timeout * 1000) or None, not args.no_plain)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
