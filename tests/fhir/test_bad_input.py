"""Issue 9, item 8: every kind of bad input is a 4xx OperationOutcome, never a 500.

Each test is one case of a class found by a hostile client: digits of other
scripts where FHIR wants ASCII, numbers too long for ``int()``, values of the
wrong JSON type, values longer than the index columns, control characters,
searches too large to plan, and extreme dates. All run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

from tests.factories import VALID_NHS_NUMBER, patient, post_entry, transaction

# "\u0663" is ARABIC-INDIC DIGIT THREE: str.isdigit() and int() accept it, FHIR does not.
ARABIC = str.maketrans("0123456789", "".join(chr(0x0660 + d) for d in range(10)))


def _outcome(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.data[:500]
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] in ("error", "fatal")
    if code is not None:
        assert body["issue"][0]["code"] == code, body
    return body


def _create(client: Any, headers: dict[str, str], resource: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=headers)
    assert response.status_code == 201, response.data
    return response.get_json()  # type: ignore[no-any-return]


def _observation(subject: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"text": "test"}, "subject": {"reference": subject}, **extra}


# --- digits: ASCII only ------------------------------------------------------------------

def test_count_of_5000_digits_is_capped_not_a_500(client, auth_headers):
    response = client.get("/fhir/Patient?_count=" + "9" * 5000, headers=auth_headers())
    assert response.status_code == 200, response.data[:300]
    assert response.get_json()["type"] == "searchset"
    response = client.get("/fhir/Patient/_history?_offset=" + "9" * 5000,
                          headers=auth_headers())
    assert response.status_code == 200, response.data[:300]


def test_non_ascii_digits_in_count_and_offset_are_400(client, auth_headers):
    for query in ("_count=%D9%A3", "_offset=%D9%A3", "_count=%EF%BC%93"):  # also fullwidth 3
        _outcome(client.get(f"/fhir/Patient?{query}", headers=auth_headers()), 400)
        _outcome(client.get(f"/fhir/Patient/_history?{query}", headers=auth_headers()), 400)


def test_non_ascii_version_id_names_no_version(client, auth_headers):
    made = _create(client, auth_headers(), patient())
    ok = client.get(f"/fhir/Patient/{made['id']}/_history/1", headers=auth_headers())
    assert ok.status_code == 200
    _outcome(client.get(f"/fhir/Patient/{made['id']}/_history/\u0661", headers=auth_headers()),
             404)
    for version in ("9" * 30, "9" * 18, "2147483648", "0" * 40 + "1"):  # past int4, int8
        _outcome(client.get(f"/fhir/Patient/{made['id']}/_history/{version}",
                            headers=auth_headers()), 404)


def test_nhs_number_in_other_digits_is_refused(client, auth_headers):
    """9434765919 passes modulus 11; the same number in Arabic-Indic digits is no NHS number."""
    body = _outcome(client.post("/fhir/Patient", json=patient(VALID_NHS_NUMBER.translate(ARABIC)),
                                headers=auth_headers()), 422)
    assert "NHS number" in body["issue"][0]["diagnostics"]


def test_date_search_in_other_digits_is_400(client, auth_headers):
    _create(client, auth_headers(), patient(birth_date="1968-04-02"))
    _outcome(client.get("/fhir/Patient?birthdate=" + "1968".translate(ARABIC),
                        headers=auth_headers()), 400)
    _outcome(client.get("/fhir/Patient?birthdate=ge" + "1968".translate(ARABIC),
                        headers=auth_headers()), 400)


def test_if_match_beyond_64_bits_is_412(client, auth_headers):
    made = _create(client, auth_headers(), patient())
    for if_match in ('W/"99999999999999999999"', 'W/"\u0661"', 'W/"' + "9" * 5000 + '"'):
        headers = auth_headers(If_Match=if_match)
        _outcome(client.put(f"/fhir/Patient/{made['id']}", json=made, headers=headers), 412)
        patch = [{"op": "replace", "path": "/gender", "value": "male"}]
        _outcome(client.patch(f"/fhir/Patient/{made['id']}", json=patch, headers={
            **headers, "Content-Type": "application/json-patch+json"}), 412)


# --- numbers -----------------------------------------------------------------------------

def test_numbers_too_long_or_too_large_are_400(client, auth_headers):
    base = json.dumps(patient())[:-1]
    for value in ("9" * 5000, "9" * 65, "1e999999999", "1e-999999999", "1." + "0" * 70):
        data = base + f', "multipleBirthInteger": {value}}}'
        _outcome(client.post("/fhir/Patient", data=data, headers=auth_headers()), 400)


def test_integer_beyond_32_bits_is_refused(client, auth_headers):
    """FHIR R4 integer is a signed 32-bit number (datatypes.html#integer)."""
    base = json.dumps(patient())[:-1]
    data = base + ', "multipleBirthInteger": 99999999999999999999}'
    response = client.post("/fhir/Patient", data=data, headers=auth_headers())
    assert 400 <= response.status_code < 500, response.data
    _outcome(response, response.status_code)


def test_deeply_nested_body_is_400(client, auth_headers):
    data = '{"resourceType": "Patient", "extension": ' + "[" * 100_000 + "]" * 100_000 + "}"
    _outcome(client.post("/fhir/Patient", data=data, headers=auth_headers()), 400)


# --- wrong JSON types --------------------------------------------------------------------

def test_object_where_a_code_is_expected_is_422(client, auth_headers):
    for wrong in ({"x": 1}, [1], 5, True):
        _outcome(client.post("/fhir/Patient", json={**patient(), "gender": wrong},
                             headers=auth_headers()), 422)
    made = _create(client, auth_headers(), patient())
    condition = {"resourceType": "Condition", "subject": {"reference": f"Patient/{made['id']}"},
                 "code": {"text": "x"}, "clinicalStatus": {"coding": [{
                     "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                     "code": {"x": 1}}]}}
    _outcome(client.post("/fhir/Condition", json=condition, headers=auth_headers()), 422)
    condition["clinicalStatus"] = {"coding": {"code": "active"}}
    _outcome(client.post("/fhir/Condition", json=condition, headers=auth_headers()), 422)


def test_conditional_update_with_an_object_id_is_400(client, auth_headers):
    body = {**patient(), "id": {"x": 1}}
    _outcome(client.put("/fhir/Patient?identifier=x|y", json=body, headers=auth_headers()), 400)


# --- lengths of indexed values -----------------------------------------------------------

def test_local_reference_with_an_over_long_id_is_422(client, auth_headers):
    body = _outcome(client.post("/fhir/Observation", json=_observation("Patient/" + "a" * 70),
                                headers=auth_headers()), 422)
    assert body["issue"][0]["expression"] == ["Observation.subject"]
    _outcome(client.post("/fhir/Observation", json=_observation("P" + "a" * 80 + "/1"),
                         headers=auth_headers()), 422)


def test_remote_reference_with_an_over_long_id_is_stored_and_found(client, auth_headers):
    remote = "https://other.example/fhir/Patient/" + "a" * 70
    made = _create(client, auth_headers(), _observation(remote))
    found = client.get(f"/fhir/Observation?subject={remote}", headers=auth_headers()).get_json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [made["id"]]
    other = remote[:-1] + "b"  # same first 64 characters, another id
    found = client.get(f"/fhir/Observation?subject={other}", headers=auth_headers()).get_json()
    assert found["total"] == 0


def test_identifier_system_of_300_characters_is_found_exactly(client, auth_headers):
    system = "https://gp.example/" + "s" * 300
    made = _create(client, auth_headers(), {**patient(), "identifier": [
        {"system": system, "value": "v" * 300}]})
    found = client.get(f"/fhir/Patient?identifier={system}|{'v' * 300}",
                       headers=auth_headers()).get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [made["id"]]
    found = client.get(f"/fhir/Patient?identifier={system}|{'v' * 299}w",
                       headers=auth_headers()).get_json()
    assert found["total"] == 0


def test_transaction_put_with_an_over_long_id_is_400(client, auth_headers):
    long_id = "a" * 70
    bundle = transaction({"resource": {**patient(), "id": long_id},
                          "request": {"method": "PUT", "url": f"Patient/{long_id}"}})
    body = _outcome(client.post("/fhir", json=bundle, headers=auth_headers()), 400)
    assert body["issue"][0]["expression"] == ["Bundle.entry[0].request.url"]
    assert client.get("/fhir/Patient", headers=auth_headers()).get_json()["total"] == 0


def test_read_of_an_over_long_id_is_404(client, auth_headers):
    _outcome(client.get("/fhir/Patient/" + "a" * 70, headers=auth_headers()), 404)
    _outcome(client.get("/fhir/Patient/" + "a" * 70 + "/_history", headers=auth_headers()), 404)


# --- control characters ------------------------------------------------------------------

def test_nul_in_if_none_exist_is_400(client, auth_headers):
    headers = auth_headers(If_None_Exist="identifier=a%00b")
    _outcome(client.post("/fhir/Patient", json=patient(), headers=headers), 400)
    assert client.get("/fhir/Patient", headers=auth_headers()).get_json()["total"] == 0


def test_nul_in_a_posted_search_form_is_400(client, auth_headers):
    headers = {**auth_headers(), "Content-Type": "application/x-www-form-urlencoded"}
    _outcome(client.post("/fhir/Patient/_search", data="name=a%00b", headers=headers), 400)


def test_nul_in_transaction_urls_is_refused(client, auth_headers):
    search = {"request": {"method": "GET", "url": "Patient?name=a%00b"}}
    _outcome(client.post("/fhir", json=transaction(search), headers=auth_headers()), 400)
    batch = client.post("/fhir", json=transaction(search, kind="batch"),
                        headers=auth_headers()).get_json()
    assert batch["entry"][0]["response"]["status"] == "400"
    conditional = post_entry(patient(), if_none_exist="identifier=a%00b")
    _outcome(client.post("/fhir", json=transaction(conditional), headers=auth_headers()), 400)
    observation = post_entry(_observation("Patient?identifier=a%00b"))
    _outcome(client.post("/fhir", json=transaction(observation), headers=auth_headers()), 400)


# --- search size -------------------------------------------------------------------------

def test_70000_id_alternatives_are_too_costly(client, auth_headers):
    query = "_id=" + ",".join(str(n) for n in range(70_000))
    _outcome(client.get(f"/fhir/Patient?{query}", headers=auth_headers()), 400, "too-costly")


def test_40000_name_alternatives_are_too_costly(client, auth_headers):
    query = "name=" + ",".join(f"n{n}" for n in range(40_000))
    _outcome(client.get(f"/fhir/Patient?{query}", headers=auth_headers()), 400, "too-costly")


def test_2000_repeated_name_parameters_are_too_costly(client, auth_headers):
    query = "&".join(f"name=n{n}" for n in range(2_000))
    _outcome(client.get(f"/fhir/Patient?{query}", headers=auth_headers()), 400, "too-costly")
    headers = {**auth_headers(), "Content-Type": "application/x-www-form-urlencoded"}
    _outcome(client.post("/fhir/Patient/_search", data=query, headers=headers), 400,
             "too-costly")


def test_searches_at_the_stated_limits_are_answered(client, auth_headers):
    """100 alternatives in one parameter, 200 in all, 40 parameters: all served."""
    made = _create(client, auth_headers(), patient())
    ids = ",".join([made["id"], *(f"x{n}" for n in range(99))])
    found = client.get(f"/fhir/Patient?_id={ids}&family={','.join(['Smith'] * 100)}",
                       headers=auth_headers()).get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [made["id"]]
    query = "&".join(["family=Smith"] * 40)
    assert client.get(f"/fhir/Patient?{query}", headers=auth_headers()).get_json()["total"] == 1
    _outcome(client.get(f"/fhir/Patient?{query}&family=Smith", headers=auth_headers()), 400,
             "too-costly")


def test_search_limits_are_stated_in_the_capability_statement(client):
    text = client.get("/fhir/metadata").get_json()["rest"][0]["documentation"]
    assert "at most 40 parameters" in text and "100 comma-separated values" in text


def test_oversized_conditional_create_is_too_costly(client, auth_headers):
    headers = auth_headers(If_None_Exist="_id=" + ",".join(str(n) for n in range(1000)))
    _outcome(client.post("/fhir/Patient", json=patient(), headers=headers), 400, "too-costly")


# --- extreme dates -----------------------------------------------------------------------

def test_extreme_date_searches_are_answered_or_400(client, auth_headers):
    _create(client, auth_headers(), patient())
    for query in ("_lastUpdated=gt9999-12-31T23:59:59Z", "_lastUpdated=ge9999",
                  "birthdate=lt0001-01-01T00:00:00%2B14:00", "birthdate=gt9999-12-31",
                  "birthdate=sa9999-12-31T23:59:59.999999Z"):
        response = client.get(f"/fhir/Patient?{query}", headers=auth_headers())
        assert response.status_code == 200, (query, response.data)
    for query in ("birthdate=99999", "birthdate=0000", "birthdate=2026-13",
                  "_lastUpdated=0000-01-01", "_since=0000-01-01"):
        path = "/fhir/Patient/_history" if query.startswith("_since") else "/fhir/Patient"
        _outcome(client.get(f"{path}?{query}", headers=auth_headers()), 400)


def test_extreme_dates_in_bodies_are_refused(client, auth_headers):
    for birth in ("0000-01-01", "99999-01-01", "2026-02-30"):
        _outcome(client.post("/fhir/Patient", json=patient(birth_date=birth),
                             headers=auth_headers()), 422)
