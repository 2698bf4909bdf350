"""AuditEvents for REST interactions (https://hl7.org/fhir/R4/auditevent.html).

One event per interaction names the client, the action, the resources and
the outcome. Successful interactions are audited in the transaction of the
change they record; failures after the rollback, in a transaction of their own.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from fhir.dates import instant, now_utc
from fhir.store import Store

# http://hl7.org/fhir/R4/valueset-audit-event-action.html
ACTIONS = {"create": "C", "read": "R", "vread": "R", "search-type": "R",
           "history-instance": "R", "update": "U", "operation": "E",
           "transaction": "E", "batch": "E"}
# http://hl7.org/fhir/R4/valueset-audit-event-outcome.html
OUTCOME_SUCCESS, OUTCOME_MINOR, OUTCOME_SERIOUS = "0", "4", "8"


@dataclass
class Interaction:
    """What an audited request did, filled in as it goes."""

    interaction: str
    resource_type: str | None = None
    client_id: str = "anonymous"
    address: str | None = None
    entities: list[str] = field(default_factory=list)
    query: str | None = None


def audit_event(what: Interaction, outcome: str, description: str | None = None,
                site: str = "ScanPath") -> dict[str, Any]:
    """The AuditEvent resource recording ``what``."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction",
                     "code": what.interaction}],
        "action": ACTIONS.get(what.interaction, "E"),
        "recorded": instant(now_utc()),
        "outcome": outcome,
        "agent": [_agent(what)],
        "source": {"site": site, "observer": {"display": f"{site} FHIR server"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                             "code": "4", "display": "Application Server"}]},
    }
    if description:
        event["outcomeDesc"] = description[:1000]
    entities: list[dict[str, Any]] = [{"what": {"reference": ref}} for ref in what.entities]
    if what.query is not None:
        entities.append({"query": base64.b64encode(what.query.encode()).decode(),
                         "description": what.resource_type or "system"})
    if entities:
        event["entity"] = entities
    return event


def _agent(what: Interaction) -> dict[str, Any]:
    agent: dict[str, Any] = {"altId": what.client_id, "name": what.client_id,
                             "requestor": True}
    if what.address:
        agent["network"] = {"address": what.address, "type": "2"}  # 2 = IP address
    return agent


def record(store: Store, what: Interaction, outcome: str = OUTCOME_SUCCESS,
           description: str | None = None) -> None:
    """Write the AuditEvent for ``what`` in the store's current transaction."""
    store.create("AuditEvent", audit_event(what, outcome, description), trusted=True)
