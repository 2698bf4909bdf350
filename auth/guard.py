"""Bearer token checks for the blueprints that serve data (RFC 6750).

``require(resource_type, interaction)`` is the one call a handler makes; it
raises ``core.errors.Unauthorized`` (401) or ``core.errors.Forbidden`` (403),
which the single error path turns into an OperationOutcome.
"""

from __future__ import annotations

import logging

import jwt
from flask import g, request
from sqlmodel import Session

from auth.models import Client
from auth.scopes import scope_needed
from auth.tokens import Principal, read_access_token
from core.db import engine_for
from core.errors import Forbidden, Unauthorized
from core.web import app_settings

__all__ = ["Principal", "current_principal", "require"]

log = logging.getLogger(__name__)

REALM = 'Bearer realm="scanpath"'


def current_principal() -> Principal:
    """The client the request's bearer token names, verified once per request."""
    if "principal" not in g:
        g.principal = _authenticate(request.headers.get("Authorization", ""))
    principal: Principal = g.principal
    return principal


def require(resource_type: str, interaction: str) -> Principal:
    """The request's principal, if its scopes allow ``interaction`` on ``resource_type``."""
    principal = current_principal()
    if principal.scopes.allows(resource_type, interaction):
        return principal
    needed = scope_needed(resource_type, interaction)
    log.info("scope does not cover request", extra={"client_id": principal.client_id,
                                                    "scope_needed": needed})
    error = Forbidden(f"The access token does not allow {interaction} on {resource_type}; "
                      f"it needs the scope {needed}")
    # RFC 6750 §3.1: insufficient_scope, naming the scope that would do.
    error.headers["WWW-Authenticate"] = f'{REALM}, error="insufficient_scope", scope="{needed}"'
    raise error


def _authenticate(authorization: str) -> Principal:
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("A bearer access token is required", invalid=False)
    try:
        principal = read_access_token(app_settings(), token)
    except jwt.PyJWTError as error:
        raise _unauthorized(f"The access token is not valid: {error}", invalid=True) from error
    if not _current(principal):  # disabled or replaced: its tokens stop at once
        raise _unauthorized(f"Client {principal.client_id} is not active, or its "
                            "registration changed since the token was issued", invalid=True)
    return principal


def _current(principal: Principal) -> bool:
    """Whether the client is active and registered as when the token was issued, read in
    a session of its own so that the request's session holds no transaction (SQLite
    would keep its write lock)."""
    with Session(engine_for(app_settings().database_url)) as session:
        client = session.get(Client, principal.client_id)
        return client is not None and client.active and client.revision == principal.revision


def _unauthorized(diagnostics: str, invalid: bool) -> Unauthorized:
    error = Unauthorized(diagnostics)
    # RFC 6750 §3.1: no error code when no credentials were sent at all.
    error.headers["WWW-Authenticate"] = f'{REALM}, error="invalid_token"' if invalid else REALM
    return error
