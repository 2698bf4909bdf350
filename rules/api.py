"""CDS Hooks endpoints (CONTRACT §4, https://cds-hooks.hl7.org/2.0/) and ``$replay``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request

from auth.assertions import verify_cds_client_jwt
from auth.errors import OAuthError
from auth.guard import require
from core import fhirjson
from core.errors import (
    BadRequest,
    MalformedJson,
    NotFound,
    PreconditionFailed,
    Unauthorized,
    Unprocessable,
)
from core.web import app_settings, db
from fhir import audit
from fhir.dates import now_utc
from fhir.registry import register_operation
from fhir.store import Store
from rules import service
from rules.cards import build_cards
from rules.cds_input import (
    MAX_JSON_DEPTH,
    CdsRequest,
    OrderContext,
    cds_request,
    feedback_item,
    malformed_as_400,
    too_deep,
)
from rules.context import PatientContext, build_context, today_utc
from rules.engine import Decision, engine
from rules.guidance import stored_context
from rules.models import CdsFeedback

bp = Blueprint("cds", __name__, url_prefix="/cds-services")
REPLAY = "https://scanpath.example/fhir/OperationDefinition/GuidanceResponse-replay"  # local
_PREFETCH = {"patient": "Patient/{{context.patientId}}",
             "conditions": "Condition?patient={{context.patientId}}",
             "observations": "Observation?patient={{context.patientId}}",
             "allergies": "AllergyIntolerance?patient={{context.patientId}}",
             "devices": "Device?patient={{context.patientId}}",
             "imaging": "ImagingStudy?patient={{context.patientId}}"}
SERVICES = {
    "imaging-order-select": {
        "hook": "order-select", "title": "ScanPath imaging advice",
        "description": "Chooses the most suitable imaging test for the draft order's reasons, "
                       "or says none is indicated or that this is an emergency; checks safety.",
    },
    "imaging-order-sign": {
        "hook": "order-sign", "title": "ScanPath imaging order check",
        "description": "Rates the imaging order being signed and runs the safety checks.",
    },
}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_operation("GuidanceResponse", "replay", REPLAY,
                       lambda call: replay(call.store, call.resource_id, call.body))


def _store() -> Store:
    return Store(db(), app_settings())


@bp.get("")
def discovery() -> Response:
    """The services; discovery holds no patient data and is open, as CDS Hooks expects."""
    services = [{"id": sid, **meta, "prefetch": _PREFETCH} for sid, meta in SERVICES.items()]
    return jsonify(services=services)


@bp.before_request
def _start_audit() -> None:
    if request.method == "POST":
        g.cds_interaction = audit.Interaction("operation", "GuidanceResponse", "anonymous",
                                              request.remote_addr)


@bp.after_request
def _audit_failure(response: Response) -> Response:
    """A refused or failed call or feedback is audited too, after its changes were rolled
    back (unauthenticated ones bounded per address, as ``audit.record`` says)."""
    what = g.get("cds_interaction")
    if what is None or response.status_code < 400:
        return response
    audit.record_failure(_store(), what, response.status_code,
                         f"CDS Hooks {request.path}: HTTP {response.status_code}")
    return response


def _caller() -> str:
    """The client id of a ScanPath access token or of a CDS Hooks client JWT.

    A client JWT's ``jti`` is recorded and committed here, in its own short
    transaction, so that no database write lock is held while the request
    later reads from the CDS client's FHIR server. The id is kept for the audit.
    """
    g.cds_interaction.client_id = client_id = _verified_caller()
    return client_id


def _verified_caller() -> str:
    try:
        return require("ServiceRequest", "operation").client_id
    except Unauthorized as unauthorized:
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        if not token:
            raise
        session = db()
        try:
            audience = app_settings().public_url + request.path  # not the Host header
            client = verify_cds_client_jwt(session, token, audience)
        except OAuthError as error:
            session.rollback()
            raise unauthorized from error
        session.commit()
        return client.client_id


def _service(service_id: str) -> dict[str, Any]:
    found = SERVICES.get(service_id)
    if found is None:
        raise NotFound(f"No CDS service '{service_id}'")
    return found


def _json_body() -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"null", parse_int=fhirjson.parse_integer,
                          parse_float=_finite_float, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, NumberTooLarge
        raise MalformedJson(f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedJson(f"The body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    if too_deep(body):
        raise MalformedJson(f"The body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(body, dict):
        raise BadRequest("The body must be a CDS Hooks request object")
    where = fhirjson.control_character_at(body)
    if where is not None:
        raise BadRequest("A string holds a control character (below U+0020, not tab, CR "
                         "or LF)", [where])
    return body


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, within the bounds of FHIR JSON."""
    return float(fhirjson.parse_decimal(text))


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON (RFC 8259 §6)")


@bp.post("/<service_id>")
def call(service_id: str) -> Response:
    meta = _service(service_id)
    who = audit.Interaction("operation", "GuidanceResponse", _caller(), request.remote_addr)
    cds = cds_request(_json_body(), service_id, meta["hook"])
    # Everything that may wait on the network (fhirServer) or on the engine comes
    # first; the database is written last, in one short transaction.
    advised = [_advise(order, ctx) for order, ctx in _contexts(cds, meta["hook"])]
    store = _store()
    cards: list[dict[str, Any]] = []
    for ctx, decision, found in advised:
        guidance = service.record(store, decision, ctx, [c["uuid"] for c in found],
                                  cds.fhir_server)
        who.entities.append(f"GuidanceResponse/{guidance['id']}")
        cards += found
    audit.record(store, who)
    store.session.commit()
    return jsonify(cards=cards)


def _contexts(cds: CdsRequest, hook: str) -> list[tuple[dict[str, Any], PatientContext]]:
    """Each draft order with its patient context (read from prefetch or fhirServer)."""
    if cds.prefetch is None and not cds.fhir_server:
        raise PreconditionFailed("Send prefetch or fhirServer so the patient's history can be "
                                 "read (CDS Hooks 2.0 §prefetch)", ["prefetch"])
    orders = _orders(cds.context, hook)
    auth = cds.fhir_authorization
    with malformed_as_400():
        history = service.prefetched_resources(
            cds.prefetch or {}, cds.fhir_server, auth.access_token if auth else None,
            cds.context.patient_id, app_settings().cds_fhir_servers)
    with malformed_as_400():  # the error names the order or resource
        today = today_utc()
        return [(order, build_context(order, history.resources, today, history.unknown))
                for order in orders]


def _orders(context: OrderContext, hook: str) -> list[dict[str, Any]]:
    with malformed_as_400("context.draftOrders"):
        draft = service.bundle_resources(context.draft_orders)
    orders = [r for r in draft if r.get("resourceType") == "ServiceRequest"]
    if hook == "order-select" and context.selections:
        chosen = set(context.selections)
        orders = [o for o in orders if f"ServiceRequest/{o.get('id')}" in chosen] or orders
    if not orders:
        raise BadRequest("context.draftOrders must hold a ServiceRequest",
                         ["context.draftOrders"])
    return orders


def _advise(order: dict[str, Any],
            ctx: PatientContext) -> tuple[PatientContext, Decision, list[dict[str, Any]]]:
    decision = service.decide(ctx)
    return ctx, decision, build_cards(decision, order, app_settings().canonical_base)


@bp.post("/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    _service(service_id)
    client_id = _caller()
    items = _json_body().get("feedback")
    if not isinstance(items, list) or not items:
        raise BadRequest("feedback must be a non-empty list", ["feedback"])
    session = db()
    for index, item in enumerate(items):
        session.add(_feedback_row(service_id, client_id, item, index))
    who = audit.Interaction("operation", "GuidanceResponse", client_id, request.remote_addr)
    audit.record(_store(), who, description=f"CDS Hooks feedback on {service_id}: "
                 f"{len(items)} card outcome(s) recorded")
    session.commit()
    return jsonify({})


def _feedback_row(service_id: str, client_id: str, raw: Any, index: int) -> CdsFeedback:
    item = feedback_item(raw, index)
    try:
        when = datetime.fromisoformat(item.outcome_timestamp.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest("outcomeTimestamp must be an ISO 8601 instant",
                         [f"feedback[{index}].outcomeTimestamp"]) from exc
    override = item.override_reason
    return CdsFeedback(service_id=service_id, card=item.card, outcome=item.outcome,
                       accepted_suggestions=json.dumps(item.accepted_suggestions),
                       override_reason=override.reason.code if override and override.reason
                       else None,
                       comment=override.user_comment if override else None,
                       outcome_timestamp=when if when.tzinfo else now_utc(),
                       client_id=client_id, received_at=now_utc())


def replay(store: Store, guidance_id: str, body: Any) -> dict[str, Any]:
    """Run a stored decision again with another pack version and show what changed."""
    guidance = store.read("GuidanceResponse", guidance_id)
    # A GuidanceResponse may have been written by a client: its saved context and
    # module are input like any other, and one that cannot be read is a 422.
    try:
        ctx = stored_context(guidance)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unprocessable("This GuidanceResponse's saved context cannot be read") from exc
    module = guidance.get("moduleUri")
    if ctx is None or not isinstance(module, str):
        raise Unprocessable("This GuidanceResponse holds no replayable context")
    before_version = module.rsplit("/", 1)[-1]
    before = engine(loaded=service.pack_version(store.session, before_version)).decide(ctx)
    wanted = _requested_version(body)
    after = engine(loaded=service.pack_version(store.session, wanted)).decide(ctx)
    return _replay_parameters(before, after)


def _requested_version(body: Any) -> str | None:
    """``packVersion`` from a Parameters body; the shipped version when absent."""
    if body is None:
        return None
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("$replay takes a Parameters resource", ["Parameters"])
    params = body.get("parameter", [])
    if not isinstance(params, list):
        raise BadRequest("Parameters.parameter must be a list", ["Parameters.parameter"])
    for param in params:
        if isinstance(param, dict) and param.get("name") == "packVersion":
            version = param.get("valueString")
            if not isinstance(version, str):
                raise BadRequest("packVersion needs a valueString", ["Parameters.parameter"])
            return version
    return None


def _replay_parameters(before: Decision, after: Decision) -> dict[str, Any]:
    old, new = before.digest(), after.digest()
    changes = [{"name": "difference", "part": [
        {"name": "field", "valueString": key},
        {"name": "before", "valueString": json.dumps(old[key])},
        {"name": "after", "valueString": json.dumps(new[key])}]}
        for key in old if old[key] != new[key]]
    return {"resourceType": "Parameters", "parameter": [
        {"name": "beforeVersion", "valueString": before.pack_version},
        {"name": "afterVersion", "valueString": after.pack_version},
        {"name": "beforeOutcome", "valueCode": before.outcome},
        {"name": "afterOutcome", "valueCode": after.outcome},
        {"name": "changed", "valueBoolean": bool(changes)}, *changes]}
