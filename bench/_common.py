"""Helpers shared by the HTTP benchmarks: fhir_intake, cds_roundtrip and dicom_ingest.

- a closed-loop load generator: keep-alive clients on raw sockets, spread over
  processes, counting only responses completed inside the measured window;
- CPU accounting from ``/proc`` (gunicorn's process tree, the whole machine);
- serving a WSGI app under gunicorn on a free loopback port until healthy;
- preparing a database as ``scanpath db upgrade`` and ``scanpath seed`` do,
  with Patients and a ``demo-gp`` token;
- the machine and code description printed at the top of every run.

Not a benchmark itself: ``make bench`` skips ``bench/_*.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import json
import math
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import core  # noqa: F401  (first: makes the project's ``fhir`` package resolvable)
from core.db import engine_for

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PG_SCHEMA = "scanpath_bench"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
# NHS number 9434765919 passes the modulus 11 check.
PATIENT = {"resourceType": "Patient",
           "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                           "value": "9434765919"}],
           "name": [{"family": "Smith", "given": ["Alex"]}],
           "gender": "female", "birthDate": "1968-04-02"}


# --- the load generator -------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What every client sends, and when it counts."""

    port: int
    requests: tuple[bytes, ...]  # sent in turn, one per patient
    clients: int
    processes: int
    warmup: float
    duration: float


@dataclass
class Tally:
    """Latencies (seconds) of responses completed inside the measured window."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0  # connection errors and malformed responses, anywhere in the run
    sample: str = ""  # the first unexpected response, for diagnosis
    cpu_seconds: float = 0.0  # the load generator's own CPU time

    def merge(self, other: Tally) -> None:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.failures += other.failures
        self.sample = self.sample or other.sample
        self.cpu_seconds += other.cpu_seconds


def http_request(port: int, path: str, token: str | None,
                 body: dict[str, Any] | None) -> bytes:
    """One keep-alive HTTP/1.1 request, serialised once and sent many times.

    A POST of ``body`` as JSON, or a GET when ``body`` is None.
    """
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    method = "GET" if body is None else "POST"
    headers = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
               "Accept: application/fhir+json", "Connection: keep-alive"]
    if body is not None:
        headers += ["Content-Type: application/fhir+json", f"Content-Length: {len(payload)}"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


class Connection:
    """A minimal HTTP/1.1 client on one socket: cheap enough not to starve the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request``; return the status and the body of its response."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(request)
        head, body = self._read_head()
        status = int(head[9:12])
        headers = head.lower()
        length = _content_length(headers)
        while len(body) < length:
            body += self._recv()
        if b"\r\nconnection: close" in headers:
            self.close()  # gunicorn's sync workers answer one request per connection
        return status, body

    def _read_head(self) -> tuple[bytes, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _content_length(headers: bytes) -> int:
    start = headers.find(b"\r\ncontent-length:")
    if start < 0:
        raise ValueError("response without Content-Length")
    end = headers.find(b"\r\n", start + 2)
    return int(headers[start + 17:end if end > 0 else None])


def run_client(load: Load, start: float, tally: Tally, expected: int, first: int) -> None:
    """One client: POST back to back until the window closes."""
    measure_from, stop_at = start + load.warmup, start + load.warmup + load.duration
    connection = Connection(load.port)
    requests = itertools.cycle(load.requests[first:] + load.requests[:first])
    while (now := time.monotonic()) < stop_at:
        try:
            status, body = connection.exchange(next(requests))
        except (OSError, ValueError) as exc:
            connection.close()
            tally.failures += 1
            tally.sample = tally.sample or f"{type(exc).__name__}: {exc}"
            time.sleep(0.01)
            continue
        done = time.monotonic()
        if measure_from <= done < stop_at:
            tally.latencies.append(done - now)
            tally.statuses[status] += 1
        if status != expected and not tally.sample:
            tally.sample = f"HTTP {status}: {body[:300]!r}"
    connection.close()


def client_process(load: Load, clients: range, start: float, expected: int,
                   results: Any) -> None:
    """Some of the clients in one process; puts their merged :class:`Tally` on ``results``."""
    cpu = time.process_time()
    tallies = [Tally() for _ in clients]
    workers = [threading.Thread(target=run_client, args=(
        load, start, tally, expected, client % len(load.requests)))
        for client, tally in zip(clients, tallies, strict=True)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = Tally(cpu_seconds=time.process_time() - cpu)
    for tally in tallies:
        total.merge(tally)
    results.put(total)


def drive(load: Load, expected: int, started: Callable[[float], None]) -> Tally:
    """Run the load from ``load.processes`` processes and gather one tally.

    ``started(start)`` is called once every process is forked (threads are
    safe to start then), with the monotonic time the clients start at.
    """
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start = time.monotonic() + 0.2  # let every process start before the clock runs
    processes = [context.Process(target=client_process, args=(
        load, range(i, load.clients, load.processes), start, expected, results))
        for i in range(min(load.processes, load.clients))]
    for process in processes:
        process.start()
    started(start)
    total = Tally()
    for _ in processes:
        total.merge(results.get(timeout=load.warmup + load.duration + 120))
    for process in processes:
        process.join(timeout=10)
    return total


# --- CPU accounting -----------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (gunicorn master and workers)."""
    total = 0.0
    for task in _children(pid) + [pid]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{task}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return total


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def machine_busy() -> tuple[float, float]:
    """``(busy, total)`` CPU ticks of the whole machine so far (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


# --- serving ------------------------------------------------------------------------


@dataclass(frozen=True)
class Gunicorn:
    """A gunicorn configuration, the same for ScanPath and the baseline."""

    workers: int
    threads: int

    def args(self) -> list[str]:
        worker_class = "gthread" if self.threads > 1 else "sync"
        return ["--workers", str(self.workers), "--threads", str(self.threads),
                "--worker-class", worker_class, "--keep-alive", "30",
                "--backlog", "128", "--log-level", "warning", "--graceful-timeout", "5"]

    def __str__(self) -> str:
        kind = f"gthread x {self.threads} threads" if self.threads > 1 else "sync"
        return f"{self.workers} workers, {kind}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(app: str, chdir: Path, env: dict[str, str], config: Gunicorn,
            log: Path) -> Iterator[tuple[int, int]]:
    """Run gunicorn on a free loopback port until the block ends; yields (port, pid)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", app, "--chdir", str(chdir),
               "--bind", f"127.0.0.1:{port}", *config.args()]
    with log.open("ab") as sink:
        server = subprocess.Popen(command, env={**env, "SCANPATH_PORT": str(port)},
                                  stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, server, log)
        yield port, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_healthy(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({server.returncode}):\n{tail(log)}")
        with contextlib.suppress(OSError, ValueError):
            connection = Connection(port)
            status, _ = connection.exchange(request)
            connection.close()
            if status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz in 90 s:\n{tail(log)}")


def tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


# --- one measured run ---------------------------------------------------------------


@dataclass
class Result:
    """One application's numbers under load."""

    name: str
    tally: Tally
    duration: float
    warmup: float
    server_cpu: float  # CPU seconds of gunicorn's processes in the window
    busy: float  # share of the machine's CPU in use during the window

    @property
    def count(self) -> int:
        return len(self.tally.latencies)

    @property
    def rps(self) -> float:
        return self.count / self.duration

    @property
    def client_cpu(self) -> float:
        # Measured over the whole run, warm-up included; scaled to the window.
        return self.tally.cpu_seconds * self.duration / (self.duration + self.warmup)

    @property
    def rest_cpu(self) -> float:
        """CPU used by everything else: the database server, the kernel, other tenants."""
        return self.busy * (os.cpu_count() or 1) * self.duration - self.server_cpu \
            - self.client_cpu

    def per_request_ms(self, cpu_seconds: float) -> float:
        return 1000 * cpu_seconds / self.count if self.count else math.nan

    def percentile_ms(self, share: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        ordered = sorted(self.tally.latencies)
        if not ordered:
            return math.nan
        return 1000 * ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    def errors(self, expected: int) -> int:
        wrong = sum(n for status, n in self.tally.statuses.items() if status != expected)
        return wrong + self.tally.failures


@dataclass(frozen=True)
class App:
    """An application to serve: gunicorn target, directory, request path, body."""

    name: str
    target: str
    chdir: Path
    path: str
    bodies: tuple[dict[str, Any], ...]
    token: str | None


def measure(app: App, env: dict[str, str], config: Gunicorn, args: argparse.Namespace,
            log: Path) -> Result:
    """Serve ``app`` and put it under load (``args``: clients, processes, warmup, duration)."""
    with serving(app.target, app.chdir, env, config, log) as (port, pid):
        requests = tuple(http_request(port, app.path, app.token, body) for body in app.bodies)
        return put_under_load(app.name, pid, Load(port, requests, args.clients, args.processes,
                                                  args.warmup, args.duration), expected=201)


def put_under_load(name: str, pid: int, load: Load, expected: int) -> Result:
    """Drive ``load`` against a running server whose process tree is ``pid``."""
    sampler = _CpuSampler(pid, load)
    tally = drive(load, expected=expected, started=sampler.start_at)
    sampler.join()
    return Result(name, tally, load.duration, load.warmup, sampler.server_cpu, sampler.busy)


class _CpuSampler(threading.Thread):
    """Server and machine CPU over the measured window only."""

    def __init__(self, pid: int, load: Load) -> None:
        super().__init__(daemon=True)
        self.pid, self.load = pid, load
        self.server_cpu, self.busy = math.nan, math.nan
        self.begin = math.inf

    def start_at(self, start: float) -> None:
        """Sample the window that opens ``load.warmup`` seconds after ``start``."""
        self.begin = start + self.load.warmup
        self.start()

    def run(self) -> None:
        time.sleep(max(0.0, self.begin - time.monotonic()))
        cpu0, (busy0, total0) = process_tree_cpu(self.pid), machine_busy()
        time.sleep(self.load.duration)
        cpu1, (busy1, total1) = process_tree_cpu(self.pid), machine_busy()
        self.server_cpu = cpu1 - cpu0
        self.busy = (busy1 - busy0) / max(1, total1 - total0)


# --- databases ----------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """A prepared database: its URL, the patients, and the token to use."""

    name: str
    url: str
    patient_ids: tuple[str, ...]
    token: str


def settings_for(url: str, var_dir: Path, secret: str) -> Any:
    from core.settings import Settings

    return Settings(database_url=url, var_dir=var_dir, env="production", secret_key=secret,
                    log_level="WARNING")


def prepare(name: str, url: str, var_dir: Path, secret: str, patients: int) -> Backend:
    """Migrate, seed the demo clients, create the Patients, mint a demo-gp token."""
    from _baseline_app import create_table
    from sqlmodel import Session

    from auth.clients import issue_token_for
    from fhir.store import Store
    from scanpath.migrate import upgrade

    settings = settings_for(url, var_dir, secret)
    upgrade(settings)
    engine = engine_for(url)
    with Session(engine) as session:
        _seed(session, settings)
        store = Store(session, settings)
        ids = tuple(store.create("Patient", PATIENT).resource["id"] for _ in range(patients))
        session.commit()
        token = issue_token_for(session, settings, "demo-gp")
    create_table(engine)
    engine.dispose()
    return Backend(name, url, ids, token)


def _seed(session: Any, settings: Any) -> None:
    """What ``scanpath seed`` installs: the demo clients, and rule packs where they exist."""
    from auth.clients import seed_demo_clients

    # The servers run as production, where ``scanpath seed`` installs no demo clients
    # and disables those it finds (issue 9), so the benchmark asks for them; older
    # trees take them either way.
    seed_demo_clients(session, settings)
    try:
        from scanpath.seed import seed_all
    except ImportError:  # the FHIR spine before the rules engine: clients only
        return
    if "demo_clients" in inspect.signature(seed_all).parameters:
        seed_all(session, settings, demo_clients=True)
    else:
        seed_all(session, settings)


def fresh_postgres(base: str) -> str:
    """Drop and recreate ``scanpath_bench``; the URL that uses it."""
    from sqlalchemy import create_engine, text

    from core.db import normalise_url

    admin = create_engine(normalise_url(base))
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
    admin.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{PG_SCHEMA}"


def drop_postgres(base: str) -> None:
    from sqlalchemy import create_engine, text

    from core.db import normalise_url

    admin = create_engine(normalise_url(base))
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
    admin.dispose()


def server_env(backend: Backend, var_dir: Path, secret: str) -> dict[str, str]:
    """The environment of both servers: this run's database and secret, nothing inherited."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SCANPATH_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**env, "SCANPATH_DATABASE_URL": backend.url, "SCANPATH_VAR_DIR": str(var_dir),
            "SCANPATH_SECRET_KEY": secret, "SCANPATH_ENV": "production",
            "SCANPATH_HOST": "127.0.0.1", "SCANPATH_DICOM_PORT": str(free_port())}




# --- reporting ----------------------------------------------------------------------


def revision() -> str:
    """The code measured: its directory and git revision, if any."""
    try:
        described = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                   capture_output=True, text=True, timeout=10, check=True)
        return f"{ROOT} at {described.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return f"{ROOT} (not a git checkout)"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}); load average {load}; "
            f"Python {platform.python_version()}, gunicorn {version('gunicorn')}, "
            f"Flask {version('flask')}, SQLAlchemy {version('sqlalchemy')}")


def parse_config(text: str) -> Gunicorn:
    """``WORKERSxTHREADS``, e.g. ``2x4``."""
    workers, _, threads = text.partition("x")
    return Gunicorn(int(workers), int(threads or 1))
