"""Each safety check alone, at its thresholds (values from the cited guidance)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from rules import safety
from rules.context import Fact, PatientContext
from rules.packs import library, safety_config
from rules.schema import CodeRef, DoseBand, Procedure
from rules.valuesets import ValueSets

TODAY = date(2026, 11, 23)
LOINC, SCT = "http://loinc.org", "http://snomed.info/sct"
NCI = "urn:oid:2.16.840.1.113883.3.26.1.1"
CFG = safety_config()
VS = ValueSets(library())


def _proc(key="CT-X", modality="CT", contrast="iodinated", pelvis=False, high_dose=False,
          region="chest", adult=3, child=3):
    code = CodeRef(system=SCT, code="1", display=key, verified=False, source="test")
    return Procedure(key=key, display=key, snomed=code, modality=modality, body_site=code,
                     region=region, contrast=contrast, adult=DoseBand(rrl=adult, band_msv="x"),
                     paediatric=DoseBand(rrl=child, band_msv="x"), pelvis_in_beam=pelvis,
                     high_dose=high_dose)


def _ctx(age=60, sex="male", **facts):
    born = TODAY.replace(year=TODAY.year - age)
    return PatientContext(today=TODAY, birth_date=born, sex=sex, **facts)


def _egfr(value, days_ago=10):
    return Fact("observation", ((LOINC, "98979-8"),), "eGFR", "Observation/e",
                TODAY - timedelta(days=days_ago), value=value, unit="mL/min/{1.73_m2}")


CTCA = _proc("CTCA")


# ACR-NKF 2020: eGFR < 30 warrants prophylaxis (warning); 30-44 low risk (info); >= 45 none.
@pytest.mark.parametrize(("egfr", "severity"), [(29, "warning"), (29.9, "warning"),
                                                (30, "info"), (44, "info"), (45, None)])
def test_contrast_renal_egfr_bands(egfr, severity):
    found = safety.contrast_renal(_ctx(observations=[_egfr(egfr)]), CTCA, CFG, VS)
    assert [f.severity for f in found] == ([severity] if severity else [])


def test_contrast_renal_ignores_non_contrast_tests():
    assert safety.contrast_renal(_ctx(observations=[_egfr(10)]), _proc(contrast="none"),
                                 CFG, VS) == []


# ACR Manual on Contrast Media (2024): age > 60 is a risk factor that warrants a renal
# function assessment before iodinated contrast.
def test_contrast_renal_asks_for_a_current_egfr_over_60_only():
    stale = [_egfr(80, days_ago=91)]
    found = safety.contrast_renal(_ctx(age=61, observations=stale), CTCA, CFG, VS)
    assert [f.severity for f in found] == ["warning"]
    assert "ACR Manual on Contrast Media" in found[0].citation.guideline
    assert safety.contrast_renal(_ctx(age=60, observations=stale), CTCA, CFG, VS) == []
    assert safety.contrast_renal(_ctx(age=61), CTCA, CFG, VS)[0].severity == "warning"
    assert safety.contrast_renal(_ctx(age=60), CTCA, CFG, VS) == []
    assert safety.contrast_renal(_ctx(age=61, observations=[_egfr(80, days_ago=90)]), CTCA,
                                 CFG, VS) == []


def test_contrast_renal_asks_for_egfr_in_ckd_and_warns_on_aki():
    ckd = Fact("condition", ((SCT, "709044004"),), "CKD", "Condition/c")
    assert safety.contrast_renal(_ctx(age=40, conditions=[ckd]), CTCA, CFG, VS)
    aki = Fact("condition", ((SCT, "14669001"),), "AKI", "Condition/a")
    found = safety.contrast_renal(_ctx(conditions=[aki], observations=[_egfr(90)]), CTCA, CFG, VS)
    assert found[0].severity == "warning" and found[0].facts == (aki,)


# ACR Manual on Contrast Media (NSF chapter): patients with acute kidney injury are at
# risk of nephrogenic systemic fibrosis whatever their (unreliable) eGFR.
def test_acute_kidney_injury_is_flagged_before_gadolinium_too():
    mr = _proc("MR-X", modality="MR", contrast="gadolinium")
    aki = Fact("condition", ((SCT, "14669001"),), "AKI", "Condition/a")
    found = safety.contrast_renal(_ctx(conditions=[aki], observations=[_egfr(90)]), mr, CFG, VS)
    assert [f.severity for f in found] == ["warning"] and found[0].facts == (aki,)
    assert "gadolinium" in found[0].summary
    resolved = Fact("condition", ((SCT, "14669001"),), "AKI", "Condition/a", active=False)
    assert safety.contrast_renal(_ctx(conditions=[resolved], observations=[_egfr(90)]), mr,
                                 CFG, VS) == []


def test_gadolinium_warns_below_30_only():
    mr = _proc("MR-X", modality="MR", contrast="gadolinium")
    assert safety.contrast_renal(_ctx(observations=[_egfr(29)]), mr, CFG, VS)[0].severity \
        == "warning"
    assert safety.contrast_renal(_ctx(observations=[_egfr(30)]), mr, CFG, VS) == []


def test_contrast_allergy_warns_and_never_blocks():
    allergy = Fact("allergy", ((SCT, "293637006"),), "Allergy to contrast media",
                   "AllergyIntolerance/x")
    found = safety.contrast_allergy(_ctx(allergies=[allergy]), CTCA, CFG, VS)
    assert [f.severity for f in found] == ["warning"]
    assert safety.contrast_allergy(_ctx(allergies=[allergy]), _proc(contrast="none"), CFG, VS) == []


def _lmp(days_ago):
    return Fact("observation", ((LOINC, "8665-2"),), "LMP", "Observation/l", TODAY,
                value_date=TODAY - timedelta(days=days_ago))


PELVIS_HIGH = _proc("CT-AP", pelvis=True, high_dose=True, region="abdomen-pelvis")
PELVIS_LOW = _proc("XR-P", modality="DX", contrast="none", pelvis=True, region="pelvis")


# RCR/SCoR/BIR 2009: 10-day rule for high-dose exams, 28-day rule for others.
@pytest.mark.parametrize(("proc", "cycle_day", "fires"), [
    (PELVIS_HIGH, 10, False), (PELVIS_HIGH, 11, True),
    (PELVIS_LOW, 28, False), (PELVIS_LOW, 29, True)])
def test_pregnancy_menstrual_rules(proc, cycle_day, fires):
    ctx = _ctx(age=30, sex="female", observations=[_lmp(cycle_day - 1)])
    assert bool(safety.pregnancy_radiation(ctx, proc, CFG, VS)) is fires


def test_pregnancy_positive_status_is_critical_and_unknown_status_warns():
    status = Fact("observation", ((LOINC, "82810-3"),), "Pregnancy status", "Observation/p",
                  TODAY, value_codes=((SCT, "77386006"),))
    ctx = _ctx(age=30, sex="female", observations=[status])
    assert safety.pregnancy_radiation(ctx, PELVIS_LOW, CFG, VS)[0].severity == "critical"
    unknown = safety.pregnancy_radiation(_ctx(age=30, sex="female"), PELVIS_LOW, CFG, VS)
    assert unknown[0].severity == "warning"


# "Females of childbearing potential, aged 12 to 55" (RCR/SCoR/BIR 2009): both inclusive.
@pytest.mark.parametrize(("age", "sex", "proc", "fires"), [
    (11, "female", PELVIS_LOW, False), (12, "female", PELVIS_LOW, True),
    (55, "female", PELVIS_LOW, True), (56, "female", PELVIS_LOW, False),
    (30, "male", PELVIS_LOW, False), (30, "female", _proc(pelvis=False), False),
    (30, "female", _proc("US", modality="US", contrast="none", pelvis=True), False)])
def test_pregnancy_check_applies_only_where_the_guidance_says(age, sex, proc, fires):
    assert bool(safety.pregnancy_radiation(_ctx(age=age, sex=sex), proc, CFG, VS)) is fires


MRI = _proc("MR-X", modality="MR", contrast="none")


def _device(code, safety_code=None):
    tags = ((NCI, safety_code),) if safety_code else ()
    return Fact("device", ((SCT, code),), "device", "Device/d", safety=tags)


@pytest.mark.parametrize(("device", "fires"), [
    (_device("14106009"), True),                 # pacemaker, MR status unknown
    (_device("14106009", "C106046"), True),      # MR Conditional pacemaker: conditions apply
    (_device("14106009", "C106045"), False),     # labelled MR Safe
    (_device("43252007"), True),                 # cochlear implant
    (_device("999999"), True),                   # other device, unknown status
    (_device("999999", "C106046"), False),       # other device, MR Conditional
    (_device("999999", "C106047"), True)])       # other device, MR Unsafe
def test_mri_implant(device, fires):
    assert bool(safety.mri_implant(_ctx(devices=[device]), MRI, CFG, VS)) is fires
    assert safety.mri_implant(_ctx(devices=[device]), CTCA, CFG, VS) == []


# ASTM F2503: MR Unsafe means unacceptable risk in all MR environments (critical); an
# unknown or MR Conditional active implant needs radiology to check the conditions (warning).
@pytest.mark.parametrize(("device", "severities"), [
    (_device("14106009", "C106047"), ["critical"]),
    (_device("999999", "C106047"), ["critical"]),
    (_device("14106009"), ["warning"]),
    (_device("14106009", "C106046"), ["warning"])])
def test_mr_unsafe_implant_is_critical(device, severities):
    found = safety.mri_implant(_ctx(devices=[device]), MRI, CFG, VS)
    assert [f.severity for f in found] == severities


@pytest.mark.parametrize(("days", "fires"), [(0, True), (90, True), (91, False)])
def test_duplicate_window_edges(days, fires):
    prior = Fact("imaging", (("x/CodeSystem/procedure", "CTCA"),), "CTCA", "ImagingStudy/i",
                 TODAY - timedelta(days=days))
    found = safety.duplicate_imaging(_ctx(imaging=[prior]), CTCA, CFG, lambda f: CTCA)
    assert bool(found) is fires


def test_duplicate_matches_same_modality_and_region():
    other = _proc("CT-OTHER")
    prior = Fact("imaging", (), "CT", "ImagingStudy/i", TODAY - timedelta(days=5))
    assert safety.duplicate_imaging(_ctx(imaging=[prior]), CTCA, CFG, lambda f: other)
    mr = _proc("MR-OTHER", modality="MR")
    assert not safety.duplicate_imaging(_ctx(imaging=[prior]), CTCA, CFG, lambda f: mr)


def test_paediatric_dose_prefers_the_lower_dose_option_that_rates_the_same():
    ct = _proc("CT-KUB", child=4)
    us = _proc("US-KUB", modality="US", contrast="none", child=0)
    rated = [safety.Rated(ct, 7), safety.Rated(us, 7)]
    assert safety.paediatric_dose(_ctx(age=15), ct, CFG, rated)[0].check == "paediatric-dose"
    assert safety.paediatric_dose(_ctx(age=16), ct, CFG, rated) == []
    assert safety.paediatric_dose(_ctx(age=10), us, CFG, rated) == []
    unequal = [safety.Rated(ct, 8), safety.Rated(us, 6)]
    assert safety.paediatric_dose(_ctx(age=10), ct, CFG, unequal) == []


def test_findings_name_their_procedure_and_identical_ones_merge():
    ct_ap = _proc("CT-AP", region="abdomen-pelvis")
    ctx = _ctx(observations=[_egfr(25)])
    findings = [*safety.run_checks(ctx, CTCA, CFG, VS, [], lambda f: None),
                *safety.run_checks(ctx, ct_ap, CFG, VS, [], lambda f: None)]
    assert [f.procedure for f in findings] == ["CTCA", "CT-AP"]
    merged = safety.merge_findings(findings)
    assert [(f.check, f.procedure) for f in merged] == [("contrast-renal", "CTCA and CT-AP")]
    assert safety.merge_findings(findings[:1] * 2) == findings[:1]
