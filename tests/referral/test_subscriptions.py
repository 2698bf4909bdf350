"""FHIR R4 Subscriptions (rest-hook) delivered to a real HTTP subscriber.

The subscriber is a small HTTP server on a loopback port; delivery is driven
by calling the worker's ``deliver_due`` with a controlled clock, so retries
and the give-up time are exercised without waiting for them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydantic import ValidationError
from sqlmodel import Session, select

from core.db import engine_for
from core.settings import Settings
from fhir.dates import now_utc
from referral.models import Notification
from referral.notify import NotificationWorker, deliver, deliver_due, listed
from tests import factories
from tests.conftest import free_port
from tests.test_cli import _run

SECRET = "a-shared-secret-for-the-gp-system"  # noqa: S105
Headers = Callable[..., dict[str, str]]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


class Subscriber:
    """A GP system's endpoint: records every request; answers 500 while ``failing``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.failing = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 500 if owner.failing else 200
                owner.received.append(Received(self.command, self.path, dict(self.headers),
                                               body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _answer  # noqa: N815

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def delivered(self) -> list[Received]:
        return [r for r in self.received if r.answered == 200]


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    server = Subscriber()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def nobody() -> str:
    """An endpoint on a loopback port where nothing listens (a GP system that is down)."""
    return f"http://127.0.0.1:{free_port()}/down/"


@pytest.fixture
def settings(settings: Settings, subscriber: Subscriber, nobody: str) -> Settings:
    return settings.model_copy(update={
        "subscription_endpoints": [f"{subscriber.url}/gp", nobody],
        "notify_hmac_secret": SECRET})


def _subscription(endpoint: str, criteria: str, payload: bool = True,
                  headers: tuple[str, ...] = ()) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if payload:
        channel["payload"] = "application/fhir+json"
    if headers:
        channel["header"] = list(headers)
    return {"resourceType": "Subscription", "status": "requested",
            "reason": "Tell the GP system about its orders", "criteria": criteria,
            "channel": channel}


def _post(client: FlaskClient, auth_headers: Headers, resource: dict[str, Any],
          client_id: str = "demo-gp") -> dict[str, Any]:
    response = client.post(f"/fhir/{resource['resourceType']}", json=resource,
                           headers=auth_headers(client_id))
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def _put(client: FlaskClient, auth_headers: Headers, resource: dict[str, Any]) -> None:
    response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}",
                          json=resource, headers=auth_headers())
    assert response.status_code == 200, response.get_json()


def _patient(client: FlaskClient, auth_headers: Headers) -> str:
    return "Patient/" + _post(client, auth_headers, factories.patient())["id"]


def _watch_orders(client: FlaskClient, auth_headers: Headers, subscriber: Subscriber,
                  **extra: Any) -> str:
    """A new patient, and a full-payload Subscription to their orders; the patient."""
    patient = _patient(client, auth_headers)
    _post(client, auth_headers, {**_subscription(
        f"{subscriber.url}/gp/fhir", f"ServiceRequest?subject={patient}"), **extra})
    return patient


def _deliver(settings: Settings, at: datetime, worker: str = "worker-1") -> int:
    return deliver_due(settings, worker, now=at)


def _versions(received: list[Received], order_id: str) -> list[str]:
    bodies = [json.loads(r.body) for r in received if r.path.endswith(f"/{order_id}")]
    return [b["meta"]["versionId"] for b in bodies]


def test_a_subscriber_that_fails_then_recovers_gets_every_change_in_order(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        subscriber: Subscriber) -> None:
    patient = _patient(client, auth_headers)
    subscription = _post(client, auth_headers, _subscription(
        f"{subscriber.url}/gp/hook", f"ServiceRequest?subject={patient}"))
    subscriber.failing = True
    first = _post(client, auth_headers, factories.service_request(patient))
    for text in ("fasting", "fasting, no contrast"):
        first = {**first, "note": [*first.get("note", []), {"text": text}]}
        _put(client, auth_headers, first)
        first = client.get(f"/fhir/ServiceRequest/{first['id']}",
                           headers=auth_headers()).get_json()
    second = _post(client, auth_headers, factories.service_request(patient))
    start = now_utc()

    # Down: each resource's oldest change is tried once; its later ones wait behind it.
    assert _deliver(settings, start) == 2
    status = client.get(f"/fhir/Subscription/{subscription['id']}",
                        headers=auth_headers()).get_json()
    assert status["status"] == "error" and "HTTP 500" in status["error"]

    # The service restarts (new connections, new worker) and retries after the backoff.
    engine_for(settings.database_url).dispose()
    assert _deliver(settings, start + timedelta(seconds=5), "worker-2") == 0  # not yet due
    assert _deliver(settings, start + timedelta(seconds=20), "worker-2") == 2
    subscriber.failing = False
    engine_for(settings.database_url).dispose()
    assert _deliver(settings, start + timedelta(minutes=2), "worker-3") == 4

    delivered = subscriber.delivered()
    assert _versions(delivered, first["id"]) == ["1", "2", "3"]
    assert _versions(delivered, second["id"]) == ["1"]
    assert [json.loads(r.body)["note"][-1]["text"] for r in delivered
            if r.path.endswith(first["id"])][1:] == ["fasting", "fasting, no contrast"]
    status = client.get(f"/fhir/Subscription/{subscription['id']}",
                        headers=auth_headers()).get_json()
    assert status["status"] == "active" and "error" not in status


def test_a_subscriber_down_past_the_give_up_time_ends_dead_and_listed(
        client: FlaskClient, auth_headers: Headers, settings: Settings, nobody: str,
        db: Session) -> None:
    patient = _patient(client, auth_headers)
    subscription = _post(client, auth_headers, _subscription(
        nobody, f"ServiceRequest?subject={patient}", payload=False))
    order = _post(client, auth_headers, factories.service_request(patient))
    start = now_utc()
    assert _deliver(settings, start) == 1
    assert _deliver(settings, start + timedelta(hours=71)) == 1  # still retried

    assert _deliver(settings, start + timedelta(hours=72, minutes=1)) == 1
    assert _deliver(settings, start + timedelta(hours=80)) == 0  # never retried again
    dead = listed(db, "dead")  # kept, and listed (``scanpath notifications --dead``)
    assert [(n.resource_id, n.attempts) for n in dead] == [(order["id"], 3)]
    assert "ConnectionError" in (dead[0].last_error or "")
    db.rollback()  # SQLite: let the API below write
    listing = _run("notifications", "--dead", env={
        **os.environ, "SCANPATH_DATABASE_URL": settings.database_url,
        "SCANPATH_VAR_DIR": str(settings.var_dir)})
    assert f"ServiceRequest/{order['id']}/_history/1" in listing and "\tdead\t" in listing
    status = client.get(f"/fhir/Subscription/{subscription['id']}",
                        headers=auth_headers()).get_json()
    assert status["status"] == "error" and "ConnectionError" in status["error"]


def test_ping_and_full_payload_channels_as_r4_defines_them(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        subscriber: Subscriber) -> None:
    patient = _patient(client, auth_headers)
    criteria = f"ServiceRequest?subject={patient}"
    ping = _post(client, auth_headers, _subscription(
        f"{subscriber.url}/gp/ping", criteria, payload=False,
        headers=("Authorization: Bearer gp-token-1",)))
    full = _post(client, auth_headers, _subscription(f"{subscriber.url}/gp/fhir", criteria))
    assert (ping["status"], full["status"]) == ("active", "active")  # requested -> active
    order = _post(client, auth_headers, factories.service_request(patient))
    assert _deliver(settings, now_utc()) == 2

    by_method = {r.method: r for r in subscriber.delivered()}
    assert by_method["POST"].path == "/gp/ping" and by_method["POST"].body == b""
    assert by_method["POST"].headers["Authorization"] == "Bearer gp-token-1"
    put = by_method["PUT"]
    assert put.path == f"/gp/fhir/ServiceRequest/{order['id']}"
    assert put.headers["Content-Type"].startswith("application/fhir+json")
    assert json.loads(put.body)["id"] == order["id"]


def test_the_hmac_signature_header_verifies_with_the_shared_secret(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        subscriber: Subscriber) -> None:
    patient = _watch_orders(client, auth_headers, subscriber)
    _post(client, auth_headers, factories.service_request(patient))
    _deliver(settings, now_utc())
    [request] = subscriber.delivered()
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-ScanPath-Signature"] == f"sha256={expected}"


def test_criteria_select_which_reports_are_notified(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        subscriber: Subscriber) -> None:
    patient = _patient(client, auth_headers)
    mine, other = (_post(client, auth_headers, factories.service_request(patient))["id"]
                   for _ in range(2))
    _post(client, auth_headers, _subscription(
        f"{subscriber.url}/gp/fhir", f"DiagnosticReport?based-on=ServiceRequest/{mine}"))
    for order in (mine, other):
        _post(client, auth_headers, {
            "resourceType": "DiagnosticReport", "status": "preliminary",
            "code": {"text": "CT coronary calcium"}, "subject": {"reference": patient},
            "basedOn": [{"reference": f"ServiceRequest/{order}"}]}, "demo-radiology")
    _deliver(settings, now_utc())
    [request] = subscriber.delivered()
    assert json.loads(request.body)["basedOn"] == [{"reference": f"ServiceRequest/{mine}"}]


def test_a_change_that_is_rolled_back_notifies_nobody(
        client: FlaskClient, auth_headers: Headers, subscriber: Subscriber,
        db: Session) -> None:
    patient = _watch_orders(client, auth_headers, subscriber)
    bundle = factories.transaction(
        factories.post_entry(factories.service_request(patient)),
        factories.post_entry(factories.service_request("Patient/not-here")))
    response = client.post("/fhir", json=bundle, headers=auth_headers())
    assert 400 <= response.status_code < 500
    assert db.exec(select(Notification)).all() == []


@pytest.mark.parametrize(("change", "status", "names"), [
    ({"channel": {"type": "rest-hook", "endpoint": "https://elsewhere.example/hook"}},
     422, "SCANPATH_SUBSCRIPTION_ENDPOINTS"),
    # The prefix .../gp admits .../gp/hook, never .../gpattacker (a URL boundary).
    ({"channel": {"type": "rest-hook", "endpoint": "{subscriber}/gpattacker/hook"}},
     422, "SCANPATH_SUBSCRIPTION_ENDPOINTS"),
    ({"criteria": "Patient?name=smith"}, 422, "Subscription.criteria"),
    ({"criteria": "ServiceRequest?colour=blue"}, 400, "colour"),
    ({"channel": {"type": "email", "endpoint": "mailto:gp@example.org"}}, 422,
     "rest-hook"),
])
def test_a_subscription_scanpath_cannot_honour_is_refused(
        client: FlaskClient, auth_headers: Headers, subscriber: Subscriber,
        change: dict[str, Any], status: int, names: str) -> None:
    resource = {**_subscription(f"{subscriber.url}/gp/fhir", "ServiceRequest?status=active"),
                **json.loads(json.dumps(change).replace("{subscriber}", subscriber.url))}
    response = client.post("/fhir/Subscription", json=resource, headers=auth_headers())
    assert response.status_code == status
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert names in json.dumps(outcome)


def test_a_client_may_only_watch_what_it_may_search(
        client: FlaskClient, auth_headers: Headers, subscriber: Subscriber,
        db: Session) -> None:
    from auth.clients import register_client

    register_client(db, "gp-orders-only", "A GP system that sees its orders only",
                    "system/Subscription.cruds system/ServiceRequest.rs",
                    jwks_uri="https://gp.example/jwks", replace=True)
    db.commit()
    endpoint = f"{subscriber.url}/gp/fhir"
    refused = client.post("/fhir/Subscription", headers=auth_headers("gp-orders-only"),
                          json=_subscription(endpoint, "Task?status=ready"))
    assert refused.status_code == 403
    assert refused.get_json()["resourceType"] == "OperationOutcome"
    allowed = client.post("/fhir/Subscription", headers=auth_headers("gp-orders-only"),
                          json=_subscription(endpoint, "ServiceRequest?status=active"))
    assert allowed.status_code == 201


def test_a_subscription_past_its_end_is_not_notified(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        subscriber: Subscriber) -> None:
    patient = _watch_orders(client, auth_headers, subscriber, end="2020-01-01T00:00:00Z")
    _post(client, auth_headers, factories.service_request(patient))
    assert _deliver(settings, now_utc()) == 0


@pytest.mark.parametrize(("variable", "value"), [
    ("subscription_endpoints", "ftp://gp.example/"),
    ("subscription_endpoints", "https://"),
    ("notify_hmac_secret", "short"),
])
def test_notification_settings_are_checked_at_start_up(variable: str, value: str) -> None:
    with pytest.raises(ValidationError, match=f"SCANPATH_{variable.upper()}"):
        Settings(**{variable: value})  # type: ignore[arg-type]


def test_the_worker_thread_of_scanpath_serve_delivers_on_its_own(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        subscriber: Subscriber) -> None:
    patient = _watch_orders(client, auth_headers, subscriber)
    order = _post(client, auth_headers, factories.service_request(patient))
    worker = NotificationWorker(settings.model_copy(update={"job_poll_seconds": 0.05}),
                                "thread-1")
    worker.start()
    try:
        for _ in range(400):  # up to 20 s on a loaded machine; not a timing assertion
            if subscriber.delivered():
                break
            threading.Event().wait(0.05)
    finally:
        worker.stop()
        worker.join()
    assert [json.loads(r.body)["id"] for r in subscriber.delivered()] == [order["id"]]


def test_with_a_broker_the_worker_hands_each_due_id_over_once_per_lease(
        client: FlaskClient, auth_headers: Headers, settings: Settings,
        subscriber: Subscriber) -> None:
    patient = _watch_orders(client, auth_headers, subscriber)
    order = _post(client, auth_headers, factories.service_request(patient))
    handed: list[int] = []
    scheduler = NotificationWorker(settings, "scheduler", handed.append)
    scheduler.tick()
    scheduler.tick()  # still within the lease: not sent to the broker again
    assert len(handed) == 1
    assert deliver(settings, "celery-worker", handed[0]) is not None  # the Celery task's call
    assert [json.loads(r.body)["id"] for r in subscriber.delivered()] == [order["id"]]


GP_TOKEN = "Bearer gp-one-own-secret"  # what a GP system puts in channel.header


@pytest.fixture
def other_gp(db: Session) -> str:
    """A second GP system with exactly demo-gp's scopes (auth/clients.py DEMO_CLIENTS)."""
    from auth.clients import register_client
    from auth.models import Client

    mine = db.get(Client, "demo-gp")
    assert mine is not None
    register_client(db, "other-gp", "Another GP system", mine.scopes,
                    jwks=json.loads(mine.jwks), replace=True)  # postgres keeps clients
    db.commit()
    return "other-gp"


def _probes(sid: str, endpoint: str) -> list[tuple[str, str, Any]]:
    """Every way one Subscription is read or changed by id: method, path, body."""
    changed = {**_subscription(endpoint, "ServiceRequest?status=active"),
               "id": sid}
    return [("GET", f"/fhir/Subscription/{sid}", None),
            ("GET", f"/fhir/Subscription/{sid}/_history/1", None),
            ("GET", f"/fhir/Subscription/{sid}/_history", None),
            ("PUT", f"/fhir/Subscription/{sid}", changed),
            ("PATCH", f"/fhir/Subscription/{sid}",
             [{"op": "replace", "path": "/status", "value": "off"}]),
            ("DELETE", f"/fhir/Subscription/{sid}", None)]


def _answer(client: FlaskClient, headers: dict[str, str], method: str, path: str,
            body: Any) -> tuple[int, str]:
    extra = {"Content-Type": "application/json-patch+json"} if method == "PATCH" else {}
    response = client.open(path, method=method, headers={**headers, **extra},
                           data=None if body is None else json.dumps(body))
    return response.status_code, response.get_data(as_text=True)


def test_another_gp_system_gets_the_answers_for_a_subscription_that_does_not_exist(
        client: FlaskClient, auth_headers: Headers, subscriber: Subscriber,
        other_gp: str) -> None:
    patient, endpoint = _patient(client, auth_headers), f"{subscriber.url}/gp/ping"
    mine = _post(client, auth_headers, _subscription(
        endpoint, f"ServiceRequest?subject={patient}", payload=False,
        headers=(f"Authorization: {GP_TOKEN}",)))
    provenance = {"resourceType": "Provenance", "recorded": "2026-11-30T10:00:00Z",
                  "target": [{"reference": f"Subscription/{mine['id']}"}],
                  "agent": [{"who": {"display": "GP system one"}}]}
    _post(client, auth_headers, provenance)
    theirs = auth_headers(other_gp)
    for (method, path, body), (_, unknown, unknown_body) in zip(
            _probes(mine["id"], endpoint), _probes("no-such-subscription", endpoint),
            strict=True):
        status, text = _answer(client, theirs, method, path, body)
        unknown_status, unknown_text = _answer(client, theirs, method, unknown, unknown_body)
        assert status == unknown_status == 404, (method, path, text)
        assert text.replace(mine["id"], "?") == unknown_text.replace("no-such-subscription", "?")
        assert GP_TOKEN not in text

    searches = ["/fhir/Subscription", f"/fhir/Subscription?_id={mine['id']}",
                "/fhir/Subscription/_history", "/fhir/_history",
                f"/fhir/Provenance?target=Subscription/{mine['id']}"
                "&_include=Provenance:target"]
    for path in searches:
        response = client.get(path, headers=theirs)
        assert response.status_code == 200, (path, response.get_json())
        listed = [e["resource"] for e in response.get_json().get("entry", [])]
        assert not [r for r in listed if r.get("resourceType") == "Subscription"], path
        assert GP_TOKEN not in response.get_data(as_text=True), path
    chained = client.get("/fhir/Provenance?target:Subscription.status=active", headers=theirs)
    assert chained.status_code == 400  # refused whatever is stored, so it tells nothing

    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Subscription/{mine['id']}"}},
        {"request": {"method": "GET", "url": "Subscription?status=active"}}]}
    answered = client.post("/fhir", json=batch, headers=theirs).get_json()
    statuses = [e["response"]["status"][:3] for e in answered["entry"]]
    assert statuses == ["404", "200"]
    assert answered["entry"][1]["resource"].get("total") == 0
    gone = client.delete("/fhir/Subscription?status=active", headers=theirs)
    assert gone.status_code in (200, 204, 404)  # conditional delete: none of its own match

    # The owner still reads, finds, changes and deletes its own, secret and all.
    own = auth_headers()
    read = client.get(f"/fhir/Subscription/{mine['id']}", headers=own).get_json()
    assert read["channel"]["header"] == [f"Authorization: {GP_TOKEN}"]
    found = client.get("/fhir/Subscription", headers=own).get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [mine["id"]]
    for method, path, body in _probes(mine["id"], endpoint)[3:]:
        status, text = _answer(client, own, method, path, body)
        assert status in (200, 204), (method, path, text)


def test_a_gp_system_cannot_claim_or_take_over_a_subscription_by_its_owner_tag(
        client: FlaskClient, auth_headers: Headers, subscriber: Subscriber,
        other_gp: str) -> None:
    from fhir.ownership import OWNER_SYSTEM

    claimed = _subscription(f"{subscriber.url}/gp/fhir", "ServiceRequest?status=active")
    claimed["meta"] = {"tag": [{"system": OWNER_SYSTEM, "code": "demo-gp"}]}
    made = _post(client, auth_headers, claimed, client_id=other_gp)
    assert client.get(f"/fhir/Subscription/{made['id']}",
                      headers=auth_headers()).status_code == 404
    assert client.get(f"/fhir/Subscription/{made['id']}",
                      headers=auth_headers(other_gp)).status_code == 200


def test_the_workers_status_changes_keep_the_subscription_its_owners(
        client: FlaskClient, auth_headers: Headers, settings: Settings, nobody: str,
        other_gp: str) -> None:
    patient = _patient(client, auth_headers)
    mine = _post(client, auth_headers, _subscription(nobody, f"ServiceRequest?subject={patient}"))
    _post(client, auth_headers, factories.service_request(patient))
    _deliver(settings, now_utc())  # the endpoint is down: the server itself writes status
    read = client.get(f"/fhir/Subscription/{mine['id']}", headers=auth_headers()).get_json()
    assert int(read["meta"]["versionId"]) > int(mine["meta"]["versionId"])
    assert client.get(f"/fhir/Subscription/{mine['id']}",
                      headers=auth_headers(other_gp)).status_code == 404


def test_the_capability_statement_says_subscriptions_are_owner_only(
        client: FlaskClient, auth_headers: Headers) -> None:
    metadata = client.get("/fhir/metadata", headers=auth_headers()).get_json()
    [entry] = [r for r in metadata["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert entry["updateCreate"] is False and "Owner-only" in entry["documentation"]
