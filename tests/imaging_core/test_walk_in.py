"""Images move the order (issue 11 item 1): walk-ins are recorded, never refused.

A study sent by dcmtk's ``storescu`` to the listener moves its order to
``in-progress`` whether or not the order was scheduled; images for an order
that was cancelled are kept and held for a person. SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from core.settings import Settings
from imaging_core.models import DicomInstance, ReceivedStudy
from tests.imaging_core.conftest import accession_of, needs_dcmtk, rows, storescu, study
from tests.imaging_core.phantoms import write
from tests.referral.moves import (
    Headers,
    audit_descriptions,
    order_status,
    reach,
    state,
    task_of,
)

pytestmark = needs_dcmtk


def send_study(scp: int, tmp_path: Path, accession_number: str) -> set[str]:
    """A 4-slice CT study with ``accession_number`` sent by storescu; its SOP Instance UIDs."""
    series = study(accession_number)
    sent = storescu(scp, write(series, tmp_path / "send"))
    assert sent.returncode == 0, sent.stderr
    return {ds.SOPInstanceUID for ds in series}


@pytest.mark.parametrize("start", ["received", "vetting", "more-info-requested", "accepted",
                                   "scheduled"])
def test_images_move_the_order_to_in_progress_scheduled_or_not(
        settings: Settings, scp: int, tmp_path: Path, client: FlaskClient,
        auth_headers: Headers, start: str) -> None:
    order, task = reach(client, auth_headers, settings, start)
    sent = send_study(scp, tmp_path, accession_of(order))
    assert {row.sop_instance_uid for row in rows(settings, DicomInstance)} == sent
    moved = task_of(client, auth_headers, order["id"])
    assert (state(moved), moved["status"]) == ("in-progress", "in-progress")
    notes = [note["text"] for note in moved.get("note", [])]
    if start == "scheduled":
        assert notes == []
    else:  # a walk-in: recorded on the Task
        assert len(notes) == 1 and notes[0].startswith("Walk-in: images (ImagingStudy/")
        assert f"while the order was {start}" in notes[0]
    assert [s.hold_reason for s in rows(settings, ReceivedStudy)] == [None]  # analysed as usual
    assert order_status(client, auth_headers, order["id"]) == "active"
    assert any(f"moved from {start} to in-progress by imaging" in d
               for d in audit_descriptions(client, auth_headers, task["id"]))


def test_images_for_a_cancelled_order_are_kept_and_held(
        settings: Settings, scp: int, tmp_path: Path, client: FlaskClient,
        auth_headers: Headers) -> None:
    order, task = reach(client, auth_headers, settings, "cancelled")
    sent = send_study(scp, tmp_path, accession_of(order))
    assert {row.sop_instance_uid for row in rows(settings, DicomInstance)} == sent
    [received] = rows(settings, ReceivedStudy)
    assert received.hold_reason == "order-closed"  # not analysed
    assert state(task_of(client, auth_headers, order["id"])) == "cancelled"
    found = client.get(f"/fhir/Task?focus=ImagingStudy/{received.imaging_study_id}",
                       headers=auth_headers("demo-radiology")).get_json()
    [hold] = [entry["resource"] for entry in found["entry"]]
    assert state(hold) == "reconcile" and hold["statusReason"]["text"] == "order-closed"
    assert hold["partOf"] == [{"reference": f"Task/{task['id']}"}]
