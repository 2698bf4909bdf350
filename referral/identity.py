"""Do a study's images belong to the order's patient? (shared/CONTRACT.md §6 "Identity check")

Images are linked to an order by AccessionNumber; this module then compares
the DICOM header's patient attributes (PS3.3 C.7.1.1 Patient Module:
PatientID (0010,0020), PatientName (0010,0010), PatientBirthDate (0010,0030))
with the order's FHIR Patient. Every attribute must be present and agree:
a missing value is never read as a match (unknown is never negative), so a
header without a PatientID or birth date is held for a person like a
mismatch.

What counts as equal, and why:

- **PatientID** equals the ``value`` of any of the Patient's identifiers
  (NHS number or a local MRN; the header names no issuer we could trust, and
  IssuerOfPatientID is optional, Type 3), ignoring case and spaces: NHS
  numbers are printed in groups ("943 476 5919", NHS Data Dictionary "NHS
  number"), and modality consoles often upper-case what a clerk typed.
- **PatientBirthDate** (DA, ``YYYYMMDD``, PS3.5 6.2) is the Patient's
  ``birthDate``; a partial FHIR date (``YYYY`` or ``YYYY-MM``) agrees with a
  header date inside it, as that is all the Patient record knows.
- **PatientName** (PN, PS3.5 6.2.1): only the first (alphabetic) component
  group, before any ``=``, is read (ideographic and phonetic groups are
  optional spellings of the same name); its ``^`` components are family,
  given, middle, prefix, suffix. The family name and the first given name
  must equal one of the Patient's ``name`` entries (any ``use``: official,
  usual, maiden, nickname). Middle names, prefixes and suffixes are ignored:
  RIS and consoles drop or abbreviate them. Both sides are compared after
  Unicode NFKD with combining marks removed (accents: "Zoë" = "Zoe", as
  DICOM's default repertoire cannot carry them), case folding, and runs of
  spaces, hyphens and apostrophes made one space. A name with no ``^`` (free
  text typed at the console) agrees when it holds the family name and the
  first given name as words, in any order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Header:
    """The patient attributes of a study's DICOM header; None or "" when absent."""

    patient_id: str | None
    patient_name: str | None
    birth_date: str | None  # DA, YYYYMMDD


@dataclass(frozen=True)
class Discrepancy:
    """One attribute that does not show the images are the patient's: ``element`` is the
    DICOM keyword, ``text`` says why in words (missing, or what differs)."""

    element: str
    text: str


def check(patient: dict[str, Any], header: Header) -> list[Discrepancy]:
    """Every attribute of ``header`` that does not agree with the FHIR ``patient``.

    An empty list is a match; a missing header value or a Patient without the
    element to compare is a discrepancy (never a match). Rules: module docstring.
    """
    problems: list[Discrepancy] = []
    if not _present(header.patient_id):
        problems.append(Discrepancy("PatientID", "the images carry no PatientID"))
    elif not _id_matches(str(header.patient_id), patient.get("identifier", [])):
        problems.append(Discrepancy("PatientID", f"PatientID {header.patient_id!r} is none "
                                    "of the order's Patient identifiers"))
    problems += _birth_date(patient.get("birthDate"), header.birth_date)
    problems += _name(patient.get("name", []), header.patient_name)
    return problems


def _present(value: str | None) -> bool:
    return bool(value and value.strip())


def _compact(value: str) -> str:
    return re.sub(r"\s+", "", value).casefold()


def _id_matches(patient_id: str, identifiers: Iterable[dict[str, Any]]) -> bool:
    wanted = _compact(patient_id)
    return any(isinstance(i, dict) and isinstance(i.get("value"), str)
               and _compact(i["value"]) == wanted for i in identifiers)


def _birth_date(fhir_date: Any, dicom_date: str | None) -> list[Discrepancy]:
    if not _present(dicom_date):
        return [Discrepancy("PatientBirthDate", "the images carry no PatientBirthDate")]
    if not isinstance(fhir_date, str) or not fhir_date:
        return [Discrepancy("PatientBirthDate", "the order's Patient has no birthDate")]
    known = fhir_date.replace("-", "")
    if not str(dicom_date).strip().startswith(known):
        return [Discrepancy("PatientBirthDate", f"PatientBirthDate {dicom_date} is not the "
                            f"Patient's birthDate {fhir_date}")]
    return []


def normalise(text: str) -> str:
    """``text`` compared as a name part: accents removed, case folded, separators one space.

    >>> normalise("  O'Brien-Zoë ")
    'o brien zoe'
    """
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[\s\-'\u2019.,]+", " ", plain.casefold()).split())


def _name(names: Iterable[dict[str, Any]], pn: str | None) -> list[Discrepancy]:
    if not _present(pn):
        return [Discrepancy("PatientName", "the images carry no PatientName")]
    alphabetic = str(pn).split("=", 1)[0]
    known = [(normalise(str(n.get("family") or "")),
              normalise(str((n.get("given") or [""])[0] or "")))
             for n in names if isinstance(n, dict)]
    known = [(family, given) for family, given in known if family and given]
    if not known:
        return [Discrepancy("PatientName", "the order's Patient has no family and given name")]
    if any(_name_matches(alphabetic, family, given) for family, given in known):
        return []
    return [Discrepancy("PatientName", f"PatientName {pn!r} is not the Patient's name")]


def _name_matches(alphabetic: str, family: str, given: str) -> bool:
    if "^" in alphabetic:
        parts = alphabetic.split("^")
        first_given = normalise(parts[1]).split(" ")[0] if len(parts) > 1 else ""
        return normalise(parts[0]) == family and first_given == given.split(" ")[0]
    words = normalise(alphabetic).split(" ")
    return all(word in words for word in [*family.split(" "), given.split(" ")[0]])
