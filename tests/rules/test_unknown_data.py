"""Unknown is never negative (CONTRACT §4): failed or absent prefetch through CDS Hooks.

A prefetch key that is absent, null, an OperationOutcome (CDS Hooks 2.0,
"prefetch failure") or a Bundle carrying an error OperationOutcome means the
data is unknown. The answer then names the check that could not be made, with
that check's source.topic, or asks for the data, or reads it from a trusted
fhirServer; never does it read the gap as "nothing there".
"""

from __future__ import annotations

import pytest

from rules.context import today_utc
from tests.conftest import serving
from tests.factories import patient
from tests.rules.vignettes import OURS, SHARED, load, outcome_cards, recommended, safety_codes

FAILED = {"resourceType": "OperationOutcome", "issue": [
    {"severity": "error", "code": "exception", "diagnostics": "upstream search timed out"}]}
FAILED_IN_BUNDLE = {"resourceType": "Bundle", "type": "searchset", "entry": [
    {"resource": FAILED, "search": {"mode": "outcome"}}]}
WARNING_IN_BUNDLE = {"resourceType": "Bundle", "type": "searchset", "entry": [
    {"resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "informational", "diagnostics": "0 results"}]},
     "search": {"mode": "outcome"}}]}
# The three shapes of "could not be read", and the absent key.
BROKEN = {"operation-outcome": FAILED, "error-in-bundle": FAILED_IN_BUNDLE, "null": None,
          "absent": ...}


def _request(name: str, ours: bool = False) -> dict:
    return load((OURS if ours else SHARED) / f"{name}.json", today_utc())["request"]


def _break(request: dict, key: str, how: str) -> dict:
    if BROKEN[how] is ...:
        del request["prefetch"][key]
    else:
        request["prefetch"][key] = BROKEN[how]
    return request


def _cards(client, headers, body):
    response = client.post("/cds-services/imaging-order-select", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cards"]


def _topic_cards(cards, code):
    return [c for c in cards if (c["source"].get("topic") or {}).get("code") == code]


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_failed_allergy_prefetch_gives_a_contrast_allergy_card(client, auth_headers, how):
    """Angina for CTCA with the allergy list unread: CTCA is still advised, and a card
    with the contrast-allergy topic says the reaction history could not be checked."""
    cards = _cards(client, auth_headers(), _break(_request("angina-ctca"), "allergies", how))
    assert len(recommended(cards)) == 1
    (card,) = _topic_cards(cards, "contrast-allergy")
    assert card["indicator"] == "warning"
    assert "Could not check" in card["summary"]


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_failed_imaging_prefetch_gives_a_duplicate_card(client, auth_headers, how):
    cards = _cards(client, auth_headers(), _break(_request("angina-ctca"), "imaging", how))
    (card,) = _topic_cards(cards, "duplicate-imaging")
    assert "Could not check" in card["summary"]


def test_a_real_duplicate_is_still_named_when_another_list_failed(client, auth_headers):
    body = _break(_request("angina-duplicate"), "allergies", "operation-outcome")
    cards = _cards(client, auth_headers(), body)
    (card,) = _topic_cards(cards, "duplicate-imaging")
    assert "Could not check" not in card["summary"]


def test_failed_observations_leave_kidney_function_unchecked(client, auth_headers):
    """An eGFR that could not be read is not a normal eGFR (ACR-NKF 2020 screening)."""
    cards = _cards(client, auth_headers(),
                   _break(_request("angina-ctca"), "observations", "operation-outcome"))
    (card,) = _topic_cards(cards, "contrast-renal")
    assert card["indicator"] == "warning"


def test_failed_device_prefetch_before_mri_gives_an_implant_card(client, auth_headers):
    body = _break(_request("lbp-cancer-history"), "devices", "operation-outcome")
    cards = _cards(client, auth_headers(), body)
    (card,) = _topic_cards(cards, "mri-implant")
    assert "Could not check" in card["summary"]


def test_failed_observations_leave_implants_and_findings_unchecked(client, auth_headers):
    """Findings come as Observations too ("Cardiac pacemaker in situ", "Smoker"), so an
    unread observation list leaves the implant check and finding-based rules open."""
    from rules import safety
    from rules.context import PatientContext
    from tests.rules.test_safety import CFG, MRI, VS

    unread = PatientContext(today=today_utc(), birth_date=today_utc().replace(year=1970),
                            sex="male", unknown={"observations": "the query failed"})
    found = safety.run_checks(unread, MRI, CFG, VS, [], lambda f: None)
    assert [f.summary for f in found if f.check == "mri-implant"] == \
        ["Could not check: implanted devices before MRI"]
    for name in ("lbp-no-red-flags", "lbp-cancer-history"):  # red flags may be Observations
        cards = _cards(client, auth_headers(), _break(_request(name), "observations", "absent"))
        (main,) = outcome_cards(cards)
        assert "More information needed" in main["summary"] and not recommended(cards), name


@pytest.mark.parametrize("cut", ["next-link", "total"])
def test_a_prefetch_of_one_page_is_not_the_whole_list(client, auth_headers, cut):
    """A searchset with a next link, or a total above its entries, holds part of the
    list: an allergy on a later page is unknown, not absent (R4 http.html#paging)."""
    body = _request("angina-ctca")
    allergies = body["prefetch"]["allergies"]
    if cut == "next-link":
        allergies["link"] = [{"relation": "next", "url": "https://gp.example/page2"}]
    else:
        allergies["total"] = len(allergies.get("entry") or []) + 1
    (card,) = _topic_cards(_cards(client, auth_headers(), body), "contrast-allergy")
    assert "Could not check" in card["summary"]
    whole = _request("angina-ctca")
    assert not _topic_cards(_cards(client, auth_headers(), whole), "contrast-allergy")


@pytest.mark.parametrize("how", ["operation-outcome", "absent"])
def test_failed_conditions_for_back_pain_ask_for_them(client, auth_headers, how):
    """Back pain with the problem list unread: a history of cancer (NG234) or urinary
    retention (CES) cannot be excluded, so the answer asks instead of saying no imaging."""
    cards = _cards(client, auth_headers(), _break(_request("lbp-no-red-flags"), "conditions",
                                                  how))
    (main,) = outcome_cards(cards)
    assert main["indicator"] == "info"
    assert "More information needed" in main["summary"]
    assert not recommended(cards)


def test_an_informational_outcome_in_a_bundle_is_not_a_failure(client, auth_headers):
    body = _request("angina-ctca")
    body["prefetch"]["allergies"] = WARNING_IN_BUNDLE
    cards = _cards(client, auth_headers(), body)
    assert not _topic_cards(cards, "contrast-allergy")


def test_every_key_failed_and_no_server_still_answers_what_it_can(client, auth_headers):
    body = _request("angina-ctca")
    body["prefetch"] = {key: FAILED for key in body["prefetch"]}
    cards = _cards(client, auth_headers(), body)
    (main,) = outcome_cards(cards)
    assert "Date of birth" in main["summary"] or "date of birth" in main["summary"]
    assert not recommended(cards)


def test_a_failed_key_is_read_from_a_trusted_fhir_server(app, client, auth_headers, token):
    """The allergy list failed in prefetch; the trusted fhirServer holds a contrast
    allergy, which must then be flagged."""
    headers = auth_headers()
    made = client.post("/fhir/Patient", json=patient(birth_date="1966-01-01", gender="male"),
                       headers=headers).get_json()
    allergy = {"resourceType": "AllergyIntolerance",
               "patient": {"reference": f"Patient/{made['id']}"},
               "clinicalStatus": {"coding": [{
                   "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                   "code": "active"}]},
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "293637006"}]}}
    assert client.post("/fhir/AllergyIntolerance", json=allergy,
                       headers=headers).status_code == 201
    body = _break(_request("angina-ctca"), "allergies", "operation-outcome")
    with serving(app) as base:
        settings = app.config["SCANPATH"]
        app.config["SCANPATH"] = settings.model_copy(update={"cds_fhir_servers": [base]})
        body.update(fhirServer=f"{base}/fhir", fhirAuthorization={
            "access_token": token("demo-gp"), "token_type": "Bearer", "expires_in": 300,
            "scope": "system/*.rs", "subject": "demo-gp"})
        body["context"]["patientId"] = made["id"]
        cards = _cards(client, headers, body)
    (card,) = _topic_cards(cards, "contrast-allergy")
    assert card["summary"].startswith("For CTCA: Previous reaction to contrast")


def test_the_guidance_response_records_what_could_not_be_read(client, auth_headers):
    body = _break(_request("angina-ctca"), "imaging", "operation-outcome")
    _cards(client, auth_headers(), body)
    bundle = client.get("/fhir/GuidanceResponse?_sort=-_lastUpdated&_count=1",
                        headers=auth_headers()).get_json()
    params = bundle["entry"][0]["resource"]["contained"][0]["parameter"]
    unknown = [p["valueString"] for p in params if p["name"] == "unknown"]
    assert unknown and unknown[0].startswith("imaging:")


def test_safety_codes_helper_sees_every_topic(client, auth_headers):
    """Guard for the helpers above: a complete prefetch has no could-not-check card."""
    cards = _cards(client, auth_headers(), _request("angina-ctca"))
    assert not [c for c in cards if "Could not check" in c["summary"]]
    assert "contrast-renal" not in safety_codes(cards)


def _guidance_params(client, headers, order) -> dict:
    ref = order["supportingInfo"][0]["reference"]
    guidance = client.get(f"/fhir/{ref}", headers=headers).get_json()
    return guidance["contained"][0]["parameter"]


def test_a_truncated_history_in_the_store_is_unknown(client, auth_headers, monkeypatch):
    """The ordering path reads the store: orders beyond the limit are unread, so the
    duplicate check says it could not be complete instead of 'no duplicate'."""
    from rules import service
    from tests.factories import service_request

    monkeypatch.setattr(service, "ORDER_HISTORY_LIMIT", 1)
    headers = auth_headers()
    pid = client.post("/fhir/Patient", json=patient(birth_date="1960-01-01", gender="male"),
                      headers=headers).get_json()["id"]
    for _ in range(3):
        order = client.post("/fhir/ServiceRequest", json=service_request(f"Patient/{pid}"),
                            headers=headers).get_json()
    unknown = [p["valueString"] for p in _guidance_params(client, headers, order)
               if p["name"] == "unknown"]
    assert unknown == ["imaging: only the latest 1 ServiceRequest resources were read"]


def test_a_guidance_response_has_no_empty_arrays(client, auth_headers):
    """FHIR JSON never carries empty arrays (json.html); the ordering path makes no cards."""
    from tests.factories import service_request

    headers = auth_headers()
    pid = client.post("/fhir/Patient", json=patient(birth_date="1960-01-01", gender="male"),
                      headers=headers).get_json()["id"]
    order = client.post("/fhir/ServiceRequest", json=service_request(f"Patient/{pid}"),
                        headers=headers).get_json()
    guidance = client.get(f"/fhir/{order['supportingInfo'][0]['reference']}",
                          headers=headers).get_json()

    def empty_arrays(value):
        if isinstance(value, list):
            return (not value) + sum(empty_arrays(v) for v in value)
        if isinstance(value, dict):
            return sum(empty_arrays(v) for v in value.values())
        return 0

    assert empty_arrays(guidance) == 0
