"""Write the rule-pack vignettes to ``tests/rules/vignettes/`` (deterministic).

Each case is a GP order-select request in the format of ``shared/vignettes``
(README there), with the answer the guideline gives. The expected outcomes are
taken from the cited guideline and from the safety semantics the engine
implements, never from the engine's output.

    .venv/bin/python tests/rules/make_vignettes.py          # (re)write the files
    .venv/bin/python tests/rules/make_vignettes.py --check  # fail if they differ

The script also checks that every rule of the shipped pack is covered by at
least one case and that every reason code used is in one of the pack's value
sets, so a case cannot silently test nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = Path(__file__).resolve().parent / "vignettes"

SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
SCORE = "https://scanpath.example/fhir/CodeSystem/score"
PROCEDURE = "https://scanpath.example/fhir/CodeSystem/procedure"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
UCUM = "http://unitsofmeasure.org"

# Clinical codes by short name: (system, code, display).
CODES: dict[str, tuple[str, str, str]] = {
    # chest
    "chest-pain": (SCT, "29857009", "Chest pain"),
    "angina": (SCT, "194828000", "Angina"),
    "stable-angina": (SCT, "233819005", "Stable angina"),
    "unstable-angina": (SCT, "4557003", "Preinfarction syndrome"),
    "ecg-abnormal": (SCT, "102594003", "Electrocardiogram abnormal"),
    # lung
    "cough": (SCT, "49727002", "Cough"),
    "persistent-cough": (SCT, "284523002", "Persistent cough"),
    "fatigue": (SCT, "84229001", "Fatigue"),
    "dyspnoea": (SCT, "267036007", "Dyspnoea"),
    "weight-loss": (SCT, "89362005", "Weight loss"),
    "haemoptysis": (SCT, "66857006", "Haemoptysis"),
    "finger-clubbing": (SCT, "30760008", "Finger clubbing"),
    "cxr-abnormal": (SCT, "168734001", "Standard chest X-ray abnormal"),
    "smoker": (SCT, "77176002", "Smoker"),
    "ex-smoker": (SCT, "8517006", "Ex-smoker"),
    # abdomen
    "abdominal-pain": (SCT, "21522001", "Abdominal pain"),
    "ruq-pain": (SCT, "301717006", "Right upper quadrant pain"),
    "gallstones": (SCT, "235919008", "Gallbladder calculus"),
    "jaundice": (SCT, "18165001", "Jaundice"),
    "abdominal-mass": (SCT, "271860004", "Abdominal mass"),
    "bloating": (SCT, "116289008", "Abdominal bloating"),
    "pmb": (SCT, "76742009", "Postmenopausal bleeding"),
    "ida": (SCT, "87522002", "Iron deficiency anaemia"),
    "frailty": (SCT, "248279007", "Frailty"),
    "dysphagia": (SCT, "40739000", "Dysphagia"),
    "t2dm": (SCT, "44054006", "Diabetes mellitus type 2"),
    # urology
    "renal-colic": (SCT, "7093002", "Renal colic"),
    "haematuria": (SCT, "34436003", "Blood in urine"),
    "frank-haematuria": (SCT, "197941005", "Frank haematuria"),
    "raised-psa": (SCT, "396152005", "Raised prostate specific antigen"),
    "prostate-mass": (SCT, "309089006", "Prostate mass"),
    "luts": (SCT, "307541003", "Lower urinary tract symptoms"),
    "hydrocele": (SCT, "70660007", "Hydrocele of tunica vaginalis"),
    "pregnant": (SCT, "77386006", "Pregnant"),
    # neuro and spine
    "headache": (SCT, "25064002", "Headache"),
    "thunderclap": (SCT, "95660002", "Thunderclap headache"),
    "neuro-deficit": (SCT, "264552009", "Neurological deficit"),
    "low-back-pain": (SCT, "279039007", "Low back pain"),
    "sciatica": (SCT, "23056005", "Sciatica"),
    "cauda-equina": (SCT, "192970008", "Cauda equina syndrome"),
    "urinary-retention": (SCT, "267064002", "Retention of urine"),
    "cancer": (SCT, "363346000", "Malignant neoplastic disease"),
    "breast-cancer": (SCT, "254837009", "Malignant neoplasm of breast"),
    "prostate-cancer": (SCT, "399068003", "Malignant tumour of prostate"),
    "lung-cancer": (SCT, "254637007", "Non-small cell lung cancer"),
    # musculoskeletal
    "knee-pain": (SCT, "30989003", "Knee pain"),
    "knee-oa": (SCT, "239873007", "Osteoarthritis of knee"),
    "knee-locking": (SCT, "1126007", "Knee locking"),
    "knee-injury": (SCT, "125601008", "Injury of knee"),
    "hip-pain": (SCT, "49218002", "Hip pain"),
    "hip-injury": (SCT, "125600009", "Injury of hip region"),
    "hip-fracture": (SCT, "5913000", "Fracture of neck of femur"),
    "shoulder-pain": (SCT, "45326000", "Shoulder pain"),
    "trauma": (SCT, "417746004", "Traumatic injury"),
    "osteoporosis": (SCT, "64859006", "Osteoporosis"),
    "thyroid-nodule": (SCT, "237495005", "Thyroid nodule"),
    # NG12 referral presentations (codes from the OpenCodelists lists in the pack)
    "breast-lump": (SCT, "89164003", "Breast lump"),
    "nipple-discharge": (SCT, "162164007", "Nipple discharge symptom"),
    "breast-skin-retraction": (SCT, "129796009", "Skin retraction of breast"),
    "axillary-lymphadenopathy": (SCT, "127189005", "Axillary lymphadenopathy"),
    "dyspepsia": (SCT, "87548005", "Dyspepsia"),
    "gord": (SCT, "235595009", "Gastroesophageal reflux disease"),
    "epigastric-pain": (SCT, "79922009", "Epigastric pain"),
    "nausea": (SCT, "422587007", "Nausea"),
    "vomiting": (SCT, "422400008", "Vomiting"),
    "diarrhoea": (SCT, "62315008", "Diarrhoea"),
    "bowel-habit-change": (SCT, "88111009", "Altered bowel function"),
    "rectal-bleeding": (SCT, "12063002", "Rectal haemorrhage"),
    "unintentional-weight-loss": (SCT, "448765001", "Unintentional weight loss"),
    "appetite-loss": (SCT, "79890006", "Loss of appetite"),
    "epigastric-mass": (SCT, "309082002", "Epigastric mass"),
    "hepatomegaly": (SCT, "80515008", "Large liver"),
    "pelvic-mass": (SCT, "74285003", "Mass of pelvic structure"),
    "microscopic-haematuria": (SCT, "197940006", "Microscopic haematuria"),
    "dysuria": (SCT, "16844001", "Painful urging to urinate"),
    "recurrent-uti": (SCT, "197927001", "Recurrent urinary tract infection"),
    "scrotal-mass": (SCT, "53929009", "Mass of scrotum"),
    "hoarseness": (SCT, "50219008", "Hoarseness"),
    "bone-pain": (SCT, "12584003", "Bone pain"),
    "lumbar-radiculopathy": (SCT, "128196005", "Lumbar radiculopathy"),
    "kidney-cancer": (SCT, "363518003", "Malignant neoplasm of kidney"),
    "cancer-history": (SCT, "266987004", "History of malignant neoplasm"),
    # neurology, rheumatology, gynaecology, children, haematology
    "seizure": (SCT, "313307000", "Epileptic seizure"),
    "tia": (SCT, "266257000", "Transient ischaemic attack"),
    "stroke": (SCT, "230690007", "Cerebrovascular accident"),
    "tremor": (SCT, "26079004", "Tremor"),
    "memory-impairment": (SCT, "386807006", "Memory impairment"),
    "impaired-cognition": (SCT, "386806002", "Impaired cognition"),
    "ibs": (SCT, "10743008", "Irritable bowel syndrome"),
    "ankylosing-spondylitis": (SCT, "9631008", "Ankylosing spondylitis"),
    "rheumatoid-arthritis": (SCT, "69896004", "Rheumatoid arthritis"),
    "uti": (SCT, "68566005", "Urinary tract infectious disease"),
    "menorrhagia": (SCT, "386692008", "Menorrhagia"),
    "dysmenorrhoea": (SCT, "65754002", "Primary dysmenorrhoea"),
    "constipation": (SCT, "14760008", "Constipation"),
    "dizziness": (SCT, "404640003", "Dizziness"),
    "vertigo": (SCT, "399153001", "Vertigo"),
    "haematemesis": (SCT, "8765009", "Haematemesis"),
    "ascites": (SCT, "389026000", "Ascites"),
    "splenomegaly": (SCT, "16294009", "Splenomegaly"),
    "hepatosplenomegaly": (SCT, "36760000", "Hepatosplenomegaly"),
    "lymphadenopathy": (SCT, "30746006", "Lymphadenopathy"),
    # venous thromboembolism
    "dvt": (SCT, "128053003", "Deep venous thrombosis"),
    "pe": (SCT, "59282003", "Pulmonary embolism"),
    # kidney
    "ckd": (SCT, "709044004", "Chronic kidney disease"),
    "aki": (SCT, "14669001", "Acute kidney injury"),
}

EGFR = {
    "98979-8": "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, "
               "Plasma or Blood by Creatinine-based formula (CKD-EPI 2021)",
    "62238-1": "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, "
               "Plasma or Blood by Creatinine-based formula (CKD-EPI)",
}
DEVICES = {
    "pacemaker": (SCT, "14106009", "Cardiac pacemaker"),
    "icd": (SCT, "72506001", "Implantable defibrillator"),
    "cochlear": (SCT, "43252007", "Cochlear prosthesis"),
}
ALLERGENS = {
    "contrast-allergy": (SCT, "293637006", "Allergy to contrast media"),
    "iodinated-contrast": (SCT, "426722004", "Iodinated contrast media"),
}


# --- observation and history builders ----------------------------------------

def _coding(ref: tuple[str, str, str]) -> dict[str, Any]:
    system, code, display = ref
    return {"system": system, "code": code, "display": display}


def _concept(ref: tuple[str, str, str]) -> dict[str, Any]:
    return {"coding": [_coding(ref)], "text": ref[2]}


def egfr(value: float, days_ago: int, loinc: str = "98979-8") -> dict[str, Any]:
    unit = "mL/min/{1.73_m2}"
    return {"code": _concept((LOINC, loinc, EGFR[loinc])), "days": days_ago,
            "value": {"valueQuantity": {"value": value, "unit": unit, "system": UCUM,
                                        "code": unit}}}


def score(code: str, display: str, value: float, days_ago: int = 0) -> dict[str, Any]:
    return {"code": _concept((SCORE, code, display)), "days": days_ago,
            "value": {"valueQuantity": {"value": value, "unit": "{score}", "system": UCUM,
                                        "code": "{score}"}}}


def wells_dvt(value: float, days_ago: int = 0) -> dict[str, Any]:
    return score("wells-dvt", "Two-level DVT Wells score", value, days_ago)


def wells_pe(value: float, days_ago: int = 0) -> dict[str, Any]:
    return score("wells-pe", "Two-level PE Wells score", value, days_ago)


def frax(value: float, days_ago: int = 30) -> dict[str, Any]:
    obs = score("frax-mof", "FRAX 10-year major osteoporotic fracture probability", value,
                days_ago)
    obs["value"]["valueQuantity"].update(unit="%", code="%")
    return obs


def d_dimer(flag: str, days_ago: int = 0, loinc: str = "48065-7",
            coded: bool = False) -> dict[str, Any]:
    """A D-dimer read as positive/negative from its interpretation flag or coded value."""
    display = {"48065-7": "Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma",
               "48066-5": "Fibrin D-dimer DDU [Mass/volume] in Platelet poor plasma"}[loinc]
    obs: dict[str, Any] = {"code": _concept((LOINC, loinc, display)), "days": days_ago}
    if coded:
        answer = {"POS": ("10828004", "Positive"), "NEG": ("260385009", "Negative")}[flag]
        obs["value"] = {"valueCodeableConcept": _concept((SCT, *answer))}
        return obs
    high = flag in ("H", "POS")
    obs["value"] = {"valueQuantity": {"value": 1.2 if high else 0.3, "unit": "mg/L",
                                      "system": UCUM, "code": "mg/L"}}
    obs["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": flag}]}]
    return obs


def quantity(loinc: str, display: str, value: float, unit: str, days_ago: int) -> dict[str, Any]:
    return {"code": _concept((LOINC, loinc, display)), "days": days_ago,
            "value": {"valueQuantity": {"value": value, "unit": unit, "system": UCUM,
                                        "code": unit}}}


def ca125(value: float, days_ago: int = 7) -> dict[str, Any]:
    return quantity("10334-1", "Cancer Ag 125 [Units/volume] in Serum or Plasma", value,
                    "U/mL", days_ago)


def psa(value: float, days_ago: int = 14) -> dict[str, Any]:
    return quantity("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma", value,
                    "ng/mL", days_ago)


def pregnancy_status(pregnant: bool, days_ago: int = 0) -> dict[str, Any]:
    answer = (SCT, "77386006", "Pregnant") if pregnant else (SCT, "60001007", "Not pregnant")
    return {"code": _concept((LOINC, "82810-3", "Pregnancy status")), "days": days_ago,
            "value": {"valueCodeableConcept": _concept(answer)}}


def lmp_cycle_day(day: int) -> dict[str, Any]:
    """Last menstrual period such that today is cycle day ``day`` (day 1 = LMP)."""
    return {"code": _concept((LOINC, "8665-2", "Last menstrual period start date")), "days": 0,
            "value": {"valueDateTime": f"{{{{today-{day - 1}d}}}}"}}


def prior_study(key: str | None, days_ago: int, snomed: str | None = None) -> dict[str, Any]:
    codings = []
    if key:
        codings.append({"system": PROCEDURE, "code": key})
    if snomed:
        codings.append({"system": SCT, "code": snomed})
    return {"resourceType": "ImagingStudy", "status": "available",
            "started": f"{{{{today-{days_ago}d}}}}", "procedureCode": [{"coding": codings}]}


def prior_order(key: str, days_ago: int) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "code": {"coding": [{"system": PROCEDURE, "code": key}]},
            "authoredOn": f"{{{{today-{days_ago}d}}}}"}


# --- the case and its rendering ----------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    title: str
    source: str
    gender: str | None  # None: the Patient has no gender
    age: int | None  # None: the Patient has no birthDate
    reasons: tuple[str, ...]
    covers: tuple[str, ...]  # rule ids the case exercises (checked, not written)
    outcome: str | None
    procedure: str | None = None  # expected recommended key (imaging outcomes)
    safety: tuple[str, ...] = ()
    no_safety: tuple[str, ...] = ()
    # (code name, onset days ago) or (code name, onset days ago, clinicalStatus)
    conditions: tuple[tuple[str, int] | tuple[str, int, str], ...] = ()
    observations: tuple[dict[str, Any], ...] = ()
    allergies: tuple[str, ...] = ()
    devices: tuple[str | dict[str, Any], ...] = ()
    imaging: tuple[dict[str, Any], ...] = ()
    draft: str | None = None  # catalogue key named by the draft order


def _bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind,
            "entry": [{"resource": resource} for resource in entries]}


def _draft_code(case: Case, catalogue: dict[str, Any]) -> dict[str, Any]:
    if case.draft is None:
        return {"coding": [{"system": SCT, "code": "363679005", "display": "Imaging"}]}
    entry = catalogue[case.draft]
    return {"coding": [{"system": PROCEDURE, "code": case.draft, "display": entry.display},
                       {"system": SCT, "code": entry.snomed.code,
                        "display": entry.snomed.display}]}


def _service_request(case: Case, catalogue: dict[str, Any]) -> dict[str, Any]:
    imaging = {"coding": [{"system": SCT, "code": "363679005", "display": "Imaging"}]}
    return {
        "resourceType": "ServiceRequest",
        "id": f"draft-{case.id}",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/pt-{case.id}"},
        "category": [imaging],
        "code": _draft_code(case, catalogue),
        "reasonCode": [_concept(CODES[name]) for name in case.reasons],
    }


def _condition(case: Case, index: int, name: str, days_ago: int,
               status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"c{index}-{case.id}",
        "subject": {"reference": f"Patient/pt-{case.id}"},
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": status}]},
        "code": _concept(CODES[name]),
        "onsetDateTime": f"{{{{today-{days_ago}d}}}}",
    }


def _patient(case: Case) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": f"pt-{case.id}"}
    if case.gender is not None:
        patient["gender"] = case.gender
    if case.age is not None:
        patient["birthDate"] = f"{{{{today-{case.age}y}}}}"
    return patient


def _observation(case: Case, index: int, spec: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"o{index}-{case.id}",
        "status": "final",
        "subject": {"reference": f"Patient/pt-{case.id}"},
        "code": spec["code"],
        "effectiveDateTime": f"{{{{today-{spec['days']}d}}}}",
    }
    resource.update(spec["value"])
    if "interpretation" in spec:
        resource["interpretation"] = spec["interpretation"]
    return resource


def _allergy(case: Case, index: int, name: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "id": f"a{index}-{case.id}",
        "patient": {"reference": f"Patient/pt-{case.id}"},
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "code": "confirmed"}]},
        "code": _concept(ALLERGENS[name]),
    }


def _device(case: Case, index: int, device: str | dict[str, Any]) -> dict[str, Any]:
    kind = device if isinstance(device, dict) else _concept(DEVICES[device])
    return {"resourceType": "Device", "id": f"d{index}-{case.id}",
            "patient": {"reference": f"Patient/pt-{case.id}"}, "status": "active",
            "type": kind}


def _prior(case: Case, index: int, spec: dict[str, Any]) -> dict[str, Any]:
    """A prior ImagingStudy or ServiceRequest, keys in the order of shared/vignettes."""
    head = ("resourceType", "status", "intent")
    resource = {"resourceType": spec["resourceType"], "id": f"i{index}-{case.id}"}
    resource.update({k: spec[k] for k in head[1:] if k in spec})
    resource["subject"] = {"reference": f"Patient/pt-{case.id}"}
    resource.update({k: v for k, v in spec.items() if k not in head})
    return resource


def _expect(case: Case) -> dict[str, Any]:
    expect: dict[str, Any] = {}
    if case.outcome:
        expect["outcome"] = case.outcome
    if case.procedure:
        expect["procedure"] = case.procedure
    if case.outcome == "imaging" or case.safety or case.no_safety:
        expect["safety"] = list(case.safety)
        expect["no_safety"] = list(case.no_safety)
    return expect


def render(case: Case, catalogue: dict[str, Any]) -> dict[str, Any]:
    """The vignette JSON for one case, in the shared/vignettes format."""
    hook_instance = uuid.uuid5(uuid.NAMESPACE_URL, f"https://scanpath.example/vignette/{case.id}")
    return {
        "id": case.id,
        "title": case.title,
        "source": case.source,
        "request": {
            "hook": "order-select",
            "hookInstance": str(hook_instance),
            "context": {
                "userId": "Practitioner/gp-1",
                "patientId": f"pt-{case.id}",
                "selections": [f"ServiceRequest/draft-{case.id}"],
                "draftOrders": _bundle("collection", [_service_request(case, catalogue)]),
            },
            "prefetch": {
                "patient": _patient(case),
                "conditions": _bundle("searchset", [
                    _condition(case, i, *condition) for i, condition
                    in enumerate(case.conditions)]),
                "observations": _bundle("searchset", [
                    _observation(case, i, spec) for i, spec in enumerate(case.observations)]),
                "allergies": _bundle("searchset", [
                    _allergy(case, i, name) for i, name in enumerate(case.allergies)]),
                "devices": _bundle("searchset", [
                    _device(case, i, device) for i, device in enumerate(case.devices)]),
                "imaging": _bundle("searchset", [
                    _prior(case, i, spec) for i, spec in enumerate(case.imaging)]),
            },
        },
        "expect": _expect(case),
    }


# --- the cases ----------------------------------------------------------------

CG95 = "NICE CG95 (2016 update) 1.3.4.3"
NG12 = "NICE NG12"
NG118 = "NICE NG118 1.1.1"
NG158 = "NICE NG158 1.1"
ACR_NKF = "ACR-NKF 2020 consensus on iodinated contrast in kidney disease"
ACR_SCREEN = ("ACR Manual on Contrast Media 2024: renal function assessment before iodinated "
              "contrast for risk factors including age > 60")
ACR_NSF = "ACR Manual on Contrast Media 2024 (NSF): at risk with eGFR < 30 or acute kidney injury"
RCR_PREG = ("HPA/RCR/SCoR 2009 protection of pregnant patients (10-day and 28-day rules; "
            "females aged 12 to 55)")
MR_SAFETY = "MR safety: active implant without MR-safe labelling (ASTM F2503)"
DUP = "RCR iRefer: has it been done already?"
IMAGING = "imaging"
NONE = "no-imaging"
EMERGENCY = "emergency"
DATA = "data-requested"


def _emergencies() -> list[Case]:
    return [
        Case("thunderclap-f34", "Sudden severe (thunderclap) headache", "NICE NG228; CG150",
             "female", 34, ("thunderclap",), ("thunderclap-headache-emergency",), EMERGENCY),
        Case("thunderclap-no-birth-date", "Thunderclap headache, date of birth not recorded "
             "(the emergency rule has no age limit)", "NICE NG228", "female", None,
             ("thunderclap", "headache"), ("thunderclap-headache-emergency",), EMERGENCY),
        Case("thunderclap-child-10", "Thunderclap headache in a child (no age limit)",
             "NICE NG228", "male", 10, ("thunderclap", "headache"),
             ("thunderclap-headache-emergency",), EMERGENCY),
        Case("acs-unstable-angina-m62", "Chest pain with suspected unstable angina",
             "NICE CG95 1.1.1", "male", 62, ("chest-pain", "unstable-angina"),
             ("suspected-acs-emergency",), EMERGENCY),
        Case("cauda-equina-f45", "Back pain with suspected cauda equina syndrome",
             "GIRFT suspected CES pathway; NICE NG59", "female", 45,
             ("low-back-pain", "cauda-equina"), ("cauda-equina-emergency",), EMERGENCY),
        Case("lbp-urinary-retention-m50", "Back pain and sciatica with urinary retention",
             "GIRFT suspected CES pathway", "male", 50,
             ("low-back-pain", "sciatica", "urinary-retention"),
             ("back-pain-urinary-retention-emergency",), EMERGENCY),
        Case("lbp-urinary-retention-condition-m50", "Back pain with urinary retention recorded "
             "as an active condition", "GIRFT suspected CES pathway", "male", 50,
             ("low-back-pain",), ("back-pain-urinary-retention-emergency",), EMERGENCY,
             conditions=(("urinary-retention", 2),)),
        Case("lbp-urinary-retention-resolved-m50", "Back pain; urinary retention resolved years "
             "ago (not current bladder dysfunction)", "GIRFT suspected CES pathway; NICE NG59",
             "male", 50, ("low-back-pain",), ("ng59-lbp-no-imaging",), NONE,
             conditions=(("urinary-retention", 2500, "resolved"),)),
        Case("lbp-cancer-neuro-deficit-f70", "Breast cancer, back pain and leg weakness (MSCC)",
             "NICE NG234 (2023)", "female", 70, ("low-back-pain", "neuro-deficit"),
             ("ng234-mscc-emergency",), EMERGENCY, conditions=(("breast-cancer", 900),)),
        Case("hip-fracture-f82", "Suspected fractured neck of femur after a fall",
             "NICE CG124", "female", 82, ("hip-fracture", "hip-injury"),
             ("hip-fracture-emergency",), EMERGENCY),
    ]


def _chest() -> list[Case]:
    good = (egfr(82, 30),)
    ctca = ("cg95-ctca-angina",)

    def angina(case_id: str, title: str, source: str, age: int, gender: str = "female",
               **kw: Any) -> Case:
        return Case(case_id, title, source, gender, age, ("chest-pain", "angina"), ctca,
                    IMAGING, "CTCA", **kw)

    return [
        angina("angina-m58", "Stable chest pain with anginal features", CG95, 58, "male",
               observations=good, no_safety=("contrast-renal", "duplicate-imaging")),
        Case("stable-angina-m50", "Stable angina code only", CG95, "male", 50,
             ("stable-angina",), ctca, IMAGING, "CTCA", observations=(egfr(90, 10),),
             no_safety=("contrast-renal",)),
        Case("chest-pain-abnormal-ecg-f60", "Non-anginal chest pain with ST-T changes",
             CG95, "female", 60, ("chest-pain", "ecg-abnormal"), ("cg95-ctca-abnormal-ecg",),
             IMAGING, "CTCA", observations=(egfr(70, 20),), no_safety=("contrast-renal",)),
        Case("chest-pain-non-anginal-m35", "Chest pain without anginal features, normal ECG",
             "NICE CG95 1.3.3", "male", 35, ("chest-pain",), ("cg95-non-anginal-chest-pain",),
             NONE),
        # CG95 offers CTCA from 18: without a date of birth the age cannot be judged, so
        # the lower-priority "no imaging" rule must not decide; ask for the date of birth.
        Case("angina-no-birth-date", "Anginal chest pain, date of birth not recorded",
             f"{CG95} (adults)", "male", None, ("chest-pain", "angina"), ctca, DATA,
             observations=good),
        # The GP drafted an abdominal ultrasound; CG95 recommends CTCA, and CTCA's contrast
        # needs the kidney check although the ultrasound does not.
        Case("angina-draft-us-abdo-egfr-25", "Anginal chest pain, GP drafted an abdominal "
             "ultrasound, eGFR 25", f"{CG95}; {ACR_NKF}", "female", 66, ("chest-pain", "angina"),
             ctca, IMAGING, "CTCA", draft="US-ABDO", observations=(egfr(25, 10),),
             safety=("contrast-renal",)),
        # contrast-renal: eGFR bands (<30 card, 30-44 info only, >=45 nothing)
        angina("ctca-egfr-29", "Anginal chest pain, eGFR 29", f"{CG95}; {ACR_NKF}", 70,
               observations=(egfr(29, 20),), safety=("contrast-renal",)),
        angina("ctca-egfr-30", "Anginal chest pain, eGFR 30", f"{CG95}; {ACR_NKF}", 70,
               observations=(egfr(30, 20),), no_safety=("contrast-renal",)),
        angina("ctca-egfr-44", "Anginal chest pain, eGFR 44", f"{CG95}; {ACR_NKF}", 70,
               observations=(egfr(44, 20),), no_safety=("contrast-renal",)),
        angina("ctca-egfr-45", "Anginal chest pain, eGFR 45", f"{CG95}; {ACR_NKF}", 70,
               observations=(egfr(45, 20),), no_safety=("contrast-renal",)),
        angina("ctca-egfr-ckd-epi-25", "Anginal chest pain, eGFR 25 (CKD-EPI 62238-1)",
               f"{CG95}; {ACR_NKF}", 66, observations=(egfr(25, 10, "62238-1"),),
               safety=("contrast-renal",)),
        angina("ctca-egfr-90-days", "Anginal chest pain, eGFR 25 exactly 90 days ago",
               f"{CG95}; {ACR_NKF}", 60, observations=(egfr(25, 90),),
               safety=("contrast-renal",)),
        angina("ctca-egfr-91-days-age-70", "Anginal chest pain at 70, last eGFR 91 days ago",
               f"{CG95}; {ACR_NKF}", 70, observations=(egfr(80, 91),),
               safety=("contrast-renal",)),
        angina("ctca-no-egfr-age-60", "Anginal chest pain at 60, no eGFR, no CKD",
               f"{CG95}; {ACR_SCREEN}", 60, no_safety=("contrast-renal",)),
        angina("ctca-no-egfr-age-61", "Anginal chest pain at 61, no eGFR", f"{CG95}; {ACR_SCREEN}",
               61, safety=("contrast-renal",)),
        angina("ctca-no-egfr-age-65", "Anginal chest pain at 65, no eGFR", f"{CG95}; {ACR_SCREEN}",
               65, safety=("contrast-renal",)),
        angina("ctca-no-egfr-ckd-50", "Anginal chest pain at 50 with CKD, no eGFR",
               f"{CG95}; {ACR_NKF}", 50, conditions=(("ckd", 2000),),
               safety=("contrast-renal",)),
        angina("ctca-aki", "Anginal chest pain with active acute kidney injury",
               f"{CG95}; {ACR_NKF}", 58, conditions=(("aki", 5),),
               observations=(egfr(60, 5),), safety=("contrast-renal",)),
        # contrast-allergy
        angina("ctca-contrast-allergy", "Anginal chest pain, allergy to contrast media",
               f"{CG95}; RCR iodinated contrast guidance", 55, observations=good,
               allergies=("contrast-allergy",), safety=("contrast-allergy",)),
        angina("ctca-iodinated-contrast-allergy", "Anginal chest pain, iodinated contrast allergy",
               f"{CG95}; RCR iodinated contrast guidance", 55, observations=good,
               allergies=("iodinated-contrast",), safety=("contrast-allergy",)),
        # duplicate-imaging (90 days inclusive)
        angina("ctca-duplicate-90-days", "Anginal chest pain, CTCA 90 days ago", DUP, 59,
               "male", observations=good, imaging=(prior_study("CTCA", 90),),
               safety=("duplicate-imaging",)),
        angina("ctca-duplicate-91-days", "Anginal chest pain, CTCA 91 days ago", DUP, 59,
               "male", observations=good, imaging=(prior_study("CTCA", 91),),
               no_safety=("duplicate-imaging",)),
        angina("ctca-duplicate-prior-order", "Anginal chest pain, CTCA ordered 30 days ago", DUP,
               61, "male", observations=good, imaging=(prior_order("CTCA", 30),),
               safety=("duplicate-imaging",)),
        angina("ctca-duplicate-snomed-only", "Anginal chest pain, prior study coded in SNOMED CT",
               DUP, 61, "male", observations=good,
               imaging=(prior_study(None, 20, snomed="419545005"),),
               safety=("duplicate-imaging",)),
        angina("ctca-duplicate-same-region", "Anginal chest pain, CT calcium score 60 days ago",
               f"{DUP} (same modality and region)", 61, "male", observations=good,
               imaging=(prior_study("CT-CAC", 60),), safety=("duplicate-imaging",)),
    ]


def _lung() -> list[Case]:
    smoker = (("smoker", 9000),)
    return [
        Case("cough-weightloss-smoker-m61", "Cough and weight loss in a smoker over 40",
             f"{NG12} 1.1.2", "male", 61, ("cough", "weight-loss"),
             ("ng12-lung-cxr-ever-smoked", "ng12-lung-cxr-cough-plus"), IMAGING, "XR-CHEST",
             conditions=smoker),
        Case("cough-ex-smoker-age-40", "Cough alone at 40 in an ex-smoker", f"{NG12} 1.1.2",
             "male", 40, ("persistent-cough",), ("ng12-lung-cxr-ever-smoked",), IMAGING,
             "XR-CHEST", conditions=(("ex-smoker", 5000),)),
        Case("cough-inactive-smoker-m55", "Cough at 55, smoker record inactive (has smoked)",
             f"{NG12} 1.1.2 (have ever smoked)", "male", 55, ("persistent-cough",),
             ("ng12-lung-cxr-ever-smoked",), IMAGING, "XR-CHEST",
             conditions=(("smoker", 9000, "inactive"),)),
        Case("cough-chest-pain-smoker-age-39", "Cough and chest pain at 39 (below NG12 age)",
             f"{NG12} 1.1.2 (40 and over); NICE CG95", "male", 39, ("cough", "chest-pain"),
             ("cg95-non-anginal-chest-pain",), NONE, conditions=smoker),
        Case("cough-fatigue-non-smoker-m45", "Cough and fatigue at 45, never smoked",
             f"{NG12} 1.1.2", "male", 45, ("cough", "fatigue"), ("ng12-lung-cxr-cough-plus",),
             IMAGING, "XR-CHEST"),
        Case("dyspnoea-weight-loss-f52", "Breathlessness and weight loss at 52",
             f"{NG12} 1.1.2", "female", 52, ("dyspnoea", "weight-loss"),
             ("ng12-lung-cxr-symptom-plus-weight",), IMAGING, "XR-CHEST",
             no_safety=("pregnancy-radiation",)),
        Case("haemoptysis-m55", "Unexplained haemoptysis at 55", f"{NG12} 1.1.1", "male", 55,
             ("haemoptysis",), ("ng12-lung-haemoptysis",), IMAGING, "XR-CHEST"),
        Case("haemoptysis-age-40", "Unexplained haemoptysis at 40", f"{NG12} 1.1.1", "female",
             40, ("haemoptysis",), ("ng12-lung-haemoptysis",), IMAGING, "XR-CHEST"),
        Case("finger-clubbing-m60", "Finger clubbing at 60", f"{NG12} 1.1.3", "male", 60,
             ("finger-clubbing",), ("ng12-lung-cxr-signs",), IMAGING, "XR-CHEST"),
        Case("abnormal-cxr-m67", "Chest X-ray suggests lung cancer",
             "NICE NG122 1.2; NG12 1.1.1", "male", 67, ("cxr-abnormal", "cough"),
             ("ng122-abnormal-cxr-ct-chest",), IMAGING, "CT-CHEST",
             observations=(egfr(75, 14),), no_safety=("contrast-renal",)),
    ]


def _abdomen() -> list[Case]:
    return [
        Case("ruq-pain-f44", "Right upper quadrant pain, suspected gallstones",
             "NICE CG188 1.1.1", "female", 44, ("ruq-pain",), ("cg188-ruq-ultrasound",),
             IMAGING, "US-ABDO"),
        Case("gallstones-jaundice-f55", "Known gallstones, now jaundiced",
             "NICE CG188 1.1.2", "female", 55, ("ruq-pain", "jaundice"),
             ("cg188-gallstones-jaundice-mrcp",), IMAGING, "MRCP",
             conditions=(("gallstones", 200),)),
        Case("jaundice-m70", "Painless jaundice at 70", f"{NG12} 1.2.4", "male", 70,
             ("jaundice",), ("ng12-jaundice-40-refer",), NONE),
        Case("jaundice-age-40", "Jaundice at 40 (the threshold)", f"{NG12} 1.2.4", "female", 40,
             ("jaundice",), ("ng12-jaundice-40-refer",), NONE),
        Case("jaundice-f32", "Jaundice at 32", "RCR iRefer (jaundice: ultrasound)", "female", 32,
             ("jaundice",), ("jaundice-ultrasound",), IMAGING, "US-ABDO"),
        Case("pancreas-weight-loss-pain-m60", "Weight loss and abdominal pain at 60",
             f"{NG12} 1.2.5", "male", 60, ("weight-loss", "abdominal-pain"),
             ("ng12-pancreas-ct",), IMAGING, "CT-ABDO-PELVIS", observations=(egfr(80, 20),),
             no_safety=("contrast-renal", "pregnancy-radiation")),
        Case("weight-loss-ruq-pain-m59", "Weight loss and right upper quadrant pain at 59",
             f"{NG12} 1.2.1 (55 and over with weight loss and upper abdominal pain: suspected "
             "cancer pathway referral); 1.2.5 needs 60", "male", 59, ("weight-loss", "ruq-pain"),
             ("ng12-oesophago-gastric-55",), NONE),
        Case("ruq-pain-m59", "Right upper quadrant pain at 59 without weight loss",
             "NICE CG188 1.1.1", "male", 59, ("ruq-pain",), ("cg188-ruq-ultrasound",), IMAGING,
             "US-ABDO"),
        Case("weight-loss-new-diabetes-f66", "Weight loss with new type 2 diabetes at 66",
             f"{NG12} 1.2.5", "female", 66, ("weight-loss",), ("ng12-pancreas-ct",), IMAGING,
             "CT-ABDO-PELVIS", conditions=(("t2dm", 100),), observations=(egfr(70, 20),),
             no_safety=("contrast-renal", "pregnancy-radiation")),
        Case("abdominal-mass-m50", "Upper abdominal mass at 50", f"{NG12} 1.2", "male", 50,
             ("abdominal-mass",), ("ng12-abdominal-mass-adult",), IMAGING, "US-ABDO"),
        Case("abdominal-mass-age-16", "Abdominal mass at 16 (adult rule)", f"{NG12} 1.2",
             "male", 16, ("abdominal-mass",), ("ng12-abdominal-mass-adult",), IMAGING,
             "US-ABDO"),
        Case("abdominal-mass-age-15", "Abdominal mass at 15 (childhood cancers)",
             f"{NG12} 1.12.1 and 1.12.3 (very urgent referral)", "female", 15,
             ("abdominal-mass",), ("child-abdominal-mass",), NONE),
        Case("abdominal-mass-child-3", "Palpable abdominal mass in a 3-year-old",
             f"{NG12} 1.12.1 and 1.12.3 (very urgent referral)", "male", 3,
             ("abdominal-mass",), ("child-abdominal-mass",), NONE),
        Case("ida-frail-f85", "Iron deficiency anaemia in a frail 85-year-old",
             "BSG IDA guideline 2021", "female", 85, ("ida",),
             ("bsg-ida-ct-colonography-frail",), IMAGING, "CT-COLON",
             conditions=(("frailty", 700),), observations=(egfr(60, 30),),
             no_safety=("contrast-renal", "pregnancy-radiation")),
        Case("ida-m64", "Iron deficiency anaemia at 64", f"{NG12} 1.3.1; BSG IDA 2021", "male",
             64, ("ida",), ("ida-refer-endoscopy",), NONE),
        Case("dysphagia-m70", "Dysphagia at 70", f"{NG12} 1.2", "male", 70, ("dysphagia",),
             ("ng12-dysphagia-endoscopy",), NONE),
    ]


def _gynaecology() -> list[Case]:
    ovarian = f"{NG12} 1.5 (ovarian cancer)"
    return [
        Case("bloating-no-ca125-f52", "Persistent bloating at 52, no CA125", ovarian, "female",
             52, ("bloating",), ("ng12-ovarian-ca125-missing",), DATA),
        Case("bloating-ca125-old-f52", "Persistent bloating, CA125 from 100 days ago", ovarian,
             "female", 52, ("bloating",), ("ng12-ovarian-ca125-missing",), DATA,
             observations=(ca125(60, 100),)),
        Case("bloating-ca125-35-f56", "Bloating with CA125 35", ovarian, "female", 56,
             ("bloating", "abdominal-pain"), ("ng12-ovarian-ca125-raised",), IMAGING,
             "US-PELVIS", observations=(ca125(35),)),
        Case("bloating-ca125-34-f56", "Bloating with CA125 34", ovarian, "female", 56,
             ("bloating",), ("ng12-ovarian-ca125-normal",), NONE, observations=(ca125(34),)),
        Case("bloating-ca125-40-no-sex", "Bloating with CA125 40, sex not recorded",
             f"{ovarian} (women)", None, 56, ("bloating",), ("ng12-ovarian-ca125-raised",), DATA,
             observations=(ca125(40),)),
        Case("ca125-raised-prior-tv-scan", "CA125 raised, transvaginal scan 30 days ago",
             f"{ovarian}; {DUP} (same modality and region)", "female", 58, ("bloating",),
             ("ng12-ovarian-ca125-raised",), IMAGING, "US-PELVIS",
             observations=(ca125(80),), imaging=(prior_study("US-PELVIS-TV", 30),),
             safety=("duplicate-imaging",)),
        Case("pmb-f60", "Postmenopausal bleeding at 60", f"{NG12} 1.5.10", "female",
             60, ("pmb",), ("ng12-postmenopausal-bleeding-55",), NONE),
        Case("pmb-age-55", "Postmenopausal bleeding at 55", f"{NG12} 1.5.10",
             "female", 55, ("pmb",), ("ng12-postmenopausal-bleeding-55",), NONE),
        Case("pmb-age-54", "Postmenopausal bleeding at 54", f"{NG12} 1.5.11",
             "female", 54, ("pmb",), ("ng12-postmenopausal-bleeding-under-55",), NONE),
    ]


def _urology() -> list[Case]:
    colic = ("renal-colic", "haematuria")
    adult = ("ng118-renal-colic-ct-kub",)

    def woman_colic(case_id: str, title: str, age: int, **kw: Any) -> Case:
        return Case(case_id, title, f"{NG118}; {RCR_PREG}", "female", age, colic, adult,
                    IMAGING, "CT-KUB", **kw)

    return [
        Case("haematuria-colic-m45", "Renal colic with blood in urine", NG118, "male", 45,
             colic, adult, IMAGING, "CT-KUB", no_safety=("contrast-renal",)),
        Case("renal-colic-age-16", "Renal colic at 16 (adult pathway)", NG118, "male", 16,
             ("renal-colic",), adult, IMAGING, "CT-KUB"),
        Case("renal-colic-age-15", "Renal colic at 15 (ultrasound first)", "NICE NG118 1.1.2",
             "male", 15, ("renal-colic",), ("ng118-renal-colic-child",), IMAGING, "US-ABDO",
             no_safety=("paediatric-dose",)),
        Case("renal-colic-child-draft-ct-kub", "Child with renal colic, GP drafted CT KUB",
             "NICE NG118 1.1.2; ICRP 121 (a lower-dose test that rates as well or better)",
             "male", 8, ("renal-colic",), ("ng118-renal-colic-child",), IMAGING, "US-ABDO",
             draft="CT-KUB", safety=("paediatric-dose",)),
        Case("renal-colic-pregnant-f28", "Renal colic in pregnancy (recorded as a condition)",
             "NICE NG118 1.1.1", "female", 28, ("renal-colic",),
             ("ng118-renal-colic-pregnant",), IMAGING, "US-ABDO",
             conditions=(("pregnant", 70),), no_safety=("pregnancy-radiation",)),
        Case("renal-colic-pregnancy-status-positive", "Renal colic, pregnancy test recorded "
             "as Pregnant (no condition)", "NICE NG118 1.1.3", "female", 29, colic,
             ("ng118-renal-colic-pregnant",), IMAGING, "US-ABDO",
             observations=(pregnancy_status(True, 1),), no_safety=("pregnancy-radiation",)),
        Case("renal-colic-pregnant-draft-ct-kub", "Pregnant woman with renal colic, GP drafted "
             "CT KUB", f"NICE NG118 1.1.3; {RCR_PREG}", "female", 29, colic,
             ("ng118-renal-colic-pregnant",), IMAGING, "US-ABDO", draft="CT-KUB",
             observations=(pregnancy_status(True, 1),), safety=("pregnancy-radiation",)),
        woman_colic("renal-colic-lmp-day-10", "Renal colic, cycle day 10 (high-dose CT)", 30,
                    observations=(lmp_cycle_day(10),), no_safety=("pregnancy-radiation",)),
        woman_colic("renal-colic-lmp-day-11", "Renal colic, cycle day 11 (high-dose CT)", 30,
                    observations=(lmp_cycle_day(11),), safety=("pregnancy-radiation",)),
        woman_colic("renal-colic-not-pregnant-27-days", "Renal colic, not pregnant 27 days ago",
                    31, observations=(pregnancy_status(False, 27),),
                    no_safety=("pregnancy-radiation",)),
        woman_colic("renal-colic-not-pregnant-29-days", "Renal colic, not pregnant 29 days ago",
                    31, observations=(pregnancy_status(False, 29),),
                    safety=("pregnancy-radiation",)),
        woman_colic("renal-colic-f54-no-lmp", "Renal colic at 54, no pregnancy status or LMP",
                    54, safety=("pregnancy-radiation",)),
        woman_colic("renal-colic-f55-no-lmp", "Renal colic at 55, no pregnancy status or LMP",
                    55, safety=("pregnancy-radiation",)),
        woman_colic("renal-colic-f56-no-lmp", "Renal colic at 56, no pregnancy status or LMP",
                    56, no_safety=("pregnancy-radiation",)),
        Case("visible-haematuria-m60", "Painless visible haematuria at 60",
             f"{NG12} 1.6 (bladder cancer)", "male", 60, ("frank-haematuria",),
             ("ng12-visible-haematuria-45",), NONE),
        Case("visible-haematuria-age-45", "Visible haematuria at 45",
             f"{NG12} 1.6 (bladder cancer)", "female", 45, ("haematuria",),
             ("ng12-visible-haematuria-45",), NONE),
        Case("raised-psa-m64", "Raised PSA at 64", "NICE NG131 1.2.1", "male", 64,
             ("raised-psa",), ("ng131-prostate-mpmri",), IMAGING, "MR-PROSTATE",
             observations=(egfr(80, 30),), no_safety=("contrast-renal", "mri-implant")),
        Case("luts-psa-3-1-m66", "Urinary symptoms, PSA 3.1", "NICE NG131 1.2.1; PCRMP 2016",
             "male", 66, ("luts",), ("ng131-prostate-mpmri",), IMAGING, "MR-PROSTATE",
             observations=(psa(3.1), egfr(75, 30)), no_safety=("contrast-renal",)),
        Case("luts-psa-3-0-m66", "Urinary symptoms, PSA 3.0 (the PCRMP referral threshold)",
             "NICE NG131 1.2.1; PCRMP 2016 (PSA 3.0 ng/ml or more)", "male", 66, ("luts",),
             ("ng131-prostate-mpmri",), IMAGING, "MR-PROSTATE",
             observations=(psa(3.0), egfr(75, 30)), no_safety=("contrast-renal",)),
        Case("luts-psa-2-9-m66", "Urinary symptoms, PSA 2.9", f"{NG12} 1.6; PCRMP 2016", "male",
             66, ("luts",), ("ng12-prostate-psa-normal",), NONE, observations=(psa(2.9),)),
        Case("raised-psa-sex-unknown", "Raised PSA, administrative gender unknown",
             "NICE NG131 1.2.1 (men)", "unknown", 64, ("raised-psa",),
             ("ng131-prostate-mpmri",), DATA),
        Case("luts-no-psa-m58", "Urinary symptoms, no PSA yet", f"{NG12} 1.6", "male", 58,
             ("luts",), ("ng12-prostate-psa-missing",), DATA),
        Case("mr-prostate-egfr-25", "Raised PSA, eGFR 25 (gadolinium)",
             "NICE NG131 1.2.1; ESUR/ACR gadolinium guidance", "male", 70, ("raised-psa",),
             ("ng131-prostate-mpmri",), IMAGING, "MR-PROSTATE", observations=(egfr(25, 20),),
             safety=("contrast-renal",)),
        Case("mr-prostate-aki", "Raised PSA, active acute kidney injury (gadolinium)",
             f"NICE NG131 1.2.1; {ACR_NSF}", "male", 70, ("raised-psa",),
             ("ng131-prostate-mpmri",), IMAGING, "MR-PROSTATE", conditions=(("aki", 4),),
             observations=(egfr(60, 4),), safety=("contrast-renal",)),
        Case("mr-prostate-egfr-35", "Raised PSA, eGFR 35 (gadolinium)",
             "NICE NG131 1.2.1; ESUR/ACR gadolinium guidance", "male", 70, ("raised-psa",),
             ("ng131-prostate-mpmri",), IMAGING, "MR-PROSTATE", observations=(egfr(35, 20),),
             no_safety=("contrast-renal",)),
        Case("abnormal-dre-pacemaker-m72", "Prostate mass on DRE, pacemaker fitted",
             f"NICE NG131 1.2.1; {MR_SAFETY}", "male", 72, ("prostate-mass",),
             ("ng131-prostate-mpmri",), IMAGING, "MR-PROSTATE", observations=(egfr(60, 30),),
             devices=("pacemaker",), safety=("mri-implant",)),
        Case("scrotal-swelling-m30", "Scrotal swelling at 30", f"{NG12} 1.6 (testicular)",
             "male", 30, ("hydrocele",), ("ng12-scrotal-swelling-ultrasound",), IMAGING,
             "US-SCROTUM"),
    ]


def _neuro() -> list[Case]:
    nl = ("headache", "neuro-deficit")
    adult = ("ng12-neuro-deficit-mri-brain-adult",)
    return [
        Case("headache-plain-m29", "Headache without red flags", "NICE CG150 1.1", "male", 29,
             ("headache",), ("cg150-headache-no-red-flags",), NONE),
        Case("headache-age-12", "Headache at 12 without red flags", "NICE CG150 1.1", "female",
             12, ("headache",), ("cg150-headache-no-red-flags",), NONE),
        Case("headache-age-11", "Headache at 11 without red flags", "NICE NG127; RCR iRefer",
             "female", 11, ("headache",), ("child-headache-no-red-flags",), NONE),
        Case("headache-neuro-deficit-f45", "Headache with progressive weakness at 45",
             f"{NG12} 1.9.1", "female", 45, nl, adult, IMAGING, "MR-BRAIN",
             no_safety=("mri-implant", "contrast-renal")),
        Case("neuro-deficit-age-16", "Progressive neurological deficit at 16", f"{NG12} 1.9.1",
             "male", 16, ("neuro-deficit",), adult, IMAGING, "MR-BRAIN"),
        Case("neuro-deficit-age-15", "New neurological signs at 15: very urgent referral",
             f"{NG12} 1.9.2", "male", 15, nl, ("ng12-neuro-deficit-mri-brain-child",), NONE),
        Case("headache-neuro-cochlear-implant", "Neurological deficit with a cochlear implant",
             f"{NG12} 1.9.1; {MR_SAFETY}", "male", 40, nl, adult, IMAGING, "MR-BRAIN",
             devices=("cochlear",), safety=("mri-implant",)),
        Case("headache-neuro-icd", "Neurological deficit with an implantable defibrillator",
             f"{NG12} 1.9.1; {MR_SAFETY}", "male", 68, nl, adult, IMAGING, "MR-BRAIN",
             devices=("icd",), safety=("mri-implant",)),
        Case("neuro-deficit-unknown-implant", "Neurological deficit, implant of unknown MR status",
             f"{NG12} 1.9.1; {MR_SAFETY}", "female", 57, ("neuro-deficit",), adult, IMAGING,
             "MR-BRAIN", devices=({"text": "Spinal cord stimulator"},), safety=("mri-implant",)),
        Case("headache-cancer-history-f60", "New headache with a history of lung cancer",
             "NICE CG150 1.1.1; RCR iRefer", "female", 60, ("headache",),
             ("headache-cancer-history-mri",), IMAGING, "MR-BRAIN",
             conditions=(("lung-cancer", 400),)),
        Case("headache-cancer-remission-f60", "New headache, breast cancer in remission",
             "NICE CG150 1.1.1 (history of malignancy)", "female", 60, ("headache",),
             ("headache-cancer-history-mri",), IMAGING, "MR-BRAIN",
             conditions=(("breast-cancer", 2000, "remission"),)),
    ]


def _spine() -> list[Case]:
    return [
        Case("lbp-cancer-history-m66", "Low back pain with a history of cancer",
             "NICE NG234 (2023)", "male", 66, ("low-back-pain",),
             ("ng234-spinal-metastases-mri",), IMAGING, "MR-WHOLE-SPINE",
             conditions=(("cancer", 700),), no_safety=("mri-implant",)),
        Case("lbp-prostate-cancer-pacemaker", "Back pain, prostate cancer and a pacemaker",
             f"NICE NG234; {MR_SAFETY}", "male", 74, ("low-back-pain",),
             ("ng234-spinal-metastases-mri",), IMAGING, "MR-WHOLE-SPINE",
             conditions=(("prostate-cancer", 1200),), devices=("pacemaker",),
             safety=("mri-implant",)),
        Case("lbp-cancer-resolved-m66", "Low back pain; prostate cancer treated and resolved",
             "NICE NG234 (2023): history of cancer", "male", 66, ("low-back-pain",),
             ("ng234-spinal-metastases-mri",), IMAGING, "MR-WHOLE-SPINE",
             conditions=(("prostate-cancer", 3000, "resolved"),)),
        Case("lbp-cancer-history-no-birth-date", "Back pain with a history of cancer, date of "
             "birth not recorded (the deciding rule has no age limit)", "NICE NG234 (2023)",
             "female", None, ("low-back-pain",), ("ng234-spinal-metastases-mri",), IMAGING,
             "MR-WHOLE-SPINE", conditions=(("breast-cancer", 800),)),
        Case("lbp-no-red-flags-f42", "Low back pain for 4 weeks, no red flags",
             "NICE NG59 1.1.4", "female", 42, ("low-back-pain",), ("ng59-lbp-no-imaging",),
             NONE),
        Case("sciatica-m38", "Sciatica without red flags", "NICE NG59 1.1.4", "male", 38,
             ("low-back-pain", "sciatica"), ("ng59-lbp-no-imaging",), NONE),
        Case("lbp-age-16", "Low back pain at 16, no red flags", "NICE NG59 1.1.4", "female", 16,
             ("low-back-pain",), ("ng59-lbp-no-imaging",), NONE),
        Case("lbp-age-15", "Low back pain at 15, no red flags",
             "ACR Appropriateness Criteria Back Pain - Child", "male", 15, ("low-back-pain",),
             ("child-back-pain-no-red-flags",), NONE),
    ]


def _musculoskeletal() -> list[Case]:
    hip = ("hip-injury-xray",)

    def hip_woman(case_id: str, title: str, age: int, **kw: Any) -> Case:
        return Case(case_id, title, f"RCR iRefer (hip trauma); {RCR_PREG}", "female", age,
                    ("hip-injury", "hip-pain"), hip, IMAGING, "XR-HIP", **kw)

    return [
        Case("knee-oa-f63", "Knee pain over 45, activity-related", "NICE NG226 1.1.1", "female",
             63, ("knee-pain",), ("ng226-osteoarthritis-no-imaging",), NONE),
        Case("knee-pain-age-45", "Knee pain at 45", "NICE NG226 1.1.1", "male", 45,
             ("knee-pain",), ("ng226-osteoarthritis-no-imaging",), NONE),
        Case("knee-pain-age-44", "Knee pain at 44, no injury or locking", "RCR iRefer (knee)",
             "male", 44, ("knee-pain",), ("knee-pain-nontraumatic-no-imaging",), NONE),
        Case("hip-pain-oa-m70", "Hip pain at 70, activity-related", "NICE NG226 1.1.1", "male",
             70, ("hip-pain",), ("ng226-osteoarthritis-no-imaging",), NONE),
        Case("knee-locking-m30", "Knee locking at 30", "RCR iRefer (knee locking)", "male", 30,
             ("knee-pain", "knee-locking"), ("knee-locking-mri",), IMAGING, "MR-KNEE",
             no_safety=("mri-implant",)),
        Case("knee-locking-pacemaker-m60", "Knee locking with a pacemaker",
             f"RCR iRefer (knee locking); {MR_SAFETY}", "male", 60, ("knee-locking",),
             ("knee-locking-mri",), IMAGING, "MR-KNEE", devices=("pacemaker",),
             safety=("mri-implant",)),
        Case("knee-locking-age-14-draft-xray", "Knee locking at 14, GP drafted a knee X-ray",
             "RCR iRefer (knee locking); ACR RRL (paediatric)", "male", 14, ("knee-locking",),
             ("knee-locking-mri",), IMAGING, "MR-KNEE", draft="XR-KNEE",
             safety=("paediatric-dose",)),
        Case("knee-locking-age-16-draft-xray", "Knee locking at 16, GP drafted a knee X-ray",
             "RCR iRefer (knee locking); ACR RRL", "male", 16, ("knee-locking",),
             ("knee-locking-mri",), IMAGING, "MR-KNEE", draft="XR-KNEE",
             no_safety=("paediatric-dose",)),
        Case("knee-injury-age-55", "Knee injury at 55", "Ottawa knee rule; RCR iRefer", "male",
             55, ("knee-injury",), ("knee-injury-ottawa-55",), IMAGING, "XR-KNEE"),
        Case("knee-injury-age-54", "Knee injury at 54", "Ottawa knee rule; RCR iRefer", "male",
             54, ("knee-injury",), ("knee-injury-under-55",), NONE),
        Case("hip-injury-f78", "Fall onto the hip at 78, weight-bearing", "RCR iRefer; NICE CG124",
             "female", 78, ("hip-injury",), hip, IMAGING, "XR-HIP",
             no_safety=("pregnancy-radiation",)),
        hip_woman("hip-injury-lmp-day-28", "Hip injury at 30, cycle day 28 (low-dose exam)", 30,
                  observations=(lmp_cycle_day(28),), no_safety=("pregnancy-radiation",)),
        hip_woman("hip-injury-lmp-day-29", "Hip injury at 30, cycle day 29 (low-dose exam)", 30,
                  observations=(lmp_cycle_day(29),), safety=("pregnancy-radiation",)),
        hip_woman("hip-injury-f30-no-lmp", "Hip injury at 30, no pregnancy status or LMP", 30,
                  safety=("pregnancy-radiation",)),
        hip_woman("hip-injury-f12-no-lmp", "Hip injury at 12, no pregnancy status or LMP", 12,
                  safety=("pregnancy-radiation",)),
        hip_woman("hip-injury-f11", "Hip injury at 11", 11, no_safety=("pregnancy-radiation",)),
        hip_woman("hip-injury-f55-no-lmp", "Hip injury at 55, no pregnancy status or LMP", 55,
                  safety=("pregnancy-radiation",)),
        hip_woman("hip-injury-f56-no-lmp", "Hip injury at 56, no pregnancy status or LMP", 56,
                  no_safety=("pregnancy-radiation",)),
        Case("shoulder-pain-f50", "Shoulder pain without injury", "BESS/BOA 2016", "female", 50,
             ("shoulder-pain",), ("shoulder-pain-no-imaging",), NONE),
        Case("shoulder-trauma-m45", "Shoulder pain and weakness after a fall",
             "BESS/BOA acute cuff tear pathway 2016", "male", 45, ("shoulder-pain", "trauma"),
             ("shoulder-trauma-cuff-tear-mri",), IMAGING, "MR-SHOULDER"),
        Case("thyroid-nodule-f50", "Palpable thyroid nodule", "BTA 2014; NICE NG145", "female",
             50, ("thyroid-nodule",), ("thyroid-nodule-ultrasound",), IMAGING, "US-THYROID"),
        Case("thyroid-nodule-age-14", "Thyroid nodule at 14", "BTA 2014", "female", 14,
             ("thyroid-nodule",), ("thyroid-nodule-ultrasound",), IMAGING, "US-THYROID"),
        # osteoporosis (CG146)
        Case("dexa-f39-lmp-day-28", "Osteoporosis risk at 39, cycle day 28", "NICE CG146 1.1",
             "female", 39, ("osteoporosis",), ("cg146-dexa-under-40",), IMAGING, "DEXA",
             observations=(lmp_cycle_day(28),), no_safety=("pregnancy-radiation",)),
        Case("dexa-f35-no-lmp", "Osteoporosis at 35, no pregnancy status or LMP",
             f"NICE CG146 1.1; {RCR_PREG}", "female", 35, ("osteoporosis",),
             ("cg146-dexa-under-40",), IMAGING, "DEXA", safety=("pregnancy-radiation",)),
        Case("dexa-m39", "Osteoporosis at 39 (FRAX not valid)", "NICE CG146 1.1", "male", 39,
             ("osteoporosis",), ("cg146-dexa-under-40",), IMAGING, "DEXA"),
        Case("dexa-age-40-no-frax", "Osteoporosis at 40, no FRAX", "NICE CG146 1.1-1.2", "male",
             40, ("osteoporosis",), ("cg146-frax-missing",), DATA),
        Case("dexa-f67-frax", "Previous hip fracture at 67, FRAX recorded", "NICE CG146 1.3",
             "female", 67, ("osteoporosis",), ("cg146-dexa-after-frax",), IMAGING, "DEXA",
             observations=(frax(18),), no_safety=("pregnancy-radiation",)),
    ]


def _vte() -> list[Case]:
    dvt, pe = ("dvt",), ("pe",)
    good = egfr(85, 20)
    return [
        Case("dvt-no-wells-f57", "Suspected DVT, no Wells score", NG158, "female", 57, dvt,
             ("ng158-dvt-wells-missing",), DATA),
        Case("dvt-wells-old-f57", "Suspected DVT, Wells score from 10 days ago", NG158,
             "female", 57, dvt, ("ng158-dvt-wells-missing",), DATA,
             observations=(wells_dvt(3, 10),)),
        Case("dvt-wells-2", "Suspected DVT, Wells 2 (likely)", NG158, "male", 48, dvt,
             ("ng158-dvt-likely",), IMAGING, "US-DVT", observations=(wells_dvt(2),)),
        Case("dvt-wells-1-d-dimer-pos", "Suspected DVT, Wells 1, D-dimer POS", NG158, "female",
             63, dvt, ("ng158-dvt-unlikely-ddimer-positive",), IMAGING, "US-DVT",
             observations=(wells_dvt(1), d_dimer("POS"))),
        Case("dvt-wells-1-d-dimer-high", "Suspected DVT, Wells 1, D-dimer flagged H", NG158,
             "male", 52, dvt, ("ng158-dvt-unlikely-ddimer-positive",), IMAGING, "US-DVT",
             observations=(wells_dvt(1), d_dimer("H"))),
        Case("dvt-wells-0-d-dimer-ddu-pos", "Suspected DVT, Wells 0, D-dimer DDU positive",
             NG158, "male", 52, dvt, ("ng158-dvt-unlikely-ddimer-positive",), IMAGING, "US-DVT",
             observations=(wells_dvt(0), d_dimer("POS", loinc="48066-5"))),
        Case("dvt-wells-1-d-dimer-neg", "Suspected DVT, Wells 1, D-dimer N", NG158, "female", 44,
             dvt, ("ng158-dvt-unlikely-ddimer-negative",), NONE,
             observations=(wells_dvt(1), d_dimer("N"))),
        Case("dvt-wells-1-d-dimer-neg-coded", "Suspected DVT, Wells 1, D-dimer coded Negative",
             NG158, "female", 44, dvt, ("ng158-dvt-unlikely-ddimer-negative",), NONE,
             observations=(wells_dvt(1), d_dimer("NEG", coded=True))),
        Case("dvt-wells-1-no-d-dimer", "Suspected DVT, Wells 1, no D-dimer", NG158, "male", 39,
             dvt, ("ng158-dvt-unlikely-ddimer-missing",), DATA, observations=(wells_dvt(1),)),
        Case("pe-no-wells", "Suspected PE, no Wells score", NG158, "female", 50, pe,
             ("ng158-pe-wells-missing",), DATA),
        Case("pe-wells-4-5", "Suspected PE, Wells 4.5 (likely)", NG158, "female", 50, pe,
             ("ng158-pe-likely",), IMAGING, "CTPA", observations=(wells_pe(4.5), good),
             no_safety=("contrast-renal", "pregnancy-radiation")),
        Case("pe-wells-4-d-dimer-pos", "Suspected PE, Wells 4, D-dimer coded Positive", NG158,
             "male", 45, pe, ("ng158-pe-unlikely-ddimer-positive",), IMAGING, "CTPA",
             observations=(wells_pe(4), d_dimer("POS", coded=True), good),
             no_safety=("contrast-renal",)),
        Case("pe-wells-4-d-dimer-neg", "Suspected PE, Wells 4, D-dimer NEG", NG158, "male", 45,
             pe, ("ng158-pe-unlikely-ddimer-negative",), NONE,
             observations=(wells_pe(4), d_dimer("NEG"))),
        Case("pe-wells-2-no-d-dimer", "Suspected PE, Wells 2, no D-dimer", NG158, "female", 33,
             pe, ("ng158-pe-unlikely-ddimer-missing",), DATA, observations=(wells_pe(2),)),
        Case("pe-wells-6-egfr-28", "Suspected PE, Wells 6, eGFR 28", f"{NG158}; {ACR_NKF}",
             "male", 72, pe, ("ng158-pe-likely",), IMAGING, "CTPA",
             observations=(wells_pe(6), egfr(28, 10)), safety=("contrast-renal",)),
    ]


def _referrals() -> list[Case]:
    """NG12 presentations whose answer is a referral (or FIT, or bloods), not a GP scan."""
    ng12 = f"{NG12} (2025)"
    return [
        Case("breast-lump-f42-ours", "Breast lump at 42", f"{ng12} 1.4.1", "female", 42,
             ("breast-lump",), ("ng12-breast-lump-30",), NONE),
        Case("breast-lump-age-30", "Breast lump at 30 (the threshold)", f"{ng12} 1.4.1",
             "female", 30, ("breast-lump",), ("ng12-breast-lump-30",), NONE),
        Case("breast-lump-age-29", "Breast lump at 29: non-urgent referral", f"{ng12} 1.4.3",
             "female", 29, ("breast-lump",), ("ng12-breast-lump-under-30",), NONE),
        Case("nipple-discharge-f50", "Discharge from one nipple at 50", f"{ng12} 1.4.1",
             "female", 50, ("nipple-discharge",), ("ng12-nipple-changes-50",), NONE),
        Case("breast-skin-retraction-f66", "Skin retraction of the breast", f"{ng12} 1.4.2",
             "female", 66, ("breast-skin-retraction",), ("ng12-breast-skin-changes",), NONE),
        Case("axillary-lump-m35", "Unexplained axillary lump at 35", f"{ng12} 1.4.2", "male",
             35, ("axillary-lymphadenopathy",), ("ng12-axillary-lump-30",), NONE),
        Case("dyspepsia-weight-loss-m57", "Dyspepsia with weight loss at 57",
             f"{ng12} 1.2.1 and 1.2.7 (amended 2025)", "male", 57, ("dyspepsia", "weight-loss"),
             ("ng12-oesophago-gastric-55",), NONE),
        Case("reflux-weight-loss-f55", "Reflux with weight loss at 55 (the threshold)",
             f"{ng12} 1.2.1", "female", 55, ("gord", "unintentional-weight-loss"),
             ("ng12-oesophago-gastric-55",), NONE),
        Case("nausea-weight-loss-f59", "Nausea and weight loss at 59",
             f"{ng12} 1.2.3 and 1.2.9", "female", 59, ("nausea", "weight-loss"),
             ("ng12-nausea-vomiting-55-endoscopy",), NONE),
        Case("vomiting-epigastric-pain-m70", "Vomiting and epigastric pain at 70",
             f"{ng12} 1.2.3", "male", 70, ("vomiting", "epigastric-pain"),
             ("ng12-nausea-vomiting-55-endoscopy",), NONE),
        Case("dyspepsia-m58", "Dyspepsia at 58 without weight loss", f"{ng12} 1.2.3", "male",
             58, ("dyspepsia",), ("ng12-dyspepsia-55-endoscopy",), NONE),
        Case("dyspepsia-f30", "Dyspepsia at 30", f"{ng12} 1.2.1 and 1.2.3 thresholds", "female",
             30, ("dyspepsia",), ("dyspepsia-under-55-no-imaging",), NONE),
        Case("weight-loss-diarrhoea-m60", "Weight loss and diarrhoea at 60",
             f"{ng12} 1.2.5", "male", 60, ("weight-loss", "diarrhoea"), ("ng12-pancreas-ct",),
             IMAGING, "CT-ABDO-PELVIS", observations=(egfr(75, 20),),
             no_safety=("contrast-renal",)),
        Case("weight-loss-nausea-f61-egfr-24", "Weight loss and nausea at 61, eGFR 24: ultrasound "
             "in place of contrast CT", f"{ng12} 1.2.5 (ultrasound if CT not available); "
             f"{ACR_NKF}", "female", 61, ("weight-loss", "nausea"), ("ng12-pancreas-ct",),
             IMAGING, "US-ABDO", observations=(egfr(24, 10),)),
        Case("epigastric-mass-m66", "Epigastric mass at 66", f"{ng12} 1.2.6", "male", 66,
             ("epigastric-mass",), ("ng12-epigastric-mass-refer",), NONE),
        Case("hepatomegaly-f52", "Enlarged liver at 52", f"{ng12} 1.2.11", "female", 52,
             ("hepatomegaly",), ("ng12-hepatomegaly-ultrasound",), IMAGING, "US-ABDO"),
        Case("bowel-habit-m45", "Change in bowel habit at 45", f"{ng12} 1.3.1", "male", 45,
             ("bowel-habit-change",), ("ng12-bowel-habit-fit",), NONE),
        Case("rectal-bleeding-f52", "Rectal bleeding at 52", f"{ng12} 1.3.1", "female", 52,
             ("rectal-bleeding",), ("ng12-rectal-bleeding-fit",), NONE),
        Case("weight-loss-abdominal-pain-m45", "Weight loss and abdominal pain at 45",
             f"{ng12} 1.3.1", "male", 45, ("weight-loss", "abdominal-pain"),
             ("ng12-weight-loss-abdominal-pain-fit",), NONE),
        Case("pelvic-mass-f48", "Pelvic mass on examination at 48", f"{ng12} 1.5.1", "female",
             48, ("pelvic-mass",), ("ng12-pelvic-mass-refer",), NONE),
        Case("nvh-dysuria-m63", "Non-visible haematuria with dysuria at 63", f"{ng12} 1.6.4",
             "male", 63, ("microscopic-haematuria", "dysuria"),
             ("ng12-non-visible-haematuria-60",), NONE),
        Case("recurrent-uti-f67", "Recurrent urinary tract infection at 67", f"{ng12} 1.6.5",
             "female", 67, ("recurrent-uti",), ("ng12-recurrent-uti-60",), NONE),
        Case("scrotal-mass-m32", "Scrotal mass at 32", f"{ng12} 1.6.8", "male", 32,
             ("scrotal-mass",), ("ng12-scrotal-swelling-ultrasound",), IMAGING, "US-SCROTUM"),
        Case("hoarseness-m52", "Persistent hoarseness at 52", f"{ng12} 1.8.1", "male", 52,
             ("hoarseness",), ("ng12-hoarseness-45",), NONE),
        Case("bone-pain-m68", "Persistent bone pain at 68", f"{ng12} 1.10.4", "male", 68,
             ("bone-pain",), ("ng12-bone-pain-myeloma-60",), NONE),
        Case("bone-pain-f45", "Persistent bone pain at 45", f"{ng12} 1.10.5", "female", 45,
             ("bone-pain",), ("ng12-bone-pain-myeloma-under-60",), NONE),
        Case("weight-loss-alone-f30", "Unexplained weight loss at 30", f"{ng12} 1.13.2",
             "female", 30, ("weight-loss",), ("ng12-unexplained-weight-loss",), NONE),
        Case("appetite-loss-m35", "Unexplained appetite loss at 35", f"{ng12} 1.13.3", "male",
             35, ("appetite-loss",), ("ng12-unexplained-appetite-loss",), NONE),
        Case("sciatica-neuro-deficit-m44", "Sciatica with a new foot drop (neurological deficit)",
             "NICE NG59 1.1.1 (exclude specific causes)", "male", 44,
             ("low-back-pain", "sciatica", "neuro-deficit"),
             ("back-pain-neuro-deficit-mri-spine",), IMAGING, "MR-LSPINE"),
        Case("radiculopathy-neuro-deficit-f39", "Lumbar radiculopathy with leg weakness",
             "NICE NG59 1.1.1", "female", 39, ("lumbar-radiculopathy", "neuro-deficit"),
             ("back-pain-neuro-deficit-mri-spine",), IMAGING, "MR-LSPINE"),
        Case("lbp-kidney-cancer-remission-m64", "Back pain, kidney cancer in remission",
             "NICE NG234", "male", 64, ("low-back-pain",), ("ng234-spinal-metastases-mri",),
             IMAGING, "MR-WHOLE-SPINE", conditions=(("kidney-cancer", 1500, "remission"),)),
        Case("lbp-history-of-cancer-f70", "Back pain, 'history of malignant neoplasm' coded",
             "NICE NG234", "female", 70, ("low-back-pain",), ("ng234-spinal-metastases-mri",),
             IMAGING, "MR-WHOLE-SPINE", conditions=(("cancer-history", 3000),)),
    ]


def _pathways() -> list[Case]:
    """Referral pathways outside NG12, and children's and haematological presentations."""
    return [
        Case("first-seizure-m24", "First suspected seizure at 24", "NICE NG217 1.1.1", "male",
             24, ("seizure",), ("ng217-first-seizure-refer",), NONE),
        Case("first-seizure-child-9", "First suspected seizure at 9", "NICE NG217 1.1.1",
             "female", 9, ("seizure",), ("ng217-first-seizure-refer",), NONE),
        Case("tia-m71", "Suspected TIA at 71", "NICE NG128 1.1.5", "male", 71, ("tia",),
             ("ng128-suspected-tia",), EMERGENCY),
        Case("stroke-f80", "Suspected stroke at 80", "NICE NG128", "female", 80,
             ("stroke", "headache"), ("ng128-suspected-stroke",), EMERGENCY),
        Case("tremor-m68", "Tremor at 68", "NICE NG71", "male", 68, ("tremor",),
             ("ng71-parkinsonism-refer",), NONE),
        Case("memory-impairment-f78", "Memory impairment at 78", "NICE NG97", "female", 78,
             ("memory-impairment",), ("ng97-suspected-dementia-refer",), NONE),
        Case("headache-cognition-m50", "New headache with impaired cognition at 50",
             "NICE CG150 red flags; NG12 1.9.1", "male", 50,
             ("headache", "impaired-cognition"), ("headache-cognitive-change-mri",), IMAGING,
             "MR-BRAIN"),
        Case("ibs-f33", "Irritable bowel syndrome at 33", "NICE CG61", "female", 33, ("ibs",),
             ("cg61-ibs-no-imaging",), NONE),
        Case("ankylosing-spondylitis-m29", "Suspected ankylosing spondylitis at 29",
             "NICE NG65 1.1.1-1.1.2", "male", 29, ("ankylosing-spondylitis",),
             ("ng65-axial-spondyloarthritis-refer",), NONE),
        Case("rheumatoid-arthritis-f44", "Suspected rheumatoid arthritis at 44",
             "NICE QS33 statement 1; NG100", "female", 44, ("rheumatoid-arthritis",),
             ("ng100-inflammatory-arthritis-refer",), NONE),
        Case("uti-child-5", "First UTI at 5, responding to treatment", "NICE NG224; CG54 table",
             "female", 5, ("uti",), ("ng224-uti-child-no-imaging",), NONE),
        Case("recurrent-uti-child-7", "Recurrent UTI at 7", "NICE NG224; CG54 table",
             "female", 7, ("recurrent-uti",), ("ng224-recurrent-uti-child-ultrasound",),
             IMAGING, "US-ABDO"),
        Case("uti-infant-0", "Suspected UTI in a baby under 1", "NICE NG224 1.1.3", "male", 0,
             ("uti",), ("ng224-uti-infant-refer",), NONE),
        Case("menorrhagia-f38", "Heavy menstrual bleeding at 38", "NICE NG88", "female", 38,
             ("menorrhagia",), ("ng88-hmb-no-imaging",), NONE),
        Case("menorrhagia-dysmenorrhoea-f41", "Heavy, painful periods at 41 (adenomyosis?)",
             "NICE NG88", "female", 41, ("menorrhagia", "dysmenorrhoea"),
             ("ng88-hmb-dysmenorrhoea-tvus",), IMAGING, "US-PELVIS-TV",
             no_safety=("pregnancy-radiation",)),
        Case("dysmenorrhoea-f24", "Painful periods at 24, suspected endometriosis",
             "NICE NG73 (2024)", "female", 24, ("dysmenorrhoea",),
             ("ng73-endometriosis-tvus",), IMAGING, "US-PELVIS-TV"),
        Case("constipation-child-4", "Constipation at 4", "NICE CG99", "male", 4,
             ("constipation",), ("cg99-child-constipation-no-xray",), NONE),
        Case("dizziness-f52", "Dizziness at 52 without focal signs", "NICE NG220 (CG186 1.1.3)",
             "female", 52, ("dizziness", "vertigo"), ("dizziness-no-focal-signs-no-imaging",),
             NONE),
        Case("haematemesis-m47", "Haematemesis at 47", f"{NG12} 1.2.2", "male", 47,
             ("haematemesis",), ("ng12-haematemesis-endoscopy",), NONE),
        Case("ascites-f63", "Ascites at 63", f"{NG12} 1.5.1", "female", 63, ("ascites",),
             ("ng12-ascites-refer",), NONE),
        Case("hepatosplenomegaly-child-6", "Hepatosplenomegaly at 6", f"{NG12} 1.10.2", "male",
             6, ("hepatosplenomegaly",), ("ng12-splenomegaly-child-immediate",), EMERGENCY),
        Case("splenomegaly-m58", "Splenomegaly at 58", f"{NG12} 1.10.1", "male", 58,
             ("splenomegaly",), ("ng12-splenomegaly-adult-fbc",), NONE),
        Case("lymphadenopathy-f28", "Unexplained lymphadenopathy at 28", f"{NG12} 1.10.7",
             "female", 28, ("lymphadenopathy",), ("ng12-lymphadenopathy-lymphoma",), NONE),
        Case("hip-pain-f62", "Activity-related hip pain at 62", "NICE NG226 1.1.1", "female", 62,
             ("hip-pain",), ("ng226-hip-osteoarthritis-no-imaging",), NONE),
    ]


def cases() -> list[Case]:
    return (_emergencies() + _chest() + _lung() + _abdomen() + _gynaecology() + _urology()
            + _neuro() + _spine() + _musculoskeletal() + _vte() + _referrals() + _pathways())


# --- checks and output ----------------------------------------------------------

def check_cases(all_cases: list[Case]) -> None:
    """Every rule covered, every id unique, every reason code in a pack value set."""
    from rules.packs import active_packs

    pack = active_packs()[0].pack
    rule_ids = {rule.id for rule in pack.rules}
    known = {(code.system, code.code) for vs in pack.value_sets.values() for code in vs.codes}
    ids = [case.id for case in all_cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"duplicate vignette ids: {sorted(duplicates)}"
    covered = {rule for case in all_cases for rule in case.covers}
    assert covered <= rule_ids, f"cases name unknown rules: {sorted(covered - rule_ids)}"
    assert covered == rule_ids, f"rules without a vignette: {sorted(rule_ids - covered)}"
    for case in all_cases:
        unknown = [n for n in case.reasons if CODES[n][:2] not in known]
        assert not unknown, f"{case.id}: reason codes in no value set: {unknown}"
        if case.outcome == IMAGING:
            assert case.procedure, f"{case.id}: an imaging case names the recommended key"


def build() -> dict[str, str]:
    """File name -> JSON text for every case."""
    from rules.packs import catalogue

    all_cases = cases()
    check_cases(all_cases)
    procedures = catalogue()
    return {f"{case.id}.json": json.dumps(render(case, procedures), indent=1,
                                          ensure_ascii=False) + "\n"
            for case in all_cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if the files on disk differ from the generated ones")
    args = parser.parse_args(argv)
    files = build()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in OUT_DIR.glob("*.json")}
    if args.check:
        stale = sorted(set(files) ^ set(on_disk)
                       | {n for n in files if on_disk.get(n) != files[n]})
        if stale:
            print("out of date: " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    OUT_DIR.mkdir(exist_ok=True)
    for name in set(on_disk) - set(files):
        (OUT_DIR / name).unlink()
    for name, text in files.items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} vignettes to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
