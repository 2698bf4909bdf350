"""ScanPath access tokens: HS256 JWTs signed with the server's secret key (no Flask)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from auth.scopes import ScopeSet
from core.settings import Settings

ALGORITHM = "HS256"
# RFC 9068 §2.1: the "at+jwt" type keeps an access token from being mistaken
# for any other JWT the server signs with the same secret.
TOKEN_TYPE = "at+jwt"


@dataclass(frozen=True)
class Principal:
    """The client a request acts for and the scopes its token carries."""

    client_id: str
    scopes: ScopeSet
    revision: int = 1  # the client registration's revision when the token was issued


def mint_access_token(settings: Settings, client_id: str, scope: str, revision: int) -> str:
    """A signed access token (RFC 9068 JWT, HS256) for ``client_id`` carrying ``scope``
    and the client registration's ``revision`` (claim ``rev``)."""
    now = int(time.time())
    claims = {
        "iss": settings.token_issuer,
        "sub": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + settings.token_lifetime_seconds,
        "jti": uuid.uuid4().hex,
        "rev": revision,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM,
                      headers={"typ": TOKEN_TYPE})


def read_access_token(settings: Settings, token: str) -> Principal:
    """The principal of a valid access token; raises ``jwt.InvalidTokenError`` otherwise."""
    decoded = jwt.api_jwt.decode_complete(
        token, settings.secret_key, algorithms=[ALGORITHM], issuer=settings.token_issuer,
        options={"require": ["iss", "sub", "iat", "exp", "scope"]},
    )
    if decoded["header"].get("typ") != TOKEN_TYPE:
        raise jwt.InvalidTokenError("not a ScanPath access token")
    claims = decoded["payload"]
    if not isinstance(claims["scope"], str):
        raise jwt.InvalidTokenError("scope must be a string")
    revision = claims.get("rev", 1)
    if not isinstance(revision, int):
        raise jwt.InvalidTokenError("rev must be an integer")
    return Principal(claims["sub"], ScopeSet.parse(claims["scope"]), revision)
