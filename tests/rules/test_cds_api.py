"""CDS Hooks behaviour (CONTRACT §4), the ordering hook and $replay."""

from __future__ import annotations

import copy
import http.server
import json
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import jwt
import pytest
from sqlmodel import select

from auth.clients import key_path, load_private_key, public_jwk
from rules.context import today_utc
from tests.conftest import serving
from tests.factories import patient, post_entry, transaction
from tests.rules.vignettes import OURS, SHARED, load

SCT = "http://snomed.info/sct"
PROCEDURE = "https://scanpath.example/fhir/CodeSystem/procedure"


@pytest.fixture
def angina():
    """The shared angina vignette's CDS request (NICE CG95: CTCA)."""
    return load(SHARED / "angina-ctca.json", today_utc())["request"]


def _post(client, headers, body, service="imaging-order-select"):
    return client.post(f"/cds-services/{service}", json=body, headers=headers)


def test_discovery_lists_both_services_with_prefetch(client):
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    assert services["imaging-order-select"]["hook"] == "order-select"
    assert services["imaging-order-sign"]["hook"] == "order-sign"
    assert set(services["imaging-order-select"]["prefetch"]) == {
        "patient", "conditions", "observations", "allergies", "devices", "imaging"}


def test_missing_prefetch_and_fhir_server_is_412(client, auth_headers, angina):
    del angina["prefetch"]
    response = _post(client, auth_headers(), angina)
    assert response.status_code == 412
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_calls_need_a_token(client, angina):
    assert _post(client, {}, angina).status_code == 401


def test_bad_requests_are_400_with_an_outcome(client, auth_headers, angina):
    wrong_hook = {**angina, "hook": "patient-view"}
    assert _post(client, auth_headers(), wrong_hook).status_code == 400
    no_order = {**angina, "context": {**angina["context"], "draftOrders": {
        "resourceType": "Bundle", "type": "collection", "entry": []}}}
    assert _post(client, auth_headers(), no_order).status_code == 400
    broken = client.post("/cds-services/imaging-order-select", data=b"{", headers=auth_headers())
    assert broken.status_code == 400
    assert broken.get_json()["resourceType"] == "OperationOutcome"
    assert _post(client, auth_headers(), angina, "no-such-service").status_code == 404
    nul = {**angina, "context": {**angina["context"], "userId": "Practitioner/a\u0000b"}}
    refused = _post(client, auth_headers(), nul)
    assert refused.status_code == 400
    assert refused.get_json()["issue"][0]["expression"] == ["context.userId"]


def _cds_jwt(settings, audience, client_id="demo-gp"):
    key = load_private_key(key_path(settings, client_id).read_bytes())
    jwk = public_jwk(key)
    now = int(time.time())
    claims = {"iss": "https://gp-system.example", "sub": client_id, "aud": audience,
              "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=jwk["alg"], headers={"kid": jwk["kid"]})


def test_a_cds_client_jwt_signed_with_a_registered_key_is_accepted(client, settings, angina):
    url = "http://localhost/cds-services/imaging-order-select"
    good = {"Authorization": f"Bearer {_cds_jwt(settings, url)}"}
    assert _post(client, good, angina).status_code == 200
    replayed = _post(client, good, angina)
    assert replayed.status_code == 401
    wrong_audience = {"Authorization": f"Bearer {_cds_jwt(settings, 'http://elsewhere/')}"}
    assert _post(client, wrong_audience, angina).status_code == 401


def test_the_advice_is_recorded_as_guidance_with_provenance(client, auth_headers, angina):
    cards = _post(client, auth_headers(), angina).get_json()["cards"]
    found = client.get("/fhir/GuidanceResponse?_revinclude=Provenance:target",
                       headers=auth_headers("demo-admin")).get_json()
    guidance = [e["resource"] for e in found["entry"]
                if e["resource"]["resourceType"] == "GuidanceResponse"]
    assert len(guidance) == 1
    assert {i["value"] for i in guidance[0]["identifier"]} == \
        {f"urn:uuid:{c['uuid']}" for c in cards}
    params = {p["name"]: p for p in guidance[0]["contained"][0]["parameter"]}
    assert params["outcome"]["valueCode"] == "imaging"
    assert params["chosen"]["valueCoding"]["code"] == "CTCA"
    assert any(e["resource"]["resourceType"] == "Provenance" for e in found["entry"])


def test_feedback_is_recorded(client, auth_headers, angina, db):
    from rules.models import CdsFeedback

    card = _post(client, auth_headers(), angina).get_json()["cards"][0]
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                          "overrideReason": {"reason": card["overrideReasons"][0],
                                             "userComment": "seen by cardiology"},
                          "outcomeTimestamp": "2026-11-23T10:00:00Z"}]}
    response = client.post("/cds-services/imaging-order-select/feedback", json=body,
                           headers=auth_headers())
    assert response.status_code == 200
    rows = [(r.card, r.outcome, r.override_reason) for r in db.exec(select(CdsFeedback))]
    db.rollback()  # SQLite: every transaction holds the write lock (core/db.py)
    assert rows == [(card["uuid"], "overridden", "clinical-judgement")]
    bad = client.post("/cds-services/imaging-order-select/feedback",
                      json={"feedback": [{"card": "x", "outcome": "liked"}]},
                      headers=auth_headers())
    assert bad.status_code == 400


def _trust(app, *servers):
    """Put ``servers`` on the app's SCANPATH_CDS_FHIR_SERVERS allow-list."""
    settings = app.config["SCANPATH"]
    app.config["SCANPATH"] = settings.model_copy(update={"cds_fhir_servers": list(servers)})


def _caller_headers(kind, app, auth_headers):
    if kind == "access-token":
        return auth_headers()
    settings = app.config["SCANPATH"]
    url = f"{settings.public_url}/cds-services/imaging-order-select"
    return {"Authorization": f"Bearer {_cds_jwt(settings, url)}"}


@pytest.mark.parametrize("caller", ["access-token", "cds-client-jwt"])
def test_missing_prefetch_is_read_from_the_fhir_server(app, client, settings, auth_headers,
                                                       token, angina, caller):
    """The hook's fhirServer (here ScanPath itself, on the allow-list) answers what prefetch
    lacks. With a CDS client JWT the jti is written first: that write must be committed
    before the read, or ScanPath's own answer (which writes an AuditEvent to the same
    SQLite database) would wait on the lock and the read would time out (412)."""
    made = client.post("/fhir/Patient", json=patient(birth_date="1966-01-01", gender="male"),
                       headers=auth_headers()).get_json()
    with serving(app) as base:
        _trust(app, f"{base}/fhir")
        body = {**angina, "fhirServer": f"{base}/fhir",
                "fhirAuthorization": {"access_token": token("demo-gp"), "token_type": "Bearer",
                                      "expires_in": 300, "scope": "system/*.rs",
                                      "subject": "demo-gp"},
                "context": {**angina["context"], "patientId": made["id"]}}
        body["prefetch"] = {k: v for k, v in body["prefetch"].items() if k != "patient"}
        response = _post(client, _caller_headers(caller, app, auth_headers), body)
    assert response.status_code == 200, response.get_json()
    cards = response.get_json()["cards"]
    picks = [s for c in cards for s in c.get("suggestions", []) if s["isRecommended"]]
    assert [c["code"] for c in picks[0]["actions"][0]["resource"]["code"]["coding"]
            if c["system"] == PROCEDURE] == ["CTCA"]


def test_no_transaction_is_open_while_fhir_server_is_read(app, client, settings, angina,
                                                          monkeypatch):
    """The CDS client JWT's jti is committed (visible to another session) and the request
    holds no database transaction while it waits on the client's FHIR server."""
    from sqlmodel import Session

    from auth.models import UsedAssertion
    from core.db import engine_for
    from core.web import db
    from rules import service

    seen = {}

    def fake_fetch(server, token, path):
        seen["open"] = db().in_transaction()
        with Session(engine_for(settings.database_url)) as other:
            seen["jtis"] = len(other.exec(select(UsedAssertion)).all())
        if path.startswith("Patient/"):
            return angina["prefetch"]["patient"]
        return {"resourceType": "Bundle", "type": "searchset", "entry": []}

    monkeypatch.setattr(service, "_fetch", fake_fetch)
    _trust(app, "https://ehr.example/fhir")
    body = {**angina, "fhirServer": "https://ehr.example/fhir"}
    del body["prefetch"]
    response = _post(client, _caller_headers("cds-client-jwt", app, None), body)
    assert response.status_code == 200, response.get_json()
    assert seen == {"open": False, "jtis": 1}


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A FHIR server stand-in that records every request it gets."""

    seen: list[str]
    redirect_to: str | None = None

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.seen.append(self.path)
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.end_headers()
            return
        body = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": []})
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@contextmanager
def _recording_server(redirect_to=None):
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen, "redirect_to": redirect_to})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _without_prefetch(angina, fhir_server):
    body = {**angina, "fhirServer": fhir_server,
            "fhirAuthorization": {"access_token": "secret-for-the-ehr", "token_type": "Bearer",
                                  "expires_in": 300, "scope": "patient/*.read",
                                  "subject": "gp"}}
    del body["prefetch"]
    return body


@pytest.mark.parametrize(("allowed", "path"), [
    (None, "/fhir"),                  # no allow-list: every fhirServer is refused
    ("/fhir", "/fhir-evil"),          # a prefix match must end at a path boundary
    ("/other", "/fhir")])
def test_an_untrusted_fhir_server_is_412_and_never_contacted(app, client, auth_headers, angina,
                                                             allowed, path):
    with _recording_server() as (base, seen):
        if allowed:
            _trust(app, base + allowed)
        response = _post(client, auth_headers(), _without_prefetch(angina, base + path))
    assert response.status_code == 412
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "not trusted" in outcome["issue"][0]["diagnostics"]
    assert seen == []


def test_an_untrusted_fhir_server_is_not_needed_when_prefetch_is_complete(client, auth_headers,
                                                                        angina):
    with _recording_server() as (base, seen):
        response = _post(client, auth_headers(), {**angina, "fhirServer": base + "/fhir"})
    assert response.status_code == 200
    assert seen == []


def test_a_trusted_fhir_server_that_redirects_is_not_followed(app, client, auth_headers,
                                                              angina):
    """The caller's token must not travel to wherever a redirect points."""
    with _recording_server() as (elsewhere, elsewhere_seen), \
            _recording_server(redirect_to=elsewhere) as (base, seen):
        _trust(app, base + "/fhir")
        response = _post(client, auth_headers(), _without_prefetch(angina, base + "/fhir"))
    assert response.status_code == 412
    assert len(seen) == 1 and elsewhere_seen == []


def test_a_silent_fhir_server_times_out(app, client, auth_headers, angina, monkeypatch):
    from rules import service

    monkeypatch.setattr(service, "FETCH_TIMEOUT_SECONDS", 0.5)
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}/fhir"
        _trust(app, base)
        started = time.monotonic()
        response = _post(client, auth_headers(), _without_prefetch(angina, base))
    assert response.status_code == 412
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("url", "trusted"), [
    ("https://ehr.example/fhir", True),
    ("https://ehr.example/fhir/", True),
    ("https://ehr.example/fhir/r4", True),
    ("https://EHR.example/fhir", True),
    ("https://ehr.example/fhir-evil", False),
    ("https://ehr.example.evil/fhir", False),
    ("https://ehr.example:8443/fhir", False),
    ("http://ehr.example/fhir", False),
    ("https://user@ehr.example/fhir", False),
    ("https://ehr.example/fhir?x=1", False),
    ("https://ehr.example/fhir/../admin", False),
    ("https://ehr.example/fhir/%2e%2e/admin", False),
    ("file:///etc/passwd", False)])
def test_fhir_server_allow_list_matches_whole_prefixes(url, trusted):
    from rules.service import trusted_server

    assert trusted_server(url, ["https://ehr.example/fhir"]) is trusted
    assert trusted_server(url, []) is False


def test_patient_id_must_be_a_fhir_id_before_fhir_server_is_read(app, client, auth_headers,
                                                                 angina):
    with _recording_server() as (base, seen):
        _trust(app, base + "/fhir")
        body = _without_prefetch(angina, base + "/fhir")
        body["context"] = {**body["context"], "patientId": "../../admin?x=1"}
        response = _post(client, auth_headers(), body)
    assert response.status_code == 400
    assert seen == []


def _gp_order(patient_url, reasons, code=None):
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "subject": {"reference": patient_url},
             "category": [{"coding": [{"system": SCT, "code": "363679005"}]}],
             "reasonCode": [{"coding": [{"system": SCT, "code": c}]} for c in reasons]}
    if code:
        order["code"] = {"coding": [code]}
    return order


def test_generic_imaging_order_gets_the_chosen_procedure(client, auth_headers):
    """NICE CG95 2016 1.3.4.3: anginal chest pain, CTCA first line."""
    url = "urn:uuid:0b7c0000-0000-4000-8000-000000000001"
    bundle = transaction(post_entry(_gp_order(url, ["29857009", "194828000"])),
                         post_entry(patient(birth_date="1968-01-01", gender="male"), url))
    body = client.post("/fhir", json=bundle, headers=auth_headers()).get_json()
    order = body["entry"][0]["resource"]
    keys = {(c["system"], c["code"]) for c in order["code"]["coding"]}
    assert (PROCEDURE, "CTCA") in keys and (SCT, "419545005") in keys
    assert order["supportingInfo"][0]["reference"].startswith("GuidanceResponse/")


def test_orders_against_the_guidance_are_kept_and_flagged(client, auth_headers):
    """NICE NG59 1.1.1: no routine imaging for low back pain; NICE CG150: thunderclap."""
    pid = client.post("/fhir/Patient", json=patient(birth_date="1980-01-01"),
                      headers=auth_headers()).get_json()["id"]
    xray = {"system": SCT, "code": "399208008", "display": "Plain X-ray of chest"}
    for reasons, code in ((["279039007"], xray), (["95660002"], None)):
        response = client.post("/fhir/ServiceRequest", json=_gp_order(f"Patient/{pid}",
                                                                      reasons, code),
                               headers=auth_headers())
        assert response.status_code == 201
        order = response.get_json()
        assert "vetting-required" in {t["code"] for t in order["meta"]["tag"]}


def test_replay_against_the_same_version_changes_nothing(client, auth_headers, angina):
    _post(client, auth_headers(), angina)
    guidance = client.get("/fhir/GuidanceResponse", headers=auth_headers()).get_json()
    gid = guidance["entry"][0]["resource"]["id"]
    replay = client.post(f"/fhir/GuidanceResponse/{gid}/$replay", headers=auth_headers())
    assert replay.status_code == 200
    params = {p["name"]: p for p in replay.get_json()["parameter"]}
    assert params["changed"]["valueBoolean"] is False


def test_replay_against_an_edited_pack_shows_the_difference(client, auth_headers, angina, db):
    from fhir.dates import now_utc
    from rules.engine import engine
    from rules.models import RulePackVersion
    from rules.packs import catalogue, parse_pack

    _post(client, auth_headers(), angina)
    gid = client.get("/fhir/GuidanceResponse", headers=auth_headers()).get_json()[
        "entry"][0]["resource"]["id"]
    shipped = engine().loaded
    import yaml
    data = yaml.safe_load(shipped.source)
    for rule in data["rules"]:
        for option in rule["outcome"].get("options", []):
            if option["procedure"] == "CTCA":
                option["appropriateness"] = 1
    edited = parse_pack(yaml.safe_dump(data), "edited.yaml", catalogue())
    db.add(RulePackVersion(version=edited.version, pack_id=edited.pack.id,
                           installed_at=now_utc(), source=edited.source))
    db.commit()
    body = {"resourceType": "Parameters",
            "parameter": [{"name": "packVersion", "valueString": edited.version}]}
    replay = client.post(f"/fhir/GuidanceResponse/{gid}/$replay", json=body,
                         headers=auth_headers()).get_json()
    params = {p["name"]: p for p in replay["parameter"]}
    assert params["changed"]["valueBoolean"] is True
    fields = {part["valueString"] for p in replay["parameter"] if p["name"] == "difference"
              for part in p["part"] if part["name"] == "field"}
    assert "chosen" in fields
    unknown = {"resourceType": "Parameters",
               "parameter": [{"name": "packVersion", "valueString": "nope"}]}
    assert client.post(f"/fhir/GuidanceResponse/{gid}/$replay", json=unknown,
                       headers=auth_headers()).status_code == 404


def test_code_systems_are_published(client, auth_headers):
    procedure = client.get("/fhir/CodeSystem/procedure", headers=auth_headers()).get_json()
    keys = {c["code"] for c in procedure["concept"]}
    assert {"XR-CHEST", "CTCA", "CT-CAC", "MR-WHOLE-SPINE", "US-DVT", "DEXA"} <= keys
    checks = client.get("/fhir/CodeSystem/safety-check", headers=auth_headers()).get_json()
    assert {c["code"] for c in checks["concept"]} == {
        "contrast-renal", "contrast-allergy", "pregnancy-radiation", "mri-implant",
        "duplicate-imaging", "paediatric-dose"}
    statement = client.get("/fhir/metadata").get_json()
    guidance = next(r for r in statement["rest"][0]["resource"]
                    if r["type"] == "GuidanceResponse")
    assert "replay" in {o["name"] for o in guidance["operation"]}


def _draft(body):
    return body["context"]["draftOrders"]["entry"][0]["resource"]


def _prefetch_add(key, resource):
    def mutate(body):
        body["prefetch"][key] = {"resourceType": "Bundle", "type": "searchset",
                                 "entry": [{"resource": resource}]}
    return mutate


def _set_in(getter, key, value):
    def mutate(body):
        getter(body)[key] = value
    return mutate


def _nest(depth):
    value: dict = {"url": "https://scanpath.example/x", "valueString": "deep"}
    for _ in range(depth):
        value = {"url": "https://scanpath.example/x", "extension": [value]}
    return value


MALFORMED_CDS = [
    pytest.param(_set_in(lambda b: b, "fhirAuthorization", "x"), id="fhirAuthorization-string"),
    pytest.param(_set_in(lambda b: b, "hookInstance", 5), id="hookInstance-number"),
    pytest.param(_set_in(lambda b: b["context"], "selections", 5), id="selections-number"),
    pytest.param(_set_in(lambda b: b["context"], "selections", [{}]), id="selections-objects"),
    pytest.param(_set_in(lambda b: b["context"], "patientId", 5), id="patientId-number"),
    pytest.param(_set_in(lambda b: b, "prefetch", [1]), id="prefetch-array"),
    pytest.param(_set_in(lambda b: b["prefetch"], "conditions", "x"), id="prefetch-key-string"),
    pytest.param(_set_in(lambda b: b, "context", 5), id="context-number"),
    pytest.param(_set_in(lambda b: b["context"]["draftOrders"], "entry", 5),
                 id="draftOrders-entry-number"),
    pytest.param(_set_in(lambda b: b["context"]["draftOrders"], "entry", [5]),
                 id="draftOrders-entry-item-number"),
    pytest.param(_set_in(_draft, "reasonCode", 5), id="reasonCode-number"),
    pytest.param(_set_in(_draft, "reasonCode", [5]), id="reasonCode-item-number"),
    pytest.param(_set_in(_draft, "subject", "x"), id="subject-string"),
    pytest.param(_set_in(_draft, "code", {"coding": 5}), id="coding-number"),
    pytest.param(_set_in(_draft, "code", {"coding": ["x"]}), id="coding-item-string"),
    pytest.param(_prefetch_add("observations", {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "98979-8"}]},
        "valueQuantity": "x"}), id="observation-valueQuantity-string"),
    pytest.param(_prefetch_add("allergies", {
        "resourceType": "AllergyIntolerance", "id": "a1",
        "patient": {"reference": "Patient/p"}, "reaction": [1]}),
        id="allergy-reaction-number"),
    pytest.param(_prefetch_add("imaging", {
        "resourceType": "ImagingStudy", "id": "i1", "status": "available",
        "subject": {"reference": "Patient/p"}, "modality": [1]}), id="imagingstudy-modality"),
    pytest.param(_prefetch_add("devices", {
        "resourceType": "Device", "id": "d1", "status": "active", "safety": {"coding": []}}),
        id="device-safety-object"),
    pytest.param(_set_in(_draft, "extension", [_nest(120)]), id="nested-too-deep"),
]


@pytest.mark.parametrize("mutate", MALFORMED_CDS)
def test_malformed_cds_requests_are_400_with_an_outcome(client, auth_headers, angina, mutate):
    body = copy.deepcopy(angina)
    mutate(body)
    response = _post(client, auth_headers(), body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("raw", [b"[" * 50000, b'{"a":' * 50000, b"5", b"[]"],
                         ids=["deep-arrays", "deep-objects", "number", "array"])
def test_unparseable_or_non_object_bodies_are_400(client, auth_headers, raw):
    for path in ("/cds-services/imaging-order-select",
                 "/cds-services/imaging-order-select/feedback"):
        response = client.post(path, data=raw, headers=auth_headers())
        assert response.status_code == 400
        assert response.get_json()["resourceType"] == "OperationOutcome"


def test_a_malformed_prefetched_resource_is_named(client, auth_headers, angina):
    body = copy.deepcopy(angina)
    _prefetch_add("observations", {"resourceType": "Observation", "id": "bad-egfr",
                                   "status": "final", "valueQuantity": "x"})(body)
    issue = _post(client, auth_headers(), body).get_json()["issue"][0]
    assert "Observation/bad-egfr" in issue["diagnostics"]
    assert "valueQuantity" in issue["diagnostics"]


@pytest.mark.parametrize("item", [
    {"overrideReason": "x"},
    {"overrideReason": {"reason": "x"}},
    {"overrideReason": {"userComment": 5}},
    {"card": 5},
    {"card": "c" * 65},
    {"acceptedSuggestions": "x"},
    {"outcomeTimestamp": 5},
], ids=["overrideReason-string", "reason-string", "comment-number", "card-number",
        "card-too-long", "acceptedSuggestions-string", "timestamp-number"])
def test_malformed_feedback_is_400(client, auth_headers, item):
    good = {"card": "6f1f3c2e-0000-4000-8000-000000000001", "outcome": "overridden",
            "outcomeTimestamp": "2026-11-23T10:00:00Z"}
    response = client.post("/cds-services/imaging-order-select/feedback",
                           json={"feedback": [{**good, **item}]}, headers=auth_headers())
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("parameters", [5, [{"name": "packVersion", "valueString": 5}]],
                         ids=["parameter-number", "packVersion-number"])
def test_malformed_replay_parameters_are_400(client, auth_headers, angina, parameters):
    _post(client, auth_headers(), angina)
    gid = client.get("/fhir/GuidanceResponse", headers=auth_headers()).get_json()[
        "entry"][0]["resource"]["id"]
    response = client.post(f"/fhir/GuidanceResponse/{gid}/$replay",
                           json={"resourceType": "Parameters", "parameter": parameters},
                           headers=auth_headers())
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_safety_findings_on_the_recommended_procedure_name_it(client, auth_headers):
    """NICE CG95: CTCA for angina, though the GP drafted an abdominal ultrasound; ACR-NKF
    2020: eGFR below 30 before iodinated contrast is a warning. The card says which
    procedure it is about, and the GuidanceResponse records it."""
    vignette = load(OURS / "angina-draft-us-abdo-egfr-25.json", today_utc())
    cards = _post(client, auth_headers(), vignette["request"]).get_json()["cards"]
    renal = [c for c in cards if (c["source"].get("topic") or {}).get("code") ==
             "contrast-renal"]
    assert [c["summary"][:len("For CTCA: eGFR 25")] for c in renal] == ["For CTCA: eGFR 25"]
    guidance = client.get("/fhir/GuidanceResponse", headers=auth_headers()).get_json()[
        "entry"][0]["resource"]
    safety = [p for p in guidance["contained"][0]["parameter"] if p["name"] == "safety"]
    assert [part["valueString"] for p in safety for part in p["part"]
            if part["name"] == "procedure"] == ["CTCA"]


@pytest.mark.parametrize(("case", "named", "element"), [
    ("angina-no-birth-date", "date of birth", "birthDate"),
    ("bloating-ca125-40-no-sex", "sex", "gender"),
    ("raised-psa-sex-unknown", "sex", "gender")])
def test_unknown_age_or_sex_asks_for_it(client, auth_headers, case, named, element):
    """CG95 (CTCA from 18), NG12 1.5 (women), NG131 (men): a rule that would outrank the
    rest but cannot be judged without the age or sex asks for it rather than falling
    through to a lower-priority "no imaging" rule."""
    vignette = load(OURS / f"{case}.json", today_utc())
    cards = _post(client, auth_headers(), vignette["request"]).get_json()["cards"]
    assert cards[0]["indicator"] == "info"
    assert named in cards[0]["summary"].lower()
    assert not any(s.get("isRecommended") for c in cards for s in c.get("suggestions", []))
    guidance = client.get("/fhir/GuidanceResponse", headers=auth_headers()).get_json()[
        "entry"][0]["resource"]
    assert guidance["status"] == "data-requested"
    assert [r.get("mustSupport") for r in guidance["dataRequirement"]] == [[element]]


def test_an_uncatalogued_ordered_code_is_kept_and_flagged(client, auth_headers):
    """BTA 2014: a thyroid nodule is assessed with ultrasound. The GP ordered an MRI of the
    neck, which is not in the catalogue: the order keeps its code as sent (no catalogue
    codings added) and radiology vets it, with ultrasound thyroid named in a note."""
    pid = client.post("/fhir/Patient", json=patient(birth_date="1975-01-01", gender="female"),
                      headers=auth_headers()).get_json()["id"]
    mri_neck = {"system": SCT, "code": "241615005", "display": "MRI of neck"}
    response = client.post("/fhir/ServiceRequest",
                           json=_gp_order(f"Patient/{pid}", ["237495005"], mri_neck),
                           headers=auth_headers())
    assert response.status_code == 201
    order = response.get_json()
    assert order["code"]["coding"] == [mri_neck]
    assert "vetting-required" in {t["code"] for t in order["meta"]["tag"]}
    notes = " ".join(n["text"] for n in order["note"])
    assert "241615005" in notes and "Ultrasound thyroid (US-THYROID)" in notes


def test_the_fhir_server_allow_list_setting_is_comma_separated(monkeypatch):
    from core.settings import Settings

    monkeypatch.setenv("SCANPATH_CDS_FHIR_SERVERS", "https://a.example/fhir, https://b.example/r4")
    assert Settings().cds_fhir_servers == ["https://a.example/fhir", "https://b.example/r4"]
    monkeypatch.delenv("SCANPATH_CDS_FHIR_SERVERS")
    assert Settings().cds_fhir_servers == []


@pytest.mark.parametrize("category", [None, "laboratory"])
def test_a_catalogue_procedure_is_imaging_whatever_its_category(client, auth_headers, category):
    """An order coded with CT calcium scoring (SNOMED 426005005, DICOM CID 3757) and no
    imaging category, or a wrong one, still gets a decision and its GuidanceResponse."""
    url = "urn:uuid:0b7c0000-0000-4000-8000-00000000000c"
    order = _gp_order(url, ["194828000"], {"system": SCT, "code": "426005005"})
    order.pop("category", None)
    if category:
        order["category"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": category}]}]
    bundle = transaction(post_entry(order),
                         post_entry(patient(birth_date="1968-01-01", gender="male"), url))
    body = client.post("/fhir", json=bundle, headers=auth_headers()).get_json()
    stored = body["entry"][0]["resource"]
    assert stored["supportingInfo"][0]["reference"].startswith("GuidanceResponse/")
    # CG95 2016 removed calcium scoring for chest pain: the order is kept, rated and flagged.
    assert any("better rated" in n["text"] for n in stored.get("note", []))


def test_numbers_too_long_for_int_are_400_not_500(client, auth_headers, angina):
    """Issue 9: a 5,000-digit integer (past Python's int() limit), NaN or a huge exponent."""
    text = json.dumps(angina)[:-1]
    for number in ("9" * 5000, "NaN", "1e999999999"):
        for path in ("/cds-services/imaging-order-select",
                     "/cds-services/imaging-order-select/feedback"):
            response = client.post(path, data=f'{text}, "n": {number}}}',
                                   headers=auth_headers())
            assert response.status_code == 400, (number, path, response.data[:200])
            assert response.get_json()["resourceType"] == "OperationOutcome"


def test_replay_of_a_client_written_guidance_response_is_422_not_500(client, auth_headers):
    """Issue 9: a GuidanceResponse is client-writable, so its saved context is input."""
    admin = auth_headers("demo-admin")
    made = client.post("/fhir/Patient", json=patient(), headers=admin).get_json()
    for saved in ("not json", '{"x": 1}', "[1]", "9" * 5000):
        guidance = {"resourceType": "GuidanceResponse", "status": "success",
                    "moduleUri": "https://scanpath.example/fhir/Library/rules/1",
                    "subject": {"reference": f"Patient/{made['id']}"},
                    "contained": [{"resourceType": "Parameters", "id": "c", "parameter": [
                        {"name": "context", "valueString": saved}]}]}
        written = client.post("/fhir/GuidanceResponse", json=guidance, headers=admin)
        assert written.status_code == 201, written.data
        response = client.post(f"/fhir/GuidanceResponse/{written.get_json()['id']}/$replay",
                               headers=admin)
        assert response.status_code == 422, (saved, response.data[:200])
        assert response.get_json()["resourceType"] == "OperationOutcome"
