"""The SMART Python client ``fhirclient`` talks to a real server over HTTP.

It discovers the token endpoint from the CapabilityStatement, exchanges a
``private_key_jwt`` client assertion for a token (SMART Backend Services),
then creates and reads back a Patient and a ServiceRequest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fhirclient import client as fhir_client
from fhirclient.models.patient import Patient
from fhirclient.models.servicerequest import ServiceRequest

from auth.clients import client_assertion, key_path
from tests.conftest import serving
from tests.factories import patient, service_request


@pytest.fixture
def live_server(app) -> Iterator[str]:
    """The app on a real HTTP socket on loopback, for the test's duration."""
    with serving(app) as base:
        yield base


def _smart(base: str, settings) -> fhir_client.FHIRClient:
    assertion = client_assertion("demo-gp", key_path(settings, "demo-gp").read_bytes(),
                                 f"{base}/auth/token")
    smart = fhir_client.FHIRClient(settings={
        "app_id": "demo-gp", "api_base": f"{base}/fhir", "jwt_token": assertion,
        "scope": "system/Patient.cruds system/ServiceRequest.cruds"})
    smart.prepare()
    smart.server.authorize()
    return smart


def test_fhirclient_creates_and_reads_back_a_patient_and_an_order(live_server, settings):
    smart = _smart(live_server, settings)
    assert smart.ready

    created = Patient(patient()).create(smart.server)
    patient_id = created["id"]
    read = Patient.read(patient_id, smart.server)
    assert read.name[0].family == "Smith"
    assert read.identifier[0].value == "9434765919"

    order = ServiceRequest(service_request(f"Patient/{patient_id}"))
    order_id = order.create(smart.server)["id"]
    back = ServiceRequest.read(order_id, smart.server)
    assert back.subject.reference == f"Patient/{patient_id}"
    assert [i.type.coding[0].code for i in back.identifier] == ["ACSN"]

    found = list(ServiceRequest.where({"patient": patient_id}).perform_resources_iter(smart.server))
    assert [r.id for r in found] == [order_id]
