"""fhirpy (SyncFHIRClient) as a real client: create, patch, delete, count, read deleted."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from tests.factories import patient


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
