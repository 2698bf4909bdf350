"""AuditEvents for REST interactions (https://hl7.org/fhir/R4/auditevent.html).

One event per interaction names the client, the action, the resources and
the outcome. Successful interactions are audited in the transaction of the
change they record; failures after the rollback, in a transaction of their own.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from core.logging import parameter_names
from fhir.dates import instant, now_utc
from fhir.store import Store

# http://hl7.org/fhir/R4/valueset-audit-event-action.html
ACTIONS = {"create": "C", "transfer": "C", "read": "R", "vread": "R", "search-type": "R",
           "history-instance": "R", "history-type": "R", "history-system": "R",
           "update": "U", "patch": "U", "delete": "D", "operation": "E",
           "transaction": "E", "batch": "E"}
# http://hl7.org/fhir/R4/valueset-audit-event-outcome.html
OUTCOME_SUCCESS, OUTCOME_MINOR, OUTCOME_SERIOUS = "0", "4", "8"


REST_EVENT = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
              "code": "rest", "display": "RESTful Operation"}
# DICOM PS3.16 CID 400: DCM 110104 "DICOM Instances Transferred".
DICOM_TRANSFER_EVENT = {"system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": "110104", "display": "DICOM Instances Transferred"}


@dataclass
class Interaction:
    """What an audited request did, filled in as it goes.

    ``interaction`` is a restful-interaction code for REST events; other
    event types (a DICOM association) give their own ``event_type``.
    """

    interaction: str
    resource_type: str | None = None
    client_id: str = "anonymous"
    address: str | None = None
    entities: list[str] = field(default_factory=list)
    query: str | None = None
    event_type: dict[str, str] = field(default_factory=lambda: dict(REST_EVENT))
    # People the client acted for (``Practitioner/...``), each another agent.
    agents: list[str] = field(default_factory=list)


def audit_event(what: Interaction, outcome: str, description: str | None = None,
                site: str = "ScanPath") -> dict[str, Any]:
    """The AuditEvent resource recording ``what``."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": what.event_type,
        "action": ACTIONS.get(what.interaction, "E"),
        "recorded": instant(now_utc()),
        "outcome": outcome,
        "agent": [_agent(what), *({"who": {"reference": who}, "requestor": True}
                                  for who in what.agents)],
        "source": {"site": site, "observer": {"display": f"{site} FHIR server"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                             "code": "4", "display": "Application Server"}]},
    }
    if what.event_type == REST_EVENT:
        event["subtype"] = [{"system": "http://hl7.org/fhir/restful-interaction",
                             "code": what.interaction}]
    if description:
        event["outcomeDesc"] = description[:1000]
    entities: list[dict[str, Any]] = [{"what": {"reference": ref}} for ref in what.entities]
    if what.query is not None:  # a search; an empty query is no base64Binary at all
        entities.append({**(query_entity(what.query) if what.query else {}),
                         "description": what.resource_type or "system"})
    if entities:
        event["entity"] = entities
    return event


# The most of a query an AuditEvent keeps (characters); a longer one (one search
# was 2.8 MB) keeps this much, its length, its parameter names and its SHA-256.
MAX_AUDIT_QUERY = 2048
MAX_AUDIT_PARAMETER_NAMES = 1024


def query_entity(query: str) -> dict[str, Any]:
    """The ``entity`` parts recording ``query``: whole when short, else bounded.

    A bounded query keeps its first MAX_AUDIT_QUERY characters in ``query``
    (base64Binary) and says in ``detail`` that it was cut, how long it was, its
    SHA-256 (hex, of the UTF-8 bytes) and its parameter names (cut too).
    """
    encoded = query.encode()
    if len(query) <= MAX_AUDIT_QUERY:
        return {"query": base64.b64encode(encoded).decode()}
    kept = query[:MAX_AUDIT_QUERY].encode()
    names = parameter_names(query)[:MAX_AUDIT_PARAMETER_NAMES]
    return {"query": base64.b64encode(kept).decode(), "detail": [
        {"type": "query-truncated-from-characters", "valueString": str(len(query))},
        {"type": "query-sha256", "valueString": hashlib.sha256(encoded).hexdigest()},
        {"type": "query-parameter-names", "valueString": names or "(none)"}]}


def _agent(what: Interaction) -> dict[str, Any]:
    agent: dict[str, Any] = {"altId": what.client_id, "name": what.client_id,
                             "requestor": True}
    if what.address:
        agent["network"] = {"address": what.address, "type": "2"}  # 2 = IP address
    return agent


def record(store: Store, what: Interaction, outcome: str = OUTCOME_SUCCESS,
           description: str | None = None) -> None:
    """Write the AuditEvent for ``what`` in the store's current transaction.

    Requests that name no client (no or a bad token) are bounded: one event per
    address a minute in each process, the first, saying how many more came
    before it (ANONYMOUS_WINDOW_SECONDS); so a flood of unauthenticated
    requests cannot fill the audit table.
    """
    if what.client_id in (None, "", "anonymous"):
        description = _anonymous.admit(what.address or "unknown", description)
        if description is None:
            return
    store.create("AuditEvent", audit_event(what, outcome, description), trusted=True)


def record_failure(store: Store, what: Interaction, status: int,
                   description: str | None = None) -> None:
    """Roll back the request's changes, then write and commit the AuditEvent of a
    failed interaction (HTTP ``status`` >= 400: minor failure, 5xx serious)."""
    store.session.rollback()
    outcome = OUTCOME_MINOR if status < 500 else OUTCOME_SERIOUS
    record(store, what, outcome, description or f"HTTP {status}")
    store.session.commit()


ANONYMOUS_WINDOW_SECONDS = 60.0


class _AnonymousLimiter:
    """Per-address windows: the first request of each is audited, the rest counted."""

    MAX_ADDRESSES = 10_000

    def __init__(self) -> None:
        self.windows: dict[str, tuple[float, int]] = {}
        self.lock = threading.Lock()

    def admit(self, address: str, description: str | None) -> str | None:
        """The description to write, or None when this request is only counted."""
        now = time.monotonic()
        with self.lock:
            started, skipped = self.windows.get(address, (-ANONYMOUS_WINDOW_SECONDS, 0))
            if now - started < ANONYMOUS_WINDOW_SECONDS:
                self.windows[address] = (started, skipped + 1)
                return None
            if len(self.windows) >= self.MAX_ADDRESSES:
                self.windows.clear()
            self.windows[address] = (now, 0)
        note = f"{skipped} more unauthenticated requests from {address} were counted, not " \
            "audited one by one, in the minute before" if skipped else None
        return "; ".join(t for t in (description, note) if t) or None


_anonymous = _AnonymousLimiter()
