"""CDS Hooks round trip: order-select calls under gunicorn, against GET /healthz.

The benchmark migrates and seeds a SQLite database in a temporary directory
(as ``bench/fhir_intake.py`` does, with its helpers from ``bench/_common.py``),
mints a ``demo-gp`` token and serves ScanPath (``wsgi:app``) under gunicorn
with 2 sync workers. It then POSTs CDS Hooks requests to
``/cds-services/imaging-order-select``:

- ``angina``: the shared angina vignette (``shared/vignettes/angina-ctca.json``);
- ``mix``: every vignette of ``tests/rules/vignettes.vignette_files()`` in turn;

first sequentially from one client (latency), then from 8 concurrent
keep-alive clients (throughput). The baseline, measured on the same server
in the same run and with the same clients, is ``GET /healthz``: Flask,
gunicorn and the request middleware, without the hook's work. Before the
timed loads every vignette is sent 3 times (which warms both workers up) and
the slowest vignettes are listed.

Targets (issue "Rules engine and CDS Hooks"): p95 under 50 ms for a call
from one client; every call "well within" the 500 ms that CDS Hooks clients
allow, so p95 under 500 ms with 8 concurrent clients.

Run: ``.venv/bin/python bench/cds_roundtrip.py`` (about 75 s; ``make bench``
does). ``--profile N`` instead runs N angina calls in process through
Flask's test client under cProfile. Results are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import math
import pstats
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    Connection,
    Gunicorn,
    Load,
    Result,
    http_request,
    machine,
    prepare,
    put_under_load,
    revision,
    server_env,
    serving,
    settings_for,
)

if str(ROOT) not in sys.path:  # so that ``tests.rules.vignettes`` imports when run as a script
    sys.path.insert(0, str(ROOT))

from rules.context import today_utc  # noqa: E402
from tests.rules.vignettes import SHARED, load, vignette_files  # noqa: E402

SERVICE = "/cds-services/imaging-order-select"
TARGET_P95_MS = 50.0  # one client
TARGET_LOADED_P95_MS = 500.0  # "respond well within 500 ms", under concurrent load


def vignette_requests() -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The angina request, and (id, request) of every vignette, dates filled in for today."""
    today = today_utc()
    angina = load(SHARED / "angina-ctca.json", today)["request"]
    mix = [(path.stem, load(path, today)["request"]) for path in vignette_files()]
    return angina, mix


def check_and_time(port: int, token: str, mix: list[tuple[str, dict[str, Any]]],
                   passes: int) -> dict[str, float]:
    """Send every vignette ``passes`` times; median ms per vignette. Any non-200 is fatal."""
    connection = Connection(port)
    times: dict[str, list[float]] = {name: [] for name, _ in mix}
    for _ in range(passes):
        for name, body in mix:
            request = http_request(port, SERVICE, token, body)
            start = time.perf_counter()
            status, reply = connection.exchange(request)
            times[name].append(1000 * (time.perf_counter() - start))
            if status != 200:
                raise RuntimeError(f"vignette {name}: HTTP {status} {reply[:300]!r}")
    connection.close()
    return {name: statistics.median(ms) for name, ms in times.items()}


def benchmark(args: argparse.Namespace) -> int:
    print(f"machine: {machine()}\ncode: {revision()}")
    angina, mix = vignette_requests()
    secret = secrets.token_urlsafe(48)
    config = Gunicorn(args.workers, 1)
    with tempfile.TemporaryDirectory(prefix="scanpath-cds-bench-") as tmp:
        var = Path(tmp) / "var"
        backend = prepare("sqlite", f"sqlite:///{Path(tmp) / 'scanpath.db'}", var, secret, 1)
        env = server_env(backend, var, secret)
        with serving("wsgi:app", ROOT, env, config, Path(tmp) / "server.log") as (port, pid):
            medians = check_and_time(port, backend.token, mix, passes=3)
            workloads = {
                "GET /healthz (baseline)": (http_request(port, "/healthz", None, None),),
                "angina vignette": (http_request(port, SERVICE, backend.token, angina),),
                f"mix of {len(mix)} vignettes": tuple(
                    http_request(port, SERVICE, backend.token, body) for _, body in mix),
            }
            results: dict[tuple[int, str], Result] = {}
            for clients in (1, args.clients):
                for name, requests in workloads.items():
                    load_ = Load(port, requests, clients, min(clients, args.processes),
                                 args.warmup, args.duration)
                    results[clients, name] = put_under_load(name, pid, load_, expected=200)
    print(f"\nScanPath under gunicorn {config}, SQLite; POST {SERVICE} with a demo-gp token; "
          f"{args.duration:g} s measured after {args.warmup:g} s warm-up per row")
    slowest = sorted(medians.items(), key=lambda item: -item[1])[:5]
    print(f"vignettes, one client, median of 3 calls: all {len(medians)} answered 200; "
          f"median {statistics.median(medians.values()):.1f} ms; slowest: " +
          ", ".join(f"{name} {ms:.1f} ms" for name, ms in slowest))
    misses = []
    for clients in (1, args.clients):
        misses += report(clients, [r for (c, _), r in results.items() if c == clients])
    print("targets: " + ("all met" if not misses else "; ".join(misses)))
    errors = sum(r.errors(200) for r in results.values())
    return 1 if errors else 0


def report(clients: int, rows: list[Result]) -> list[str]:
    """One table (sequential or concurrent); the ratios are against the first row."""
    base = rows[0]
    label = "sequential, 1 client" if clients == 1 else f"{clients} concurrent clients"
    print(f"\n== {label}")
    print(f"{'':26}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'errors':>7}{'calls':>7}"
          f"{'server CPU':>11}   ratio to baseline: {'req/s':>6}{'p50':>7}{'p95':>7}")
    misses = []
    for r in rows:
        p50, p95 = r.percentile_ms(.5), r.percentile_ms(.95)
        print(f"{r.name:26}{r.rps:8.1f}{p50:8.1f}{p95:8.1f}{r.errors(200):7d}{r.count:7d}"
              f"{r.per_request_ms(r.server_cpu):8.2f} ms{'':22}{r.rps / base.rps:6.2f}"
              f"{p50 / base.percentile_ms(.5):7.1f}{p95 / base.percentile_ms(.95):7.1f}")
        if r is base:
            continue
        limit = TARGET_P95_MS if clients == 1 else TARGET_LOADED_P95_MS
        if not p95 < limit:
            misses.append(f"{r.name}, {label}: p95 {p95:.1f} ms >= {limit:g}")
        if r.errors(200):
            misses.append(f"{r.name}, {label}: {r.errors(200)} responses were not 200")
        if r.tally.sample:
            print(f"   first unexpected response: {r.tally.sample}")
    print("machine busy: " + ", ".join(f"{r.name.split()[0]} {r.busy:.0%}" for r in rows))
    return misses


# --- profile ------------------------------------------------------------------------


def profile(args: argparse.Namespace) -> int:
    """N angina calls in process: ms per call without a profiler, then under cProfile."""
    from scanpath.app import create_app

    print(f"machine: {machine()}\ncode: {revision()}")
    angina, _ = vignette_requests()
    secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory(prefix="scanpath-cds-profile-") as tmp:
        var = Path(tmp) / "var"
        backend = prepare("sqlite", f"sqlite:///{Path(tmp) / 'scanpath.db'}", var, secret, 1)
        client = create_app(settings_for(backend.url, var, secret)).test_client()
        headers = {"Authorization": f"Bearer {backend.token}"}

        def call(n: int) -> None:
            for _ in range(n):
                response = client.post(SERVICE, json=angina, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code} {response.data[:300]!r}")

        with contextlib.redirect_stderr(io.StringIO()):  # the app's request log
            call(min(50, args.profile))
            start = time.perf_counter()
            call(args.profile)
            per_call = 1000 * (time.perf_counter() - start) / args.profile
            profiler = cProfile.Profile()
            profiler.runcall(call, args.profile)
    print(f"\nangina call in process (Flask test client): {per_call:.2f} ms, no profiler")
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
        print(f"\n-- {args.profile} calls under cProfile, top {args.top} by {order}")
        print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--processes", type=int, default=2,
                        help="load generator processes the concurrent clients are spread over")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not measured")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="instead: N in-process angina calls under cProfile")
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    args = parser.parse_args(argv)
    if math.isnan(args.duration) or args.duration <= 0:
        parser.error("--duration must be positive")
    return profile(args) if args.profile else benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
