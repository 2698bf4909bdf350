"""The order's journey reflected in FHIR: one Task per order, moved only through the table.

Every ServiceRequest accepted at intake with ``status`` ``active`` gets one
Task in the same transaction (shared/CONTRACT.md §6): ``focus`` and
``basedOn`` the order, ``for`` its subject, ``owner`` the radiology
Organization, the accession number as ``identifier``, ``code`` ``fulfill``
(http://hl7.org/fhir/CodeSystem/task-code), and ``businessStatus`` from
``{base}/CodeSystem/order-state``. A ``draft`` ServiceRequest is not an order
yet: its Task comes when it becomes ``active``.

Moves go through :func:`move` (the imaging core, the staff app) or through
writes the store's hooks check (a RIS updating the Task by PUT or PATCH, in
a Bundle too; a GP revoking the ServiceRequest). Each is checked against
``referral.states.MOVES``; ``Task.status`` and ``ServiceRequest.status``
follow the state, and each move is audited (AuditEvent naming the Task and
the order). The workflow's own writes are marked on the session so the
hooks let them through.

A study or result held for a person gets a Task of its own
(:func:`hold_for_person`, ``businessStatus`` ``reconcile``, ``focus`` the
held resource, ``partOf`` the order's Task): the order's Task keeps showing
where the order is, an order can have several holds at once, and a study
whose accession names no order can be held with no order at all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from core.errors import NotFound, Unprocessable
from fhir import audit
from fhir.dates import instant, now_utc
from fhir.search import run_search
from fhir.store import Store, register_write_hook, spec_for
from fhir.terminology import put_if_changed
from referral import worklist
from referral.states import (
    CLOSED,
    MOVES,
    STATES,
    Actor,
    IllegalMove,
    check_move,
    coding,
    order_state_code_system,
)

log = logging.getLogger(__name__)

RADIOLOGY_ORGANIZATION = "radiology"
AGENTS = {Actor.IMAGING: "scanpath-imaging-core", Actor.REQUESTER: "scanpath",
          Actor.RADIOLOGY: "scanpath"}  # when the store names no client
FULFIL = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill",
                      "display": "Fulfill the focal request"}]}
# Elements of the order's Task that say which order it is: never changed by a client.
KEPT = ("focus", "for", "owner", "basedOn", "partOf", "identifier", "intent")
_WORKFLOW_WRITES = "referral.workflow_writes"  # Session.info key: "Type/id" being written
# A person's decision on a hold Task: Task.status and what it means (README, RIS section).
RESOLUTIONS = {"completed": "linked", "rejected": "rejected"}
LINKED_ORDER = "linked-order"  # Task.output type text naming the order a person linked
# (store, hold Task, the order a person linked or None when rejected): the imaging core
# registers what a decision does to the held images (referral never imports it).
HoldResolver = Callable[[Store, dict[str, Any], "dict[str, Any] | None"], None]
_RESOLVERS: list[HoldResolver] = []


def register_hold_resolver(resolver: HoldResolver) -> None:
    """Call ``resolver`` when a person links or rejects a held thing (in the same write)."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)


def register() -> None:
    """Open the Task at intake and check every client write of an order or its Task."""
    register_write_hook("ServiceRequest", _on_order_write)
    register_write_hook("Task", _on_task_write)


def seed(store: Store) -> None:
    """Publish ``CodeSystem/order-state`` and the radiology Organization; the caller commits."""
    put_if_changed(store, order_state_code_system(store.settings.canonical_base))
    put_if_changed(store, radiology_organization())


def radiology_organization() -> dict[str, Any]:
    """The Organization that owns every order's Task (R4 organization-type ``prov``)."""
    return {"resourceType": "Organization", "id": RADIOLOGY_ORGANIZATION, "active": True,
            "type": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                "code": "prov", "display": "Healthcare Provider"}]}],
            "name": "Radiology department"}


def order_task(store: Store, order_id: str) -> dict[str, Any] | None:
    """The order's Task (``focus`` the ServiceRequest, an ``order-state`` businessStatus
    other than ``reconcile``, which marks a hold Task)."""
    found = run_search(store.session, spec_for("Task"),
                       [("focus", f"ServiceRequest/{order_id}")], count=10).matches
    return next((task for task in found
                 if state_of(store, task) not in (None, "reconcile")), None)


def state_of(store: Store, task: dict[str, Any]) -> str | None:
    """The ``order-state`` code of a Task's businessStatus; None if it carries none."""
    system = f"{store.settings.canonical_base}/CodeSystem/order-state"
    codes = [c.get("code") for c in (task.get("businessStatus") or {}).get("coding", [])
             if isinstance(c, dict) and c.get("system") == system]
    return str(codes[0]) if codes else None


def open_order(store: Store, order: dict[str, Any]) -> dict[str, Any]:
    """Create the order's Task in ``received``; the Task. The caller commits."""
    if not store.exists("Organization", RADIOLOGY_ORGANIZATION):
        put_if_changed(store, radiology_organization())
    system = store.settings.accession_system
    now = instant(now_utc())
    task: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [i for i in order.get("identifier", []) if i.get("system") == system],
        "status": STATES["received"].task_status, "intent": "order", "code": FULFIL,
        "focus": {"reference": f"ServiceRequest/{order['id']}"},
        "basedOn": [{"reference": f"ServiceRequest/{order['id']}"}],
        "for": order["subject"], "authoredOn": now, "lastModified": now,
        "owner": {"reference": f"Organization/{RADIOLOGY_ORGANIZATION}"},
        **{key: order[key] for key in ("requester", "priority") if key in order}}
    _business_status(store, task, "received")
    created = _create(store, task)
    _audit(store, created, order, "create", f"Order ServiceRequest/{order['id']} received; "
           f"its Task/{created['id']} opened", Actor.REQUESTER)
    return created


def move(store: Store, order: dict[str, Any], wanted: str, actor: Actor,
         note: str | None = None, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Move ``order`` to ``wanted`` for ``actor``; its Task, written. The caller commits.

    Staying in the same state is no move and writes nothing. An order written
    before Tasks existed gets its Task first. ``changes`` are Task elements the
    move sets, as a RIS's PATCH would (``statusReason``, ``restriction``,
    ``input``); the ones that name the order (``KEPT``) are refused.

    Raises
    ------
    IllegalMove
        409, when the table does not allow the move for ``actor``.
    """
    task = order_task(store, order["id"]) or open_order(store, order)
    current = state_of(store, task) or "received"
    if current == wanted:
        return task
    check_move(current, wanted, actor)
    if changes and set(changes) & set(KEPT):
        raise Unprocessable("A move cannot change the elements that name the order",
                            [f"Task.{key}" for key in set(changes) & set(KEPT)])
    task = {**task, **(changes or {})}
    worklist.station_ae(store, task)
    task = _entered(store, task, wanted, note, order)
    with _workflow_write(store, f"Task/{task['id']}"):
        task = store.update("Task", task["id"], task).resource
    _reflect(store, order, wanted)
    _audit_move(store, task, order, current, wanted, actor)
    return task


def images_arrived(store: Store, order: dict[str, Any], study: str) -> bool:
    """Images of ``study`` (``ImagingStudy/{id}``) reached ``order``: whether it takes them.

    Before the examination (also before scheduling: a walk-in, noted on the
    Task) the order moves to ``in-progress``; later, nothing changes. A
    closed order (rejected, cancelled, completed) takes no images: False, and
    the caller holds them for a person. Images are never refused here.
    """
    task = order_task(store, order["id"]) or open_order(store, order)
    current = state_of(store, task) or "received"
    if current in CLOSED:
        log.warning("images for a closed order", extra={
            "service_request_id": order["id"], "state": current, "study": study})
        return False
    if Actor.IMAGING in MOVES.get((current, "in-progress"), ()):
        walk_in = None if current == "scheduled" else \
            f"Walk-in: images ({study}) arrived while the order was {current}"
        move(store, order, "in-progress", Actor.IMAGING, walk_in)
    return True


def analysed(store: Store, order: dict[str, Any], study: str | None) -> bool:
    """The imaging core published ``order``'s result: whether the order moved to ``analysed``
    (it stays where it is once reported, and a closed order does not move)."""
    if not images_arrived(store, order, study or "the analysed study"):
        return False
    task = order_task(store, order["id"])
    if task is not None and state_of(store, task) == "in-progress":
        move(store, order, "analysed", Actor.IMAGING)
        return True
    return False


def hold_for_person(store: Store, order: dict[str, Any], focus: str, reason: str,
                    description: str, output: list[dict[str, Any]] | None = None,
                    agent: str = AGENTS[Actor.IMAGING]) -> str:
    """The reconcile Task holding ``focus`` (``ImagingStudy/{id}``, ``DiagnosticReport/{id}``)
    for a person; its id. Reused while an open one holds the same thing.

    ``reason`` is a short code kept in ``statusReason`` (``second-study``,
    ``result-after-sign-off``, ``order-closed``); the hold is audited as a
    create by ``agent``.
    """
    task = _hold_task(store, order, focus, reason, description, output)
    existing = _open_hold(store, task)
    if existing is not None:
        return existing
    created = _create(store, task)
    what = audit.Interaction("create", "Task", agent, None,
                             entities=[f"Task/{created['id']}", focus])
    audit.record(store, what, audit.OUTCOME_SUCCESS, f"Held for a person ({reason}): "
                 f"{description}")
    return str(created["id"])


def hold_unlinked(store: Store, order: dict[str, Any] | None, study_uid: str,
                  accession: str | None, reason: str, description: str,
                  agent: str = AGENTS[Actor.IMAGING]) -> str:
    """The reconcile Task of a study linked to no order (its accession names none, or its
    header names another patient); its id. The caller commits.

    No ImagingStudy exists for such a study (R4 requires its subject, which is
    not known), so the Task names the study in ``identifier`` (``urn:dicom:uid``)
    and ``input`` (``study-instance-uid``, ``accession-number``); ``for`` is not
    set. With ``order`` (the accession's order), the Task is also ``basedOn`` it
    and ``partOf`` its Task, so the order shows the held images.
    """
    task: dict[str, Any] = {
        "resourceType": "Task", "status": STATES["reconcile"].task_status, "intent": "order",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}],
        "statusReason": {"text": reason}, "description": description,
        "authoredOn": instant(now_utc()),
        "input": [{"type": {"text": "study-instance-uid"}, "valueString": study_uid}] + (
            [{"type": {"text": "accession-number"}, "valueString": accession}]
            if accession else [])}
    if order is not None:
        parent = order_task(store, order["id"]) or open_order(store, order)
        task["basedOn"] = [{"reference": f"ServiceRequest/{order['id']}"}]
        task["partOf"] = [{"reference": f"Task/{parent['id']}"}]
    _business_status(store, task, "reconcile", "held for a person")
    created = _create(store, task)
    what = audit.Interaction("create", "Task", agent, None,
                             entities=[f"Task/{created['id']}"] + (
                                 [f"ServiceRequest/{order['id']}"] if order else []))
    audit.record(store, what, audit.OUTCOME_SUCCESS, f"Held for a person ({reason}): "
                 f"{description}")
    return str(created["id"])


def settle_holds(store: Store, identifier: str, note: str) -> list[str]:
    """Close (``completed``, with ``note``) the open hold Tasks with ``identifier``
    (``system|value``), when what they held was resolved without a person (an order
    arrived for images that named none); their ids. Audited."""
    found = run_search(store.session, spec_for("Task"), [("identifier", identifier)],
                       count=50).matches
    settled = []
    for task in found:
        if state_of(store, task) != "reconcile" or task.get("status") != "requested":
            continue
        now = instant(now_utc())
        done = {**task, "status": "completed", "lastModified": now,
                "note": [*task.get("note", []), {"time": now, "text": note}]}
        with _workflow_write(store, f"Task/{task['id']}"):
            store.update("Task", task["id"], done)
        what = audit.Interaction("update", "Task", AGENTS[Actor.IMAGING], None,
                                 entities=[f"Task/{task['id']}"])
        audit.record(store, what, audit.OUTCOME_SUCCESS, f"Hold Task/{task['id']}: {note}")
        settled.append(str(task["id"]))
    return settled


def _hold_task(store: Store, order: dict[str, Any], focus: str, reason: str,
               description: str, output: list[dict[str, Any]] | None) -> dict[str, Any]:
    parent = order_task(store, order["id"]) or open_order(store, order)
    task: dict[str, Any] = {
        "resourceType": "Task", "status": STATES["reconcile"].task_status, "intent": "order",
        "statusReason": {"text": reason}, "description": description,
        "focus": {"reference": focus}, "for": order["subject"],
        "basedOn": [{"reference": f"ServiceRequest/{order['id']}"}],
        "partOf": [{"reference": f"Task/{parent['id']}"}], "authoredOn": instant(now_utc())}
    _business_status(store, task, "reconcile", "held for a person")
    if output:
        task["output"] = output
    return task


def _open_hold(store: Store, task: dict[str, Any]) -> str | None:
    found = run_search(store.session, spec_for("Task"),
                       [("focus", task["focus"]["reference"])], count=50).matches
    same = ("statusReason", "description", "output")
    return next((str(held["id"]) for held in found if held.get("status") == "requested"
                 and all(held.get(key) == task.get(key) for key in same)), None)


# --- the hooks: client writes ------------------------------------------------------------

def _on_order_write(store: Store, order: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Intake opens the Task; a requester may revoke the order before in-progress, and
    nothing else changes its status (it follows the order's state)."""
    if _is_workflow_write(store, f"ServiceRequest/{order['id']}"):
        return
    task = order_task(store, order["id"]) if previous is not None else None
    if task is None:
        if order.get("status") == "active":
            open_order(store, order)
        return
    state = state_of(store, task) or "received"
    wanted, before = order.get("status"), previous.get("status") if previous else None
    if wanted == before:
        return
    if wanted != "revoked":
        raise IllegalMove(f"ServiceRequest.status follows the order's state ({state}, shown "
                          f"as {STATES[state].request_status}); its requester can only "
                          "revoke it, before the examination starts", ["ServiceRequest.status"])
    check_move(state, "cancelled", Actor.REQUESTER, "ServiceRequest.status")
    cancelled = _entered(store, {**task}, "cancelled", None, order)
    with _workflow_write(store, f"Task/{task['id']}"):
        store.update("Task", task["id"], cancelled)
    _audit_move(store, cancelled, order, state, "cancelled", Actor.REQUESTER)


def _on_task_write(store: Store, task: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """A client (the RIS) moves an order by updating its Task; the table decides."""
    if _is_workflow_write(store, f"Task/{task['id']}"):
        return
    after = state_of(store, task)
    before = state_of(store, previous) if previous is not None else None
    if previous is not None and before == "reconcile":
        _resolve_hold(store, task, previous)
        return
    if previous is None or before is None:
        if after is not None:
            raise IllegalMove("Order Tasks are opened by ScanPath at intake (find one with "
                              "GET /fhir/Task?focus=ServiceRequest/{id}), and held-study "
                              "Tasks by the imaging core; a client cannot make one",
                              ["Task.businessStatus"])
        return
    _check_kept(task, previous)
    worklist.station_ae(store, task)  # a malformed station AE title is a 422 in any state
    if after is None or after not in STATES:
        raise Unprocessable("The order's Task keeps a businessStatus coding from "
                            f"{store.settings.canonical_base}/CodeSystem/order-state "
                            f"({', '.join(STATES)})", ["Task.businessStatus"])
    _check_status(task, previous, after)
    if after == before:
        task["status"] = STATES[after].task_status
        if after == "scheduled":  # the RIS may change the station or the time while booked
            _entered(store, task, after, None, _focus_order(store, task))
        return
    check_move(before, after, Actor.RADIOLOGY)
    order = _focus_order(store, task)
    _entered(store, task, after, None, order)
    _reflect(store, order, after)
    _audit_move(store, task, order, before, after, Actor.RADIOLOGY)


def _resolve_hold(store: Store, task: dict[str, Any], previous: dict[str, Any]) -> None:
    """A person's decision on a hold Task (README, RIS section): ``status`` ``completed``
    with an ``output`` of type ``linked-order`` naming the ServiceRequest links the held
    thing to it; ``status`` ``rejected`` keeps it, flagged, unused. Audited."""
    _check_kept(task, previous)
    if task.get("businessStatus") != previous.get("businessStatus"):
        raise IllegalMove("A hold Task stays in reconcile; decide it by its status "
                          "(completed with a linked-order output, or rejected)",
                          ["Task.businessStatus"])
    wanted, before = task.get("status"), previous.get("status")
    if wanted == before:
        return
    if before != STATES["reconcile"].task_status or wanted not in RESOLUTIONS:
        raise IllegalMove(f"A hold Task that is {before} cannot become {wanted}; an open "
                          "hold (requested) becomes completed (linked) or rejected",
                          ["Task.status"])
    order = _linked_order(store, task) if wanted == "completed" else None
    for resolver in _RESOLVERS:
        resolver(store, task, order)
    task["lastModified"] = instant(now_utc())
    entities = [f"Task/{task['id']}"] + ([f"ServiceRequest/{order['id']}"] if order else [])
    what = audit.Interaction("update", "Task", store.actor or AGENTS[Actor.RADIOLOGY], None,
                             entities=entities)
    audit.record(store, what, audit.OUTCOME_SUCCESS, f"Hold Task/{task['id']} "
                 f"{RESOLUTIONS[wanted]} by a person" + (
                     f" to ServiceRequest/{order['id']}" if order else ""))
    log.info("hold decided", extra={"task_id": task["id"], "decision": RESOLUTIONS[wanted]})


def _linked_order(store: Store, task: dict[str, Any]) -> dict[str, Any]:
    """The ServiceRequest a ``linked-order`` output names; 422 when none or unknown."""
    refs = [str((o.get("valueReference") or {}).get("reference", ""))
            for o in task.get("output", []) if isinstance(o, dict)
            and (o.get("type") or {}).get("text") == LINKED_ORDER]
    if len(refs) != 1 or not refs[0].startswith("ServiceRequest/"):
        raise Unprocessable("Linking a hold names one order: an output with type.text "
                            f"'{LINKED_ORDER}' and valueReference ServiceRequest/{{id}}",
                            ["Task.output"])
    try:
        return store.read("ServiceRequest", refs[0].removeprefix("ServiceRequest/"))
    except NotFound as error:
        raise Unprocessable(f"{refs[0]} does not exist", ["Task.output"]) from error


def _check_kept(task: dict[str, Any], previous: dict[str, Any]) -> None:
    changed = [key for key in KEPT if task.get(key) != previous.get(key)]
    if changed:
        raise Unprocessable(f"Task.{changed[0]} names the order and stays as ScanPath set it",
                            [f"Task.{key}" for key in changed])


def _check_status(task: dict[str, Any], previous: dict[str, Any], state: str) -> None:
    """Task.status follows businessStatus: a client may send either the old status or
    the one of the new state, nothing else."""
    if task.get("status") not in (previous.get("status"), STATES[state].task_status):
        raise IllegalMove(f"Task.status follows businessStatus (the order state {state} shows "
                          f"{STATES[state].task_status}); move the order by its "
                          "businessStatus", ["Task.status"])


def _focus_order(store: Store, task: dict[str, Any]) -> dict[str, Any]:
    reference = str((task.get("focus") or {}).get("reference", ""))
    return store.read("ServiceRequest", reference.removeprefix("ServiceRequest/"))


# --- what a move writes ------------------------------------------------------------------

def _entered(store: Store, task: dict[str, Any], state: str, note: str | None,
             order: dict[str, Any] | None = None) -> dict[str, Any]:
    """``task`` (changed in place) in ``state``: statuses, what the state needs, and the
    order's Modality Worklist entry (``referral.worklist``)."""
    order = order or _focus_order(store, task)
    if state == "scheduled":
        _appointment(task, order)
    if state == "rejected" and not _has_reason(task):
        raise Unprocessable("A rejected order says why: give Task.statusReason (text or a "
                            "coding)", ["Task.statusReason"])
    task["status"] = STATES[state].task_status
    _business_status(store, task, state)
    task["lastModified"] = instant(now_utc())
    worklist.follow(store, task, order, state)
    if note:
        task["note"] = [*task.get("note", []), {"time": task["lastModified"], "text": note}]
    return task


def _appointment(task: dict[str, Any], order: dict[str, Any]) -> None:
    """The appointment: ``Task.restriction.period.start``, else the order's
    ``occurrenceDateTime`` (CONTRACT §6), kept on the Task for the worklist."""
    period = (task.get("restriction") or {}).get("period") or {}
    start = period.get("start") or order.get("occurrenceDateTime")
    if not start:
        raise Unprocessable("Scheduling needs the appointment time: give "
                            "Task.restriction.period.start, or the order's "
                            "occurrenceDateTime", ["Task.restriction.period.start"])
    restriction = task.get("restriction") or {}
    task["restriction"] = {**restriction, "period": {**period, "start": start}}


def _has_reason(task: dict[str, Any]) -> bool:
    reason = task.get("statusReason") or {}
    return bool(reason.get("text") or reason.get("coding"))


def _business_status(store: Store, task: dict[str, Any], state: str,
                     text: str | None = None) -> None:
    base = store.settings.canonical_base
    task["businessStatus"] = {"coding": [coding(base, state)],
                              "text": text or STATES[state].display}


def _reflect(store: Store, order: dict[str, Any], state: str) -> None:
    """The order's ServiceRequest.status as the state shows it."""
    wanted = STATES[state].request_status
    if order.get("status") == wanted:
        return
    current = store.read("ServiceRequest", order["id"])
    with _workflow_write(store, f"ServiceRequest/{order['id']}"):
        store.update("ServiceRequest", order["id"], {**current, "status": wanted})


def _create(store: Store, task: dict[str, Any]) -> dict[str, Any]:
    """Write a Task the workflow built (trusted: its references are known to resolve)."""
    task_id = str(uuid.uuid4())
    with _workflow_write(store, f"Task/{task_id}"):
        return store.create("Task", task, resource_id=task_id, trusted=True).resource


def _audit_move(store: Store, task: dict[str, Any], order: dict[str, Any], before: str,
                after: str, actor: Actor) -> None:
    log.info("order moved", extra={"service_request_id": order["id"], "task_id": task["id"],
                                   "from_state": before, "to_state": after, "actor": str(actor)})
    _audit(store, task, order, "update", f"Order ServiceRequest/{order['id']} moved from "
           f"{before} to {after} by {actor}", actor)


def _audit(store: Store, task: dict[str, Any], order: dict[str, Any], action: str,
           description: str, actor: Actor) -> None:
    who = store.actor or AGENTS[actor]
    what = audit.Interaction(action, "Task", who, None,
                             entities=[f"Task/{task['id']}", f"ServiceRequest/{order['id']}"])
    audit.record(store, what, audit.OUTCOME_SUCCESS, description)


@contextmanager
def _workflow_write(store: Store, reference: str) -> Iterator[None]:
    """Mark ``reference`` as written by the workflow itself while it is written."""
    writes: set[str] = store.session.info.setdefault(_WORKFLOW_WRITES, set())
    writes.add(reference)
    try:
        yield
    finally:
        writes.discard(reference)


def _is_workflow_write(store: Store, reference: str) -> bool:
    return reference in store.session.info.get(_WORKFLOW_WRITES, set())


# The imaging core marks its own writes of a signed report (re-issued outputs) the same way.
workflow_write = _workflow_write
is_workflow_write = _is_workflow_write
