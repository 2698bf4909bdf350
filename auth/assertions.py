"""Verifying a ``private_key_jwt`` client assertion against the client registry (no Flask).

The rules are those of SMART App Launch 2.x "Client Authentication: Asymmetric
(public key)" (client-confidential-asymmetric.html) and RFC 7523 §3. Every
failure is ``invalid_client``: "If an error is encountered during the
authentication process, the server SHALL respond with an invalid_client error".
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from auth.errors import InvalidClient
from auth.models import Client, UsedAssertion, utcnow

log = logging.getLogger(__name__)

# SMART: the client SHALL support RS384 and ES384; the server accepts exactly these.
ALGORITHMS = ("RS384", "ES384")
# SMART: exp "SHALL be no more than five minutes in the future".
MAX_LIFETIME_SECONDS = 300
# Tolerated clock difference between client and server.
CLOCK_SKEW_SECONDS = 30
MAX_JTI_LENGTH = 255


def verify_client_assertion(session: Session, assertion: str, audience: str) -> Client:
    """The active client that signed ``assertion`` for ``audience``.

    The assertion's ``jti`` is recorded in ``session`` (flushed, not committed)
    so that it cannot be used again; the caller commits once it has issued a token.
    """
    header, unverified = _unverified_parts(assertion)
    client = _issuing_client(session, unverified.get("iss"))
    key = _signing_key(client, header)
    claims = _verified_claims(assertion, key, client.client_id, audience)
    _record_jti(session, client.client_id, claims)
    return client


def _unverified_parts(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, read before the signature is checked to find the key."""
    try:
        decoded = jwt.api_jwt.decode_complete(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise InvalidClient(f"client_assertion is not a valid JWT: {error}") from error
    header: dict[str, Any] = decoded["header"]
    if header.get("alg") not in ALGORITHMS:
        raise InvalidClient(f"client_assertion alg must be one of {', '.join(ALGORITHMS)}")
    if not isinstance(header.get("kid"), str):
        raise InvalidClient("client_assertion header must name its key in kid")
    return header, decoded["payload"]


def _issuing_client(session: Session, client_id: object) -> Client:
    """The registered, active client named by the assertion's ``iss``."""
    client = session.get(Client, client_id) if isinstance(client_id, str) else None
    if client is None or not client.active:
        log.info("client assertion from unknown client", extra={"client_id": str(client_id)})
        raise InvalidClient("client is not registered or not active")
    return client


def _signing_key(client: Client, header: dict[str, Any]) -> jwt.PyJWK:
    """The client's registered key with the header's ``kid``, bound to the header's ``alg``.

    Keys come from the registered JWKS, or from the client's ``jwks_uri``
    (PyJWT's ``PyJWKClient``, cached, with a timeout).
    """
    kid, alg = header["kid"], header["alg"]
    for jwk in _published_keys(client, kid):
        if jwk.get("kid") != kid:
            continue
        if jwk.get("alg", alg) != alg:
            raise InvalidClient(f"key {kid!r} is registered for {jwk['alg']}, not {alg}")
        try:
            return jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError as error:
            raise InvalidClient(f"key {kid!r} cannot verify {alg}: {error}") from error
    raise InvalidClient(f"client has no registered key with kid {kid!r}")


JWKS_TIMEOUT_SECONDS = 5
JWKS_CACHE_SECONDS = 300
_JWKS_CACHE: dict[str, tuple[float, list[dict[str, Any]]]] = {}


def _published_keys(client: Client, kid: str) -> list[dict[str, Any]]:
    """The client's public keys: registered, or read from its ``jwks_uri`` (PyJWT's
    ``PyJWKClient`` does the request), kept five minutes and read again for a new kid."""
    if not client.jwks_uri:
        keys: list[dict[str, Any]] = json.loads(client.jwks).get("keys", [])
        return keys
    fetched_at, cached = _JWKS_CACHE.get(client.jwks_uri, (0.0, []))
    fresh = time.monotonic() - fetched_at < JWKS_CACHE_SECONDS
    if fresh and any(k.get("kid") == kid for k in cached):
        return cached
    try:
        data = jwt.PyJWKClient(client.jwks_uri, timeout=JWKS_TIMEOUT_SECONDS).fetch_data()
    except jwt.PyJWKClientError as error:
        raise InvalidClient(f"the client's JWKS at {client.jwks_uri} cannot be read: "
                            f"{error}") from error
    keys = [k for k in data.get("keys", []) if isinstance(k, dict)] \
        if isinstance(data, dict) else []
    _JWKS_CACHE[client.jwks_uri] = (time.monotonic(), keys)
    return keys


def _verified_claims(assertion: str, key: jwt.PyJWK, client_id: str,
                     audience: str) -> dict[str, Any]:
    """The claims, once signature, iss, sub, aud and exp have been checked."""
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion, key, algorithms=[key.algorithm_name], audience=audience,
            issuer=client_id, subject=client_id, leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.PyJWTError as error:
        raise InvalidClient(f"client_assertion rejected: {error}") from error
    if claims["exp"] > time.time() + MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
        raise InvalidClient("client_assertion exp is more than five minutes ahead")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise InvalidClient(f"client_assertion jti must be a string of 1-{MAX_JTI_LENGTH} chars")
    return claims


def _record_jti(session: Session, client_id: str, claims: dict[str, Any]) -> None:
    """Remember the assertion's ``jti`` until it expires; refuse one seen before (RFC 7523 §3)."""
    session.exec(delete(UsedAssertion).where(col(UsedAssertion.expires_at) < utcnow()))
    expires = datetime.fromtimestamp(claims["exp"] + CLOCK_SKEW_SECONDS, UTC)
    used = UsedAssertion(jti=claims["jti"], client_id=client_id, expires_at=expires)
    try:
        # A savepoint, so a concurrent duplicate only undoes this insert.
        with session.begin_nested():
            session.add(used)
    except IntegrityError as error:
        log.warning("client assertion replayed", extra={"client_id": client_id})
        raise InvalidClient("client_assertion jti has already been used") from error


def verify_cds_client_jwt(session: Session, token: str, audience: str) -> Client:
    """The registered client that signed a CDS Hooks request JWT for ``audience``.

    CDS Hooks 2.0 "Trusting CDS Clients": ``sub`` is the client id, ``iss``
    the issuer's URI (which may differ from the client id), ``aud`` the
    service endpoint; ``exp``, ``iat`` and ``jti`` are required. Keys and
    replay protection are those of the token endpoint.
    """
    header, unverified = _unverified_parts(token)
    client = _issuing_client(session, unverified.get("sub") or unverified.get("iss"))
    key = _signing_key(client, header)
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[key.algorithm_name], audience=audience,
            leeway=CLOCK_SKEW_SECONDS, options={"require": ["iss", "aud", "exp", "iat", "jti"]})
    except jwt.PyJWTError as error:
        raise InvalidClient(f"CDS Hooks JWT rejected: {error}") from error
    if claims["exp"] > time.time() + MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
        raise InvalidClient("CDS Hooks JWT exp is more than five minutes ahead")
    _record_jti(session, client.client_id, claims)
    return client
