"""Holding a study or a result for a person: a reconcile Task, audited.

Some things the imaging core must not decide alone: a second study for an
order that already has one, or a new analysis of a study whose report a
radiologist has already signed off. The images or the result are kept, and
a FHIR Task tells staff and the RIS (shared/CONTRACT.md §6): ``status``
``requested``, ``businessStatus`` ``reconcile`` from
``{SCANPATH_CANONICAL_BASE}/CodeSystem/order-state``, ``focus`` the held
resource, ``basedOn`` the order, the reason in ``statusReason`` and
``description``. Each hold is audited (AuditEvent, action C, the Task and
the held resource as entities). The caller commits.
"""

from __future__ import annotations

from typing import Any

from fhir import audit
from fhir.dates import instant, now_utc
from fhir.search import run_search
from fhir.store import Store, spec_for

AGENT = "scanpath-imaging-core"  # who holds: the imaging core itself, not a client


def hold_for_person(store: Store, order: dict[str, Any], focus: str, reason: str,
                    description: str, output: list[dict[str, Any]] | None = None) -> str:
    """The reconcile Task holding ``focus``; its id. Created once: an open Task
    that holds the same thing (focus, reason, description, output) is reused.

    ``focus`` is a reference such as ``ImagingStudy/{id}``; ``reason`` a short
    code (``second-study``, ``result-after-sign-off``) kept in ``statusReason``.
    """
    task = _task(store, order, focus, reason, description, output)
    existing = _open_hold(store, task)
    if existing is not None:
        return existing
    task = store.create("Task", task).resource
    what = audit.Interaction("create", "Task", AGENT, None,
                             entities=[f"Task/{task['id']}", focus])
    audit.record(store, what, audit.OUTCOME_SUCCESS, f"Held for a person ({reason}): "
                 f"{description}")
    return str(task["id"])


def _open_hold(store: Store, task: dict[str, Any]) -> str | None:
    found = run_search(store.session, spec_for("Task"),
                       [("focus", task["focus"]["reference"])], count=50).matches
    same = ("statusReason", "description", "output")
    return next((str(held["id"]) for held in found if held.get("status") == "requested"
                 and all(held.get(key) == task.get(key) for key in same)), None)


def _task(store: Store, order: dict[str, Any], focus: str, reason: str, description: str,
          output: list[dict[str, Any]] | None) -> dict[str, Any]:
    state = {"system": f"{store.settings.canonical_base}/CodeSystem/order-state",
             "code": "reconcile", "display": "reconcile"}
    task: dict[str, Any] = {
        "resourceType": "Task", "status": "requested", "intent": "order",
        "businessStatus": {"coding": [state], "text": "held for a person"},
        "statusReason": {"text": reason}, "description": description,
        "focus": {"reference": focus}, "for": order["subject"],
        "basedOn": [{"reference": f"ServiceRequest/{order['id']}"}],
        "authoredOn": instant(now_utc())}
    if output:
        task["output"] = output
    return task
