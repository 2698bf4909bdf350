"""Linking received studies to their orders, as FHIR ImagingStudy resources.

A study is linked when its AccessionNumber (0008,0050) equals the ACSN
identifier of a ServiceRequest (shared/CONTRACT.md §2, §5) and its header
names the order's Patient (``referral.identity``: PatientID, PatientBirthDate,
PatientName; a missing value is never a match). Unlinked studies stay out of
FHIR: R4 requires ``ImagingStudy.subject``, and filing images under a patient
their header does not name risks the wrong person. They are kept, flagged
(``ReceivedStudy.matched = False``, ``hold_reason`` ``no-order`` or
``identity-mismatch``; an instance naming another patient that arrives after
the study was linked holds it too, before it is analysed) and shown to staff
and the RIS as a reconcile Task (``referral.orders.hold_unlinked``) until a
person links or rejects them through that Task (:func:`decide_hold`). A
no-order study links by itself when an order with its accession number
appears (``match_pending_studies`` or the ServiceRequest write hook), if it
names that order's patient.

The ImagingStudy follows R4 (https://hl7.org/fhir/R4/imagingstudy.html): the
Study Instance UID as ``urn:dicom:uid`` identifier, the accession number as
an ACSN identifier, ``basedOn`` the order, series and instances with their
UIDs, DICOM modality codes (PS3.16 CID 29) and SOP Classes as ``urn:oid:``.

One order has one current study. A study whose accession names an order
that another study already serves (a rescan, a second StudyInstanceUID from
a misconfigured modality, a study split in two) still gets its ImagingStudy,
but is held (``ReceivedStudy.hold_reason = "second-study"``): not analysed,
and shown to staff and the RIS as a reconcile Task (``imaging_core.holds``)
until a person decides. Whichever study reached the order first stays
current; later instances of it still count. The first study of an order moves
it to ``in-progress`` through the order workflow (``referral.orders``), also
when the order was not yet scheduled (a walk-in); a study for a rejected or
cancelled order is held (``hold_reason = "order-closed"``), never refused.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlmodel import Session, col, select

from core.errors import Conflict, FhirError, NotFound
from fhir.search import escape, run_search
from fhir.store import Store, register_write_hook, spec_for
from imaging_core.holds import hold_for_person
from imaging_core.models import DicomInstance, ReceivedStudy
from referral import identity, orders
from referral.accession import ACSN_TYPE
from referral.orders import images_arrived

log = logging.getLogger(__name__)

DCM = "http://dicom.nema.org/resources/ontology/DCM"
URI = "urn:ietf:rfc:3986"
UNSIGNED_INT_MAX = 2**31 - 1  # FHIR unsignedInt


def register() -> None:
    """Link waiting studies when an order with their accession number is written.

    Must be registered after ``referral`` so the order already carries its number.
    """
    register_write_hook("ServiceRequest", _link_on_order_write)
    orders.register_hold_resolver(decide_hold)


def imaging_study_id(study_uid: str) -> str:
    """The ImagingStudy id of a study: stable, so concurrent first writes collide.

    Two associations delivering one study at once both try to create the same
    id; the loser retries and updates instead of creating a duplicate.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_OID, study_uid))


def accession_of(resource: dict[str, Any], system: str) -> str | None:
    """The accession number a ServiceRequest carries in ``system``, if any."""
    values = [i.get("value") for i in resource.get("identifier", []) if i.get("system") == system]
    return values[0] if values else None


def find_order(store: Store, accession: str | None) -> dict[str, Any] | None:
    """The ServiceRequest whose ACSN identifier is ``accession``."""
    if not accession:
        return None
    # Escaped: a comma or bar in a DICOM value must not become an OR or a system split.
    query = [("identifier", f"{escape(store.settings.accession_system)}|{escape(accession)}")]
    result = run_search(store.session, spec_for("ServiceRequest"), query, count=2)
    if result.total > 1:  # numbers are unique by construction; never guess between orders
        log.error("accession number names several orders", extra={"accession": accession})
        return None
    return result.matches[0] if result.matches else None


# Holds of a study linked to no order: a person links it (then it is analysed) or rejects it.
NO_ORDER, MISMATCH, REJECTED = "no-order", "identity-mismatch", "rejected"
_AUTO_LINKED = (None, NO_ORDER)  # hold reasons under which an order found by accession links


def link_study(store: Store, study: ReceivedStudy) -> bool:
    """Create or refresh the ImagingStudy of ``study`` if its order is known and the
    header names the order's patient; otherwise hold it for a person (once)."""
    if study.hold_reason not in _AUTO_LINKED and not study.matched:
        return False  # waiting for a person, or rejected by one
    order = _order_of(store, study)
    if order is None:
        if study.hold_reason is None:
            _hold_unlinked(store, study, None, NO_ORDER, "its accession number "
                           f"{study.accession_number or '(none)'} names no order")
        return False
    return _link_to(store, study, order)


def match_pending_studies(store: Store) -> list[str]:
    """Link every unmatched study whose order now exists; their Study UIDs. The caller commits."""
    pending = store.session.exec(
        select(ReceivedStudy).where(col(ReceivedStudy.matched).is_(False),
                                    col(ReceivedStudy.accession_number).is_not(None),
                                    _auto_linked())
    ).all()
    return [study.study_uid for study in pending if link_study(store, study)]


def _order_of(store: Store, study: ReceivedStudy) -> dict[str, Any] | None:
    if study.matched and study.service_request_id:
        try:
            return store.read("ServiceRequest", study.service_request_id)
        except NotFound:  # the order is gone; keep the images, re-link by accession
            log.error("linked order not found", extra={"study_uid": study.study_uid})
    return find_order(store, study.accession_number)


def _link_on_order_write(store: Store, order: dict[str, Any],
                         _previous: dict[str, Any] | None) -> None:
    accession = accession_of(order, store.settings.accession_system)
    if accession is None:
        return
    waiting = store.session.exec(
        select(ReceivedStudy).where(col(ReceivedStudy.matched).is_(False),
                                    ReceivedStudy.accession_number == accession,
                                    _auto_linked())
    ).all()
    for study in waiting:  # images before their order: rare, as ScanPath issues the numbers
        log.info("new order links waiting study", extra={"study_uid": study.study_uid})
        _link_to(store, study, order)


def _auto_linked() -> Any:
    return col(ReceivedStudy.hold_reason).is_(None) | (ReceivedStudy.hold_reason == NO_ORDER)


def _link_to(store: Store, study: ReceivedStudy, order: dict[str, Any]) -> bool:
    """Write the ImagingStudy in a savepoint; a failure leaves the study unmatched.

    A study first linked to ``order`` is checked against the order's Patient
    (``referral.identity``); a discrepancy holds it, unlinked (False). The
    instance (or the order) being written must not be lost to a FHIR
    problem, so only a concurrent write (Conflict) propagates, for a retry.
    """
    savepoint = store.session.begin_nested()
    try:
        newly_linked = study.service_request_id != order["id"] or not study.matched
        if study.hold_reason == NO_ORDER:  # the order came after its images
            study.hold_reason = None
            orders.settle_holds(store, _uid_identifier(study), f"ServiceRequest/{order['id']} "
                                "with its accession number arrived; the study is linked to "
                                "it if it names the order's patient")
        checked = newly_linked or study.hold_reason is None  # later images are checked too
        if checked and not _same_patient(store, study, order):
            savepoint.commit()
            return False
        _write_imaging_study(store, study, order)
        if newly_linked and _current_study(store.session, order["id"], study.study_uid):
            _hold_study(store, study, order, "second-study")
        elif newly_linked and not images_arrived(store, order,
                                                 f"ImagingStudy/{study.imaging_study_id}"):
            _hold_study(store, study, order, "order-closed")
    except Conflict:
        raise
    except FhirError:
        savepoint.rollback()
        log.exception("ImagingStudy not written", extra={"study_uid": study.study_uid})
        return False
    savepoint.commit()
    return True


def _same_patient(store: Store, study: ReceivedStudy, order: dict[str, Any]) -> bool:
    """Whether every header of the study names the order's Patient; if not, it is held."""
    reference = str(order.get("subject", {}).get("reference", ""))
    try:
        patient = store.read("Patient", reference.removeprefix("Patient/"))
    except NotFound:
        patient = {}
    problems = [p for header in headers(store.session, study.study_uid)
                for p in identity.check(patient, header)]
    if not problems or (study.matched and _linked_by_person(store, study)):
        return True
    texts = "; ".join(dict.fromkeys(p.text for p in problems))
    _hold_unlinked(store, study, order, MISMATCH, f"its header does not show it is the "
                   f"order's patient ({reference}): {texts}")
    return False


def _linked_by_person(store: Store, study: ReceivedStudy) -> bool:
    """Whether a person linked this study despite its header (a decided hold Task)."""
    found = run_search(store.session, spec_for("Task"),
                       [("identifier", _uid_identifier(study))], count=50).matches
    return any(task.get("status") == "completed" and any(
        (o.get("type") or {}).get("text") == orders.LINKED_ORDER
        for o in task.get("output", [])) for task in found)


def headers(session: Session, study_uid: str) -> list[identity.Header]:
    """The distinct patient headers among a study's received instances."""
    found = session.exec(select(DicomInstance.patient_id, DicomInstance.patient_name,
                                DicomInstance.patient_birth_date).where(
        DicomInstance.study_uid == study_uid,
        col(DicomInstance.source) != "derived").distinct()).all()
    return [identity.Header(*row) for row in found]


def _uid_identifier(study: ReceivedStudy) -> str:
    return f"urn:dicom:uid|urn:oid:{study.study_uid}"


def _hold_unlinked(store: Store, study: ReceivedStudy, order: dict[str, Any] | None,
                   reason: str, why: str) -> None:
    """Hold ``study`` unlinked (no ImagingStudy) for a person: a reconcile Task, once."""
    if study.hold_reason == reason:
        return
    study.hold_reason = reason
    store.session.add(study)
    log.warning("study held for a person", extra={
        "study_uid": study.study_uid, "reason": reason,
        "service_request_id": order["id"] if order else None})
    orders.hold_unlinked(store, order, study.study_uid, study.accession_number, reason,
                         f"Study {study.study_uid} is stored and not analysed: {why}. A "
                         "person links it to an order or rejects it")


def decide_hold(store: Store, task: dict[str, Any], order: dict[str, Any] | None) -> None:
    """A person's decision on a hold Task that holds a study (``referral.orders``):
    linked to ``order`` (the study is then analysed) or rejected (``order`` None: kept,
    flagged ``hold_reason = "rejected"``, never analysed). Holds of other things
    (a result after sign-off) need nothing here.

    Raises Conflict (409) when the order a person names is closed.
    """
    study = _held_study(store, task)
    if study is None:
        return
    if order is None:
        study.hold_reason = REJECTED
        store.session.add(study)
        return
    study.hold_reason = None
    _write_imaging_study(store, study, order)
    if not images_arrived(store, order, f"ImagingStudy/{study.imaging_study_id}"):
        raise Conflict(f"ServiceRequest/{order['id']} is closed (rejected, cancelled or "
                       "completed): it takes no images", ["Task.output"])


def _held_study(store: Store, task: dict[str, Any]) -> ReceivedStudy | None:
    uid = next((str(i.get("valueString")) for i in task.get("input", [])
                if (i.get("type") or {}).get("text") == "study-instance-uid"), None)
    if uid is not None:
        return store.session.get(ReceivedStudy, uid)
    focus = str((task.get("focus") or {}).get("reference", ""))
    if not focus.startswith("ImagingStudy/"):
        return None
    return store.session.exec(select(ReceivedStudy).where(
        ReceivedStudy.imaging_study_id == focus.removeprefix("ImagingStudy/"))).first()


def _write_imaging_study(store: Store, study: ReceivedStudy, order: dict[str, Any]) -> None:
    resource_id = study.imaging_study_id or imaging_study_id(study.study_uid)
    previous = _current(store, resource_id)
    rows = instances(store.session, study.study_uid)
    generated = imaging_study(study, rows, order, store.settings.accession_system)
    study.synced_count = len(rows)
    # Fields others added (notes, endpoints) survive; the ones derived from DICOM are ours.
    store.update("ImagingStudy", resource_id, {**(previous or {}), **generated, "id": resource_id})
    study.imaging_study_id, study.service_request_id = resource_id, order["id"]
    study.matched = True
    store.session.add(study)


def _current_study(session: Session, order_id: str, besides: str) -> ReceivedStudy | None:
    """The study (other than ``besides``) that is the order's current one, if any."""
    return session.exec(select(ReceivedStudy).where(
        ReceivedStudy.service_request_id == order_id, col(ReceivedStudy.matched),
        col(ReceivedStudy.hold_reason).is_(None),
        ReceivedStudy.study_uid != besides)).first()


# Why a study is held, in the hold Task's description (after "Study {uid} arrived for").
_HELD = {"second-study": "an order that already has a study",
         "order-closed": "an order that is rejected, cancelled or completed"}


def _hold_study(store: Store, study: ReceivedStudy, order: dict[str, Any], reason: str) -> None:
    """Keep ``study`` from analysis and show it to a person (``reason`` a key of _HELD)."""
    study.hold_reason = reason
    store.session.add(study)
    log.warning("study held for a person", extra={
        "study_uid": study.study_uid, "service_request_id": order["id"], "reason": reason})
    hold_for_person(store, order, f"ImagingStudy/{study.imaging_study_id}", reason,
                    f"Study {study.study_uid} arrived for {_HELD[reason]}; it is stored and "
                    "not analysed until a person links or rejects it")


def _current(store: Store, resource_id: str) -> dict[str, Any] | None:
    try:
        previous = store.read("ImagingStudy", resource_id)
    except NotFound:
        return None
    previous.pop("meta", None)
    return previous


def instances(session: Session, study_uid: str, series_uid: str | None = None,
              sop_instance_uid: str | None = None) -> list[DicomInstance]:
    """The stored instances of a study (or one series, or one instance), in series order."""
    query = select(DicomInstance).where(DicomInstance.study_uid == study_uid)
    if series_uid is not None:
        query = query.where(DicomInstance.series_uid == series_uid)
    if sop_instance_uid is not None:
        query = query.where(DicomInstance.sop_instance_uid == sop_instance_uid)
    return list(session.exec(query.order_by(
        col(DicomInstance.series_number), col(DicomInstance.series_uid),
        col(DicomInstance.instance_number), col(DicomInstance.sop_instance_uid))).all())


def imaging_study(study: ReceivedStudy, instances: list[DicomInstance],
                  order: dict[str, Any], accession_system: str) -> dict[str, Any]:
    """The R4 ImagingStudy describing ``instances`` of ``study``, based on ``order``."""
    series = [_series(uid, list(rows))
              for uid, rows in groupby(instances, key=lambda row: row.series_uid)]
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "identifier": _identifiers(study, accession_system),
        "status": "available",
        "subject": order["subject"],
        "basedOn": [{"reference": f"ServiceRequest/{order['id']}"}],
        "numberOfSeries": len(series),
        "numberOfInstances": len(instances),
        "series": series,
    }
    if study.started:
        resource["started"] = study.started
    if study.description:
        resource["description"] = study.description
    return resource


def _identifiers(study: ReceivedStudy, accession_system: str) -> list[dict[str, Any]]:
    identifiers: list[dict[str, Any]] = [
        {"system": "urn:dicom:uid", "value": f"urn:oid:{study.study_uid}"}]
    if study.accession_number:
        identifiers.append({"use": "usual", "type": ACSN_TYPE, "system": accession_system,
                            "value": study.accession_number})
    return identifiers


def _series(uid: str, rows: list[DicomInstance]) -> dict[str, Any]:
    first = rows[0]
    series: dict[str, Any] = {
        "uid": uid,
        # Modality is Type 1 in the General Series module; OT ("other") if a sender omits it.
        "modality": {"system": DCM, "code": first.modality or "OT"},
        "numberOfInstances": len(rows),
        "instance": [_instance(row) for row in rows],
    }
    _set_number(series, first.series_number)
    return series


def _instance(row: DicomInstance) -> dict[str, Any]:
    instance: dict[str, Any] = {"uid": row.sop_instance_uid,
                                "sopClass": {"system": URI, "code": f"urn:oid:{row.sop_class_uid}"}}
    _set_number(instance, row.instance_number)
    return instance


def _set_number(element: dict[str, Any], number: int | None) -> None:
    # DICOM IS may be negative or huge; FHIR's unsignedInt may not.
    if number is not None and 0 <= number <= UNSIGNED_INT_MAX:
        element["number"] = number



def refresh_complete_studies(store: Store, cutoff: datetime) -> list[str]:
    """Bring the ImagingStudy of every quiet, matched study up to its last instance."""
    stale = store.session.exec(select(ReceivedStudy).where(
        col(ReceivedStudy.matched), col(ReceivedStudy.last_received_at) <= cutoff,
        col(ReceivedStudy.synced_count) != col(ReceivedStudy.instance_count))).all()
    return [study.study_uid for study in stale if link_study(store, study)]
