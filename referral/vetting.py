"""Vetting and scheduling by radiology staff, through ``referral.orders.move``.

The same move the RIS makes by updating the Task, so the state table decides,
``Task.status`` and ``ServiceRequest.status`` follow, the move is audited, the
subscriptions of the GP's system fire (the store writes the outbox), and a
scheduled order reaches the DICOM Modality Worklist (``referral.worklist``).

Justification of an exposure is by an IR(ME)R practitioner (IR(ME)R 2017
regulation 11): the staff app lets only a radiologist vet. A decision made on
an order still in ``received`` first moves it to ``vetting`` (the table has no
direct move), so its history shows both steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import Unprocessable
from fhir.store import Store
from referral.orders import move, order_task, state_of
from referral.states import Actor
from referral.worklist import STATION_AE_CODE

log = logging.getLogger(__name__)

DECISIONS = {"accept": "accepted", "reject": "rejected", "more-info": "more-info-requested"}
MAX_REASON = 1000
# Times typed into the staff app are the department's wall clock; FHIR dateTime with a
# time needs an offset (R4 datatypes, dateTime), and the worklist keeps the wall clock.
DEPARTMENT_ZONE = "Europe/London"


def vet(store: Store, order_id: str, decision: str, reason: str, who: str) -> dict[str, Any]:
    """Record a radiologist's vetting ``decision`` (``accept``, ``reject``, ``more-info``)
    on the order; its Task. ``reason`` becomes ``Task.statusReason`` (needed to reject
    or to ask for more information). The caller commits.

    Raises
    ------
    Unprocessable
        422, for an unknown decision or a missing or overlong reason.
    IllegalMove
        409, when the order's state allows no such decision.
    """
    reason = reason.strip()
    if decision not in DECISIONS:
        raise Unprocessable(f"Unknown vetting decision '{decision}'", ["decision"])
    if decision != "accept" and not reason:
        raise Unprocessable("Say why: rejecting an order or asking the GP for more "
                            "information needs a reason", ["reason"])
    if len(reason) > MAX_REASON:
        raise Unprocessable(f"The reason is at most {MAX_REASON} characters", ["reason"])
    order = store.read("ServiceRequest", order_id)
    task = order_task(store, order_id)
    if task is not None and state_of(store, task) == "received":
        move(store, order, "vetting", Actor.RADIOLOGY, f"Vetting opened by {who}")
    changes = {"statusReason": {"text": reason}} if reason else None
    note = f"Vetted by {who}: {decision}" + (f" ({reason})" if reason else "")
    return move(store, order, DECISIONS[decision], Actor.RADIOLOGY, note, changes)


@dataclass(frozen=True)
class Booking:
    """An appointment: when, which modality and station, and the protocol."""

    day: date
    at: time
    modality: str
    station_ae: str
    protocol: str = ""


def parse_booking(form: dict[str, str], modalities: list[str]) -> Booking:
    """A booking from the schedule form; 422 for a value that is missing or malformed."""
    try:
        day = date.fromisoformat(form.get("date", ""))
        at = time.fromisoformat(form.get("time", ""))
    except ValueError as error:
        raise Unprocessable("Give the appointment's date (YYYY-MM-DD) and time (HH:MM)",
                            ["date", "time"]) from error
    modality = form.get("modality", "")
    if modality not in modalities:
        raise Unprocessable(f"Choose a modality from the list ({', '.join(modalities)})",
                            ["modality"])
    station = form.get("station_ae", "").strip()
    if not station:
        raise Unprocessable("Give the station's AE title", ["station_ae"])
    return Booking(day, at, modality, station, form.get("protocol", "").strip()[:MAX_REASON])


def schedule(store: Store, order_id: str, booking: Booking, who: str) -> dict[str, Any]:
    """Book an accepted order; its Task. The appointment is ``Task.restriction.period.start``
    and the station a ``Task.input`` ``station-ae`` (what the DICOM worklist reads); the
    protocol a Task note. The caller commits.

    Raises
    ------
    Unprocessable
        422, for an AE title the DICOM worklist cannot carry.
    IllegalMove
        409, when the order is not accepted.
    """
    order = store.read("ServiceRequest", order_id)
    task = order_task(store, order_id) or {}
    start = datetime.combine(booking.day, booking.at, tzinfo=ZoneInfo(DEPARTMENT_ZONE)) \
        .isoformat(timespec="seconds")
    system = f"{store.settings.canonical_base}/CodeSystem/worklist"
    inputs = [i for i in task.get("input", []) if not _is_station(i, system)]
    changes = {"restriction": {**(task.get("restriction") or {}), "period": {"start": start}},
               "input": [*inputs, {"type": {"coding": [{"system": system,
                                                        "code": STATION_AE_CODE}]},
                                   "valueString": booking.station_ae}]}
    note = f"Scheduled by {who} on {booking.modality} at {booking.station_ae} for {start}" + (
        f"; protocol: {booking.protocol}" if booking.protocol else "")
    log.info("order scheduled", extra={"service_request_id": order_id, "start": start})
    return move(store, order, "scheduled", Actor.RADIOLOGY, note, changes)


def _is_station(entry: dict[str, Any], system: str) -> bool:
    codings = ((entry or {}).get("type") or {}).get("coding") or []
    return any(c.get("system") == system and c.get("code") == STATION_AE_CODE
               for c in codings if isinstance(c, dict))
