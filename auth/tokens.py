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


def mint_access_token(settings: Settings, client_id: str, scope: str) -> str:
    """A signed access token for ``client_id`` carrying ``scope``."""
    now = int(time.time())
    claims = {
        "iss": settings.token_issuer,
        "sub": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + settings.token_lifetime_seconds,
        "jti": uuid.uuid4().hex,
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
    return Principal(claims["sub"], ScopeSet.parse(claims["scope"]))
