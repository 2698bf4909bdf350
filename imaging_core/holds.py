"""Holding a study or a result for a person: a reconcile Task, audited.

Some things the imaging core must not decide alone: a second study for an
order that already has one, images for an order that is closed (rejected or
cancelled), or a new analysis of a study whose report a radiologist has
already signed off. The images or the result are kept, and a FHIR Task tells
staff and the RIS (shared/CONTRACT.md §6): ``status`` ``requested``,
``businessStatus`` ``reconcile`` from
``{SCANPATH_CANONICAL_BASE}/CodeSystem/order-state``, ``focus`` the held
resource, ``basedOn`` the order, ``partOf`` the order's own Task, the reason
in ``statusReason`` and ``description``. The order workflow
(``referral.orders.hold_for_person``) writes and audits it, as it writes every
other Task; the caller commits.
"""

from __future__ import annotations

from typing import Any

from fhir.store import Store
from referral import orders

AGENT = "scanpath-imaging-core"  # who holds: the imaging core itself, not a client


def hold_for_person(store: Store, order: dict[str, Any], focus: str, reason: str,
                    description: str, output: list[dict[str, Any]] | None = None) -> str:
    """The reconcile Task holding ``focus``; its id. Created once: an open Task
    that holds the same thing (focus, reason, description, output) is reused.

    ``focus`` is a reference such as ``ImagingStudy/{id}``; ``reason`` a short
    code (``second-study``, ``order-closed``, ``result-after-sign-off``) kept in
    ``statusReason``.
    """
    return orders.hold_for_person(store, order, focus, reason, description, output, AGENT)
