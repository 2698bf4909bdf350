"""Every DICOM association is audited: refused ones, refused C-STOREs, C-ECHO (issue 9 item 7).

Real peers (dcmtk's echoscu and storescu); AuditEvent types are the DCM codes
of PS3.15 A.5 / PS3.16 CID 400. SQLite and PostgreSQL.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.settings import Settings
from fhir import audit
from imaging_core.scp import start_scp, stop_scp
from tests.imaging_core.conftest import needs_dcmtk, storescu, study
from tests.imaging_core.phantoms import write

pytestmark = needs_dcmtk
DCM = "http://dicom.nema.org/resources/ontology/DCM"
Headers = Callable[..., dict[str, str]]


@pytest.fixture(autouse=True)
def fresh_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals name no known client, so they share the per-address audit limit: start clean."""
    monkeypatch.setattr(audit, "_anonymous", audit._AnonymousLimiter())


def audit_events(client: FlaskClient, auth_headers: Headers, code: str,
                 wait: float = 15.0) -> list[dict[str, Any]]:
    """The AuditEvents of type DCM ``code``, waiting for the listener's thread to write them."""
    deadline = time.monotonic() + wait
    while True:
        found = client.get(f"/fhir/AuditEvent?type={DCM}|{code}",
                           headers=auth_headers("demo-admin")).get_json()
        events = [entry["resource"] for entry in found.get("entry", [])]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def echoscu(port: int, called: str = "SCANPATH") -> subprocess.CompletedProcess[str]:
    command = shutil.which("echoscu")
    assert command is not None
    return subprocess.run([command, "-aet", "MONITOR", "-aec", called, "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=30)


def test_c_echo_is_audited(scp: int, client: FlaskClient, auth_headers: Headers) -> None:
    assert echoscu(scp).returncode == 0
    [event] = audit_events(client, auth_headers, "110100")  # Application Activity
    assert event["outcome"] == "0"
    assert event["agent"][0]["name"] == "AE:MONITOR"
    assert "C-ECHO" in event["outcomeDesc"]


def test_a_rejected_association_is_audited(scp: int, client: FlaskClient,
                                           auth_headers: Headers) -> None:
    assert echoscu(scp, called="NOTSCANPATH").returncode != 0
    [event] = audit_events(client, auth_headers, "110114")  # User Authentication
    assert event["outcome"] == "4"
    assert "MONITOR" in event["outcomeDesc"] and "rejected" in event["outcomeDesc"]


def test_a_calling_ae_not_allowed_is_audited(settings: Settings, client: FlaskClient,
                                             auth_headers: Headers, tmp_path: Path) -> None:
    server = start_scp(settings.model_copy(update={"dicom_allowed_aes": ["CT-ROOM-1"]}))
    try:
        [path] = write(study("ACC-INTRUDER", n_slices=1), tmp_path / "send")
        storescu(int(server.server_address[1]), [path], calling_ae="INTRUDER")
    finally:
        stop_scp(server)
    [event] = audit_events(client, auth_headers, "110114")
    assert event["outcome"] == "4" and "INTRUDER" in event["outcomeDesc"]


def test_refused_c_stores_are_audited(scp: int, client: FlaskClient, auth_headers: Headers,
                                      tmp_path: Path) -> None:
    good, bad = study("ACC-AUDIT-REFUSED", n_slices=2)
    bad.PixelData = bad.PixelData[:100]
    storescu(scp, write([good, bad], tmp_path / "send"))
    events = audit_events(client, auth_headers, "110104")  # DICOM Instances Transferred
    deadline = time.monotonic() + 15
    while len(events) < 2 and time.monotonic() < deadline:
        events = audit_events(client, auth_headers, "110104")
    by_outcome = {event["outcome"]: event for event in events}
    assert set(by_outcome) == {"0", "4"}
    assert by_outcome["4"]["outcomeDesc"] == "1 C-STORE(s) refused, status A900 x1"


def test_worklist_queries_are_audited(scp: int, client: FlaskClient,
                                      auth_headers: Headers) -> None:
    from tests.imaging_core.test_worklist import query

    assert query(scp, AccessionNumber="SP99999999")[1] == 0x0000
    assert query(scp, ScheduledProcedureStepStartDate="2026-12-01")[1] == 0xA900
    events = audit_events(client, auth_headers, "110112")  # Query (PS3.15 A.5.3.11)
    for _ in range(150):  # each association is audited by its own thread when it ends
        if len(events) >= 2:
            break
        time.sleep(0.1)
        events = audit_events(client, auth_headers, "110112")
    assert sorted(e["outcome"] for e in events) == ["0", "4"]
    assert all(e["agent"][0]["name"] == "AE:MODALITY" for e in events)
    assert any("failed A900" in e["outcomeDesc"] for e in events)
