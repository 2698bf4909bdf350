"""The order's states and the one table of moves between them (shared/CONTRACT.md §6).

Pure data and one check; the FHIR side (the order's Task, the ServiceRequest's
status) lives in ``referral.orders``. Each move names who may make it:

- ``requester``: the GP's system, through ``ServiceRequest.status = revoked``;
- ``radiology``: the RIS or the staff app, by updating the order's Task;
- ``imaging``: the imaging core (images arrived, analysis done).

State codes are those of ``{SCANPATH_CANONICAL_BASE}/CodeSystem/order-state``
(CONTRACT §6). Each state says what ``Task.status`` and ``ServiceRequest.status``
show, from the FHIR R4 value sets task-status
(https://hl7.org/fhir/R4/valueset-task-status.html, the Task state machine in
https://hl7.org/fhir/R4/task.html#statemachine) and request-status
(https://hl7.org/fhir/R4/valueset-request-status.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.errors import Conflict
from fhir.terminology import code_system


class Actor(StrEnum):
    """Who asks for a move."""

    REQUESTER = "requester"
    RADIOLOGY = "radiology"
    IMAGING = "imaging"


@dataclass(frozen=True)
class State:
    """One order state: its display, definition and what the FHIR statuses show."""

    display: str
    definition: str
    task_status: str  # R4 task-status
    request_status: str  # R4 request-status, of the ServiceRequest


STATES: dict[str, State] = {
    "received": State("Received", "Accepted at intake; no one has looked at it yet.",
                      "requested", "active"),
    "vetting": State("Vetting", "A radiologist or radiographer is checking that the "
                     "examination is justified (for ionising radiation, IR(ME)R 2017 "
                     "regulation 11).", "received", "active"),
    "accepted": State("Accepted", "Justified and accepted; not yet booked.",
                      "accepted", "active"),
    "rejected": State("Rejected", "Not accepted; Task.statusReason says why.",
                      "rejected", "revoked"),
    "more-info-requested": State("More information requested", "Vetting waits for the "
                                 "requester to add information.", "on-hold", "on-hold"),
    "scheduled": State("Scheduled", "Booked; Task.restriction.period.start is the "
                       "appointment.", "accepted", "active"),
    "in-progress": State("In progress", "The examination has started, or its images "
                         "have arrived.", "in-progress", "active"),
    "analysed": State("Analysed", "The imaging core's preliminary result is published.",
                      "in-progress", "active"),
    "reported": State("Reported", "A radiologist has reported the examination.",
                      "in-progress", "active"),
    "completed": State("Completed", "The order is fulfilled.", "completed", "completed"),
    "cancelled": State("Cancelled", "Withdrawn before the examination started.",
                       "cancelled", "revoked"),
    "reconcile": State("Reconcile", "Images or a result held for a person to link or "
                       "reject (a hold Task, not the order's own).", "requested", "active"),
}

_P, _R, _I = Actor.REQUESTER, Actor.RADIOLOGY, Actor.IMAGING
_BEFORE_EXAMINATION = ("received", "vetting", "more-info-requested", "accepted", "scheduled")
# (from, to) -> who may make the move. Images that arrive before the order was
# scheduled (walk-in) still move it to in-progress: they are never refused.
MOVES: dict[tuple[str, str], frozenset[Actor]] = {
    ("received", "vetting"): frozenset({_R}),
    ("vetting", "accepted"): frozenset({_R}),
    ("vetting", "rejected"): frozenset({_R}),
    ("vetting", "more-info-requested"): frozenset({_R}),
    ("more-info-requested", "vetting"): frozenset({_R}),
    ("more-info-requested", "rejected"): frozenset({_R}),
    ("accepted", "scheduled"): frozenset({_R}),
    ("scheduled", "in-progress"): frozenset({_R, _I}),
    ("in-progress", "analysed"): frozenset({_I}),
    ("in-progress", "reported"): frozenset({_R}),  # procedures with no analyser
    ("analysed", "reported"): frozenset({_R}),
    ("reported", "completed"): frozenset({_R}),
    **{(state, "in-progress"): frozenset({_I}) for state in _BEFORE_EXAMINATION[:-1]},
    **{(state, "cancelled"): frozenset({_P, _R}) for state in _BEFORE_EXAMINATION},
}
# States no image, result or request changes any more.
CLOSED = frozenset({"rejected", "cancelled", "completed"})


class IllegalMove(Conflict):
    """A move the table does not allow (409 Conflict, CONTRACT §6)."""


def check_move(current: str, wanted: str, actor: Actor,
               expression: str = "Task.businessStatus") -> None:
    """Return if ``actor`` may move an order from ``current`` to ``wanted``.

    ``expression`` is the element the refusal names (the Task's businessStatus,
    or ``ServiceRequest.status`` for a requester's revocation).

    Raises
    ------
    IllegalMove
        When the table has no such move, or reserves it for someone else; the
        message lists the moves that are open from ``current``.
    """
    allowed = MOVES.get((current, wanted), frozenset())
    if actor in allowed:
        return
    if allowed:
        raise IllegalMove(f"Only {' or '.join(sorted(allowed))} may move an order from "
                          f"{current} to {wanted}", [expression])
    open_moves = ", ".join(next_states(current, actor)) or "nothing"
    raise IllegalMove(f"An order cannot move from {current} to {wanted}; from {current} "
                      f"{actor} can move it to {open_moves}", [expression])


def next_states(current: str, actor: Actor) -> list[str]:
    """The states ``actor`` may move an order to from ``current``, in table order."""
    return [to for (start, to), who in MOVES.items() if start == current and actor in who]


def order_state_code_system(base: str) -> dict[str, Any]:
    """``{base}/CodeSystem/order-state``, complete, with each state's definition."""
    concepts = [{"code": code, "display": state.display, "definition": state.definition}
                for code, state in STATES.items()]
    return code_system(base, "order-state", "ScanPath order states", concepts)


def coding(base: str, state: str) -> dict[str, str]:
    """The ``order-state`` coding of ``state``."""
    return {"system": f"{base}/CodeSystem/order-state", "code": state,
            "display": STATES[state].display}
