"""FHIR R4 Subscriptions with a rest-hook channel, and the notification outbox.

A Subscription (https://hl7.org/fhir/R4/subscription.html) names a search
(``criteria``, e.g. ``DiagnosticReport?based-on=ServiceRequest/123``) on a
ServiceRequest, Task or DiagnosticReport, and a ``rest-hook`` channel. Each
write of such a resource is matched against every active Subscription with
the search code the REST API uses (:func:`fhir.search.run_search`, restricted
to the written resource's ``_id``), and each match becomes a
:class:`referral.models.Notification` row in the same transaction as the
change (the outbox), so a committed change is never left unannounced.

As R4 defines the channel (subscription.html "rest-hook"): with no
``channel.payload`` the notification is a POST to the endpoint with no body
(a ping); with ``application/fhir+json`` it is a PUT of the resource to
``{endpoint}/{type}/{id}``. Each ``channel.header`` ("Name: value") is sent.
``referral.notify`` delivers the rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.errors import Unprocessable
from fhir.access import permit_search
from fhir.dates import now_utc
from fhir.search import Params, matching, parse_query, run_search
from fhir.store import Store, dumps, register_after_write_hook, register_write_hook, spec_for
from referral.models import Notification

# The resource types a Subscription may watch (CONTRACT §6 "Notifications").
WATCHED_TYPES = ("ServiceRequest", "Task", "DiagnosticReport")
FULL_PAYLOAD = "application/fhir+json"
# Subscriptions still notified: ``error`` ones keep their queue and recover (R4 status).
NOTIFIED_STATUSES = "active,error"
ENDPOINTS_SETTING = "SCANPATH_SUBSCRIPTION_ENDPOINTS"
_MAX_SUBSCRIPTIONS = 10_000  # searched per watched write; far above any GP estate


def register() -> None:
    """Check Subscriptions as they are written; queue notifications for watched types."""
    register_write_hook("Subscription", check_subscription)
    for resource_type in WATCHED_TYPES:
        register_after_write_hook(resource_type, queue_notifications)


def check_subscription(store: Store, subscription: dict[str, Any],
                       _previous: dict[str, Any] | None) -> None:
    """Refuse (422) a Subscription ScanPath cannot honour; accept a ``requested`` one.

    The channel must be ``rest-hook`` to an endpoint under one of the
    ``SCANPATH_SUBSCRIPTION_ENDPOINTS`` prefixes, the payload empty or
    ``application/fhir+json``, each header ``Name: value``, and the criteria a
    search on a watched type that the search code accepts (else 400).
    R4 lets the server move ``requested`` to ``active``; it does so at once.
    """
    channel = subscription.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise Unprocessable("Only the rest-hook channel type is supported",
                            ["Subscription.channel.type"])
    _check_endpoint(store, channel.get("endpoint"))
    if channel.get("payload") not in (None, FULL_PAYLOAD):
        raise Unprocessable(f"Subscription.channel.payload must be absent (a ping) or "
                            f"{FULL_PAYLOAD}", ["Subscription.channel.payload"])
    channel_headers(subscription)
    watched_search(store, subscription)
    if subscription.get("status") == "requested":
        subscription["status"] = "active"


def _check_endpoint(store: Store, endpoint: Any) -> None:
    allowed = store.settings.subscription_endpoints
    if not isinstance(endpoint, str) or not any(_under(endpoint, p) for p in allowed):
        raise Unprocessable(
            f"Subscription.channel.endpoint must start with one of the prefixes in "
            f"{ENDPOINTS_SETTING} (an operator setting); "
            + ("none is set, so no endpoint is accepted" if not allowed else
               "this endpoint is not under any of them"), ["Subscription.channel.endpoint"])


def _under(endpoint: str, prefix: str) -> bool:
    """``endpoint`` starts with ``prefix`` at a URL boundary: the prefix
    ``https://gp.example`` admits ``https://gp.example/hook``, never
    ``https://gp.example.attacker.test/``."""
    rest = endpoint.removeprefix(prefix)
    return rest != endpoint and (prefix.endswith("/") or rest[:1] in ("", "/", "?", "#"))


def channel_headers(subscription: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, value)`` of each ``channel.header`` ("Name: value"); 422 for another shape."""
    pairs = []
    for header in (subscription.get("channel") or {}).get("header", []):
        name, colon, value = header.partition(":")
        if not colon or not name.strip() or any(c in name for c in " \t") or \
                any(c in header for c in "\r\n"):
            raise Unprocessable(f"Subscription.channel.header {header[:40]!r} is not "
                                "'Name: value'", ["Subscription.channel.header"])
        pairs.append((name.strip(), value.strip()))
    return pairs


def watched_search(store: Store, subscription: dict[str, Any]) -> tuple[str, Params]:
    """The criteria as ``(type, params)``: 422 for an unwatched type, 400 for a search
    the search code refuses (an unknown parameter, a bad value), and, when a client
    writes it, 403 unless that client may search the type (``fhir.access``)."""
    resource_type, params = _criteria(subscription)
    if resource_type not in WATCHED_TYPES:
        raise Unprocessable(f"Subscription.criteria must search one of "
                            f"{', '.join(WATCHED_TYPES)}", ["Subscription.criteria"])
    if store.authorize is not None:  # the client may only watch what it may search
        permit_search(resource_type, params, store.authorize)
    # Built (not run) once, so a criteria that no search would accept is refused now.
    run_search(store.session, spec_for(resource_type), params, count=0, with_total=False)
    return resource_type, params


def _criteria(subscription: dict[str, Any]) -> tuple[str, Params]:
    resource_type, _, query = subscription.get("criteria", "").partition("?")
    return resource_type, parse_query(query)


def queue_notifications(store: Store, resource: dict[str, Any],
                        _previous: dict[str, Any] | None) -> None:
    """Add an outbox row for each active Subscription whose criteria match ``resource``
    (all matched in one query: the criteria were checked when each was written)."""
    watching = _subscriptions_on(store, resource["resourceType"])
    found = matching(store.session, spec_for(resource["resourceType"]),
                     [_criteria(s)[1] for s in watching], resource["id"])
    for subscription, matched in zip(watching, found, strict=True):
        if matched:
            store.session.add(_notification(subscription, resource))


def _subscriptions_on(store: Store, resource_type: str) -> list[dict[str, Any]]:
    found = run_search(store.session, spec_for("Subscription"),
                       [("status", NOTIFIED_STATUSES)], count=_MAX_SUBSCRIPTIONS,
                       with_total=False).matches
    now = now_utc()
    return [s for s in found if _criteria(s)[0] == resource_type and not _ended(s, now)]


def _ended(subscription: dict[str, Any], now: datetime) -> bool:
    """Whether the Subscription's ``end`` (R4: when it should end) has passed."""
    end = subscription.get("end")
    return isinstance(end, str) and datetime.fromisoformat(end) <= now


def _notification(subscription: dict[str, Any], resource: dict[str, Any]) -> Notification:
    channel = subscription["channel"]
    full = channel.get("payload") == FULL_PAYLOAD
    endpoint = channel["endpoint"]
    if full:
        endpoint = f"{endpoint.rstrip('/')}/{resource['resourceType']}/{resource['id']}"
    now = now_utc()
    return Notification(
        subscription_id=subscription["id"], resource_type=resource["resourceType"],
        resource_id=resource["id"], version_id=int(resource["meta"]["versionId"]),
        endpoint=endpoint, method="PUT" if full else "POST",
        headers=json.dumps(channel_headers(subscription)),
        body=dumps(resource) if full else None, status="queued", next_attempt_at=now,
        created_at=now, updated_at=now)
