"""The demo clients, their key pairs, and the client side of the token exchange.

``seed_demo_clients`` registers ``demo-gp``, ``demo-radiology`` and
``demo-admin``, keeping each private key as PEM under ``var/keys/``.
``client_assertion`` builds what a client posts to the token endpoint (tests,
the CLI and the benchmarks use it); ``issue_token_for`` backs ``scanpath token``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlmodel import Session, col, select

from auth.errors import InvalidClient
from auth.models import Client
from auth.scopes import ScopeSet
from auth.tokens import mint_access_token
from core.files import read_or_create_private
from core.settings import Settings

log = logging.getLogger(__name__)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# RFC 7638 §3.2: the members of each key type that a thumbprint covers.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


@dataclass(frozen=True)
class DemoClient:
    """A client seeded for demonstration and tests."""

    client_id: str
    name: str
    algorithm: str
    scopes: str


DEMO_CLIENTS = (
    DemoClient("demo-gp", "Demo GP clinical system", "ES384", " ".join([
        "system/Patient.cruds", "system/Practitioner.rs", "system/PractitionerRole.rs",
        "system/Organization.rs", "system/Condition.cruds", "system/Observation.cruds",
        "system/AllergyIntolerance.cruds", "system/Device.cruds",
        "system/ServiceRequest.cruds", "system/Task.rs", "system/ImagingStudy.rs",
        "system/DiagnosticReport.rs", "system/DocumentReference.rus", "system/Binary.r",
        "system/GuidanceResponse.rs", "system/Provenance.crs", "system/CodeSystem.rs",
        "system/Media.rs", "system/Subscription.cruds",
    ])),
    DemoClient("demo-radiology", "Demo radiology information system", "RS384", " ".join([
        "system/Patient.rs", "system/Practitioner.rs", "system/PractitionerRole.rs",
        "system/Organization.rs", "system/Condition.rs", "system/Observation.cruds",
        "system/AllergyIntolerance.rs", "system/Device.rs", "system/ServiceRequest.rus",
        "system/Task.cruds", "system/ImagingStudy.cruds", "system/DiagnosticReport.cruds",
        "system/DocumentReference.cruds", "system/Binary.cr", "system/GuidanceResponse.rs",
        "system/Provenance.crs", "system/CodeSystem.rs", "system/Media.cruds",
    ])),
    DemoClient("demo-admin", "Demo administrator", "ES384", "system/*.cruds"),
)


def key_path(settings: Settings, client_id: str) -> Path:
    """Where a demo client's private key is kept."""
    return settings.var_dir / "keys" / f"{client_id}.pem"


def seed_demo_clients(session: Session, settings: Settings) -> None:
    """Register the demo clients, creating their keys on first use; the caller commits."""
    for demo in DEMO_CLIENTS:
        pem = read_or_create_private(key_path(settings, demo.client_id),
                                    partial(_new_private_key_pem, demo.algorithm))
        _register(session, demo, json.dumps({"keys": [public_jwk(load_private_key(pem))]}))
    session.flush()


def _register(session: Session, demo: DemoClient, jwks: str) -> None:
    """Add ``demo`` or bring its row up to date; whether it is active stays as it was."""
    client = session.get(Client, demo.client_id)
    if client is None:
        session.add(Client(client_id=demo.client_id, name=demo.name, jwks=jwks,
                           scopes=demo.scopes))
        log.info("demo client registered", extra={"client_id": demo.client_id})
        return
    if (client.name, client.jwks, client.scopes) != (demo.name, jwks, demo.scopes):
        client.name, client.jwks, client.scopes = demo.name, jwks, demo.scopes
        client.revision += 1  # tokens issued under the old keys or scopes stop


def _new_private_key_pem(algorithm: str) -> bytes:
    key: PrivateKey
    if algorithm == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif algorithm == "RS384":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"no key type for {algorithm}")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key(pem: str | bytes) -> PrivateKey:
    """The EC P-384 or RSA private key in ``pem``."""
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, None)
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise ValueError(f"unsupported private key type {type(key).__name__}")


def signing_algorithm(key: PrivateKey) -> str:
    """RS384 for RSA keys, ES384 for P-384 keys (the two SMART requires)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS384"
    if key.curve.name == "secp384r1":
        return "ES384"
    raise ValueError(f"EC curve {key.curve.name} has no SMART algorithm; use P-384")


def public_jwk(key: PrivateKey) -> dict[str, Any]:
    """The public half of ``key`` as a JWK, with ``kid`` its RFC 7638 thumbprint."""
    alg = signing_algorithm(key)
    jwk: dict[str, Any] = jwt.algorithms.get_default_algorithms()[alg].to_jwk(
        key.public_key(), as_dict=True)
    return {**jwk, "kid": jwk_thumbprint(jwk), "alg": alg, "use": "sig"}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public EC or RSA JWK."""
    required = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def client_assertion(client_id: str, private_key_pem: str | bytes, token_url: str, *,
                     lifetime_seconds: int = 300, jti: str | None = None) -> str:
    """The signed ``client_assertion`` a client posts to ``token_url``.

    Parameters
    ----------
    lifetime_seconds
        Seconds until ``exp``; SMART allows at most 300. Negative values make
        an already expired assertion, for tests.
    jti
        The assertion id; a fresh random one when omitted.
    """
    key = load_private_key(private_key_pem)
    jwk = public_jwk(key)
    claims = {"iss": client_id, "sub": client_id, "aud": token_url,
              "exp": int(time.time()) + lifetime_seconds, "jti": jti or uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=jwk["alg"], headers={"kid": jwk["kid"]})


def issue_token_for(session: Session, settings: Settings, client_id: str) -> str:
    """An access token carrying every scope registered for ``client_id`` (``scanpath token``)."""
    client = session.get(Client, client_id)
    if client is None or not client.active:
        raise InvalidClient(f"no active client is registered as {client_id!r}")
    return mint_access_token(settings, client.client_id, str(ScopeSet.parse(client.scopes)),
                             client.revision)


class ClientRegistrationError(ValueError):
    """A client that cannot be registered as asked; the message says why."""


def register_client(session: Session, client_id: str, name: str, scopes: str, *,
                    jwks: dict[str, Any] | None = None, jwks_uri: str | None = None,
                    replace: bool = False) -> Client:
    """Register a backend client with its keys or its JWKS URL; the caller commits.

    SMART Backend Services: public keys only, RS384 or ES384. An id already registered
    is refused unless ``replace``: then its name, keys and scopes are replaced, it stays
    active or disabled as it was, and tokens issued before stop working.
    Raises ``ClientRegistrationError`` saying what is wrong."""
    if (jwks is None) == (jwks_uri is None):
        raise ClientRegistrationError("give the client's keys as a JWKS file or a JWKS URL")
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", client_id):
        raise ClientRegistrationError(f"client id {client_id!r} must be 1-128 of A-Z a-z "
                                      "0-9 . _ : -")
    granted = ScopeSet.parse(scopes)
    if not str(granted):
        raise ClientRegistrationError(f"no SMART system scope in {scopes!r}")
    if jwks_uri is not None and not jwks_uri.startswith(("https://", "http://127.0.0.1",
                                                         "http://localhost")):
        raise ClientRegistrationError("a JWKS URL must be https (or on this machine)")
    keys = _checked_keys(jwks) if jwks is not None else []
    client = session.get(Client, client_id)
    if client is not None and not replace:
        raise ClientRegistrationError(
            f"a client is already registered as {client_id!r}; add --replace to replace "
            "its name, keys and scopes (its tokens then stop working)")
    if client is None:
        client = Client(client_id=client_id, name=name, jwks="", scopes="")
    else:
        client.revision += 1
    client.name, client.scopes, client.jwks_uri = name, str(granted), jwks_uri
    client.jwks = json.dumps({"keys": keys})
    session.add(client)
    session.flush()
    return client


def _checked_keys(jwks: dict[str, Any]) -> list[dict[str, Any]]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ClientRegistrationError("the JWKS must hold a non-empty 'keys' list")
    for key in keys:
        if not isinstance(key, dict) or "d" in key:
            raise ClientRegistrationError("the JWKS must hold public keys only")
        if not isinstance(key.get("kid"), str) or key.get("alg") not in ("RS384", "ES384"):
            raise ClientRegistrationError("each key needs a kid and alg RS384 or ES384")
        try:
            jwt.PyJWK(key, algorithm=key["alg"])
        except jwt.PyJWTError as error:
            raise ClientRegistrationError(f"key {key['kid']!r} is not usable: {error}") \
                from error
    return keys


def disable_demo_clients(session: Session) -> list[str]:
    """Disable every demo client still active (a database first seeded in development,
    now run in test or production); their ids. Their keys are public knowledge."""
    active = [demo.client_id for demo in DEMO_CLIENTS
              if (client := session.get(Client, demo.client_id)) is not None and client.active]
    for client_id in active:
        set_active(session, client_id, False)
    return active


def set_active(session: Session, client_id: str, active: bool) -> Client:
    """Enable or disable a client. Tokens issued before stop working at once, and stay
    stopped when the client is enabled again: it asks for new ones."""
    client = session.get(Client, client_id)
    if client is None:
        raise ClientRegistrationError(f"no client is registered as {client_id!r}")
    if client.active != active:
        client.active, client.revision = active, client.revision + 1
    session.add(client)
    session.flush()
    return client


def all_clients(session: Session) -> list[Client]:
    return list(session.exec(select(Client).order_by(col(Client.client_id))).all())
