"""FHIR decimals keep the precision they were sent with (datatypes.html#decimal)."""

from __future__ import annotations

import json

import pytest

from tests.factories import patient

VALUES = ["45.10", "0.000010", "12345678901234567890.123456789", "1e-7", "-0.0", "3.0"]


def _observation(subject: str, value: str) -> str:
    """JSON text, so the number reaches the server exactly as written here."""
    return ('{"resourceType":"Observation","status":"final","subject":{"reference":"'
            f'{subject}"}},"code":{{"coding":[{{"system":"http://loinc.org","code":"2857-1"}}]}},'
            f'"valueQuantity":{{"value":{value},"unit":"ug/L"}}}}')


@pytest.mark.parametrize("value", VALUES)
def test_a_decimal_comes_back_as_sent(client, auth_headers, value):
    headers = auth_headers()
    pid = client.post("/fhir/Patient", json=patient(), headers=headers).get_json()["id"]
    created = client.post("/fhir/Observation", data=_observation(f"Patient/{pid}", value),
                          headers=headers)
    assert created.status_code == 201
    assert f'"value":{value},' in created.get_data(as_text=True)
    oid = created.get_json()["id"]
    for url in (f"/fhir/Observation/{oid}", f"/fhir/Observation?_id={oid}",
                f"/fhir/Observation/{oid}/_history/1"):
        text = client.get(url, headers=headers).get_data(as_text=True)
        assert f'"value":{value},' in text, url


def test_decimals_survive_a_transaction_and_a_patch(client, auth_headers):
    headers = auth_headers("demo-admin")
    pid = client.post("/fhir/Patient", json=patient(), headers=headers).get_json()["id"]
    bundle = ('{"resourceType":"Bundle","type":"transaction","entry":[{"resource":'
              + _observation(f"Patient/{pid}", "45.10")
              + ',"request":{"method":"POST","url":"Observation"}}]}')
    body = client.post("/fhir", data=bundle, headers=headers)
    assert '"value":45.10,' in body.get_data(as_text=True)
    oid = body.get_json()["entry"][0]["resource"]["id"]
    patched = client.patch(f"/fhir/Observation/{oid}", data='[{"op":"replace",'
                           '"path":"/status","value":"amended"}]',
                           headers={**headers, "Content-Type": "application/json-patch+json"})
    assert '"value":45.10,' in patched.get_data(as_text=True)


def _days_ago(days: int) -> str:
    from datetime import timedelta

    from rules.context import today_utc

    return (today_utc() - timedelta(days=days)).isoformat()


def test_the_rules_read_a_stored_decimal(client, auth_headers):
    """A stored eGFR of 22.50 (Decimal) still gives the contrast-renal flag (ACR-NKF 2020)."""
    from tests.factories import post_entry, transaction

    headers = auth_headers()
    url = "urn:uuid:0c0c0c0c-0000-4000-8000-000000000001"
    egfr = ('{"resourceType":"Observation","status":"final","subject":{"reference":"'
            + url + '"},"code":{"coding":[{"system":"http://snomed.info/sct",'
            '"code":"1011481000000105"}]},"effectiveDateTime":"' + _days_ago(10) + '",'
            '"valueQuantity":{"value":22.50,"unit":"mL/min/1.73m2"}}')
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "subject": {"reference": url},
             "category": [{"coding": [{"system": "http://snomed.info/sct",
                                       "code": "363679005"}]}],
             "reasonCode": [{"coding": [{"system": "http://snomed.info/sct",
                                         "code": "194828000"}]}]}
    bundle = transaction(post_entry(patient(birth_date="1970-01-01", gender="male"), url),
                         {"resource": json.loads(egfr),
                          "request": {"method": "POST", "url": "Observation"}},
                         post_entry(order))
    text = json.dumps(bundle).replace('"value": 22.5,', '"value": 22.50,')
    body = client.post("/fhir", data=text, headers=headers).get_json()
    notes = [n["text"] for n in body["entry"][2]["resource"].get("note", [])]
    assert any("contrast-renal" in n and "eGFR 22.5" in n for n in notes), notes
