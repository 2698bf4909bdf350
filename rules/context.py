"""The patient context a decision uses, built from FHIR resources.

Sources: CDS Hooks prefetch, a submitted transaction Bundle, the store, or
a hook's ``fhirServer``. Every fact keeps its FHIR reference and date so that
the explanation can say what it relied on. Pure: no Flask, no database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from fhir.dates import DateFormatError, date_range

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"  # ImagingStudy.modality
# Other spellings of the two systems that GP systems and older interfaces send:
# OIDs (HL7 v3), trailing slashes, https, and bare names.
SYSTEM_ALIASES = {
    "https://snomed.info/sct": SNOMED, "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "snomed": SNOMED, "snomedct": SNOMED, "snomed-ct": SNOMED, "sct": SNOMED,
    "https://loinc.org": LOINC, "urn:oid:2.16.840.1.113883.6.1": LOINC, "loinc": LOINC,
    "ln": LOINC,
}
IMAGING_CODE = (SNOMED, "363679005")  # |Imaging (procedure)|, CONTRACT §4
# FHIR R4 condition-ver-status codes that mean "this is not a fact".
_NOT_FACTS = {"refuted", "entered-in-error"}
_ACTIVE = {"active", "recurrence", "relapse"}
_DISCARDED_OBSERVATIONS = {"cancelled", "entered-in-error"}

Code = tuple[str, str]
FACT_LISTS = ("reasons", "conditions", "observations", "allergies", "devices", "imaging")
# What a decision may find it could not read: the fact lists but reasons
# (which come with the order itself) and the Patient.
UNKNOWABLE = ("patient", "conditions", "observations", "allergies", "devices", "imaging")


@dataclass(frozen=True)
class Fact:
    """One clinical fact and where it came from."""

    kind: str  # reason | condition | observation | allergy | device | imaging | order
    codes: tuple[Code, ...]
    display: str
    reference: str | None = None
    when: date | None = None
    active: bool = True
    value: float | None = None
    unit: str | None = None  # UCUM code when sent, else the printed unit
    value_codes: tuple[Code, ...] = ()
    value_date: date | None = None
    interpretation: tuple[str, ...] = ()
    safety: tuple[Code, ...] = ()  # Device.safety codings (MR status)
    # Elements present in the resource but unreadable (a string or bool where a
    # number is expected, a date that does not parse, ...), each with why. A
    # decision that needs this fact treats it as unknown, never as absent.
    unreadable: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("when", "value_date"):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Fact:
        data = dict(data)
        for key in ("codes", "value_codes", "safety"):
            data[key] = tuple(tuple(c) for c in data.get(key, ()))
        data["interpretation"] = tuple(data.get("interpretation", ()))
        data["unreadable"] = tuple(data.get("unreadable", ()))
        for key in ("when", "value_date"):
            data[key] = date.fromisoformat(data[key]) if data.get(key) else None
        return Fact(**data)


@dataclass
class PatientContext:
    """What is known about the patient and the order being placed."""

    today: date
    patient_ref: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    order_ref: str | None = None
    ordered_codes: tuple[Code, ...] = ()
    reasons: list[Fact] = field(default_factory=list)
    conditions: list[Fact] = field(default_factory=list)
    observations: list[Fact] = field(default_factory=list)
    allergies: list[Fact] = field(default_factory=list)
    devices: list[Fact] = field(default_factory=list)
    imaging: list[Fact] = field(default_factory=list)
    # Lists (UNKNOWABLE) that could not be read, with why: a failed prefetch,
    # an absent key, a truncated search. Their absence of facts proves nothing.
    unknown: dict[str, str] = field(default_factory=dict)

    @property
    def age(self) -> int | None:
        """Age in whole years on ``today``."""
        if self.birth_date is None:
            return None
        born = self.birth_date
        return self.today.year - born.year - ((self.today.month, self.today.day) <
                                               (born.month, born.day))

    @cached_property
    def findings(self) -> list[Fact]:
        """Conditions, and observations read as findings.

        GP systems in England send many coded findings as Observations (GP
        Connect's uncategorised data: "Smoker", "Cardiac pacemaker in situ"),
        some with the finding as the value (LOINC 72166-2 tobacco smoking
        status = Smoker). Both count wherever a condition is looked for.
        """
        as_findings = [replace(o, kind="condition", codes=o.codes + o.value_codes)
                       for o in self.observations]
        return [*self.conditions, *as_findings]

    @property
    def reason_codes(self) -> frozenset[Code]:
        return frozenset(c for fact in self.reasons for c in fact.codes)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)
                                if f.name not in FACT_LISTS}
        data["today"] = self.today.isoformat()
        data["birth_date"] = self.birth_date.isoformat() if self.birth_date else None
        for name in FACT_LISTS:
            data[name] = [fact.to_json() for fact in getattr(self, name)]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> PatientContext:
        facts = {name: [Fact.from_json(f) for f in data.get(name, [])] for name in FACT_LISTS}
        return PatientContext(
            today=date.fromisoformat(data["today"]), patient_ref=data.get("patient_ref"),
            unknown=dict(data.get("unknown") or {}),
            birth_date=date.fromisoformat(data["birth_date"]) if data.get("birth_date") else None,
            sex=data.get("sex"), order_ref=data.get("order_ref"),
            ordered_codes=tuple(tuple(c) for c in data.get("ordered_codes", ())),  # type: ignore[misc]
            **facts)


class MalformedResource(ValueError):
    """A resource whose JSON has the wrong type where a decision reads it.

    Only types are checked (an object where an object is expected, and so on),
    not FHIR conformance; ``where`` names the resource or request field.
    """

    def __init__(self, detail: str, where: str = "") -> None:
        super().__init__(f"{where}: {detail}" if where else detail)
        self.detail = detail
        self.where = where

    def at(self, where: str) -> MalformedResource:
        """The same problem, located in ``where``."""
        return MalformedResource(self.detail, f"{where}/{self.where}" if self.where else where)


def _obj(value: Any, name: str) -> dict[str, Any]:
    """``value`` as a JSON object (absent is empty); any other type is malformed."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise MalformedResource(f"{name} must be a JSON object")


def _arr(value: Any, name: str) -> list[Any]:
    """``value`` as a JSON array (absent is empty); any other type is malformed."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise MalformedResource(f"{name} must be a JSON array")


def _str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedResource(f"{name} must be a string")


def build_context(order: dict[str, Any], resources: Iterable[dict[str, Any]],
                  today: date, unknown: dict[str, str] | None = None) -> PatientContext:
    """A context from the draft or submitted order and the patient's resources.

    ``unknown`` names the parts of the history that could not be read, with why
    (``PatientContext.unknown``). Raises :class:`MalformedResource` naming the
    order or resource whose JSON types are wrong.
    """
    ctx = PatientContext(today=today, order_ref=_ref(order), unknown=dict(unknown or {}))
    try:
        _read_order(ctx, order)
    except MalformedResource as exc:
        raise exc.at(_label(order)) from exc
    for resource in resources:
        try:
            _add(ctx, resource)
        except MalformedResource as exc:
            raise exc.at(_label(resource)) from exc
    return ctx


def _label(resource: dict[str, Any]) -> str:
    return _ref(resource) or str(resource.get("resourceType") or "resource")


def _read_order(ctx: PatientContext, order: dict[str, Any]) -> None:
    ctx.patient_ref = _str(_obj(order.get("subject"), "subject").get("reference"),
                           "subject.reference")
    ctx.ordered_codes = tuple(c for c in codes_of(order.get("code")) if c != IMAGING_CODE)
    ctx.reasons = [_fact("reason", rc, None, None)
                   for rc in _arr(order.get("reasonCode"), "reasonCode")]


def _add(ctx: PatientContext, resource: dict[str, Any]) -> None:
    kind = resource.get("resourceType")
    if kind == "Patient":
        _read_patient(ctx, resource)
    elif kind == "Condition":
        _append(ctx.conditions, _condition(resource))
    elif kind == "Observation":
        _append(ctx.observations, _observation(resource))
    elif kind == "AllergyIntolerance":
        _append(ctx.allergies, _allergy(resource))
    elif kind == "Device":
        _append(ctx.devices, _device(resource))
    elif kind == "ImagingStudy":
        _append(ctx.imaging, _imaging_study(resource))
    elif kind == "ServiceRequest" and _ref(resource) != ctx.order_ref:
        _append(ctx.imaging, _prior_order(resource))


GENDERS = ("male", "female", "other", "unknown")


def _read_patient(ctx: PatientContext, resource: dict[str, Any]) -> None:
    """Sex and date of birth; either one present but unreadable makes the Patient unknown."""
    problems: list[str] = []
    gender = _str(resource.get("gender"), "gender")
    if gender is not None and gender not in GENDERS:
        problems.append(f"gender {_shown(gender)} is not a FHIR administrative gender")
        gender = None
    ctx.sex = gender
    ctx.birth_date = _read_date(resource, "birthDate", problems)
    ctx.patient_ref = ctx.patient_ref or _ref(resource)
    if problems:
        where = _ref(resource) or "Patient"
        ctx.unknown.setdefault("patient", f"{where}: " + "; ".join(problems))


def _shown(value: Any) -> str:
    """A value as sent, short, for saying why it could not be read."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else.

    FHIR decimals arrive as Decimal (kept as sent, core.fhirjson) or float (CDS
    prefetch). A bool, a string (even "22" or Arabic-Indic digits), NaN or an
    infinity is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _read_value(resource: dict[str, Any], problems: list[str]) -> tuple[float | None, str | None]:
    """The observation's number and unit: valueQuantity, valueInteger, or unreadable."""
    quantity = _obj(resource.get("valueQuantity"), "valueQuantity")
    for name, value in (("valueQuantity.value", quantity.get("value")),
                        ("valueInteger", resource.get("valueInteger"))):
        if value is None:
            continue
        number = read_number(value)
        if number is None or (name == "valueInteger" and not float(number).is_integer()):
            problems.append(f"{name} {_shown(value)} is not a number")
            return None, None
        if name == "valueInteger":
            return number, None
        for key in ("unit", "code", "system"):
            if quantity.get(key) is not None and not isinstance(quantity[key], str):
                problems.append(f"valueQuantity.{key} {_shown(quantity[key])} is not a string")
                return None, None
        return number, _unit(quantity)
    if quantity:
        problems.append("valueQuantity has no value")
    elif resource.get("valueString") is not None:
        problems.append(f"valueString {_shown(resource['valueString'])} is not a number")
    return None, None


def _read_date(resource: dict[str, Any], name: str, problems: list[str],
               value: Any = None) -> date | None:
    """The date of ``resource[name]`` (or of ``value``); present but unparseable is a problem."""
    value = resource.get(name) if value is None else value
    if value is None:
        return None
    found = parse_date(value)
    if found is None:
        problems.append(f"{name} {_shown(value)} is not a date")
    return found


def _first_date(resource: dict[str, Any], names: tuple[str, ...],
                problems: list[str]) -> date | None:
    """The date of the first of ``names`` that is present (``a.b`` reads inside ``a``)."""
    for name in names:
        head, _, tail = name.partition(".")
        value = resource.get(head)
        if tail:
            value = _obj(value, head).get(tail)
        if value is not None:
            return _read_date(resource, name, problems, value)
    return None


_CLINICAL = {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}


def _clinical(resource: dict[str, Any], problems: list[str]) -> set[str]:
    """clinicalStatus codes; present with no code this reads is a problem."""
    concept = resource.get("clinicalStatus")
    if concept is None:
        return set()
    codes = _status_codes(concept)
    if not codes & _CLINICAL:
        problems.append(f"clinicalStatus {_shown(concept)} could not be read")
    return codes


def _append(facts: list[Fact], fact: Fact | None) -> None:
    if fact is not None:
        facts.append(fact)


def _ref(resource: dict[str, Any]) -> str | None:
    if resource.get("id") and resource.get("resourceType"):
        return f"{resource['resourceType']}/{resource['id']}"
    return None


def codes_of(concept: Any) -> tuple[Code, ...]:
    """``(system, code)`` pairs of a CodeableConcept (or list of them)."""
    concepts = concept if isinstance(concept, list) else [concept]
    pairs: list[Code] = []
    for cc in concepts:
        for c in _arr(_obj(cc, "a CodeableConcept").get("coding"), "coding"):
            coding = _obj(c, "a Coding")
            code = str(coding.get("code") or "").strip()
            if code:
                pairs.append((normal_system(coding.get("system"), code), code))
    return tuple(pairs)


def normal_system(system: Any, code: str) -> str:
    """The canonical URI of a coding's system, so that a code matches by itself.

    Known aliases map to the FHIR URIs (SNOMED CT editions and modules are one
    code system, http://snomed.info/sct). A coding that names no system is
    read as SNOMED CT or LOINC only when the code carries that system's check
    digit (Verhoeff for SNOMED CT identifiers, mod 10 for LOINC).
    """
    text = str(system or "").strip()
    if not text:
        return _inferred(code)
    key = text.rstrip("/")
    if key.startswith(SNOMED + "/"):
        return SNOMED
    return SYSTEM_ALIASES.get(key.lower(), key)


def _inferred(code: str) -> str:
    if re.fullmatch(r"[0-9]{6,18}", code) and code[-3:-1] in ("00", "10") and _verhoeff(code):
        return SNOMED
    if re.fullmatch(r"[0-9]{1,7}-[0-9]", code) and _loinc_check(code):
        return LOINC
    return ""


def _verhoeff(number: str) -> bool:
    """The Verhoeff check digit (SNOMED CT identifiers, SNOMED CT TIG 6.1)."""
    mult = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
            [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
            [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
            [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
            [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
    perm = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]]
    for _ in range(6):
        perm.append([perm[1][x] for x in perm[-1]])
    check = 0
    for i, digit in enumerate(reversed(number)):
        check = mult[check][perm[i % 8][int(digit)]]
    return check == 0


def _loinc_check(code: str) -> bool:
    """LOINC's mod 10 check digit (LOINC Users' Guide, appendix: calculating the check digit)."""
    body, check = code.split("-")
    digits = [int(d) for d in body]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled // 10 + doubled % 10
    return (10 - total % 10) % 10 == int(check)


def _display(concept: Any) -> str:
    if isinstance(concept, list):
        concept = concept[0] if concept else {}
    if not isinstance(concept, dict):
        return ""
    codings = concept.get("coding") or [{}]
    first = codings[0] if isinstance(codings, list) and isinstance(codings[0], dict) else {}
    return str(concept.get("text") or first.get("display") or first.get("code", ""))


def parse_date(value: Any) -> date | None:
    """The calendar date of a FHIR date or dateTime (its own time zone); None unless
    ``value`` is one (``fhir.dates``: ASCII digits, a real day)."""
    try:
        date_range(value)
    except DateFormatError:
        return None
    if len(value) >= 10:
        return date.fromisoformat(value[:10])
    return date(int(value[:4]), int(value[5:7]) if len(value) >= 7 else 1, 1)


def _fact(kind: str, concept: Any, resource: dict[str, Any] | None, when: Any,
          **extra: Any) -> Fact:
    return Fact(kind, codes_of(concept), _display(concept),
                _ref(resource) if resource else None, parse_date(when), **extra)


def _status_codes(concept: Any) -> set[str]:
    return {code for _, code in codes_of(concept)}


def _condition(resource: dict[str, Any]) -> Fact | None:
    if _status_codes(resource.get("verificationStatus")) & _NOT_FACTS:
        return None
    problems: list[str] = []
    clinical = _clinical(resource, problems)
    when = _first_date(resource, ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
                       problems)
    _read_date(resource, "abatementDateTime", problems)
    # A status that could not be read stays active (and unreadable): never "resolved".
    return replace(_fact("condition", resource.get("code"), resource, None,
                         active=not clinical & _CLINICAL or bool(clinical & _ACTIVE)),
                   when=when, unreadable=tuple(problems))


def _observation(resource: dict[str, Any]) -> Fact | None:
    if resource.get("status") in _DISCARDED_OBSERVATIONS:
        return None
    problems: list[str] = []
    when = _first_date(resource, ("effectiveDateTime", "effectivePeriod.start", "issued"),
                       problems)
    interpretation = tuple(code for _, code in codes_of(
        _arr(resource.get("interpretation"), "interpretation")))
    number, unit = _read_value(resource, problems)
    value_codes = codes_of(resource.get("valueCodeableConcept"))
    if resource.get("valueCodeableConcept") is not None and not value_codes:
        problems.append("valueCodeableConcept has no code")
    value_date = _read_date(resource, "valueDateTime", problems)
    return replace(_fact("observation", resource.get("code"), resource, None, value=number,
                         unit=unit, value_codes=value_codes, value_date=value_date,
                         interpretation=interpretation),
                   when=when, unreadable=tuple(problems))


def _unit(quantity: dict[str, Any]) -> str | None:
    """The UCUM code of a Quantity when its system is UCUM, else its printed unit."""
    code, printed = quantity.get("code"), quantity.get("unit")
    if isinstance(code, str) and code and quantity.get("system") == UCUM:
        return code
    for unit in (printed, code):
        if isinstance(unit, str) and unit.strip():
            return unit.strip()
    return None


def _allergy(resource: dict[str, Any]) -> Fact | None:
    if _status_codes(resource.get("verificationStatus")) & _NOT_FACTS:
        return None
    problems: list[str] = []
    clinical = _clinical(resource, problems)
    reactions = [_obj(r, "reaction") for r in _arr(resource.get("reaction"), "reaction")]
    fact = _fact("allergy", resource.get("code"), resource, None,
                 active=not clinical & _CLINICAL or "active" in clinical)
    extra = tuple(c for r in reactions for c in codes_of(r.get("substance")))
    when = _first_date(resource, ("onsetDateTime", "recordedDate"), problems)
    return replace(fact, codes=fact.codes + extra, when=when, unreadable=tuple(problems))


def _device(resource: dict[str, Any]) -> Fact | None:
    if resource.get("status") in ("inactive", "entered-in-error"):
        return None
    problems: list[str] = []
    when = _read_date(resource, "manufactureDate", problems)
    return replace(_fact("device", resource.get("type"), resource, None,
                         safety=codes_of(_arr(resource.get("safety"), "safety"))),
                   when=when, unreadable=tuple(problems))


def _imaging_study(resource: dict[str, Any]) -> Fact | None:
    if resource.get("status") in ("cancelled", "entered-in-error"):
        return None
    codings = [_obj(m, "modality") for m in _arr(resource.get("modality"), "modality")]
    modalities = tuple((DICOM, str(m.get("code", ""))) for m in codings)
    problems: list[str] = []
    when = _read_date(resource, "started", problems)
    fact = _fact("imaging", _arr(resource.get("procedureCode"), "procedureCode"), resource,
                 None)
    return replace(fact, codes=fact.codes + modalities, when=when, unreadable=tuple(problems))


def _prior_order(resource: dict[str, Any]) -> Fact | None:
    if resource.get("status") not in ("active", "completed", "on-hold"):
        return None
    problems: list[str] = []
    when = _first_date(resource, ("occurrenceDateTime", "occurrencePeriod.start", "authoredOn"),
                       problems)
    return replace(_fact("order", resource.get("code"), resource, None), when=when,
                   unreadable=tuple(problems))


def bundle_resources(bundle: Any) -> list[dict[str, Any]]:
    """The resources of a Bundle's entries (a lone resource is returned as itself).

    Absent is empty; anything but a JSON object is :class:`MalformedResource`.
    """
    if bundle is None:
        return []
    found = _obj(bundle, "a Bundle or resource")
    if found.get("resourceType") != "Bundle":
        return [found]
    entries = [_obj(e, "Bundle.entry") for e in _arr(found.get("entry"), "Bundle.entry")]
    return [_obj(e["resource"], "Bundle.entry.resource") for e in entries
            if e.get("resource") is not None]


def today_utc() -> date:
    """Today's date in UTC."""
    return datetime.now(UTC).date()
