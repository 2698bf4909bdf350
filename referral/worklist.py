"""The Modality Worklist: scheduled orders as DICOM worklist items (PS3.4 Annex K).

The DICOM listener (``imaging_core.scp``) answers C-FIND requests of the
Modality Worklist Information Model - FIND SOP Class (1.2.840.10008.5.1.4.31)
with :func:`find`; everything the worklist knows lives here.

One row per order (``referral.models.WorklistStep``) is written in the
transaction that moves the order (:func:`follow`, called by
``referral.orders`` for every move), and refreshed when its Patient changes;
a C-FIND reads that table alone. Only orders in ``scheduled`` answer.

Where each attribute comes from (PS3.4 Table K.6-1):

- AccessionNumber, RequestedProcedureID and ScheduledProcedureStepID: the
  order's accession number (one requested procedure, one step per order).
- PatientID and IssuerOfPatientID: the NHS number
  (https://fhir.nhs.uk/Id/nhs-number) when the Patient has one, because it is
  the identifier every NHS system shares and the one the identity check reads
  first; otherwise the Patient's first identifier with a system. The issuer is
  the identifier's system URI.
- PatientName: the Patient's ``official`` HumanName (else the first), as PN
  ``family^given^middle^prefix^suffix`` (PS3.5 6.2.1); PatientBirthDate;
  PatientSex from administrative gender (male M, female F, other O; unknown
  stays empty: unknown is not "other", PS3.3 C.7.1.1).
- Requested procedure: the ServiceRequest's SNOMED CT coding (scheme ``SCT``,
  PS3.16 Table 8-1) when it has one, else its catalogue coding (local scheme
  ``99SCANPATH``: designators beginning ``99`` are private, PS3.3 8.2);
  description the catalogue's display; Modality from the catalogue's
  ``modality`` property (``CodeSystem/procedure``).
- Scheduled start: ``Task.restriction.period.start`` as the RIS wrote it
  (its own wall-clock date and time; a date alone gives no time).
- ScheduledStationAETitle: a ``Task.input`` coded ``station-ae`` in
  ``{SCANPATH_CANONICAL_BASE}/CodeSystem/worklist`` (a local code: no public
  code system names the station) with ``valueString`` the AE title; the RIS
  sets it with the Task PATCH that schedules, or later while scheduled.
- StudyInstanceUID: a ``2.25`` UUID-derived UID (PS3.5 B.2) made the first
  time the order is scheduled and kept for good, so the modality's images
  carry it.

Matching (PS3.4 C.2.2.2): single value, wildcard ``*``/``?`` (C.2.2.2.4; PN
case-insensitively, which C.2.2.2.1 allows), date and time ranges
(C.2.2.2.5), UID lists (C.2.2.2.2), sequence matching on the Scheduled
Procedure Step item (C.2.2.2.6) and universal matching for empty keys
(C.2.2.2.3). Keys the worklist keeps no value for (e.g. Scheduled Performing
Physician's Name) match universally and are returned empty. Only the keys
asked for are returned (C.2.2.1.2, K.6.1.2).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from core.errors import Unprocessable
from fhir.store import Store, register_write_hook
from referral.models import WorklistStep

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
LOCAL_SCHEME = "99SCANPATH"  # PS3.3 8.2: "99" designators are private
STATION_AE_CODE = "station-ae"
SEX = {"male": "M", "female": "F", "other": "O"}  # PS3.3 C.7.1.1; "unknown" stays empty
_AE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")  # AE VR: no backslash, no control (PS3.5 6.2)
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")


class WorklistQueryError(ValueError):
    """A C-FIND identifier the worklist cannot use; ``status`` answers it (PS3.4 K.4.1.1.4).

    0xA900 "Identifier does not match SOP Class" for a key whose value breaks
    its VR or the matching rules; 0xC000 "Unable to process" for an
    identifier that cannot be decoded at all.
    """

    status = 0xA900

    def __init__(self, message: str, status: int = 0xA900) -> None:
        super().__init__(message)
        self.status = status


def register() -> None:
    """Keep scheduled orders' demographics current when their Patient is updated."""
    register_write_hook("Patient", _on_patient_write)


# --- keeping the table -------------------------------------------------------------------

def follow(store: Store, task: dict[str, Any], order: dict[str, Any], state: str) -> None:
    """Reflect the order entering ``state`` in its worklist row; the caller commits.

    ``scheduled`` writes (or rewrites) the row from the Task, the order and
    its Patient; any other state takes the order off the worklist but keeps
    the row (its Study Instance UID is never made twice).
    """
    row = store.session.get(WorklistStep, order["id"])
    if state != "scheduled":
        if row is not None and row.scheduled:
            row.scheduled = False
            store.session.add(row)
        return
    row = row or WorklistStep(service_request_id=order["id"], task_id=task["id"],
                              patient_resource_id="", study_uid=generate_uid(prefix=None))
    _fill(store, row, task, order)
    row.scheduled = True
    store.session.add(row)


def station_ae(store: Store, task: dict[str, Any]) -> str | None:
    """The Scheduled Station AE Title the RIS put on ``task`` (module docstring); None if none.

    Raises
    ------
    Unprocessable
        422, when the value is not an AE title (1-16 characters, no backslash
        or control characters, not only spaces; PS3.5 6.2).
    """
    system = f"{store.settings.canonical_base}/CodeSystem/worklist"
    for entry in task.get("input") or []:
        codings = ((entry or {}).get("type") or {}).get("coding") or []
        if any(c.get("system") == system and c.get("code") == STATION_AE_CODE
               for c in codings if isinstance(c, dict)):
            value = entry.get("valueString")
            if not isinstance(value, str) or not _AE.fullmatch(value) or not value.strip():
                raise Unprocessable("The station AE title (Task.input station-ae) is 1 to 16 "
                                    "characters, no backslash or control characters",
                                    ["Task.input.valueString"])
            return value.strip()
    return None


def _fill(store: Store, row: WorklistStep, task: dict[str, Any],
          order: dict[str, Any]) -> None:
    row.task_id = task["id"]
    row.accession_number = next((str(i["value"])[:16] for i in order.get("identifier", [])
                                 if i.get("system") == store.settings.accession_system), None)
    start = str(((task.get("restriction") or {}).get("period") or {}).get("start") or "")
    row.start_date, row.start_time = _date_and_time(start)
    row.station_ae = station_ae(store, task)
    _procedure(store, row, order)
    reference = str((order.get("subject") or {}).get("reference", ""))
    row.patient_resource_id = reference.removeprefix("Patient/")
    if store.exists("Patient", row.patient_resource_id):
        _demographics(row, store.read("Patient", row.patient_resource_id))


def _date_and_time(start: str) -> tuple[str | None, str | None]:
    """DA and TM of a FHIR date or dateTime, as written (its own offset)."""
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?.*)?", start)
    if match is None:
        return None, None
    year, month, day, hour, minute, second = match.groups()
    time = f"{hour}{minute}{second or '00'}" if hour else None
    return f"{year}{month}{day}", time


def _procedure(store: Store, row: WorklistStep, order: dict[str, Any]) -> None:
    """Requested procedure code, description and modality (module docstring)."""
    catalogue = f"{store.settings.canonical_base}/CodeSystem/procedure"
    codings = [c for c in (order.get("code") or {}).get("coding", []) if isinstance(c, dict)]
    local = next((c for c in codings if c.get("system") == catalogue), None)
    concept = _catalogue_concept(store, str(local["code"])) if local else None
    snomed = next((c for c in codings if c.get("system") == SNOMED), None)
    chosen, scheme = (snomed, "SCT") if snomed else (local, LOCAL_SCHEME)
    display = (concept or {}).get("display") or (chosen or {}).get("display") \
        or ((order.get("code") or {}).get("text"))
    row.procedure_code = str(chosen["code"])[:64] if chosen else None
    row.procedure_scheme = scheme if chosen else None
    row.procedure_meaning = str(display)[:64] if display else None
    row.modality = next((str(p.get("valueCode")) for p in (concept or {}).get("property", [])
                         if p.get("code") == "modality"), None)


def _catalogue_concept(store: Store, code: str) -> dict[str, Any] | None:
    if not store.exists("CodeSystem", "procedure"):
        return None
    concepts = store.read("CodeSystem", "procedure").get("concept", [])
    return next((c for c in concepts if c.get("code") == code), None)


def _demographics(row: WorklistStep, patient: dict[str, Any]) -> None:
    identifiers = [i for i in patient.get("identifier", []) if isinstance(i, dict)
                   and i.get("system") and i.get("value")]
    chosen = next((i for i in identifiers if i["system"] == NHS_NUMBER_SYSTEM),
                  identifiers[0] if identifiers else None)
    row.patient_id = str(chosen["value"])[:64] if chosen else None
    row.issuer_of_patient_id = str(chosen["system"])[:64] if chosen else None
    row.patient_name = person_name(patient.get("name") or [])
    birth = str(patient.get("birthDate") or "")
    row.patient_birth_date = birth.replace("-", "") if re.fullmatch(r"\d{4}-\d{2}-\d{2}",
                                                                    birth) else None
    row.patient_sex = SEX.get(str(patient.get("gender")))


def person_name(names: Sequence[dict[str, Any]]) -> str | None:
    """A FHIR HumanName list as one DICOM PN value (PS3.5 6.2.1), or None.

    The ``official`` name, else the first: ``family^first given^other
    givens^prefixes^suffixes``, each component at most 64 characters, with
    trailing empty components dropped. A name with only ``text`` gives None
    (its parts cannot be told apart).
    """
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not name:
        return None
    given = [str(g) for g in name.get("given", [])]
    parts = [str(name.get("family") or ""), given[0] if given else "", " ".join(given[1:]),
             " ".join(map(str, name.get("prefix", []))),
             " ".join(map(str, name.get("suffix", [])))]
    cleaned = [p.replace("^", " ").replace("\\", " ").strip()[:64] for p in parts]
    value = "^".join(cleaned).rstrip("^")
    return value or None


def _on_patient_write(store: Store, patient: dict[str, Any],
                      previous: dict[str, Any] | None) -> None:
    if previous is None:
        return
    rows = store.session.exec(select(WorklistStep).where(
        col(WorklistStep.patient_resource_id) == patient["id"],
        col(WorklistStep.scheduled).is_(True))).all()
    for row in rows:
        _demographics(row, patient)
        store.session.add(row)


# --- answering a C-FIND ------------------------------------------------------------------

@dataclass(frozen=True)
class _Key:
    column: str
    kind: str  # text | name | date | time | uid


TOP_KEYS = {"AccessionNumber": _Key("accession_number", "text"),
            "PatientID": _Key("patient_id", "text"),
            "IssuerOfPatientID": _Key("issuer_of_patient_id", "text"),
            "PatientName": _Key("patient_name", "name"),
            "PatientBirthDate": _Key("patient_birth_date", "date"),
            "PatientSex": _Key("patient_sex", "text"),
            "StudyInstanceUID": _Key("study_uid", "uid"),
            "RequestedProcedureID": _Key("accession_number", "text")}
STEP_KEYS = {"Modality": _Key("modality", "text"),
             "ScheduledStationAETitle": _Key("station_ae", "text"),
             "ScheduledProcedureStepStartDate": _Key("start_date", "date"),
             "ScheduledProcedureStepStartTime": _Key("start_time", "time"),
             "ScheduledProcedureStepID": _Key("accession_number", "text")}


def find(session: Session, identifier: Dataset) -> Iterator[Dataset]:
    """The worklist items matching a C-FIND ``identifier``, each holding only its keys.

    Scheduled orders only, ordered by scheduled start then accession number.
    The identifier is checked whole before the first item is yielded.

    Raises
    ------
    WorklistQueryError
        When the identifier cannot be decoded (0xC000) or a key's value
        breaks its VR or matching rules (0xA900).
    """
    conditions, checks = _conditions(identifier)
    query = select(WorklistStep).where(col(WorklistStep.scheduled).is_(True), *conditions)
    query = query.order_by(col(WorklistStep.start_date), col(WorklistStep.start_time),
                           col(WorklistStep.accession_number))
    for row in session.exec(query):
        values = {c: getattr(row, c) for c in checks}
        if all(pattern.fullmatch(values[c] or "") for c, pattern in checks.items()):
            yield _project(item(row), identifier)


def _conditions(identifier: Dataset) -> tuple[list[ColumnElement[bool]], dict[str, Any]]:
    """SQL conditions and exact wildcard checks (column -> compiled pattern) of the keys."""
    conditions: list[ColumnElement[bool]] = []
    checks: dict[str, Any] = {}
    keys: list[tuple[str, Any]] = []
    try:
        for element in identifier:
            if element.keyword == "ScheduledProcedureStepSequence":
                if len(element.value) > 1:
                    raise WorklistQueryError("Sequence matching takes one "
                                             "ScheduledProcedureStepSequence item (PS3.4 "
                                             "C.2.2.2.6)")
                for inner in (element.value[0] if element.value else []):
                    keys.extend(_key(STEP_KEYS, inner))
            else:
                keys.extend(_key(TOP_KEYS, element))
    except WorklistQueryError:
        raise
    except Exception as error:  # pydicom raises many kinds on undecodable values
        raise WorklistQueryError(f"The identifier cannot be decoded ({type(error).__name__})",
                                 0xC000) from error
    for keyword, (key, value) in keys:
        made, check = _condition(keyword, key, value)
        conditions.extend(made)
        if check is not None:
            checks[key.column] = check
    return conditions, checks


def _key(table: dict[str, _Key], element: DataElement) -> list[tuple[str, tuple[_Key, Any]]]:
    key = table.get(element.keyword or "")
    value = element.value
    if key is None or value is None or value == "" or value == []:
        return []
    if isinstance(value, MultiValue) and key.kind != "uid":
        raise WorklistQueryError(f"{element.keyword} takes one value (PS3.4 C.2.2.2)")
    return [(str(element.keyword), (key, value))]


def _condition(keyword: str, key: _Key, value: Any) -> tuple[list[ColumnElement[bool]], Any]:
    column = getattr(WorklistStep, key.column)
    if key.kind == "uid":
        uids = [str(v) for v in (value if isinstance(value, MultiValue) else [value])]
        return [col(column).in_(uids)], None
    text = str(value).strip()
    if key.kind in ("date", "time"):
        return _range(keyword, column, text, key.kind), None
    if text == "*":
        return [], None  # universal (C.2.2.2.3)
    if key.kind == "name":
        column, text = func.upper(column), text.upper()
    if "*" in text or "?" in text:
        like = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = like.replace("*", "%").replace("?", "_")
        pattern = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                                     for c in text), re.IGNORECASE if key.kind == "name" else 0)
        return [column.like(like, escape="\\")], pattern
    return [column == text], None


def _range(keyword: str, column: Any, text: str, kind: str) -> list[ColumnElement[bool]]:
    """Range matching on DA or TM (PS3.4 C.2.2.2.5): ``a``, ``a-b``, ``-b``, ``a-``."""
    low, dash, high = text.partition("-")
    if not dash:
        high = low
    low, high = low.strip(), high.strip()
    form = _DA if kind == "date" else _TM
    if not (low or high) or any(part and not form.fullmatch(part) for part in (low, high)):
        raise WorklistQueryError(f"{keyword} '{text[:32]}' is not a "
                                 f"{'date (YYYYMMDD)' if kind == 'date' else 'time (HHMMSS)'} "
                                 "or a range of them (PS3.4 C.2.2.2.5)")
    if kind == "time":  # compared as HHMMSS: a shorter bound covers its whole hour or minute
        low = low.split(".")[0].ljust(6, "0") if low else ""
        high = high.split(".")[0].ljust(6, "9") if high else ""
    if low and low == high:
        return [column == low]
    return ([column >= low] if low else []) + ([column <= high] if high else [])


# --- the items ---------------------------------------------------------------------------

Values = dict[str, Any]  # keyword -> value; a sequence is a list of Values


def item(row: WorklistStep) -> Values:
    """The whole worklist item of one row (the PS3.4 Table K.6-1 attributes ScanPath keeps),
    keyword to value, None where ScanPath keeps no value."""
    code = {"CodeValue": row.procedure_code,
            "CodingSchemeDesignator": row.procedure_scheme or LOCAL_SCHEME,
            "CodeMeaning": row.procedure_meaning or row.procedure_code}
    step = {"Modality": row.modality, "ScheduledStationAETitle": row.station_ae,
            "ScheduledProcedureStepStartDate": row.start_date,
            "ScheduledProcedureStepStartTime": row.start_time,
            "ScheduledPerformingPhysicianName": None,
            "ScheduledProcedureStepID": row.accession_number,
            "ScheduledProcedureStepDescription": row.procedure_meaning}
    return {"AccessionNumber": row.accession_number, "PatientName": row.patient_name,
            "PatientID": row.patient_id, "IssuerOfPatientID": row.issuer_of_patient_id,
            "PatientBirthDate": row.patient_birth_date, "PatientSex": row.patient_sex,
            "StudyInstanceUID": row.study_uid, "RequestedProcedureID": row.accession_number,
            "RequestedProcedureDescription": row.procedure_meaning,
            "RequestedProcedureCodeSequence": [code] if row.procedure_code else [],
            "ScheduledProcedureStepSequence": [step]}


def _project(values: Values, query: Dataset) -> Dataset:
    """``values`` cut to the keys of ``query`` (C.2.2.1.2): each asked-for key, empty when
    there is no value; a sequence key with an item returns its asked-for keys, an empty
    one its whole items. Specific Character Set is ISO_IR 192 when a value needs it."""
    answer = _cut(values, query)
    if not _ascii(values):
        answer.SpecificCharacterSet = "ISO_IR 192"
    return answer


def _cut(values: Values, query: Dataset) -> Dataset:
    answer = Dataset()
    for element in query:
        if element.keyword == "SpecificCharacterSet" or element.tag.group < 0x0008:
            continue
        value = values.get(element.keyword or "")
        if element.VR == "SQ":
            items = [_cut(i, element.value[0]) if element.value else _whole(i)
                     for i in (value or [])]
            answer.add_new(element.tag, "SQ", DicomSequence(items))
        else:
            answer.add_new(element.tag, element.VR, value)
    return answer


def _whole(values: Values) -> Dataset:
    answer = Dataset()
    for keyword, value in values.items():
        answer.add_new(keyword, dictionary_VR(keyword), value)
    return answer


def _ascii(values: Values) -> bool:
    for value in values.values():
        if isinstance(value, list):
            if not all(_ascii(i) for i in value):
                return False
        elif isinstance(value, str) and not value.isascii():
            return False
    return True
