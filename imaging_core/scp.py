"""The DICOM listener: C-STORE of CT images (PS3.4 Annex B), C-ECHO (Annex A) and
the Modality Worklist C-FIND (Annex K, answered by ``referral.worklist``).

Each received instance is stored through :func:`imaging_core.storage.receive`
in a transaction of its own. Success (0000) is answered only after the file
was fsynced and the row committed, so a sender may delete its copy once it
hears it (PS3.4 B.2.3 and the durability promise of shared/CONTRACT.md §5).
Refusals carry the storage error's status and an Error Comment (0000,0902).

Every association is audited (PS3.15 A.5, DCM codes of PS3.16 CID 400-403):
one AuditEvent for the instances it stored and one for those it refused
(DCM 110104 "DICOM Instances Transferred", outcome 0 or 4, A.5.3.7); one
for its C-ECHOs (DCM 110100 "Application Activity": PS3.15 has no message of
its own for Verification, A.5.3.1 is the nearest); one for its worklist
queries (DCM 110112 "Query", A.5.3.11, outcome 0, or 4 when one failed); and a refused
association gives DCM 110114 "User Authentication" (A.5.3.12), outcome 4,
rate-limited per address like every request that names no known client.

Compressed transfer syntaxes are accepted and kept as sent; the listener
never decompresses. Any calling AE may associate unless
``SCANPATH_DICOM_ALLOWED_AES`` lists the ones allowed. Real deployments
restrict callers and keep the port on a trusted network: DICOM AE titles
are not authentication.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Literal, overload

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from fhir import audit
from fhir.store import Store
from imaging_core.errors import ProcessingFailure, StorageError
from imaging_core.storage import SOP_CLASSES, TRANSFER_SYNTAXES, receive
from referral import worklist

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"  # Verification SOP Class, C-ECHO (PS3.4 A.4)
# Modality Worklist Information Model - FIND (PS3.4 K.6.1.2)
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
SUCCESS = 0x0000
PENDING = 0xFF00  # a match follows (PS3.4 K.4.1.1.4)
CANCELLED = 0xFE00
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
APPLICATION_ACTIVITY_EVENT = {"system": _DCM, "code": "110100",
                              "display": "Application Activity"}
QUERY_EVENT = {"system": _DCM, "code": "110112", "display": "Query"}
USER_AUTHENTICATION_EVENT = {"system": _DCM, "code": "110114", "display": "User Authentication"}
_COMMENT_LENGTH = 64  # Error Comment is LO (PS3.5 6.2)


def build_ae(settings: Settings) -> AE:
    """The application entity: its title, its storage contexts, and who may call."""
    quiet_pynetdicom()
    ae = AE(ae_title=settings.dicom_ae_title)
    # Accept PDUs as large as the sender likes (0 = no limit, PS3.8 D.3.3.2.1):
    # pynetdicom's 16 KiB default cost a third of each image's receive time.
    ae.maximum_pdu_size = 0
    ae.require_called_aet = True  # an association meant for another AE is a misconfiguration
    if settings.dicom_allowed_aes:
        ae.require_calling_aet = settings.dicom_allowed_aes
    for sop_class in SOP_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    ae.add_supported_context(VERIFICATION)
    ae.add_supported_context(MODALITY_WORKLIST_FIND)
    return ae


def quiet_pynetdicom() -> None:
    """Keep patient data out of the logs: pynetdicom logs every C-FIND request's
    identifier (PatientName, PatientID...) at INFO, and a line per response; ScanPath
    logs its own line per request instead (README, "Logs")."""
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


@overload
def start_scp(settings: Settings, blocking: Literal[False] = False) -> ThreadedAssociationServer:
    ...


@overload
def start_scp(settings: Settings, blocking: Literal[True]) -> None:
    ...


def start_scp(settings: Settings, blocking: bool = False) -> ThreadedAssociationServer | None:
    """Listen on ``settings.host``:``settings.dicom_port``.

    Non-blocking (the default) returns the server running in its own
    threads, for :func:`stop_scp`; blocking serves until interrupted.
    """
    handlers: list[EventHandlerType] = [(evt.EVT_CONN_OPEN, on_connection_open),
                                        (evt.EVT_C_STORE, on_c_store, [settings]),
                                        (evt.EVT_C_ECHO, on_c_echo),
                                        (evt.EVT_C_FIND, on_c_find, [settings]),
                                        (evt.EVT_REJECTED, on_rejected, [settings]),
                                        (evt.EVT_RELEASED, on_association_end, [settings]),
                                        (evt.EVT_ABORTED, on_association_end, [settings])]
    address = (settings.host, settings.dicom_port)
    log.info("DICOM listener starting", extra={"ae_title": settings.dicom_ae_title,
                                               "host": settings.host,
                                               "port": settings.dicom_port})
    return build_ae(settings).start_server(address, block=blocking, evt_handlers=handlers)


def stop_scp(server: ThreadedAssociationServer) -> None:
    """Stop listening and close the server's associations."""
    server.shutdown()


def on_connection_open(event: Event) -> None:
    """Send each PDU at once (TCP_NODELAY): pynetdicom writes a response's command and its
    data set separately, and Nagle's algorithm held the second write until the peer's
    delayed ACK, about 40 ms per C-FIND match (docs/benchmarks.md, worklist)."""
    raw = event.assoc.dul.socket.socket if event.assoc.dul.socket else None
    if raw is not None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def on_c_store(event: Event, settings: Settings) -> int | Dataset:
    """Store one instance; its C-STORE status (PS3.4 B.2.3)."""
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    try:
        stored = receive(settings, event.encoded_dataset(), "c-store", calling_ae)
    except StorageError as error:
        log.warning("C-STORE refused", extra={"calling_ae": calling_ae,
                                              "status": f"{error.status:04X}",
                                              "sop_instance_uid": error.sop_instance_uid,
                                              "reason": str(error)})
        _note(event, "refused", f"{error.status:04X}")
        return failure(error.status, str(error))
    except Exception:  # the sender must hear "not stored" whatever broke
        log.exception("C-STORE failed", extra={"calling_ae": calling_ae})
        _note(event, "refused", f"{ProcessingFailure.status:04X}")
        return failure(ProcessingFailure.status, "Processing failure; see the ScanPath log")
    log.info("C-STORE stored", extra={"calling_ae": calling_ae, "outcome": stored.outcome,
                                      "sop_instance_uid": stored.sop_instance_uid,
                                      "study_uid": stored.study_uid, "matched": stored.matched})
    _note(event, "stored", stored.study_uid)
    return SUCCESS


def on_c_echo(event: Event) -> int:
    """Verification (PS3.4 A.4): Success, noted for the association's audit."""
    _note(event, "echo", "C-ECHO")
    return SUCCESS


def on_c_find(event: Event, settings: Settings) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """Modality Worklist C-FIND (PS3.4 K.4.1): a Pending response per scheduled order that
    matches, then Success; Cancel (0xFE00) is honoured between matches; an identifier the
    worklist cannot use ends in its failure status with an Error Comment, never a raise."""
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    matched = 0
    try:
        with Session(engine_for(settings.database_url)) as session:
            for found in worklist.find(session, _identifier(event)):
                if event.is_cancelled:
                    _note(event, "find", "cancelled")
                    yield CANCELLED, None
                    return
                matched += 1
                yield PENDING, found
    except worklist.WorklistQueryError as error:
        log.warning("worklist C-FIND refused", extra={"calling_ae": calling_ae,
                                                      "status": f"{error.status:04X}",
                                                      "reason": str(error)})
        _note(event, "find", f"failed {error.status:04X}")
        yield failure(error.status, str(error)), None
        return
    except Exception:  # the modality must hear a failure whatever broke
        log.exception("worklist C-FIND failed", extra={"calling_ae": calling_ae})
        _note(event, "find", f"failed {ProcessingFailure.status:04X}")
        yield failure(ProcessingFailure.status, "Processing failure; see the ScanPath log"), None
        return
    log.info("worklist C-FIND answered", extra={"calling_ae": calling_ae, "matches": matched})
    _note(event, "find", "answered")
    yield SUCCESS, None


def _identifier(event: Event) -> Dataset:
    """The request's identifier, decoded; an undecodable one is 0xC000 (Unable to process)."""
    try:
        identifier = event.identifier
        for _element in identifier:  # decoding is lazy: touch every element now
            pass
    except Exception as error:
        raise worklist.WorklistQueryError(f"The identifier cannot be decoded "
                                          f"({type(error).__name__})", 0xC000) from error
    return identifier


# What each open association did, by kind ("stored": Study UIDs, "refused": DICOM
# statuses, "echo"), with counts; audited once when it ends.
_ACTIVITY: dict[int, dict[str, dict[str, int]]] = {}
_LOCK = threading.Lock()


def _note(event: Event, kind: str, value: str) -> None:
    with _LOCK:
        counts = _ACTIVITY.setdefault(id(event.assoc), {}).setdefault(kind, {})
        counts[value] = counts.get(value, 0) + 1


def on_association_end(event: Event, settings: Settings) -> None:
    """An AuditEvent for each kind of thing the association did (see the module docstring)."""
    with _LOCK:
        activity = _ACTIVITY.pop(id(event.assoc), {})
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    events: list[_Audited] = []
    if "stored" in activity:
        events.append((_interaction(event, "transfer", audit.DICOM_TRANSFER_EVENT,
                                    " ".join(sorted(activity["stored"]))),
                       audit.OUTCOME_SUCCESS, None))
    if "refused" in activity:
        refused = activity["refused"]
        events.append((_interaction(event, "transfer", audit.DICOM_TRANSFER_EVENT),
                       audit.OUTCOME_MINOR, f"{sum(refused.values())} C-STORE(s) refused, "
                       + ", ".join(f"status {k} x{n}" for k, n in sorted(refused.items()))))
    if "echo" in activity:
        events.append((_interaction(event, "read", APPLICATION_ACTIVITY_EVENT),
                       audit.OUTCOME_SUCCESS,
                       f"{activity['echo']['C-ECHO']} C-ECHO (Verification) from {calling_ae}"))
    if "find" in activity:
        found = activity["find"]
        failed = sum(n for k, n in found.items() if k.startswith("failed"))
        events.append((_interaction(event, "search", QUERY_EVENT, "Modality Worklist C-FIND",
                                    "ServiceRequest"),
                       audit.OUTCOME_MINOR if failed else audit.OUTCOME_SUCCESS,
                       f"{sum(found.values())} worklist C-FIND(s) from {calling_ae}: "
                       + ", ".join(f"{k} x{n}" for k, n in sorted(found.items()))))
    _record(settings, events, calling_ae)


def on_rejected(event: Event, settings: Settings) -> None:
    """A refused association (wrong called AE, calling AE not allowed): DCM 110114, failed."""
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    log.warning("DICOM association rejected", extra={"calling_ae": calling_ae,
                                                     "address": event.assoc.requestor.address})
    what = audit.Interaction("operation", None, "anonymous", event.assoc.requestor.address,
                             event_type=dict(USER_AUTHENTICATION_EVENT))
    _record(settings, [(what, audit.OUTCOME_MINOR, f"DICOM association from AE "
                                                    f"'{calling_ae[:16]}' rejected")], calling_ae)


def _interaction(event: Event, action: str, event_type: dict[str, str],
                 query: str | None = None, resource_type: str = "ImagingStudy"
                 ) -> audit.Interaction:
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    return audit.Interaction(action, resource_type, f"AE:{calling_ae}",
                             event.assoc.requestor.address, query=query,
                             event_type=dict(event_type))


_Audited = tuple[audit.Interaction, str, str | None]  # what, outcome, description


def _record(settings: Settings, events: list[_Audited], calling_ae: str) -> None:
    if not events:
        return
    try:
        with Session(engine_for(settings.database_url)) as session:
            store = Store(session, settings)
            for what, outcome, description in events:
                audit.record(store, what, outcome, description)
            session.commit()
    except Exception:  # the images are stored; a failed audit write must be seen, not raised
        log.exception("DICOM association not audited", extra={"calling_ae": calling_ae})


def failure(status: int, comment: str) -> Dataset:
    """A C-STORE or C-FIND response status with its Error Comment."""
    response = Dataset()
    response.Status = status
    response.ErrorComment = comment[:_COMMENT_LENGTH]
    return response
