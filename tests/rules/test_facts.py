"""Facts as GP systems in England record them: codes, units and shapes.

Every value set the rules and safety checks read has a case here with a
UK-coded fact (SNOMED CT UK edition or the NHS GP codesets), sent the way
GP Connect sends it: code alone (no display), printed units, findings as
Observations. Expected answers come from the cited guidance, never from the
engine's output.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from rules.context import LOINC, SNOMED, build_context, normal_system
from rules.engine import engine
from rules.packs import library, safety_config
from rules.safety import ckd_epi_2021
from rules.units import convert

TODAY = date(2026, 11, 30)


def _day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def _concept(code: str, system: str = SNOMED) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _obs(code: str, days_ago: int = 5, system: str = SNOMED, **value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{code}{days_ago}", "status": "final",
            "code": _concept(code, system), "effectiveDateTime": _day(days_ago), **value}


def _qty(value: float, unit: str | None = None, ucum: str | None = None) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    if unit:
        quantity["unit"] = unit
    if ucum:
        quantity.update(system="http://unitsofmeasure.org", code=ucum)
    return {"valueQuantity": quantity}


def _problem(code: str, status: str = "active", days_ago: int = 100) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": f"c{code}", "code": _concept(code),
            "onsetDateTime": _day(days_ago), "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": status}]}}


def _decide(reasons: list[str], *resources: dict[str, Any], age: int = 52,
            sex: str = "male", ordered: str | None = None):
    born = TODAY.replace(year=TODAY.year - age)
    code = _concept(ordered or "363679005")
    if ordered and ordered.isupper():  # a catalogue key
        code = _concept(ordered, "https://scanpath.example/fhir/CodeSystem/procedure")
    order = {"resourceType": "ServiceRequest", "id": "draft", "code": code,
             "reasonCode": [_concept(code) for code in reasons]}
    patient = {"resourceType": "Patient", "id": "p", "gender": sex,
               "birthDate": born.isoformat()}
    ctx = build_context(order, [patient, *resources], TODAY)
    return engine().decide(ctx)


def _checks(decision) -> dict[str, str]:
    return {f.check: f.severity for f in decision.safety}


ANGINA, LBP, COLIC, HEADACHE, DEFICIT = "194828000", "279039007", "7093002", "25064002", \
    "264552009"


# --- units (UCUM; creatinine molar mass 113.12 g/mol: 1 mg/dL = 88.4 umol/L) ----------

@pytest.mark.parametrize(("value", "unit", "target", "mass", "expected"), [
    (1.0, "mg/dL", "umol/L", 113.12, 88.4),
    (8.2, "ug/L", "ng/mL", None, 8.2),
    (8.2, "µg/L", "ng/mL", None, 8.2),
    (22, "mL/min/1.73m2", "mL/min/{1.73_m2}", None, 22),
    (22, "ml/min/1.73m^2", "mL/min/{1.73_m2}", None, 22),
    (22, "mL/min/{1.73_m2}", "mL/min/{1.73_m2}", None, 22),
    (40, "kU/L", "U/mL", None, 40),
    (0.5, "mg/L", "ug/mL", None, 0.5),
])
def test_units_convert_through_ucum(value, unit, target, mass, expected):
    assert convert(value, unit, target, mass) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(("unit", "target"), [
    ("mmol/L", "mL/min/{1.73_m2}"),  # another dimension
    ("banana", "ng/mL"),  # not a unit
    (None, "ng/mL"),  # no unit at all: unknown, not assumed
    ("mg/dL", "umol/L"),  # mass to substance without a molar mass
])
def test_units_that_do_not_convert_are_unknown(unit, target):
    assert convert(1.0, unit, target) is None


# --- coding systems --------------------------------------------------------------------

@pytest.mark.parametrize(("system", "code", "expected"), [
    ("urn:oid:2.16.840.1.113883.6.96", "29857009", SNOMED),
    ("https://snomed.info/sct", "29857009", SNOMED),
    ("http://snomed.info/sct/83821000000107/version/20240925", "29857009", SNOMED),
    ("SNOMED", "29857009", SNOMED),
    ("urn:oid:2.16.840.1.113883.6.1", "2857-1", LOINC),
    ("http://loinc.org/", "2857-1", LOINC),
    (None, "1011481000000105", SNOMED),  # Verhoeff check digit holds
    (None, "2857-1", LOINC),  # LOINC mod-10 check digit holds
    (None, "2857-2", ""),  # wrong check digit: no system guessed
    (None, "123456", ""),
])
def test_coding_systems_are_normalised(system, code, expected):
    assert normal_system(system, code) == expected


# --- kidney function (ACR-NKF 2020; CKD-EPI 2021) ------------------------------------------

def test_uk_egfr_22_gives_a_contrast_renal_warning():
    """The issue's case: eGFR 22 coded SNOMED CT 1011481000000105 before CTCA."""
    decision = _decide([ANGINA], _obs("1011481000000105", **_qty(22, "mL/min/1.73m2")))
    assert decision.chosen.procedure.key == "CTCA"
    (finding,) = [f for f in decision.safety if f.check == "contrast-renal"]
    assert finding.severity == "warning" and finding.summary.startswith("eGFR 22:")


def test_uk_egfr_58_is_current_and_normal():
    """eGFR 58 in UK coding at 64: no 'no eGFR in 90 days' warning (ACR: >= 45 no risk)."""
    decision = _decide([ANGINA], _obs("1020291000000106", **_qty(58, "mL/min/1.73m2")),
                       age=64)
    assert "contrast-renal" not in _checks(decision)


def test_an_egfr_in_an_unreadable_unit_is_not_normal():
    decision = _decide([ANGINA], _obs("1011481000000105", **_qty(58, "furlongs")), age=40)
    (finding,) = [f for f in decision.safety if f.check == "contrast-renal"]
    assert "unit could not be read" in finding.summary


@pytest.mark.parametrize(("scr", "age", "sex", "expected"), [
    # Inker 2021 equation worked by hand: 142 x (Scr/k)^-1.2 x 0.9938^age [x 1.012]
    (88.4, 60, "female", 64.5),  # 1.0 mg/dL: (1/0.7)^-1.2 = 0.6518, 0.9938^60 = 0.6886
    (88.4, 60, "male", 86.2),  # (1/0.9)^-1.2 = 0.8812; 142 x 0.8812 x 0.6886
    (61.88, 40, "female", 112.1),  # 0.7 mg/dL: ratio 1 -> 142 x 0.9938^40 (0.7798) x 1.012
])
def test_ckd_epi_2021(scr, age, sex, expected):
    assert ckd_epi_2021(scr, age, sex) == pytest.approx(expected, abs=0.6)


def test_a_uk_creatinine_gives_an_egfr_when_none_is_recorded():
    """Creatinine 250 umol/L (2.83 mg/dL) at 70, male: CKD-EPI 2021 about 22 -> warning."""
    decision = _decide([ANGINA], _obs("1000731000000107", **_qty(250, "umol/L")), age=70)
    (finding,) = [f for f in decision.safety if f.check == "contrast-renal"]
    assert finding.severity == "warning"
    assert "calculated from creatinine" in finding.detail


def test_a_creatinine_in_mg_dl_is_converted():
    """2.83 mg/dL x 88.4 = 250 umol/L; male, 70: 142 x (2.83/0.9)^-1.2 (0.2529) x
    0.9938^70 (0.6471) = 23.2 mL/min/1.73m2 (Inker 2021), worked by hand."""
    decision = _decide([ANGINA], _obs("2160-0", system=LOINC, **_qty(2.83, ucum="mg/dL")),
                       age=70)
    (finding,) = [f for f in decision.safety if f.check == "contrast-renal"]
    assert finding.severity == "warning" and finding.summary.startswith("eGFR 23.2:")
    assert "calculated from creatinine 250 umol/L" in finding.detail


@pytest.mark.parametrize("code", ["700379002", "324441000000106", "949881000000106"])
def test_uk_ckd_codes_ask_for_an_egfr(code):
    decision = _decide([ANGINA], _problem(code), age=45)
    assert _checks(decision)["contrast-renal"] == "warning"


def test_a_uk_aki_code_is_a_contrast_warning():
    decision = _decide([ANGINA], _problem("851941000000103"), age=45)
    (finding,) = [f for f in decision.safety if f.check == "contrast-renal"]
    assert "Acute kidney injury" in finding.summary


# --- pregnancy (RCR/SCoR/BIR 2009; IR(ME)R) ------------------------------------------------

def test_a_uk_lmp_five_days_ago_needs_no_pregnancy_card():
    """LMP 161713000 recorded as a dated entry 5 days ago: cycle day 6, within the 10-day
    rule for high-dose CT KUB."""
    decision = _decide([COLIC], _obs("161713000", days_ago=5), age=30, sex="female")
    assert decision.chosen.procedure.key == "CT-KUB"
    assert "pregnancy-radiation" not in _checks(decision)


def test_a_uk_lmp_with_its_date_as_value_counts_too():
    lmp = _obs("161713000", days_ago=0, valueDateTime=_day(20))
    decision = _decide([COLIC], lmp, age=30, sex="female")
    assert _checks(decision)["pregnancy-radiation"] == "warning"  # day 21 > 10


def test_pregnancy_recorded_as_a_uk_finding_moves_colic_to_ultrasound():
    """'Pregnant - urine test confirms' (PREG_COD) as an Observation: NG118 1.1.1."""
    decision = _decide([COLIC], _obs("169560008", days_ago=10), age=29, sex="female")
    assert decision.chosen.procedure.key == "US-ABDO"


def test_a_pregnancy_entry_older_than_42_weeks_is_not_current():
    decision = _decide([COLIC], _obs("77386006", days_ago=400), age=29, sex="female")
    assert decision.chosen.procedure.key == "CT-KUB"
    assert _checks(decision)["pregnancy-radiation"] == "warning"  # status unknown now


def test_not_pregnant_recorded_as_a_finding_is_a_status():
    decision = _decide([COLIC], _obs("60001007", days_ago=3), age=29, sex="female")
    assert "pregnancy-radiation" not in _checks(decision)


def test_sex_not_recorded_is_not_male():
    born = TODAY.replace(year=TODAY.year - 30).isoformat()
    order = {"resourceType": "ServiceRequest", "code": _concept("363679005"),
             "reasonCode": [_concept(COLIC)]}
    ctx = build_context(order, [{"resourceType": "Patient", "birthDate": born}], TODAY)
    decision = engine().decide(ctx)
    (finding,) = [f for f in decision.safety if f.check == "pregnancy-radiation"]
    assert "sex or age not recorded" in finding.summary


# --- PSA (NG12 1.6.3; PCRMP) -------------------------------------------------------------

def test_a_uk_psa_is_read():
    """PSA 8.2 coded 1000381000000105 in ug/L: not 'PSA missing'."""
    decision = _decide(["307541003"], _obs("1000381000000105", **_qty(8.2, "ug/L")), age=66)
    assert decision.outcome == "imaging"
    assert decision.chosen.procedure.key == "MR-PROSTATE"


# --- implants, allergies, history ---------------------------------------------------------

@pytest.mark.parametrize("code", ["441509002", "449840001"])
def test_an_implant_in_situ_recorded_as_a_problem_is_checked_before_mri(code):
    decision = _decide([LBP], _problem("363346000"), _problem(code), age=70)
    assert decision.chosen.procedure.key == "MR-WHOLE-SPINE"
    assert _checks(decision)["mri-implant"] == "warning"


def test_an_mr_unsafe_implant_moves_mri_brain_to_ct():
    """NG12 1.9.1: MRI brain, or CT if MRI is contraindicated (the cochlear vignette)."""
    device = {"resourceType": "Device", "id": "d", "type": _concept("43252007"),
              "safety": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.3.26.1.1",
                                      "code": "C106047"}]}]}
    decision = _decide([HEADACHE, DEFICIT], device, age=45, sex="female")
    assert decision.chosen.procedure.key == "CT-HEAD"
    assert [o.procedure.key for o, _ in decision.passed_over] == ["MR-BRAIN"]
    assert any("not recommended" in r for t in decision.trace for r in t.reasons)


def test_an_mr_unsafe_implant_with_an_mri_order_suggests_the_safe_option():
    device = {"resourceType": "Device", "id": "d", "type": _concept("43252007"),
              "safety": [{"coding": [{"system": "urn:oid:2.16.840.1.113883.3.26.1.1",
                                      "code": "C106047"}]}]}
    decision = _decide([DEFICIT], device, age=45, ordered="816077007")
    assert decision.ordered.key == "MR-BRAIN"
    assert decision.better.procedure.key == "CT-HEAD"
    assert _checks(decision)["mri-implant"] == "critical"


def test_contrast_with_egfr_below_30_moves_to_the_named_alternative():
    """NG12 1.2.5: CT, or ultrasound if CT is not available; eGFR 24 makes contrast CT
    unsafe (ACR-NKF 2020), so the ultrasound the guideline names is recommended."""
    decision = _decide(["89362005", "62315008"],
                       _obs("1011481000000105", **_qty(24, "mL/min/1.73m2")), age=61)
    assert decision.chosen.procedure.key == "US-ABDO"


def test_without_a_named_alternative_the_unsafe_test_stays_with_its_card():
    """CG95: CTCA; calcium scoring is not indicated, so eGFR 25 keeps CTCA with a card."""
    decision = _decide([ANGINA], _obs("1011481000000105", **_qty(25, "mL/min/1.73m2")))
    assert decision.chosen.procedure.key == "CTCA"
    assert not decision.passed_over


def test_a_contrast_reaction_recorded_as_a_problem_is_flagged():
    decision = _decide([ANGINA], _problem("292096006"),
                       _obs("1011481000000105", **_qty(80, "mL/min/1.73m2")))
    assert _checks(decision)["contrast-allergy"] == "warning"


def test_smoking_recorded_as_a_uk_observation_counts_as_ever_smoked():
    """NG12 1.1.2: 40 or over, has ever smoked, one unexplained symptom (cough)."""
    decision = _decide(["49727002"], _obs("1092031000000108", days_ago=900), age=55)
    assert decision.chosen.procedure.key == "XR-CHEST"


def test_smoking_status_as_a_loinc_observation_value_counts_too():
    status = _obs("72166-2", system=LOINC, valueCodeableConcept=_concept("77176002"))
    decision = _decide(["49727002"], status, age=55)
    assert decision.chosen.procedure.key == "XR-CHEST"


@pytest.mark.parametrize("code", ["702391001", "363518003", "266987004"])
def test_any_history_of_cancer_with_back_pain_gives_mri_whole_spine(code):
    """NG234: renal cell carcinoma, kidney cancer, 'history of malignant neoplasm'."""
    decision = _decide([LBP], _problem(code, status="resolved"), age=64)
    assert decision.chosen.procedure.key == "MR-WHOLE-SPINE"


# --- data that cannot be read ----------------------------------------------------------------

def test_a_d_dimer_without_a_flag_cannot_be_read_as_negative():
    """NG158: Wells 1 and a D-dimer with no interpretation: ask, never 'negative'."""
    wells = _obs("wells-dvt", system="https://scanpath.example/fhir/CodeSystem/score",
                 days_ago=0, **_qty(1, ucum="{score}"))
    d_dimer = _obs("48065-7", system=LOINC, days_ago=0, **_qty(0.3, ucum="mg/L"))
    decision = _decide(["128053003"], wells, d_dimer, age=50)
    assert decision.outcome == "data-requested"
    assert any("positive or negative" in m.name for m in decision.missing)


# --- duplicates and children -----------------------------------------------------------------

def test_a_ctca_booked_for_next_week_is_a_duplicate():
    booked = {"resourceType": "ServiceRequest", "id": "booked", "status": "active",
              "intent": "order", "code": _concept("419545005"),
              "occurrenceDateTime": (TODAY + timedelta(days=7)).isoformat()}
    decision = _decide([ANGINA], booked, _obs("1011481000000105", **_qty(80, "mL/min")))
    (finding,) = [f for f in decision.safety if f.check == "duplicate-imaging"]
    assert "booked in 7 days" in finding.summary


def test_a_childs_ct_order_where_a_lower_dose_test_rates_as_well_is_flagged():
    """ICRP 121: a child (8) with renal colic and a drafted CT KUB; NG118 1.1.2 rates
    ultrasound first."""
    decision = _decide([COLIC], age=8, ordered="CT-KUB")
    assert "paediatric-dose" in _checks(decision)


# --- every library value set and every safety check's names resolve -------------------------

def test_every_safety_value_set_is_in_the_library():
    names = {name for _, name in safety_config().value_set_names()}
    assert names <= set(library())


@pytest.mark.parametrize("name", ["egfr", "creatinine", "psa", "lmp", "pregnancy", "ckd", "aki",
                                  "malignancy", "smoking-history", "mri-high-risk-implant",
                                  "contrast-allergy-iodinated"])
def test_fact_value_sets_hold_uk_edition_codes(name):
    """UK-edition SNOMED CT concepts carry the UK namespace (1000000) in their id."""
    codes = library()[name].codes
    assert any(c.system == SNOMED and "1000000" in c.code for c in codes) or \
        name in ("lmp", "malignancy", "mri-high-risk-implant", "contrast-allergy-iodinated"), name
    assert all(c.source for c in codes)


def test_a_recent_study_of_unrecognised_type_and_the_same_modality_is_named():
    """An ImagingStudy with only its DICOM modality (CT) 20 days ago: it may be the same
    test, so the duplicate check names it rather than reading it as 'no prior imaging'."""
    study = {"resourceType": "ImagingStudy", "id": "s", "status": "available",
             "started": _day(20), "modality": [{"system":
                                                "http://dicom.nema.org/resources/ontology/DCM",
                                                "code": "CT"}]}
    decision = _decide([ANGINA], study, _obs("1011481000000105", **_qty(80, "mL/min")))
    (finding,) = [f for f in decision.safety if f.check == "duplicate-imaging"]
    assert "unrecognised type" in finding.summary
    other = {**study, "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                    "code": "US"}]}
    decision = _decide([ANGINA], other, _obs("1011481000000105", **_qty(80, "mL/min")))
    assert "duplicate-imaging" not in _checks(decision)


def test_a_catalogue_key_sent_without_its_system_is_still_the_order():
    decision = _decide([COLIC], age=8, ordered="CT-KUB")
    order = {"resourceType": "ServiceRequest", "code": {"coding": [{"code": "CT-KUB"}]},
             "reasonCode": [_concept(COLIC)]}
    born = TODAY.replace(year=TODAY.year - 8).isoformat()
    ctx = build_context(order, [{"resourceType": "Patient", "gender": "male",
                                 "birthDate": born}], TODAY)
    bare = engine().decide(ctx)
    assert bare.ordered is not None and bare.ordered.key == decision.ordered.key == "CT-KUB"
    assert "paediatric-dose" in _checks(bare)


def test_a_stale_low_egfr_is_shown_with_its_value():
    decision = _decide([ANGINA], _obs("1011481000000105", days_ago=200,
                                      **_qty(22, "mL/min/1.73m2")), age=70)
    (finding,) = [f for f in decision.safety if f.check == "contrast-renal"]
    assert "(22 mL/min/{1.73_m2}) was 200 days ago" in finding.detail


def test_the_explanation_puts_the_deciding_rule_first_and_marks_outranked_ones():
    from rules.cards import build_cards

    decision = _decide(["87548005", "89362005"], age=57)
    detail = build_cards(decision, {"resourceType": "ServiceRequest"},
                         "https://scanpath.example/fhir")[0]["detail"]
    why = detail.split("**Why:**")[1].strip().splitlines()
    assert why[0].startswith("- 55 or over with weight loss and dyspepsia")
    assert any("also applies, outranked" in line for line in why)
    assert not any(line.startswith("- Dyspepsia at 55 or over") and "applies" in
                   line.split(":")[-1][:10] for line in why)
