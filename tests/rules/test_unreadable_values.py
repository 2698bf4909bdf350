"""Unknown is never negative: a value present but unreadable is unknown, never absent.

An element sent with the wrong JSON type (a string, a bool, an array where a
number is expected), digits that are not ASCII, NaN or an infinity, or a date
that does not parse, makes that fact unknown: the safety check that reads it
says it could not be made (with its ``source.topic``), and a rule that needs it
asks for it. Expected answers come from the vignette and the guidance (eGFR
below 30: high risk of contrast-associated kidney injury, ACR-NKF 2020), never
from the engine's output.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

import pytest

from rules.context import LOINC, SNOMED, build_context, today_utc
from tests.rules.test_facts import _concept, _decide, _obs, _qty
from tests.rules.vignettes import SHARED, load

EGFR_WARNING = "eGFR 22: high risk of contrast-associated kidney injury"
UNREADABLE_NUMBERS = {
    "string": "22", "arabic-indic-digits": "٢٢", "bool": True, "nan": float("nan"),
    "infinity": float("inf"), "array": [22], "object": {"value": 22},
}
UNREADABLE_DATES = {
    "arabic-indic-digits": "٢٠٢٦-١١-١٨", "number": 20261118, "bool": True,
    "no-such-day": "2026-02-30", "words": "last week", "array": ["2026-11-18"],
}


def _vignette() -> dict[str, Any]:
    return load(SHARED / "uk-egfr-22-ctca-m52.json", today_utc())["request"]


def _egfr_obs(body: dict[str, Any]) -> dict[str, Any]:
    return body["prefetch"]["observations"]["entry"][0]["resource"]


def _cards(client, headers, body) -> list[dict[str, Any]]:
    response = client.post("/cds-services/imaging-order-select", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["cards"]


def _renal(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards
            if (c["source"].get("topic") or {}).get("code") == "contrast-renal"]


def _assert_unchecked(cards: list[dict[str, Any]], *why: str) -> None:
    (card,) = _renal(cards)
    assert card["indicator"] == "warning"
    assert "Could not check: kidney function before contrast" in card["summary"]
    for text in why:
        assert text in card["detail"]


def test_the_readable_egfr_22_still_warns(client, auth_headers):
    """The vignette as sent: eGFR 22 mL/min/1.73 m2 12 days ago, CTCA with contrast."""
    (card,) = _renal(_cards(client, auth_headers(), _vignette()))
    assert EGFR_WARNING in card["summary"]
    assert card["indicator"] in ("warning", "critical")


# NaN and Infinity are not JSON (RFC 8259 §6): the CDS endpoint refuses them with a 400.
AS_JSON = {k: v for k, v in UNREADABLE_NUMBERS.items() if k not in ("nan", "infinity")}


@pytest.mark.parametrize("value", AS_JSON.values(), ids=AS_JSON.keys())
def test_an_unreadable_egfr_value_is_unknown_not_absent(client, auth_headers, value):
    body = _vignette()
    _egfr_obs(body)["valueQuantity"]["value"] = value
    cards = _cards(client, auth_headers(), body)
    assert not any(EGFR_WARNING in c["summary"] for c in cards)
    _assert_unchecked(cards, "Observation/o0-uk-egfr-22-ctca-m52", "valueQuantity.value")


@pytest.mark.parametrize("key", ["unit", "code", "system"])
def test_an_unreadable_egfr_unit_is_unknown(client, auth_headers, key):
    body = _vignette()
    _egfr_obs(body)["valueQuantity"][key] = 5
    _assert_unchecked(_cards(client, auth_headers(), body), f"valueQuantity.{key}")


def test_a_quantity_without_a_value_is_unknown(client, auth_headers):
    body = _vignette()
    del _egfr_obs(body)["valueQuantity"]["value"]
    _assert_unchecked(_cards(client, auth_headers(), body), "valueQuantity has no value")


@pytest.mark.parametrize("element,value", [("valueInteger", "22"), ("valueInteger", 22.5),
                                           ("valueInteger", False), ("valueString", "22"),
                                           ("valueString", "٢٢")])
def test_an_egfr_sent_in_another_value_element_is_unknown(client, auth_headers, element, value):
    body = _vignette()
    obs = _egfr_obs(body)
    del obs["valueQuantity"]
    obs[element] = value
    _assert_unchecked(_cards(client, auth_headers(), body), element)


@pytest.mark.parametrize("value", UNREADABLE_DATES.values(), ids=UNREADABLE_DATES.keys())
def test_an_unreadable_egfr_date_is_unknown(client, auth_headers, value):
    body = _vignette()
    _egfr_obs(body)["effectiveDateTime"] = value
    cards = _cards(client, auth_headers(), body)
    assert not any(EGFR_WARNING in c["summary"] for c in cards)
    _assert_unchecked(cards, "effectiveDateTime")


@pytest.mark.parametrize("element", ["issued", "effectivePeriod"])
def test_the_other_observation_dates_are_read_and_checked(client, auth_headers, element):
    body = _vignette()
    obs = _egfr_obs(body)
    sent = obs.pop("effectiveDateTime")
    obs[element] = {"start": sent} if element == "effectivePeriod" else sent
    (card,) = _renal(_cards(client, auth_headers(), body))
    assert EGFR_WARNING in card["summary"]
    obs[element] = {"start": "٢٠٢٦"} if element == "effectivePeriod" else "٢٠٢٦"
    _assert_unchecked(_cards(client, auth_headers(), body), element)


def test_a_readable_egfr_22_still_warns_beside_an_unreadable_one(client, auth_headers):
    """The eGFR below 30 is itself the answer: an unreadable second one cannot lower the risk."""
    body = _vignette()
    other = copy.deepcopy(_egfr_obs(body))
    other["id"] = "o1"
    other["valueQuantity"]["value"] = "٢٢"
    body["prefetch"]["observations"]["entry"].append({"resource": other})
    (card,) = _renal(_cards(client, auth_headers(), body))
    assert EGFR_WARNING in card["summary"]


@pytest.mark.parametrize("birth_date", ["٢٠٠٠-01-01", 1974, "1974-13-01", "in 1974"])
def test_an_unreadable_birth_date_is_unknown(client, auth_headers, birth_date):
    """NICE CG95 offers CTCA by age band: with the age unreadable, the rule asks for it."""
    body = _vignette()
    body["prefetch"]["patient"]["birthDate"] = birth_date
    cards = _cards(client, auth_headers(), body)
    assert any("Date of birth" in c["summary"] for c in cards)  # asked for (data-requested)
    assert not any(EGFR_WARNING in c["summary"] for c in cards)


def test_an_unreadable_gender_is_unknown():
    patient = {"resourceType": "Patient", "id": "p", "gender": "M", "birthDate": "1974-01-01"}
    ctx = build_context({}, [patient], date(2026, 11, 30))
    assert ctx.sex is None
    assert "gender" in ctx.unknown["patient"]


# --- the context: absent and unreadable are told apart ---------------------------------------

TODAY = date(2026, 11, 30)


def _facts(*resources: dict[str, Any]):
    return build_context({}, list(resources), TODAY)


def test_absent_values_and_dates_are_not_unreadable():
    ctx = _facts({"resourceType": "Observation", "id": "o", "status": "final",
                  "code": _concept("1011481000000105")})
    (fact,) = ctx.observations
    assert fact.unreadable == ()
    assert fact.value is None and fact.when is None


@pytest.mark.parametrize("value", UNREADABLE_NUMBERS.values(), ids=UNREADABLE_NUMBERS.keys())
def test_an_unreadable_number_is_recorded_as_such(value):
    (fact,) = _facts(_obs("1011481000000105", valueQuantity={"value": value})).observations
    assert fact.value is None
    assert any("valueQuantity.value" in p for p in fact.unreadable)


@pytest.mark.parametrize("element", ["onsetDateTime", "recordedDate", "abatementDateTime"])
def test_an_unreadable_condition_date_is_recorded(element):
    condition = {"resourceType": "Condition", "id": "c", "code": _concept("709044004"),
                 element: "٢٠٢٥-٠١-٠١"}
    (fact,) = _facts(condition).conditions
    assert any(element in p for p in fact.unreadable)


@pytest.mark.parametrize("status", ["bogus", ""])
def test_an_unreadable_clinical_status_is_recorded_and_kept_active(status):
    condition = {"resourceType": "Condition", "id": "c", "code": _concept("709044004"),
                 "clinicalStatus": {"coding": [{"code": status}]}}
    (fact,) = _facts(condition).conditions
    assert fact.active
    assert any("clinicalStatus" in p for p in fact.unreadable)


def test_an_unreadable_lmp_date_is_recorded():
    lmp = _obs("161713000", valueDateTime="٢٠٢٦-١١-٠١")
    (fact,) = _facts(lmp).observations
    assert fact.value_date is None
    assert any("valueDateTime" in p for p in fact.unreadable)


def test_an_unreadable_lmp_leaves_pregnancy_unchecked():
    """A woman of 30 before an ionising pelvic exam, her LMP date unreadable: not 'day 1'."""
    from rules import safety
    from tests.rules.test_safety import CFG, VS, _proc

    lmp = _obs("161713000", days_ago=40, valueDateTime="٢٠٢٦-١١-٠١")
    patient = {"resourceType": "Patient", "id": "p", "gender": "female",
               "birthDate": (TODAY - timedelta(days=30 * 366)).isoformat()}
    ctx = _facts(patient, lmp)
    found = safety.pregnancy_radiation(ctx, _proc(pelvis=True), CFG, VS)
    unchecked = safety._unchecked("pregnancy-radiation", ctx, _proc(pelvis=True), CFG, VS,
                                  found)
    assert found or unchecked
    assert unchecked is None or "valueDateTime" in unchecked.detail


# --- rules ask for what they cannot read -----------------------------------------------------

@pytest.mark.parametrize("value", ["1", "١", True, float("nan")])
def test_an_unreadable_wells_score_is_asked_for(value):
    """NG158: the DVT Wells score decides the pathway; unreadable, it is asked for."""
    wells = _obs("wells-dvt", system="https://scanpath.example/fhir/CodeSystem/score",
                 days_ago=0, valueQuantity={"value": value, "system": "http://unitsofmeasure.org",
                                            "code": "{score}"})
    d_dimer = _obs("48065-7", system=LOINC, days_ago=0, **_qty(0.3, ucum="mg/L"),
                   interpretation=[{"coding": [{"code": "N"}]}])
    decision = _decide(["128053003"], wells, d_dimer, age=50)
    assert decision.outcome == "data-requested"


assert SNOMED  # the codes above are SNOMED CT unless a system is named


def test_an_unreadable_onset_does_not_hide_a_cancer_history():
    """NG234: back pain and a history of cancer gives MRI of the whole spine; the
    history counts whatever its date, so an unreadable onset date does not matter."""
    cancer = {"resourceType": "Condition", "id": "c", "code": _concept("363518003"),
              "onsetDateTime": "٢٠٢٠"}
    decision = _decide(["279039007"], cancer, age=64)
    assert decision.chosen is not None
    assert decision.chosen.procedure.key == "MR-WHOLE-SPINE"


def test_an_unreadable_clinical_status_on_a_cancer_history_is_asked_for_or_counted():
    """A status that cannot be read is never read as 'resolved and so absent'."""
    cancer = {"resourceType": "Condition", "id": "c", "code": _concept("363518003"),
              "clinicalStatus": {"coding": [{"code": "gone?"}]}}
    decision = _decide(["279039007"], cancer, age=64)
    assert decision.outcome == "data-requested" or (
        decision.chosen is not None and decision.chosen.procedure.key == "MR-WHOLE-SPINE")
