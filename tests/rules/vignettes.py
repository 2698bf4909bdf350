"""Loading GP vignettes (shared/vignettes/README.md) and checking a CDS Hooks answer."""

from __future__ import annotations

import calendar
import json
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared" / "vignettes"
OURS = Path(__file__).resolve().parent / "vignettes"
SAFETY_SYSTEM = "https://scanpath.example/fhir/CodeSystem/safety-check"
PROCEDURE_SYSTEM = "https://scanpath.example/fhir/CodeSystem/procedure"
_PLACEHOLDER = re.compile(r"\{\{today([+-])(\d+)([dy])\}\}")


def vignette_files() -> list[Path]:
    shared = sorted(SHARED.glob("*.json")) if SHARED.is_dir() else []
    if not shared and os.environ.get("CI") == "true":
        raise RuntimeError(f"shared vignettes missing at {SHARED}")
    return shared + sorted(OURS.glob("*.json"))


def shift(today: date, sign: str, amount: int, unit: str) -> date:
    """``today`` moved by days, or by whole years (29 February becoming 28)."""
    step = amount if sign == "+" else -amount
    if unit == "d":
        return today + timedelta(days=step)
    year = today.year + step
    day = min(today.day, calendar.monthrange(year, today.month)[1])
    return today.replace(year=year, day=day)


def fill(text: str, today: date) -> str:
    return _PLACEHOLDER.sub(lambda m: shift(today, m[1], int(m[2]), m[3]).isoformat(), text)


def load(path: Path, today: date) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fill(path.read_text(encoding="utf-8"), today))
    return data


def safety_codes(cards: list[dict[str, Any]]) -> set[str]:
    return {c["source"]["topic"]["code"] for c in cards
            if (c.get("source", {}).get("topic") or {}).get("system") == SAFETY_SYSTEM}


def outcome_cards(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in cards if (c.get("source", {}).get("topic") or {}).get("system")
            != SAFETY_SYSTEM]


def recommended(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for c in cards for s in c.get("suggestions", []) if s.get("isRecommended")]


def check(expect: dict[str, Any], cards: list[dict[str, Any]]) -> list[str]:
    """What in ``cards`` contradicts ``expect`` (empty when the answer is right)."""
    outcome = expect.get("outcome")
    problems = _outcome_problems(outcome, expect.get("procedure"), cards) if outcome else []
    present = safety_codes(cards)
    problems += [f"missing safety card {s}" for s in expect.get("safety", []) if s not in present]
    problems += [f"unexpected safety card {s}" for s in expect.get("no_safety", [])
                 if s in present]
    return problems


def _outcome_problems(outcome: str, procedure: str | None,
                      cards: list[dict[str, Any]]) -> list[str]:
    picks = recommended(cards)
    indicators = {c["indicator"] for c in outcome_cards(cards)}
    if outcome == "imaging":
        if len(picks) != 1:
            return [f"expected exactly one recommended suggestion, got {len(picks)}"]
        keys = [c["code"] for a in picks[0]["actions"] for c in a["resource"]["code"]["coding"]
                if c["system"] == PROCEDURE_SYSTEM]
        return [] if procedure in keys else [f"recommended {keys}, expected {procedure}"]
    wanted = {"no-imaging": "warning", "emergency": "critical", "data-requested": "info"}[outcome]
    if wanted not in indicators or (picks and outcome != "emergency"):
        return [f"expected a {wanted} card and no recommended suggestion for {outcome}"]
    return []


# --- UK-coded twins -----------------------------------------------------------------
# How GP systems in England record the same facts (NHS GP codesets, GP Connect):
# SNOMED CT observables instead of LOINC, printed units instead of UCUM codes,
# implants and contrast reactions as coded problems, pregnancy and LMP as dated
# entries, and no display text. Sources: the value sets' provenance in
# rules/data/valuesets (Greater Manchester Care Record eGFR code set, OpenCodelists
# PSA list, HL7 CH first-day-of-LMP profile, NHS Digital PREG_COD cluster).
_UK_OBSERVABLES = {
    "98979-8": ("1011481000000105", "mL/min/1.73m2"),
    "62238-1": ("1011481000000105", "mL/min/1.73m2"),
    "33914-3": ("1020291000000106", "mL/min/1.73m2"),
    "2857-1": ("1000381000000105", "ug/L"),
}
_LMP = ("8665-2", "161713000")
_PREGNANCY_STATUS = "82810-3"
_IN_SITU = {"14106009": "441509002", "43252007": "449840001"}  # device -> "... in situ"
SCT_URI = "http://snomed.info/sct"


def _codings(resource: dict[str, Any], key: str) -> list[dict[str, Any]]:
    concept = resource.get(key) or {}
    return concept.get("coding", []) if isinstance(concept, dict) else []


def _bare(code: str) -> dict[str, Any]:
    """A concept with the code alone: no display, no text."""
    return {"coding": [{"system": SCT_URI, "code": code}]}


def _uk_observation(obs: dict[str, Any]) -> dict[str, Any]:
    obs = dict(obs)
    code = next((c["code"] for c in _codings(obs, "code")), None)
    if code in _UK_OBSERVABLES:
        snomed, unit = _UK_OBSERVABLES[code]
        obs["code"] = _bare(snomed)
        obs["valueQuantity"] = {"value": obs["valueQuantity"]["value"], "unit": unit}
    elif code == _LMP[0]:
        obs["code"] = _bare(_LMP[1])
        obs["effectiveDateTime"] = obs.pop("valueDateTime")
    elif code == _PREGNANCY_STATUS:
        answer = _codings(obs, "valueCodeableConcept")[0]["code"]
        obs["code"] = _bare(answer)
        obs.pop("valueCodeableConcept")
    return obs


def _as_problem(resource: dict[str, Any], code: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": resource["id"],
            "subject": {"reference": resource["patient"]["reference"]},
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]}, "code": _bare(code)}


def uk_twin(vignette: dict[str, Any]) -> dict[str, Any]:
    """The same case as a GP system in England would send it (same expected answer)."""
    twin = json.loads(json.dumps(vignette))
    twin["id"] += "-uk"
    prefetch = twin["request"]["prefetch"]
    problems = prefetch["conditions"]["entry"]
    for entry in prefetch["observations"]["entry"]:
        entry["resource"] = _uk_observation(entry["resource"])
    kept = []
    for entry in prefetch["devices"]["entry"]:
        device = entry["resource"]
        code = next((c["code"] for c in _codings(device, "type")), None)
        if code in _IN_SITU and not device.get("safety"):
            problems.append({"resource": _as_problem(device, _IN_SITU[code])})
        else:
            kept.append(entry)
    prefetch["devices"]["entry"] = kept
    for entry in prefetch["allergies"]["entry"]:
        allergy = entry["resource"]
        code = _codings(allergy, "code")[0]["code"]
        problems.append({"resource": _as_problem(allergy, code)})
    prefetch["allergies"]["entry"] = []
    for entry in problems:
        for coding in _codings(entry["resource"], "code"):
            coding.pop("display", None)
        entry["resource"].get("code", {}).pop("text", None)
    return twin


def involves_safety(vignette: dict[str, Any]) -> bool:
    expect = vignette["expect"]
    return bool(expect.get("safety") or expect.get("no_safety"))
