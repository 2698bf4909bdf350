"""ServiceRequest intake: POST throughput and latency under gunicorn, against a baseline.

For each backend (SQLite in a temporary directory, PostgreSQL in the schema
``scanpath_bench``) the benchmark migrates a fresh database, seeds the demo
clients, creates one Patient and mints a ``demo-gp`` token. It then serves
ScanPath (``wsgi:app``) and the baseline (``bench/_baseline_app.py``: a bare
Flask endpoint that parses the JSON and inserts one row) in turn under the
same gunicorn configuration, and drives each with the same closed-loop load:
16 keep-alive clients POSTing an imaging ServiceRequest back to back (for
one patient, or spread over ``--patients``). It prints throughput, p50 and
p95 latency, CPU per request and the ratios ScanPath / baseline.

``--profile N`` instead runs N POSTs in process through Flask's test client
under cProfile and prints where the time goes.

Run with ``.venv/bin/python bench/fhir_intake.py`` (``make bench`` does);
results are recorded in ``docs/benchmarks.md``. The load generator, gunicorn
runner, CPU accounting and database preparation are in ``bench/_common.py``,
shared with ``cds_roundtrip.py`` and ``dicom_ingest.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import json
import math
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    DEFAULT_PG,
    PG_SCHEMA,
    ROOT,
    App,
    Backend,
    Gunicorn,
    Result,
    drop_postgres,
    engine_for,
    fresh_postgres,
    machine,
    measure,
    parse_config,
    prepare,
    revision,
    server_env,
    settings_for,
    tail,
)

SNOMED = "http://snomed.info/sct"
# SNOMED CT 363679005 |Imaging (procedure)| and 29857009 |Chest pain (finding)|,
# as in tests/factories.py.
IMAGING = {"system": SNOMED, "code": "363679005", "display": "Imaging"}
CHEST_PAIN = {"system": SNOMED, "code": "29857009", "display": "Chest pain"}
TARGET_RPS, TARGET_P95_MS, TARGET_SHARE = 400.0, 50.0, 0.40


def service_request(patient_id: str) -> dict[str, Any]:
    """A GP's imaging referral, as a clinical system would POST it."""
    return {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "category": [{"coding": [IMAGING]}], "code": {"coding": [IMAGING]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": "2026-11-20T09:30:00Z",
        "requester": {"display": "Dr A Example, Example Surgery"},
        "reasonCode": [{"coding": [CHEST_PAIN], "text": "Exertional chest pain, 3 weeks"}],
        "identifier": [{"system": "https://gp.example/orders", "value": "GP-ORDER-1"}],
        "note": [{"text": "Please assess for coronary artery calcium."}],
    }


def apps(backend: Backend) -> list[App]:
    bodies = tuple(service_request(patient) for patient in backend.patient_ids)
    return [App("ScanPath", "wsgi:app", ROOT, "/fhir/ServiceRequest", bodies, backend.token),
            App("baseline", "_baseline_app:app", BENCH_DIR, "/baseline", bodies, None)]


# --- reporting ----------------------------------------------------------------------


def report(backend: str, config: Gunicorn, args: argparse.Namespace,
           ours: Result, base: Result) -> list[str]:
    """The table for one backend, and the targets met or missed; returns the misses."""
    print(f"\n== {backend}: gunicorn {config}; {args.clients} clients; "
          f"orders for {args.patients} patient{'s' if args.patients > 1 else ''}; "
          f"{args.duration:g} s measured after {args.warmup:g} s warm-up")
    print(f"{'':22}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'errors':>8}{'requests':>9}"
          f"   CPU ms/request: {'server':>7}{'client':>7}{'rest':>7}   machine busy")
    for r in (ours, base):
        print(f"{r.name:22}{r.rps:8.1f}{r.percentile_ms(.5):8.1f}{r.percentile_ms(.95):8.1f}"
              f"{r.errors(201):8d}{r.count:9d}{'':18}"
              f"{r.per_request_ms(r.server_cpu):7.2f}{r.per_request_ms(r.client_cpu):7.2f}"
              f"{r.per_request_ms(r.rest_cpu):7.2f}{r.busy:15.0%}")
    share = ours.rps / base.rps if base.rps else math.nan
    cpu = ours.per_request_ms(ours.server_cpu) / base.per_request_ms(base.server_cpu)
    print(f"{'ScanPath / baseline':22}{share:8.2f}{_ratio(ours, base, .5):8.2f}"
          f"{_ratio(ours, base, .95):8.2f}{'':8}{'':9}{'':18}{cpu:7.2f}")
    misses = _misses(backend, ours, share)
    for sample in {r.tally.sample for r in (ours, base) if r.tally.sample}:
        print(f"   first unexpected response: {sample}")
    print("targets: " + ("all met" if not misses else "; ".join(misses)))
    return misses


def _ratio(ours: Result, base: Result, share: float) -> float:
    return ours.percentile_ms(share) / base.percentile_ms(share)


def _misses(backend: str, ours: Result, share: float) -> list[str]:
    misses = []
    if ours.rps < TARGET_RPS:
        misses.append(f"{backend}: {ours.rps:.0f} req/s < {TARGET_RPS:.0f}")
    if not ours.percentile_ms(.95) < TARGET_P95_MS:
        misses.append(f"{backend}: p95 {ours.percentile_ms(.95):.1f} ms >= {TARGET_P95_MS:.0f}")
    if not share >= TARGET_SHARE:
        misses.append(f"{backend}: {share:.0%} of baseline < {TARGET_SHARE:.0%}")
    if ours.errors(201):
        misses.append(f"{backend}: {ours.errors(201)} responses were not 201")
    return misses


# --- the benchmark ------------------------------------------------------------------


def benchmark(args: argparse.Namespace) -> int:
    print(f"machine: {machine()}\ncode: {revision()}")
    secret = secrets.token_urlsafe(48)
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scanpath-bench-") as tmp:
        for name in args.backends:
            try:
                backend = _backend(name, Path(tmp), secret, args)
            except Exception as exc:  # an unreachable PostgreSQL skips, with the reason
                print(f"\n== {name}: skipped, could not prepare the database: {exc}")
                misses.append(f"{name}: not measured")
                continue
            misses += _measure_backend(backend, Path(tmp), secret, args)
            if name == "postgres" and not args.keep:
                drop_postgres(args.postgres_url)
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="scanpath-bench-kept-"))
            shutil.copytree(tmp, kept, dirs_exist_ok=True)
            print(f"\ndatabases and server logs kept in {kept}")
    return 1 if any("not 201" in m or "not measured" in m for m in misses) else 0


def _backend(name: str, tmp: Path, secret: str, args: argparse.Namespace) -> Backend:
    if name == "sqlite":
        (tmp / "sqlite").mkdir(exist_ok=True)
        url = f"sqlite:///{tmp / 'sqlite' / 'scanpath.db'}"
    else:
        url = fresh_postgres(args.postgres_url)
    return prepare(name, url, tmp / "var", secret, args.patients)


def _measure_backend(backend: Backend, tmp: Path, secret: str,
                     args: argparse.Namespace) -> list[str]:
    env = server_env(backend, tmp / "var", secret)
    misses: list[list[str]] = []
    for config in args.configs:
        ours, base = (measure(app, env, config, args, tmp / f"{backend.name}-{app.name}.log")
                      for app in apps(backend))
        misses.append(report(backend.name, config, args, ours, base))
    return misses[0]  # the first configuration is the one of record


# --- profile ------------------------------------------------------------------------


def profile(args: argparse.Namespace) -> int:
    """Time N POSTs in process (ScanPath and baseline), then profile ScanPath's."""
    print(f"machine: {machine()}\ncode: {revision()}")
    secret = secrets.token_urlsafe(48)
    name = args.backends[0]
    with tempfile.TemporaryDirectory(prefix="scanpath-profile-") as tmp:
        backend = _backend(name, Path(tmp), secret, args)
        log = (Path(tmp) / "app.log").open("w")
        with contextlib.redirect_stderr(log):  # the app's JSON request log, as when served
            ours, base = _in_process_clients(backend, Path(tmp), secret)
        bodies = [json.dumps(service_request(patient)) for patient in backend.patient_ids]
        headers = {"Authorization": f"Bearer {backend.token}",
                   "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        post_ours = _poster(ours, "/fhir/ServiceRequest", bodies, headers)
        post_base = _poster(base, "/baseline", bodies, {"Content-Type": "application/json"})
        try:
            for post in (post_ours, post_base):
                post(min(50, args.profile))  # warm-up: model classes, pools, caches
        except RuntimeError:
            log.flush()
            print(tail(Path(tmp) / "app.log"), file=sys.stderr)
            raise
        with _counting_statements(backend.url) as statements:
            ms_ours = _timed(post_ours, args.profile)
        ms_base = _timed(post_base, args.profile)
        print(f"\n== {name}, in process (Flask test client), {args.profile} POSTs each, "
              "no profiler")
        print(f"ScanPath POST /fhir/ServiceRequest  {ms_ours:7.2f} ms/request")
        print(f"baseline POST /baseline             {ms_base:7.2f} ms/request")
        print(f"ScanPath / baseline                 {ms_ours / ms_base:7.2f} x")
        print(f"SQL statements per ScanPath POST    {statements[0] / args.profile:7.1f} "
              "(the baseline: BEGIN, INSERT, COMMIT)")
        _print_micro(backend, settings_for(backend.url, Path(tmp) / "var", secret),
                     args.profile)
        _print_profile(post_ours, args.profile, args.top)
        log.close()
        if name == "postgres":
            drop_postgres(args.postgres_url)
    return 0


def _in_process_clients(backend: Backend, tmp: Path, secret: str) -> tuple[Any, Any]:
    from _baseline_app import create_app as create_baseline

    from scanpath.app import create_app

    settings = settings_for(backend.url, tmp / "var", secret)
    settings = settings.model_copy(update={"log_level": "INFO"})
    return create_app(settings).test_client(), create_baseline(backend.url).test_client()


@contextlib.contextmanager
def _counting_statements(url: str) -> Iterator[list[int]]:
    """Count the statements sent on ``url``'s engine inside the block."""
    from sqlalchemy import event

    count = [0]

    def seen(*_args: Any) -> None:
        count[0] += 1

    engine = engine_for(url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield count
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def _poster(client: Any, path: str, bodies: list[str],
            headers: dict[str, str]) -> Callable[[int], None]:
    turn = itertools.cycle(bodies)

    def post(n: int) -> None:
        for _ in range(n):
            response = client.post(path, data=next(turn), headers=headers)
            if response.status_code != 201:
                raise RuntimeError(f"{path}: HTTP {response.status_code} {response.data!r}")
    return post


def _timed(post: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    post(n)
    return 1000 * (time.perf_counter() - start) / n


# Pieces of the POST path: (label, file, function); their cumulative time is reported.
PHASES = [
    ("Flask dispatch of POST /fhir/ServiceRequest", "fhir/api.py", "create"),
    ("  bearer token check (JWT decode)", "auth/guard.py", "current_principal"),
    ("  validate_resource (every resource written)", "fhir/validation.py",
     "validate_resource"),
    ("  accession hook (INSERT accession, flush)", "referral/accession.py",
     "assign_accession"),
    ("  order advice hook (rules.ordering)", "rules/ordering.py", "advise_order"),
    ("    patient history searches", "rules/service.py", "context_from_store"),
    ("    decision (rules engine)", "rules/service.py", "decide"),
    ("    GuidanceResponse and Provenance written", "rules/service.py", "record"),
    ("      decision parameters (context to JSON)", "rules/guidance.py",
     "decision_parameters"),
    ("  index_rows (SQLModel index objects)", "fhir/indexing.py", "index_rows"),
    ("  Session.flush (unit of work, INSERTs)", "sqlalchemy/orm/session.py", "flush"),
    ("  audit.record (the AuditEvent, whole write)", "fhir/audit.py", "record"),
    ("  Session.commit", "sqlalchemy/orm/session.py", "commit"),
    ("  response (JSON, headers)", "fhir/api.py", "_written_response"),
    ("request log line and metrics", "scanpath/ops.py", "_finish"),
]


def _print_profile(post: Callable[[int], None], n: int, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(post, n)
    _print_phases(pstats.Stats(profiler), n)
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(top)
        print(f"\n-- ScanPath POST under cProfile, {n} requests, top {top} by {order} "
              "(times are totals over all requests)")
        print(_trim_stats(out.getvalue()))


def _print_phases(stats: pstats.Stats, n: int) -> None:
    """Cumulative time of each piece of the POST path, as a share of the request."""
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cumulative(path: str, name: str) -> float:
        return sum(row[3] for (file, _, func), row in table.items()
                   if file.endswith(path) and func == name)

    whole = cumulative(*PHASES[0][1:])
    print(f"\n-- where a POST's time goes, under cProfile ({n} requests; "
          "indented rows are inside the row above; flush and commit also run inside the "
          "hook and audit rows)")
    for label, path, name in PHASES:
        spent = cumulative(path, name)
        if not spent:
            continue  # a piece this version of the code does not have
        print(f"{label:58}{1000 * spent / n:8.2f} ms{spent / whole:7.0%}")


def _print_micro(backend: Backend, settings: Any, repeat: int) -> None:
    """CPU-only pieces timed directly, without the profiler's overhead."""
    from auth.tokens import read_access_token
    from fhir import audit
    from fhir.indexing import index_rows
    from fhir.registry import REGISTRY
    from fhir.store import dumps
    from fhir.validation import validate_resource

    stored = {**service_request(backend.patient_ids[0]), "id": "bench",
              "meta": {"versionId": "1", "lastUpdated": "2026-11-23T06:00:00.000Z"}}
    event = audit.audit_event(audit.Interaction(
        "create", "ServiceRequest", "demo-gp", "127.0.0.1",
        ["ServiceRequest/bench/_history/1"]), audit.OUTCOME_SUCCESS)
    pieces: list[tuple[str, Callable[[], object]]] = [
        ("read_access_token (JWT decode, scopes)",
         lambda: read_access_token(settings, backend.token)),
        ("validate_resource ServiceRequest", lambda: validate_resource(
            "ServiceRequest", stored)),
        ("validate_resource AuditEvent", lambda: validate_resource("AuditEvent", event)),
        ("index_rows ServiceRequest", lambda: index_rows(
            "ServiceRequest", "bench", REGISTRY["ServiceRequest"].params, stored)),
        ("index_rows AuditEvent", lambda: index_rows(
            "AuditEvent", "bench", REGISTRY["AuditEvent"].params, event)),
        ("json dumps of the stored ServiceRequest", lambda: dumps(stored)),
    ]
    print(f"\n-- CPU-only pieces, timed directly (mean of {repeat} calls, no profiler)")
    for label, call in pieces:
        call()
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        print(f"{label:58}{1000 * (time.perf_counter() - start) / repeat:8.3f} ms")


def _trim_stats(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(line for line in lines[start:] if line.strip())


# --- command line -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres",
                        type=lambda s: [b for b in s.split(",") if b],
                        help="comma-separated: sqlite, postgres (default both)")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "SCANPATH_TEST_POSTGRES_URL", DEFAULT_PG), help="server whose schema "
        f"{PG_SCHEMA} is dropped and recreated (default $SCANPATH_TEST_POSTGRES_URL)")
    parser.add_argument("--configs", default="2x1", type=lambda s: [
        parse_config(c) for c in s.split(",")], help="gunicorn WORKERSxTHREADS to "
        "measure, comma-separated; 1 thread means sync workers (default 2x1, the best "
        "of 2x1, 4x1, 2x4, 3x2, 2x8 for ScanPath here; targets are judged on the first)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--patients", type=int, default=1,
                        help="Patients the ServiceRequests are spread over (default 1)")
    parser.add_argument("--processes", type=int, default=2,
                        help="load generator processes the clients are spread over")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds not measured")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--keep", action="store_true",
                        help="keep the databases and server logs (and the PG schema)")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="instead: N in-process POSTs under cProfile, on the first backend")
    parser.add_argument("--top", type=int, default=35, help="profile lines to print")
    args = parser.parse_args(argv)
    unknown = set(args.backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return profile(args) if args.profile else benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
