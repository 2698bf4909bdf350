"""QIDO-RS: search for studies, series and instances (DICOM PS3.18 §10.6).

``GET /dicomweb/studies``, ``/dicomweb/series``, ``/dicomweb/instances``,
``/dicomweb/studies/{study}/series``, ``/dicomweb/studies/{study}/instances``
and ``/dicomweb/studies/{study}/series/{series}/instances`` answer DICOM JSON
(PS3.18 Annex F) from the attributes kept with each stored instance, never by
re-reading files. Matching follows PS3.4 C.2.2.2: single value (exact, or
case-insensitive by name components with ``fuzzymatching=true`` for
person names), wildcards ``*`` and ``?``, lists of UIDs (``,`` or ``\\``),
and ranges of dates and times (``20260101-20260131``, open at either end).
Keys are keywords or tags (``PatientID`` or ``00100020``); ``limit``,
``offset`` and ``includefield`` shape the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from flask import Response, request
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, and_
from sqlmodel import col, select

from core.errors import BadRequest
from core.params import whole_number
from core.web import app_settings, db
from fhir.indexing import folded
from imaging_core.dicomweb import bp, require_read
from imaging_core.models import DicomInstance

DICOM_JSON = "application/dicom+json"
CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
MAX_NUMBER = 2**31 - 1  # limit and offset are capped here (PS3.18 §8.3.4.4 lets a server cap)
Row = DicomInstance


@dataclass(frozen=True)
class Key:
    """A matching key: the column it reads and the kind of matching its VR allows."""

    column: str
    kind: str  # uid | text | number | name | date | time | modality


# Attributes kept per instance (imaging_core.storage.QUERY_TEXT and the UIDs).
KEYS = {
    "StudyInstanceUID": Key("study_uid", "uid"),
    "SeriesInstanceUID": Key("series_uid", "uid"),
    "SOPInstanceUID": Key("sop_instance_uid", "uid"),
    "SOPClassUID": Key("sop_class_uid", "uid"),
    "AccessionNumber": Key("accession_number", "text"),
    "PatientID": Key("patient_id", "text"),
    "PatientName": Key("patient_name", "name"),
    "PatientBirthDate": Key("patient_birth_date", "date"),
    "PatientSex": Key("patient_sex", "text"),
    "StudyDate": Key("study_date", "date"),
    "StudyTime": Key("study_time", "time"),
    "StudyID": Key("study_id", "text"),
    "StudyDescription": Key("study_description", "text"),
    "SeriesDescription": Key("series_description", "text"),
    "ReferringPhysicianName": Key("referring_physician_name", "name"),
    "Modality": Key("modality", "text"),
    "ModalitiesInStudy": Key("modality", "modality"),
    "SeriesNumber": Key("series_number", "number"),
    "InstanceNumber": Key("instance_number", "number"),
}
# What each level returns by default (PS3.18 Tables 10.6.3-3 to -5, as kept here).
STUDY = ["StudyDate", "StudyTime", "AccessionNumber", "ReferringPhysicianName", "PatientName",
         "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
         "StudyDescription"]
SERIES = ["Modality", "SeriesDescription", "SeriesInstanceUID", "SeriesNumber"]
INSTANCE = ["SOPClassUID", "SOPInstanceUID", "InstanceNumber", "NumberOfFrames"]


@bp.get("/studies")
def search_studies() -> Response:
    rows = _matching({})
    studies = [list(g) for _, g in groupby(rows, key=lambda r: r.study_uid)]
    return _answer([_study(group) for group in studies], STUDY)


@bp.get("/series")
@bp.get("/studies/<study>/series")
def search_series(study: str | None = None) -> Response:
    rows = _matching({"StudyInstanceUID": study} if study else {})
    series = [list(g) for _, g in groupby(rows, key=lambda r: (r.study_uid, r.series_uid))]
    return _answer([_series(group, study is None) for group in series], SERIES)


@bp.get("/instances")
@bp.get("/studies/<study>/instances")
@bp.get("/studies/<study>/series/<series>/instances")
def search_instances(study: str | None = None, series: str | None = None) -> Response:
    fixed = {k: v for k, v in (("StudyInstanceUID", study), ("SeriesInstanceUID", series)) if v}
    rows = _matching(fixed)
    return _answer([_instance(row, study is None, series is None) for row in rows], INSTANCE)


# --- matching ------------------------------------------------------------------------

def _matching(fixed: dict[str, str]) -> list[Row]:
    """Stored instances matching the query string and the path's UIDs, in UID order."""
    require_read()
    fuzzy = _flag("fuzzymatching")
    criteria = _criteria(fixed)
    by_name = [(KEYS[name].column, value) for name, value in criteria
               if fuzzy and KEYS[name].kind == "name" and value]
    tests = [_test(name, value) for name, value in criteria
             if (KEYS[name].column, value) not in by_name]
    query = select(DicomInstance).where(*[t for t in tests if t is not None])
    rows = db().exec(query.order_by(  # type: ignore[call-overload]
        col(DicomInstance.study_uid), col(DicomInstance.series_number),
        col(DicomInstance.series_uid), col(DicomInstance.instance_number),
        col(DicomInstance.sop_instance_uid))).all()
    return [row for row in rows
            if all(_fuzzy_name(getattr(row, column), value) for column, value in by_name)]


def _criteria(fixed: dict[str, str]) -> list[tuple[str, str]]:
    """``(keyword, value)`` of every matching key in the query, and the path's UIDs."""
    found = [(_keyword(name), value) for name, value in request.args.items(multi=True)
             if name not in CONTROL]
    return found + list(fixed.items())


def _keyword(name: str) -> str:
    """A query key given as a keyword or as eight hex digits of its tag."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        name = keyword_for_tag(int(name, 16)) or name
    if name not in KEYS:
        raise BadRequest(f"'{name}' is not an attribute this server can match on; it "
                         f"matches {', '.join(sorted(KEYS))}", [name])
    return name


def _test(keyword: str, value: str) -> ColumnElement[bool] | None:
    key = KEYS[keyword]
    column = getattr(DicomInstance, key.column)
    if value == "":
        return None  # universal matching: return the attribute, match anything
    if key.kind in ("uid", "modality"):
        values = [v for v in re.split(r"[,\\]", value) if v]
        if key.kind == "modality":
            in_study = select(col(DicomInstance.study_uid)).where(col(column).in_(values))
            return col(DicomInstance.study_uid).in_(in_study)
        return col(column).in_(values)  # type: ignore[no-any-return]
    if key.kind == "number":
        # PS3.5 §6.2: IS holds -2^31 to 2^31 - 1.
        if not re.fullmatch(r"[+-]?[0-9]{1,10}", value.strip()) or \
                not -2**31 <= int(value) < 2**31:
            raise BadRequest(f"{keyword} is a 32-bit integer, not '{value}'", [keyword])
        return column == int(value)  # type: ignore[no-any-return]
    if key.kind in ("date", "time"):
        return _date_or_time(keyword, key.kind, column, value)
    return _single_or_wildcard(column, value)


# PS3.5 §6.2: DA is YYYYMMDD; TM is HH, HHMM, HHMMSS or HHMMSS.FFFFFF.
FORMATS = {"date": (r"[0-9]{8}", "YYYYMMDD"),
           "time": (r"[0-9]{2}([0-9]{2}([0-9]{2}(\.[0-9]{1,6})?)?)?", "HHMMSS.FFFFFF")}


def _date_or_time(keyword: str, kind: str, column: Any,
                  value: str) -> ColumnElement[bool] | None:
    """A single date or time, or a range (PS3.4 C.2.2.2.5); anything else is a 400,
    never an empty answer that a client would read as "no studies"."""
    pattern, shown = FORMATS[kind]
    if value == "*":  # some clients' way of asking for universal matching
        return None
    sides = value.split("-")
    if len(sides) > 2 or not any(sides) or \
            not all(_valid(kind, pattern, side) for side in sides if side):
        raise BadRequest(f"{keyword} must be {shown} or a range of them (a-b, a-, -b), "
                         f"not '{value}'", [keyword])
    # A single value is the range from itself to itself, so 0930 covers 093015.
    return _range(column, value if len(sides) == 2 else f"{value}-{value}")


def _valid(kind: str, pattern: str, text: str) -> bool:
    """The form, and a day or time that exists (20260231 and 2460 do not)."""
    if not re.fullmatch(pattern, text):
        return False
    digits = text if kind == "date" else text.split(".")[0]
    # Each field is two digits and each strptime directive two characters.
    layout = "%Y%m%d" if kind == "date" else "%H%M%S"[:len(digits)]
    try:
        datetime.strptime(digits, layout)
    except ValueError:
        return False
    return True


def _range(column: Any, value: str) -> ColumnElement[bool]:
    """PS3.4 C.2.2.2.5: ``a-b``, ``-b`` and ``a-`` (dates compare as text, YYYYMMDD)."""
    low, _, high = value.partition("-")
    tests = [column.is_not(None)]
    if low:
        tests.append(column >= low)
    if high:  # "~" sorts after every digit: a shorter time (1200) covers 120059
        tests.append(column <= high + ("~" if len(high) < 8 else ""))
    return and_(*tests)


def _single_or_wildcard(column: Any, value: str) -> ColumnElement[bool]:
    if "*" not in value and "?" not in value:
        return column == value  # type: ignore[no-any-return]
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped.replace("*", "%").replace("?", "_"),  # type: ignore[no-any-return]
                       escape="\\")


def _fuzzy_name(name: str | None, value: str) -> bool:
    """Fuzzy person-name matching, which PS3.18 §8.3.4.4 leaves to the server: some
    name component starts with the value, ignoring case and accents, so ``muller^zoe``
    finds ``Müller^Zoë`` (components split at ``^``, ``=`` groups and spaces)."""
    text = folded(value.replace("*", "").replace("^", " "))
    words = folded(re.sub(r"[\^=]", " ", name or ""))
    if not text:
        return name is not None
    return f" {text}" in f" {words}"


# --- answers -----------------------------------------------------------------------

def _answer(found: list[Dataset], defaults: list[str]) -> Response:
    limit, offset = _number("limit", len(found)), _number("offset", 0)
    page = found[offset:offset + limit]
    wanted = _included(defaults)
    body = [_shaped(ds, wanted) for ds in page]
    return Response(json.dumps(body), status=200, content_type=DICOM_JSON)


def _flag(name: str) -> bool:
    """A ``true``/``false`` query parameter (PS3.18 §8.3.4.1), false when absent."""
    value = request.args.get(name, "false").lower()
    if value not in ("true", "false"):
        raise BadRequest(f"{name} is true or false, not '{value[:40]}'", [name])
    return value == "true"


def _number(name: str, default: int) -> int:
    raw = request.args.get(name)
    return default if raw is None else whole_number(raw, name, MAX_NUMBER)


def _included(defaults: list[str]) -> set[str] | None:
    """The keywords to return: the level's defaults, the query keys, any includefield."""
    fields = [f for value in request.args.getlist("includefield") for f in value.split(",")]
    if "all" in fields:
        return None
    keys = {_keyword(name) for name in request.args if name not in CONTROL}
    named = {_field(f) for f in fields}
    return {*defaults, *keys, *named, "RetrieveURL",
            "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
            "NumberOfSeriesRelatedInstances", "ModalitiesInStudy"}


def _field(name: str) -> str:
    """An includefield value: a DICOM keyword or eight hex digits of a tag (PS3.18
    §8.3.4.3); 400 for anything the data dictionary does not know."""
    keyword = keyword_for_tag(int(name, 16)) if re.fullmatch(r"[0-9A-Fa-f]{8}", name) \
        else name if tag_for_keyword(name) is not None else ""
    if not keyword:
        raise BadRequest(f"includefield takes DICOM keywords or tags, not '{name[:40]}'",
                         ["includefield"])
    return keyword


def _shaped(ds: Dataset, wanted: set[str] | None) -> dict[str, Any]:
    if wanted is not None:
        for element in list(ds):
            if element.keyword not in wanted:
                del ds[element.tag]
    return ds.to_json_dict()  # type: ignore[no-any-return]


def _url(*parts: str) -> str:
    return "/".join([f"{app_settings().public_url}/dicomweb", *parts])


def _set(ds: Dataset, keyword: str, value: Any) -> None:
    if value not in (None, ""):
        setattr(ds, keyword, value)


def _common(ds: Dataset, row: Row, keywords: Iterable[str]) -> None:
    for keyword in keywords:
        key = KEYS.get(keyword)
        if key and key.kind != "modality":
            _set(ds, keyword, getattr(row, key.column))


def _study(rows: list[Row]) -> Dataset:
    ds = Dataset()
    _common(ds, rows[0], STUDY)
    ds.ModalitiesInStudy = sorted({r.modality for r in rows if r.modality})
    ds.NumberOfStudyRelatedSeries = len({r.series_uid for r in rows})
    ds.NumberOfStudyRelatedInstances = len(rows)
    ds.RetrieveURL = _url("studies", rows[0].study_uid)
    return ds


def _series(rows: list[Row], with_study: bool) -> Dataset:
    ds = Dataset()
    _common(ds, rows[0], SERIES)
    if with_study:
        _common(ds, rows[0], STUDY)
    ds.NumberOfSeriesRelatedInstances = len(rows)
    ds.RetrieveURL = _url("studies", rows[0].study_uid, "series", rows[0].series_uid)
    return ds


def _instance(row: Row, with_study: bool, with_series: bool) -> Dataset:
    ds = Dataset()
    _common(ds, row, INSTANCE)
    _set(ds, "NumberOfFrames", row.number_of_frames)
    for wanted, keywords in ((with_study, STUDY), (with_series, SERIES)):
        if wanted:
            _common(ds, row, keywords)
    ds.RetrieveURL = _url("studies", row.study_uid, "series", row.series_uid, "instances",
                          row.sop_instance_uid)
    return ds


