"""AuditEvents for what ``fhir`` does not serve itself: the token endpoint (issued and
refused, through ``auth.signals``), the staff web app (logins, page views and
actions, through ``auth.signals.staff_audit``) and the operator endpoints (``/metrics``).

Refusals name no authenticated client, so they are bounded like every unauthenticated
request (``fhir.audit.record``: one event per address a minute, counting the rest).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from auth.signals import staff_audit, token_issued, token_refused
from core.web import app_settings, db
from fhir import audit
from fhir.store import Store

# DICOM PS3.16 CID 400 / FHIR audit-event-type: "User Authentication" (DCM 110114).
AUTHENTICATION_EVENT = {"system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": "110114", "display": "User Authentication"}
# ISO 21089 record lifecycle events (FHIR's AuditEvent guidance for record access):
# a staff page view is "access", any other staff action "amend".
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
PAGE_VIEW_EVENT = {"system": LIFECYCLE, "code": "access",
                   "display": "Access/View Record Lifecycle Event"}
STAFF_ACTION_EVENT = {"system": LIFECYCLE, "code": "amend",
                      "display": "Amend (Update) Record Lifecycle Event"}
STAFF_OUTCOMES = {"success": audit.OUTCOME_SUCCESS, "minor": audit.OUTCOME_MINOR,
                  "serious": audit.OUTCOME_SERIOUS}


def init_app(app: Flask) -> None:
    token_issued.connect(_token_issued, app)
    token_refused.connect(_token_refused, app)
    staff_audit.connect(_staff_audit, app)


def record(what: audit.Interaction, outcome: str = audit.OUTCOME_SUCCESS,
           description: str | None = None, *, commit: bool = True) -> None:
    """Write the AuditEvent for ``what`` in the request's session (committed unless told)."""
    audit.record(Store(db(), app_settings()), what, outcome, description)
    if commit:
        db().commit()


def _token_issued(_app: Flask, *, client_id: str, scope: str, **_: Any) -> None:
    what = audit.Interaction("operation", None, client_id, request.remote_addr,
                             event_type=AUTHENTICATION_EVENT)
    record(what, description=f"access token issued with scope {scope}"[:1000], commit=False)


def _token_refused(_app: Flask, *, claimed_client: str | None, error: str,
                   description: str, **_: Any) -> None:
    what = audit.Interaction("operation", None, "anonymous", request.remote_addr,
                             event_type=AUTHENTICATION_EVENT)
    claimed = f" claiming to be {claimed_client!r}" if claimed_client else ""
    record(what, audit.OUTCOME_MINOR, f"token request{claimed} refused: {error}: {description}")


def operator_access(client_id: str, status: int) -> None:
    """Audit a request to an operator endpoint (``/metrics``) and how it ended."""
    what = audit.Interaction("read", None, client_id, request.remote_addr,
                             query=request.path)
    ok = status < 400
    db().rollback()
    record(what, audit.OUTCOME_SUCCESS if ok else audit.OUTCOME_MINOR,
           None if ok else f"HTTP {status}")


def _staff_audit(_app: Flask, *, username: str, role: str | None, action: str,
                 entity: str | None, outcome: str, detail: str | None, **_: Any) -> None:
    """A staff web app event: logins and logouts as User Authentication, page views as
    record access, other actions as record amendment; the agent is the staff user."""
    event_type = AUTHENTICATION_EVENT if action in ("login", "logout") else \
        PAGE_VIEW_EVENT if action == "page-view" else STAFF_ACTION_EVENT
    what = audit.Interaction("read" if action == "page-view" else "operation", None,
                             f"staff:{username}", request.remote_addr,
                             entities=[entity] if entity else [], event_type=event_type)
    who = f"{action} by {username}" + (f" ({role})" if role else "")
    record(what, STAFF_OUTCOMES.get(outcome, audit.OUTCOME_MINOR),
           f"{who}: {detail}" if detail else who)
