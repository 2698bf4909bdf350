"""SMART discovery and the OAuth 2.0 token endpoint (client_credentials + private_key_jwt)."""

from __future__ import annotations

import logging

import jwt
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from auth.assertions import ALGORITHMS, verify_client_assertion
from auth.errors import InvalidRequest, InvalidScope, OAuthError, UnsupportedGrantType
from auth.scopes import SCOPES_SUPPORTED, ScopeSet
from auth.signals import token_issued, token_refused
from auth.tokens import mint_access_token
from core.web import app_settings, db

log = logging.getLogger(__name__)

blueprint = Blueprint("auth", __name__)

TOKEN_PATH = "/auth/token"
GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# RFC 6749 §5.1: token responses and their errors must never be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_endpoint() -> str:
    """This server's public token URL (the assertion ``aud``): SCANPATH_PUBLIC_BASE_URL and
    a fixed path, nothing from the request (Host, X-Forwarded-*, SCRIPT_NAME)."""
    return app_settings().public_url + TOKEN_PATH


@blueprint.get("/.well-known/smart-configuration")
def smart_configuration() -> Response:
    """The SMART discovery document (SMART App Launch 2.x "Conformance")."""
    return jsonify({
        "token_endpoint": token_endpoint(),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "grant_types_supported": [GRANT_TYPE],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": ["client-confidential-asymmetric", "permission-v2"],
    })


@blueprint.post(TOKEN_PATH)
def token() -> Response:
    """Exchange a signed client assertion for an access token (SMART Backend Services)."""
    form = _token_form()
    session = db()
    client = verify_client_assertion(session, form["client_assertion"], token_endpoint())
    granted = ScopeSet.parse(form["scope"]).granted_by(ScopeSet.parse(client.scopes))
    if not granted:
        raise InvalidScope("none of the requested scopes is registered for this client")
    settings = app_settings()
    access_token = mint_access_token(settings, client.client_id, str(granted),
                                     client.revision)
    token_issued.send(_app(), client_id=client.client_id,
                      scope=str(granted))
    session.commit()
    log.info("access token issued", extra={"client_id": client.client_id, "scope": str(granted)})
    return _no_store(jsonify({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": settings.token_lifetime_seconds,
        "scope": str(granted),
    }))


def _token_form() -> dict[str, str]:
    """The token request's parameters, checked in RFC 6749 §4.4.2 / RFC 7523 §2.2 order."""
    for name in request.form:
        if len(request.form.getlist(name)) > 1:  # RFC 6749 §3.2: no repeated parameters
            raise InvalidRequest(f"parameter {name} is repeated")
    form = {name: request.form.get(name, "").strip()
            for name in ("grant_type", "client_assertion_type", "client_assertion", "scope")}
    if not form["grant_type"]:
        raise InvalidRequest("grant_type is required")
    if form["grant_type"] != GRANT_TYPE:
        raise UnsupportedGrantType(f"grant_type must be {GRANT_TYPE}")
    if form["client_assertion_type"] != ASSERTION_TYPE:
        raise InvalidRequest(f"client_assertion_type must be {ASSERTION_TYPE}")
    if not form["client_assertion"]:
        raise InvalidRequest("client_assertion is required")
    if not form["scope"]:  # RFC 6749 §3.3: no default scope, so fail as invalid_scope
        raise InvalidScope("scope is required")
    return form


@blueprint.errorhandler(OAuthError)
def _oauth_error(error: OAuthError) -> Response:
    log.info("token request refused", extra={"error": error.error,
                                              "error_description": error.description})
    db().rollback()
    token_refused.send(_app(), claimed_client=_claimed_client(),
                       error=error.error, description=error.description)
    response = _no_store(jsonify(error.body()))
    response.status_code = error.status
    return response


def _app() -> Flask:
    """The application itself, not its proxy: signal senders are matched by identity."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return app


def _claimed_client() -> str | None:
    """The issuer an assertion names, unverified (for the audit of a refusal only)."""
    try:
        claimed = jwt.decode(request.form.get("client_assertion", ""),
                             options={"verify_signature": False}).get("iss")
    except (jwt.PyJWTError, HTTPException):
        return None
    return claimed[:128] if isinstance(claimed, str) else None


def _no_store(response: Response) -> Response:
    response.headers.update(NO_STORE)
    return response
