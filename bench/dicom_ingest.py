"""DICOM in: C-STORE ingest rate, and the time from the last image to the preliminary report.

The benchmark prepares a SQLite database in a temporary directory (migrated
and seeded with ``bench/_common.py``, as ``bench/fhir_intake.py`` does) and
runs ``python -m scanpath.cli serve`` on it as a subprocess, as ``make run``
does: gunicorn with 2 workers for the web and FHIR API, and in the serve
process the DICOM listener (``imaging_core.scp``) and the analysis worker
(``imaging_core.jobs.Worker``), with the default 5 s study idle window and
1 s worker poll.

1. **Ingest.** dcmtk's ``storescu`` sends a series of 512 x 512 uncompressed
   CT slices (``bench/_imaging_phantom.py``, a fresh StudyInstanceUID each
   time, so nothing is a duplicate) on one association, first to ScanPath's
   listener and then to dcmtk's own ``storescp`` writing to a temporary
   directory: the baseline, same files, same run, same client. images/s is
   the number of slices over storescu's wall time. ScanPath fsyncs every file
   and commits a row per instance before it answers; storescp does neither.
   Each run is done twice: with ``TCP_NODELAY=1`` for storescu and storescp
   (the baseline of record) and with dcmtk's defaults, which leave Nagle's
   algorithm on (storescp then stalls about 40 ms per image on delayed ACKs).
   Target: at least 100 images/s into ScanPath.
2. **Last image to report.** For 64 and 300 slices: a CT calcium scoring
   order is POSTed to the FHIR API, the phantom is sent with the order's
   accession number, and ``GET /fhir/DiagnosticReport?based-on=...`` is
   polled every 0.1 s. The latency runs from storescu's exit to the first
   answer that holds the report. The baseline is the idle window itself
   (5 s): a study is only analysed once no image has come for that long, so
   the latency minus 5 s is ScanPath's overhead. Target: under 15 s.
   Timestamps in the database split the latency into the idle window, the
   wait for the worker's next poll, the analysis, and the last poll.

Run: ``.venv/bin/python bench/dicom_ingest.py`` (about 2.5 minutes; ``make
bench`` does). Skips, with a message, when dcmtk's storescu or storescp is
missing (``make system-deps``). ``--profile-analysis SLICES`` instead runs one
analysis job in process, timed per stage and under cProfile. Results are in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import importlib
import inspect
import io
import json
import os
import pstats
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    Backend,
    free_port,
    machine,
    machine_busy,
    prepare,
    process_tree_cpu,
    revision,
    server_env,
    settings_for,
    tail,
    wait_healthy,
)
from _imaging_phantom import cardiac_phantom, write_series
from pydicom.uid import generate_uid
from sqlalchemy import text

from core.db import engine_for


def dcmtk_tool(name: str) -> str | None:
    """dcmtk's ``name`` on PATH; pynetdicom installs Python apps of the same names, skipped."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        found = shutil.which(name, path=directory)
        if found is None:
            continue
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            version = subprocess.run([found, "--version"], capture_output=True, text=True,
                                     timeout=10).stdout
            if "dcmtk" in version:
                return found
    return None


STORESCU, STORESCP = dcmtk_tool("storescu"), dcmtk_tool("storescp")
SCT = "http://snomed.info/sct"
CT_CAC = {"system": SCT, "code": "426005005", "display": "Cardiac CT for calcium scoring"}
TARGET_IMAGES_S = 100.0
TARGET_REPORT_S = 15.0
IDLE_S = 5.0  # core.settings.Settings.study_idle_seconds, the default kept here
AE_TITLE = "SCANPATH"


# --- servers ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Server:
    """A running ``scanpath serve``."""

    pid: int
    web_port: int
    dicom_port: int
    backend: Backend


@contextlib.contextmanager
def scanpath_serve(backend: Backend, var: Path, secret: str, log: Path) -> Iterator[Server]:
    """``python -m scanpath.cli serve`` on free loopback ports until the block ends."""
    env = server_env(backend, var, secret)
    web_port = free_port()
    env |= {"SCANPATH_PORT": str(web_port), "SCANPATH_WORKERS": "2"}
    with log.open("ab") as sink:
        # Its own session: SIGINT to the group stops serve (which stops the SCP and
        # the worker) and gunicorn together, as Ctrl-C does in a terminal.
        server = subprocess.Popen([sys.executable, "-m", "scanpath.cli", "serve"], cwd=ROOT,
                                  env=env, stdout=sink, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_healthy(web_port, server, log)
        dicom_port = int(env["SCANPATH_DICOM_PORT"])
        wait_listening(dicom_port, server, log)
        yield Server(server.pid, web_port, dicom_port, backend)
    finally:
        stop_group(server)


def wait_listening(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}):\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after 60 s:\n{tail(log)}")


def stop_group(server: subprocess.Popen[bytes]) -> None:
    """SIGINT to the process group the server leads; SIGKILL if it does not stop."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@contextlib.contextmanager
def storescp(directory: Path, log: Path, nodelay: bool) -> Iterator[tuple[int, int]]:
    """dcmtk's storescp writing to ``directory``; yields (port, pid)."""
    assert STORESCP
    port = free_port()
    with log.open("ab") as sink:
        server = subprocess.Popen([STORESCP, "-aet", "STORESCP", "-od", str(directory),
                                   str(port)], stdout=sink, stderr=subprocess.STDOUT,
                                  env=dcmtk_env(nodelay))
    try:
        wait_listening(port, server, log)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def dcmtk_env(nodelay: bool) -> dict[str, str]:
    """dcmtk as Debian builds it leaves Nagle's algorithm on unless TCP_NODELAY=1 is set."""
    env = {k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
    return env | {"TCP_NODELAY": "1"} if nodelay else env


def send(port: int, called_ae: str, files: list[Path], nodelay: bool = True) -> float:
    """storescu ``files`` on one association; its wall time in seconds. Fails loudly."""
    assert STORESCU
    start = time.perf_counter()
    done = subprocess.run([STORESCU, "-aec", called_ae, "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=600,
                          env=dcmtk_env(nodelay))
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "error" in done.stderr.lower():
        raise RuntimeError(f"storescu to {called_ae} failed ({done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    return elapsed


# --- 1. ingest ----------------------------------------------------------------------


@dataclasses.dataclass
class Ingest:
    seconds: float
    cpu: float  # CPU seconds of the receiving process tree
    busy: float  # share of the whole machine in use

    def rate(self, n: int) -> float:
        return n / self.seconds


def timed_ingest(port: int, called_ae: str, files: list[Path], pid: int,
                 nodelay: bool = True) -> Ingest:
    cpu0, (busy0, total0) = process_tree_cpu(pid), machine_busy()
    seconds = send(port, called_ae, files, nodelay)
    cpu1, (busy1, total1) = process_tree_cpu(pid), machine_busy()
    return Ingest(seconds, cpu1 - cpu0, (busy1 - busy0) / max(1, total1 - total0))


def stored_count(url: str, study_uid: str) -> int:
    with engine_for(url).connect() as connection:
        return int(connection.execute(text(
            "SELECT count(*) FROM dicom_instance WHERE study_uid = :uid"),
            {"uid": study_uid}).scalar_one())


def series(slices: int, directory: Path, accession: str) -> tuple[str, list[Path]]:
    """A fresh phantom series on disk: its StudyInstanceUID and files."""
    phantom = dataclasses.replace(cardiac_phantom(slices), study_uid=generate_uid(),
                                  accession=accession)
    directory.mkdir(parents=True)
    return phantom.study_uid, write_series(phantom, directory)


def ingest(server: Server, tmp: Path, slices: int, repeats: int) -> list[str]:
    print(f"\n== C-STORE ingest: storescu, {slices} slices 512 x 512 uncompressed CT "
          f"(about {slices * 0.53:.0f} MB) on one association; {repeats} runs, alternating")
    print("TCP_NODELAY=1: dcmtk with Nagle's algorithm off (storescu, and storescp as the "
          "baseline);\ndefault: dcmtk as Debian ships it, Nagle on (a 40 ms delayed-ACK "
          "stall per image on storescp's 2-write C-STORE response)")
    print(f"{'run':>4} {'storescu':<13}{'ScanPath img/s':>15}{'CPU ms/img':>11}{'busy':>6}"
          f"{'storescp img/s':>16}{'CPU ms/img':>11}{'busy':>6}{'ratio':>7}")
    rates: dict[tuple[str, bool], list[float]] = {}
    for run in range(1, repeats + 1):
        for nodelay in (True, False):
            mine, base = ingest_once(server, tmp, slices, f"{run}{'n' if nodelay else 'd'}",
                                     nodelay)
            rates.setdefault(("ScanPath", nodelay), []).append(mine.rate(slices))
            rates.setdefault(("storescp", nodelay), []).append(base.rate(slices))
            print(f"{run:4d} {'TCP_NODELAY=1' if nodelay else 'default':<13}"
                  f"{mine.rate(slices):15.1f}{1000 * mine.cpu / slices:11.2f}{mine.busy:6.0%}"
                  f"{base.rate(slices):16.1f}{1000 * base.cpu / slices:11.2f}{base.busy:6.0%}"
                  f"{mine.rate(slices) / base.rate(slices):7.2f}")
    for nodelay in (True, False):
        ours, theirs = rates["ScanPath", nodelay], rates["storescp", nodelay]
        print(f"{'TCP_NODELAY=1' if nodelay else 'default':<14} median images/s: ScanPath "
              f"{median(ours):.1f}, storescp {median(theirs):.1f}, ratio "
              f"{median(ours) / median(theirs):.2f}")
    ours = rates["ScanPath", True]
    if median(ours) < TARGET_IMAGES_S:
        return [f"ingest: median {median(ours):.1f} images/s < {TARGET_IMAGES_S:g}"]
    return []


def ingest_once(server: Server, tmp: Path, slices: int, tag: str,
                nodelay: bool) -> tuple[Ingest, Ingest]:
    """The same fresh series into ScanPath, then into storescp; checks both kept it all."""
    study_uid, files = series(slices, tmp / f"ingest-{tag}", f"BENCHINGEST{tag}")
    mine = timed_ingest(server.dicom_port, AE_TITLE, files, server.pid, nodelay)
    kept = stored_count(server.backend.url, study_uid)
    if kept != slices:
        raise RuntimeError(f"ScanPath kept {kept} of {slices} instances")
    out = tmp / f"storescp-{tag}"
    out.mkdir()
    with storescp(out, tmp / "storescp.log", nodelay) as (port, pid):
        base = timed_ingest(port, "STORESCP", files, pid, nodelay)
    written = len(list(out.iterdir()))
    if written != slices:
        raise RuntimeError(f"storescp wrote {written} of {slices} files")
    shutil.rmtree(tmp / f"ingest-{tag}")
    shutil.rmtree(out)
    return mine, base


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- 2. last image to report --------------------------------------------------------


def fhir(server: Server, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.web_port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {server.backend.token}",
                 "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def order_body(backend: Backend) -> dict[str, Any]:
    """A CT calcium scoring order for the prepared Patient."""
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": f"Patient/{backend.patient_ids[0]}"},
            "category": [{"coding": [{"system": SCT, "code": "363679005"}]}],
            "code": {"coding": [CT_CAC]}}


def accession_of(created: dict[str, Any]) -> str:
    return next(i["value"] for i in created.get("identifier", [])
                if i.get("type", {}).get("coding", [{}])[0].get("code") == "ACSN")


def order(server: Server) -> tuple[str, str]:
    """POST a CT calcium scoring order; its id and accession number."""
    created = fhir(server, "POST", "/fhir/ServiceRequest", order_body(server.backend))
    return created["id"], accession_of(created)


@dataclasses.dataclass
class Latency:
    slices: int
    send_s: float
    report_s: float  # storescu's exit to the report seen
    phases: dict[str, float]


def last_image_to_report(server: Server, tmp: Path, slices: int, run: int,
                         timeout: float) -> Latency:
    order_id, accession = order(server)
    study_uid, files = series(slices, tmp / f"report-{slices}-{run}", accession)
    send_s = send(server.dicom_port, AE_TITLE, files)
    sent = time.monotonic()
    sent_wall = datetime.now(UTC)
    query = f"/fhir/DiagnosticReport?based-on=ServiceRequest/{order_id}"
    while time.monotonic() - sent < timeout:
        found = fhir(server, "GET", query)
        if found.get("total"):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"no DiagnosticReport {timeout:g} s after the last image "
                           f"({slices} slices)")
    seen = time.monotonic() - sent
    shutil.rmtree(tmp / f"report-{slices}-{run}")
    published = found["entry"][0]["resource"]["meta"]["lastUpdated"]
    return Latency(slices, send_s, seen, phases(server.backend.url, study_uid, sent_wall,
                                                published, seen))


def phases(url: str, study_uid: str, sent: datetime, published: str,
           seen: float) -> dict[str, float]:
    """Split the latency with the database's timestamps (seconds after storescu's exit)."""
    with engine_for(url).connect() as connection:
        last = connection.execute(text(
            "SELECT last_received_at FROM received_study WHERE study_uid = :uid"),
            {"uid": study_uid}).scalar_one()
        queued_at = connection.execute(text(
            "SELECT created_at FROM analysis_job WHERE study_uid = :uid"),
            {"uid": study_uid}).scalar_one()

    def after(moment: datetime | str) -> float:
        if isinstance(moment, str):  # SQLite hands back text, FHIR instants end in Z
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - sent).total_seconds()

    idle_end = after(last) + IDLE_S
    queued, done = after(queued_at), after(published)
    return {"last image stored": after(last), "idle window": IDLE_S,
            "wait for the worker's poll": queued - idle_end, "analysis and publication":
            done - queued, "until a GET saw it": seen - done}


def report_latency(server: Server, tmp: Path, sizes: list[int], repeats: int,
                   timeout: float) -> list[str]:
    print(f"\n== Last image to preliminary DiagnosticReport: idle window {IDLE_S:g} s "
          f"(the baseline), worker poll 1 s; {repeats} run(s) per size")
    print(f"{'slices':>6}{'run':>4}{'storescu s':>11}{'report s':>10}{'over idle s':>12}"
          f"{'ratio to idle':>14}   split (s after storescu exit)")
    misses = []
    for slices in sizes:
        worst = 0.0
        for run in range(1, repeats + 1):
            result = last_image_to_report(server, tmp, slices, run, timeout)
            worst = max(worst, result.report_s)
            split = ", ".join(f"{k} {v:.2f}" for k, v in result.phases.items())
            print(f"{slices:6d}{run:4d}{result.send_s:11.2f}{result.report_s:10.2f}"
                  f"{result.report_s - IDLE_S:12.2f}{result.report_s / IDLE_S:14.2f}   {split}")
        if worst >= TARGET_REPORT_S:
            misses.append(f"{slices} slices: report {worst:.1f} s >= {TARGET_REPORT_S:g}")
    return misses


# --- profile of one analysis -------------------------------------------------------

# Pieces of an analysis job: (label, module, function), as the job looks them up.
PHASES = [
    ("run_job (claim, analyse, publish, finish)", "imaging_core.jobs", "run_job"),
    ("  read the study's files (dcmread)", "imaging_core.results", "_datasets"),
    ("  load_volumes (sort, HU volume)", "imaging_core.results", "load_volumes"),
    ("  calcium.score", "imaging_core.calcium", "score"),
    ("  calcium_mesh", "imaging_core.results", "calcium_mesh"),
    ("  context_mesh", "imaging_core.results", "context_mesh"),
    ("  to_glb", "imaging_core.results", "to_glb"),
    ("  key_images", "imaging_core.results", "key_images"),
    ("  reports.build_pdf", "imaging_core.reports", "build_pdf"),
    ("  reports.build_sr (TID 1500 SR)", "imaging_core.reports", "build_sr"),
    ("  reports.build_seg (SEG)", "imaging_core.reports", "build_seg"),
    ("  publish (FHIR resources, derived instances)", "imaging_core.results", "publish"),
    ("    store_instance (SR, SEG encoded, written, indexed)", "imaging_core.results",
     "store_instance"),
]


@contextlib.contextmanager
def phase_timers() -> Iterator[dict[str, float]]:
    """Wrap every PHASES function with a wall-clock timer while the block runs."""
    import functools

    spent: dict[str, float] = {}
    saved = []
    for label, module_name, attr in PHASES:
        module = importlib.import_module(module_name)
        original = getattr(module, attr)

        def timed(*args: Any, _f: Any = original, _label: str = label, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - start

        saved.append((module, attr, original))
        setattr(module, attr, functools.wraps(original)(timed))
    try:
        yield spent
    finally:
        for module, attr, original in reversed(saved):
            setattr(module, attr, original)


def profile_analysis(slices: int, top: int) -> int:
    """One CT-CAC job of ``slices`` slices run in process: timed, then under cProfile."""
    from datetime import timedelta

    from sqlmodel import Session

    from fhir.dates import now_utc
    from imaging_core import jobs, results
    from imaging_core.storage import receive
    from scanpath.app import create_app

    print(f"machine: {machine()}\ncode: {revision()}")
    secret = secrets.token_urlsafe(48)
    results.register()
    with tempfile.TemporaryDirectory(prefix="scanpath-analysis-profile-") as name:
        tmp = Path(name)
        var = tmp / "var"
        backend = prepare("sqlite", f"sqlite:///{tmp / 'scanpath.db'}", var, secret, 1)
        settings = settings_for(backend.url, var, secret)
        client = create_app(settings).test_client()
        timings: list[float] = []
        for run in ("profiled", "timed"):  # the timed run is the warm one
            response = client.post("/fhir/ServiceRequest", json=order_body(backend), headers={
                "Authorization": f"Bearer {backend.token}"})
            accession = accession_of(response.get_json())
            _, files = series(slices, tmp / run, accession)
            for path in files:
                receive(settings, path.read_bytes(), "c-store", "BENCH")
            with Session(engine_for(backend.url)) as session:
                queued = jobs.schedule(session, settings, now_utc() + timedelta(seconds=60))
                session.commit()
            if len(queued) != 1:
                raise RuntimeError(f"expected one analysis job, got {queued}")
            start = time.perf_counter()
            if run == "timed":
                with phase_timers() as direct:
                    job = jobs.run_job(settings, "bench", queued[0])
            else:
                profiler = cProfile.Profile()
                job = profiler.runcall(jobs.run_job, settings, "bench", queued[0])
            timings.append(time.perf_counter() - start)
            if job is None or job.status != "done":
                raise RuntimeError(f"the job did not finish: {job}")
    print(f"\none CT-CAC analysis job of {slices} slices, in process: {timings[1]:.2f} s "
          f"timed directly (warm), {timings[0]:.2f} s under cProfile (first job)")
    stats = pstats.Stats(profiler)
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cumulative(module_name: str, attr: str) -> float:
        code = inspect.unwrap(getattr(importlib.import_module(module_name), attr)).__code__
        return sum(row[3] for (file, line, name), row in table.items()
                   if file == code.co_filename and line == code.co_firstlineno
                   and name == code.co_name)

    whole, profiled_whole = direct[PHASES[0][0]], cumulative(*PHASES[0][1:])
    print("-- where the job's time goes (indented rows are inside the row above)")
    print(f"{'':56}{'timed directly':>16}{'under cProfile':>16}")
    for label, module_name, func in PHASES:
        profiled = cumulative(module_name, func)
        print(f"{label:56}{direct.get(label, 0.0):9.2f} s{direct.get(label, 0.0) / whole:5.0%}"
              f"{profiled:10.2f} s{profiled / profiled_whole:5.0%}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
    print(f"\n-- top {top} by cumulative time")
    print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()))
    return 0


# --- the benchmark ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300, help="slices per ingest run")
    parser.add_argument("--repeats", type=int, default=3, help="ingest runs")
    parser.add_argument("--report-sizes", default="64,300",
                        type=lambda s: [int(n) for n in s.split(",") if n],
                        help="series sizes for the report latency ('' to skip)")
    parser.add_argument("--report-repeats", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="seconds to wait for a report")
    parser.add_argument("--profile-analysis", type=int, metavar="SLICES", default=0,
                        help="instead: run one analysis job of SLICES slices in process, "
                        "timed and under cProfile (no dcmtk needed)")
    parser.add_argument("--top", type=int, default=30, help="profile lines to print")
    args = parser.parse_args(argv)
    if args.profile_analysis:
        return profile_analysis(args.profile_analysis, args.top)
    missing = [name for name, path in (("storescu", STORESCU), ("storescp", STORESCP))
               if path is None]
    if missing:
        print(f"skipped: dcmtk's {' and '.join(missing)} not installed "
              "(Debian package dcmtk: make system-deps)")
        return 0
    print(f"machine: {machine()}\ncode: {revision()}")
    secret = secrets.token_urlsafe(48)
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="scanpath-dicom-bench-") as name:
        tmp = Path(name)
        var = tmp / "var"
        backend = prepare("sqlite", f"sqlite:///{tmp / 'scanpath.db'}", var, secret, 1)
        try:
            with scanpath_serve(backend, var, secret, tmp / "serve.log") as server:
                print(f"scanpath serve: SQLite, web :{server.web_port}, "
                      f"DICOM :{server.dicom_port}")
                if args.repeats:
                    misses += ingest(server, tmp, args.slices, args.repeats)
                if args.report_sizes:
                    misses += report_latency(server, tmp, args.report_sizes,
                                             args.report_repeats, args.timeout)
        except Exception:
            print(f"\nserve log (tail):\n{tail(tmp / 'serve.log')}", file=sys.stderr)
            raise
    print("\ntargets: " + ("all met" if not misses else "; ".join(misses)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
