"""Accession numbers: assigned to every accepted ServiceRequest, never changed.

The number is an ``identifier`` typed ``v2-0203#ACSN`` (HL7 v2 table 0203,
"Accession ID", https://terminology.hl7.org/CodeSystem-v2-0203.html) in the
configured issuer system. It must fit DICOM AccessionNumber (0008,0050),
VR SH: at most 16 characters (DICOM PS3.5 §6.2).
"""

from __future__ import annotations

from typing import Any

from core.errors import Unprocessable
from fhir.store import Store, register_write_hook
from referral.models import Accession

ACSN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                         "code": "ACSN", "display": "Accession ID"}]}
MAX_LENGTH = 16  # DICOM VR SH
DIGITS = 8


def register() -> None:
    register_write_hook("ServiceRequest", assign_accession)


def assign_accession(store: Store, resource: dict[str, Any],
                     previous: dict[str, Any] | None) -> None:
    """Give a new ServiceRequest its number; keep an existing one exactly as issued.

    Identifiers in the accession system, or typed ACSN in any system, are
    ScanPath's alone: a client may send back the one it was given, unchanged,
    and nothing else.
    """
    system = store.settings.accession_system
    identifiers = resource.get("identifier", [])
    sent = [i for i in identifiers if _is_accession(i, system)]
    issued = [i for i in (previous or {}).get("identifier", []) if _is_accession(i, system)]
    if any(i != issued[0] for i in sent) if issued else bool(sent):
        raise Unprocessable("Accession numbers are assigned by ScanPath and cannot be set or "
                            f"changed; send back only the one issued in {system}",
                            ["ServiceRequest.identifier"])
    others = [i for i in identifiers if not _is_accession(i, system)]
    identifier = issued[0] if issued else _new_identifier(store, resource["id"])
    resource["identifier"] = [*others, identifier]


def _is_accession(identifier: Any, system: str) -> bool:
    if not isinstance(identifier, dict):
        return False
    typed = any(c.get("code") == "ACSN" for c in (identifier.get("type") or {}).get("coding", [])
                if isinstance(c, dict))
    return identifier.get("system") == system or typed


def _new_identifier(store: Store, service_request_id: str) -> dict[str, Any]:
    row = Accession(service_request_id=service_request_id)
    store.session.add(row)
    store.session.flush()
    row.value = accession_value(store.settings.accession_prefix, row.id or 0)
    return {"use": "official", "type": ACSN_TYPE, "system": store.settings.accession_system,
            "value": row.value}


def accession_value(prefix: str, counter: int) -> str:
    """``prefix`` plus the zero-padded counter, refused if it outgrows DICOM SH."""
    value = f"{prefix}{counter:0{DIGITS}d}"
    if len(value) > MAX_LENGTH:
        raise Unprocessable(f"Accession number {value} is longer than {MAX_LENGTH} characters")
    return value
