"""fhirpy (SyncFHIRClient) as a real client: create, patch, delete, count, read deleted."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from tests.factories import patient, post_entry, service_request, transaction


@pytest.fixture(scope="module")
def fhir(live_sqlite):
    from sqlmodel import Session

    from auth.clients import issue_token_for
    from core.db import engine_for

    base, settings = live_sqlite
    with Session(engine_for(settings.database_url)) as session:
        token = issue_token_for(session, settings, "demo-admin")
    return SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {token}")


def test_fhirpy_patch_and_delete(fhir):
    made = fhir.resource("Patient", **patient(nhs_number="9000000009", family="Patchy"))
    made.save()
    patched = fhir.patch("Patient", made.id, gender="male", name=[{"family": "Patched"}])
    assert patched["gender"] == "male" and patched["name"][0]["family"] == "Patched"
    assert patched["meta"]["versionId"] == "2"
    assert fhir.resources("Patient").search(family="Patched").count() == 1
    fhir.delete(f"Patient/{made.id}")
    with pytest.raises((ResourceNotFound, OperationOutcome)):
        fhir.reference("Patient", made.id).to_resource()
    assert fhir.resources("Patient").search(family="Patched").count() == 0


def test_fhirpy_patch_that_breaks_the_resource_is_refused(fhir):
    made = fhir.resource("Patient", **patient(nhs_number="9000000017", family="Valid"))
    made.save()
    with pytest.raises(OperationOutcome):
        fhir.patch("Patient", made.id, gender="not-a-gender")


def _client(settings, base, client_id):
    from sqlmodel import Session

    from auth.clients import issue_token_for
    from core.db import engine_for

    with Session(engine_for(settings.database_url)) as session:
        token = issue_token_for(session, settings, client_id)
    return SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {token}")


def test_fhirpy_transaction_intake_opens_the_task_the_ris_then_moves(live_sqlite):
    """Issue 11 item 1: the order's Task exists right after a transaction intake (GP), and
    the RIS moves it by PATCH; an illegal move comes back as an OperationOutcome (409)."""
    base, settings = live_sqlite
    gp, ris = _client(settings, base, "demo-gp"), _client(settings, base, "demo-radiology")
    answer = gp.execute("", method="post", data=transaction(
        post_entry(patient(nhs_number="9000000025", family="Intake"), "urn:uuid:p"),
        post_entry(service_request("urn:uuid:p"), "urn:uuid:o")))
    order_id = answer["entry"][1]["resource"]["id"]
    [task] = ris.resources("Task").search(focus=f"ServiceRequest/{order_id}").fetch_all()
    system = f"{settings.canonical_base}/CodeSystem/order-state"
    assert task["businessStatus"]["coding"][0]["code"] == "received"
    moved = ris.patch("Task", task.id, businessStatus={"coding": [
        {"system": system, "code": "vetting"}]})
    assert (moved["businessStatus"]["coding"][0]["code"], moved["status"]) == \
        ("vetting", "received")
    with pytest.raises(OperationOutcome):
        ris.patch("Task", task.id, businessStatus={"coding": [
            {"system": system, "code": "completed"}]})
