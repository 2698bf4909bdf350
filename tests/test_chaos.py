"""Chaos: orders posted while gunicorn workers are killed with SIGKILL.

Nothing acknowledged may be lost (issue 9): every ``201 Created`` is found
afterwards with its accession number, its decision (GuidanceResponse), its
one Task and the AuditEvent of its creation. A request cut off by the kill gets no answer; that
is allowed, a 5xx is not. Bounded: a few seconds of load on loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from core.settings import Settings
from tests.conftest import children, free_port
from tests.factories import patient, service_request

SCRIPT = Path(sys.executable).parent / "scanpath"
FHIR_JSON = "application/fhir+json"
ACSN = "http://terminology.hl7.org/CodeSystem/v2-0203"
POSTERS = 4




@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``scanpath serve`` with two web workers on the test database; (base URL, master pid)."""
    port = free_port()
    env = {**os.environ, "SCANPATH_DATABASE_URL": settings.database_url,
           "SCANPATH_VAR_DIR": str(tmp_path / "var"), "SCANPATH_ENV": settings.env,
           "SCANPATH_SECRET_KEY": settings.secret_key, "SCANPATH_PORT": str(port),
           "SCANPATH_DICOM_PORT": str(free_port()), "SCANPATH_WORKERS": "2",
           "SCANPATH_LOG_LEVEL": "WARNING", "HOME": str(tmp_path)}
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scanpath.cli"]
    server = subprocess.Popen([*command, "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        master = _wait_ready(server, base)
        yield base, master
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)


def _wait_ready(server: subprocess.Popen[str], base: str) -> int:
    for _ in range(600):
        assert server.poll() is None, server.communicate()
        masters = children(server.pid)
        try:
            if masters and len(children(masters[0])) == 2 and \
                    requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                return masters[0]
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("scanpath serve did not become ready")


def _post_orders(base: str, headers: dict[str, str], subject: str, stop: threading.Event,
                 acknowledged: list[str], failures: list[str]) -> None:
    with requests.Session() as http:
        while not stop.is_set():
            try:
                answer = http.post(f"{base}/fhir/ServiceRequest", json=service_request(subject),
                                   headers=headers, timeout=30)
            except requests.ConnectionError:
                http.close()  # cut off by the kill: never acknowledged
                continue
            if answer.status_code == 201:
                acknowledged.append(answer.json()["id"])
            else:
                failures.append(f"{answer.status_code} {answer.text[:200]}")


def _load_while_killing(base: str, master: int, headers: dict[str, str],
                        subject: str) -> tuple[list[str], list[str], int]:
    stop, acknowledged, failures = threading.Event(), [], []  # type: ignore[var-annotated]
    posters = [threading.Thread(target=_post_orders, args=(
        base, headers, subject, stop, acknowledged, failures)) for _ in range(POSTERS)]
    for thread in posters:
        thread.start()
    before = 0
    try:
        for wanted in (3, 6, 9):  # kill a worker twice, each time under load; then go on
            _wait_for(lambda wanted=wanted: len(acknowledged) >= wanted)
            if wanted < 9:
                before = len(acknowledged)
                os.kill(children(master)[0], signal.SIGKILL)
    finally:
        stop.set()
        for thread in posters:
            thread.join(timeout=60)
    return acknowledged, failures, before


def _wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "no orders acknowledged"
        time.sleep(0.05)


def _check_order(http: Callable[[str], requests.Response], order_id: str) -> None:
    order = http(f"ServiceRequest/{order_id}").json()
    accession = [i for i in order.get("identifier", [])
                 if any(c.get("code") == "ACSN" and c.get("system") == ACSN
                        for c in i.get("type", {}).get("coding", []))]
    assert accession and accession[0]["value"], order
    decision = [s["reference"] for s in order.get("supportingInfo", [])
                if s["reference"].startswith("GuidanceResponse/")]
    assert decision and http(decision[0]).status_code == 200, order
    created = http(f"AuditEvent?entity=ServiceRequest/{order_id}&subtype=create").json()
    assert created.get("total", len(created.get("entry", []))) >= 1, order_id
    task = http(f"Task?focus=ServiceRequest/{order_id}").json()  # issue 11: from intake
    assert task.get("total") == 1, order_id


def test_acknowledged_orders_survive_killed_workers(served: tuple[str, int],
                                                    auth_headers: Callable[..., dict[str, str]]):
    base, master = served
    headers = {**auth_headers("demo-admin"), "Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    made = requests.post(f"{base}/fhir/Patient", json=patient(), headers=headers, timeout=30)
    assert made.status_code == 201, made.text
    acknowledged, failures, before = _load_while_killing(
        base, master, headers, f"Patient/{made.json()['id']}")

    assert failures == []  # no 5xx, no 4xx: a killed worker only drops its own connection
    assert 0 < before < len(acknowledged)  # acknowledged after the second kill too
    with requests.Session() as session:
        def http(path: str) -> requests.Response:
            answer = session.get(f"{base}/fhir/{path}", headers=headers, timeout=30)
            assert answer.status_code == 200, (path, answer.text)
            return answer
        for order_id in acknowledged:
            _check_order(http, order_id)
