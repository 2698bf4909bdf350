"""ScanPath under its real server (gunicorn with ``scanpath.gunicorn_conf``) on loopback:
request limits answered as OperationOutcomes, chunked bodies bounded, no patient data in
the logs, workers that die with their master, and a clear refusal to start on a taken port.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from tests.conftest import _settings, children, free_port

NHS_NUMBER = "9434765919"
SCRIPT = Path(sys.executable).parent / "scanpath"




@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    token: str

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                chunks: list[bytes] | None = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            if chunks is not None:  # Transfer-Encoding: chunked, no Content-Length
                connection.request(method, path, body=iter(chunks), headers=headers or {},
                                   encode_chunked=True)
            else:
                connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def _environment(tmp_path: Path, template: Path, keys_dir: Path) -> dict[str, str]:
    database = tmp_path / "scanpath.db"
    shutil.copy(template, database)
    return {**os.environ, "SCANPATH_DATABASE_URL": f"sqlite:///{database}",
            "SCANPATH_VAR_DIR": str(keys_dir), "SCANPATH_ENV": "test",
            "SCANPATH_PUBLIC_BASE_URL": "http://localhost", "SCANPATH_LOG_LEVEL": "INFO"}


def _start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--chdir", str(PROJECT_ROOT),
             "--workers", "2", "--bind", f"127.0.0.1:{port}",
             "--config", "python:scanpath.gunicorn_conf"],
            env=env, stdout=sink, stderr=subprocess.STDOUT)


def _wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn exited before serving"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"gunicorn did not serve on port {port}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path,
           keys_dir: Path) -> Iterator[Server]:
    from sqlmodel import Session

    from auth.clients import issue_token_for
    from core.db import engine_for

    tmp_path = tmp_path_factory.mktemp("gunicorn")
    env = _environment(tmp_path, sqlite_template, keys_dir)
    settings = _settings(env["SCANPATH_DATABASE_URL"], keys_dir)
    with Session(engine_for(settings.database_url)) as session:
        token = issue_token_for(session, settings, "demo-admin")
    port, log = free_port(), tmp_path / "gunicorn.log"
    process = _start_gunicorn(env, port, log)
    try:
        _wait_until_serving(port, process)
        yield Server(process, port, log, token)
    finally:
        _stop(process)


def _outcome(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, body[:300]
    assert headers["Content-Type"].startswith("application/fhir+json")
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] in ("error", "fatal")
    return outcome


def _patient(size: int) -> bytes:
    """A Patient whose JSON is ``size`` bytes or a little more (a long text narrative)."""
    text = "x" * size
    return json.dumps({"resourceType": "Patient", "name": [{"family": "Chunk"}],
                       "text": {"status": "generated",
                                "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{text}</div>'}
                       }).encode()


def _chunks(body: bytes, size: int = 16 * 1024) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


def test_a_chunked_body_over_the_limit_is_413_on_every_route(server: Server):
    limit = 2 * 1024 * 1024  # SCANPATH_MAX_BODY_BYTES, its default
    body = _patient(limit + 10)
    fhir_headers = {"Authorization": f"Bearer {server.token}",
                    "Content-Type": "application/fhir+json"}
    for path, headers in (("/fhir/Patient", fhir_headers),
                          ("/fhir", fhir_headers),
                          ("/cds-services/imaging-order-select", fhir_headers),
                          ("/auth/token",
                           {"Content-Type": "application/x-www-form-urlencoded"})):
        payload = body if path != "/auth/token" else b"grant_type=" + b"x" * (limit + 10)
        status, got, answer = server.request("POST", path, headers=headers,
                                             chunks=_chunks(payload))
        assert _outcome(status, got, answer, 413)["issue"][0]["code"] == "too-costly", path

    before = server.request("GET", "/fhir/Patient?family=Chunk",
                            headers=fhir_headers)
    assert json.loads(before[2]).get("total", 0) == 0  # nothing truncated was stored


def _raw_chunked(port: int, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` as the raw chunked framing given, then half-close; (status, body)."""
    media = 'multipart/related; type="application/dicom"; boundary=b' \
        if path.startswith("/dicomweb") else "application/fhir+json"
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {media}\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head + body)
        connection.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: connection.recv(65536), b""))
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("framing", [b"ZZZ\r\nabc\r\n0\r\n\r\n",  # a chunk size that is no hex
                                     b"64\r\nabc",  # cut short inside a chunk
                                     b"3\r\nabc\r\n"])  # no last chunk
def test_a_malformed_or_cut_chunked_body_is_400_on_every_route(server: Server, framing: bytes):
    for path in ("/fhir/Patient", "/fhir", "/cds-services/imaging-order-select",
                 "/auth/token", "/dicomweb/studies"):
        status, body = _raw_chunked(server.port, path, server.token, framing)
        assert status == 400, (path, body[:300])
        assert json.loads(body)["resourceType"] == "OperationOutcome", path


def test_a_chunked_body_under_the_limit_is_read_whole(server: Server):
    body = _patient(100_000)
    status, _headers, answer = server.request(
        "POST", "/fhir/Patient", chunks=_chunks(body),
        headers={"Authorization": f"Bearer {server.token}",
                 "Content-Type": "application/fhir+json"})

    assert status == 201, answer[:300]
    assert json.loads(answer)["text"]["div"] == json.loads(body)["text"]["div"]


def test_an_over_long_url_or_header_gets_an_operation_outcome(server: Server):
    long_url = "/fhir/Patient?name=" + "a" * 9000
    _outcome(*server.request("GET", long_url), 414)
    big_header = {"X-Padding": "b" * 9000}
    _outcome(*server.request("GET", "/fhir/metadata", headers=big_header), 431)
    many = {f"X-Header-{n}": "c" for n in range(150)}
    _outcome(*server.request("GET", "/fhir/metadata", headers=many), 431)


def test_logs_name_the_parameters_but_never_their_values(server: Server):
    headers = {"Authorization": f"Bearer {server.token}"}
    server.request("GET", f"/fhir/Patient?identifier={NHS_NUMBER}&family=Smithson",
                   headers=headers)
    server.request("GET", "/fhir/Patient?name=" + "q" * 9000 + NHS_NUMBER)  # refused line

    log = _log_once_it_holds(server.log, "/fhir/Patient?identifier&family")
    assert NHS_NUMBER not in log and "Smithson" not in log


def _log_once_it_holds(path: Path, text: str) -> str:
    """The log, once ``text`` is in it: a worker writes its access line after the answer."""
    deadline = time.monotonic() + 30
    while text not in (log := path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert text in log, log[-2000:]
    return log


def test_workers_die_with_a_killed_master_and_the_port_is_free_again(
        tmp_path: Path, sqlite_template: Path, keys_dir: Path):
    env = _environment(tmp_path, sqlite_template, keys_dir)
    port, log = free_port(), tmp_path / "gunicorn.log"
    master = _start_gunicorn(env, port, log)
    stop = threading.Event()
    load = [threading.Thread(target=_hammer, args=(port, stop), daemon=True) for _ in range(8)]
    try:
        _wait_until_serving(port, master)
        for thread in load:  # under load a sync worker never looks up from accept()
            thread.start()
        os.kill(master.pid, signal.SIGKILL)
        master.wait()
        _wait_until_port_free(port)
        stop.set()
        again = _start_gunicorn(env, port, log)
        try:
            _wait_until_serving(port, again)
            assert again.poll() is None
        finally:
            _stop(again)
    finally:
        stop.set()
        for thread in load:
            if thread.is_alive():
                thread.join(timeout=10)
        _stop(master)


def _hammer(port: int, stop: threading.Event) -> None:
    """Requests to ``/healthz`` one after another until ``stop``; failures ignored."""
    while not stop.is_set():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
        except OSError:
            time.sleep(0.01)


def _wait_until_port_free(port: int) -> None:
    """Wait (at most 10 s) until nothing accepts connections on ``port``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except OSError:
            return
        time.sleep(0.1)
    raise AssertionError(f"port {port} still answers after the master was killed: "
                         "orphaned workers hold it")


@pytest.mark.parametrize("taken", ["SCANPATH_PORT", "SCANPATH_DICOM_PORT"])
def test_serve_says_in_one_line_why_it_cannot_bind(taken: str, tmp_path: Path,
                                                   sqlite_template: Path, keys_dir: Path):
    env = _environment(tmp_path, sqlite_template, keys_dir)
    ports = {"SCANPATH_PORT": free_port(), "SCANPATH_DICOM_PORT": free_port()}
    env.update({name: str(port) for name, port in ports.items()}, SCANPATH_HOST="127.0.0.1")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[taken]))
        holder.listen()
        command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scanpath.cli"]
        done = subprocess.run([*command, "serve"], env=env, capture_output=True, text=True,
                              timeout=60, check=False)

    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines()
             if not line.startswith("scanpath: warning:")]
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{ports[taken]}" in lines[0] and taken in lines[0]
    assert "in use" in lines[0]


def test_a_killed_serve_frees_the_web_and_dicom_ports_for_a_restart(
        tmp_path: Path, sqlite_template: Path, keys_dir: Path):
    env = _environment(tmp_path, sqlite_template, keys_dir)
    ports = {"SCANPATH_PORT": free_port(), "SCANPATH_DICOM_PORT": free_port()}
    env.update({name: str(port) for name, port in ports.items()}, SCANPATH_HOST="127.0.0.1",
               SCANPATH_VAR_DIR=str(tmp_path / "var"), SCANPATH_WORKERS="1")
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scanpath.cli"]
    log = tmp_path / "serve.log"
    first = _serve(command, env, log)
    try:
        for port in ports.values():
            _wait_until_serving(port, first)
        os.kill(first.pid, signal.SIGKILL)  # no handler runs: only the kernel cleans up
        first.wait()
        for port in ports.values():
            _wait_until_port_free(port)
        again = _serve(command, env, log)
        try:
            for port in ports.values():
                _wait_until_serving(port, again)
            [master] = children(again.pid)  # gunicorn's master dies: serve says so and ends
            os.kill(master, signal.SIGKILL)
            assert again.wait(timeout=60) == 1
            assert "the web server (gunicorn) was killed by signal 9" in log.read_text()
        finally:
            _stop(again)
    finally:
        _stop(first)


def _serve(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen([*command, "serve"], env=env, stdout=sink,
                                stderr=subprocess.STDOUT)


def test_a_forwarded_proto_header_is_not_trusted(server: Server):
    """``X-Forwarded-*`` is trusted from no address (README, Security): a plain-HTTP
    request that claims https gets no HSTS, and links keep the public base URL."""
    status, headers, _body = server.request("GET", "/fhir/metadata",
                                            headers={"X-Forwarded-Proto": "https"})
    assert status == 200
    assert "Strict-Transport-Security" not in headers
