"""Demo client seeding, key files and the CLI token helper."""

from __future__ import annotations

import json
import stat

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlmodel import select

from auth.clients import (
    issue_token_for,
    jwk_thumbprint,
    key_path,
    load_private_key,
    public_jwk,
    seed_demo_clients,
)
from auth.errors import InvalidClient
from auth.models import Client

# The registrations the brief asks for, written out independently of the code.
EXPECTED_SCOPES = {
    "demo-gp": "system/Patient.cruds system/Practitioner.rs system/PractitionerRole.rs "
               "system/Organization.rs system/Condition.cruds system/Observation.cruds "
               "system/AllergyIntolerance.cruds system/Device.cruds system/ServiceRequest.cruds "
               "system/Task.rs system/ImagingStudy.rs system/DiagnosticReport.rs "
               "system/DocumentReference.rus system/Binary.r system/GuidanceResponse.rs "
               "system/Provenance.crs system/CodeSystem.rs system/Media.rs "
               "system/Subscription.cruds",
    "demo-radiology": "system/Patient.rs system/Practitioner.rs system/PractitionerRole.rs "
                      "system/Organization.rs system/Condition.rs system/Observation.cruds "
                      "system/AllergyIntolerance.rs system/Device.rs system/ServiceRequest.rus "
                      "system/Task.cruds system/ImagingStudy.cruds system/DiagnosticReport.cruds "
                      "system/DocumentReference.cruds system/Binary.cr "
                      "system/GuidanceResponse.rs system/Provenance.crs system/CodeSystem.rs "
                      "system/Media.cruds",
    "demo-admin": "system/*.cruds",
}


def test_demo_clients_are_registered_with_their_scopes(db):
    clients = {c.client_id: c for c in db.exec(select(Client)).all()}

    assert {cid: c.scopes for cid, c in clients.items()} == EXPECTED_SCOPES
    assert all(c.active for c in clients.values())


@pytest.mark.parametrize(("client_id", "alg"), [
    ("demo-gp", "ES384"), ("demo-radiology", "RS384"), ("demo-admin", "ES384"),
])
def test_private_keys_are_kept_private_and_match_the_jwks(db, settings, client_id, alg):
    path = key_path(settings, client_id)
    key = load_private_key(path.read_bytes())

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    if alg == "ES384":
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    else:
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    [jwk] = json.loads(db.get(Client, client_id).jwks)["keys"]
    assert jwk["alg"] == alg
    assert jwk["kid"] == jwk_thumbprint(jwk)
    assert "d" not in jwk  # public half only
    assert jwt.PyJWK(jwk).key.public_numbers() == key.public_key().public_numbers()


def test_seeding_again_changes_nothing(db, settings):
    before = {c.client_id: c.jwks for c in db.exec(select(Client)).all()}
    pems = {cid: key_path(settings, cid).read_bytes() for cid in before}

    seed_demo_clients(db, settings)
    db.commit()

    assert {c.client_id: c.jwks for c in db.exec(select(Client)).all()} == before
    assert {cid: key_path(settings, cid).read_bytes() for cid in before} == pems


def test_seeding_restores_a_changed_registration_but_not_activity(db, settings):
    row = db.get(Client, "demo-gp")
    row.scopes, row.active = "system/Patient.r", False
    db.add(row)
    db.commit()

    seed_demo_clients(db, settings)
    db.commit()

    row = db.get(Client, "demo-gp")
    assert row.scopes == EXPECTED_SCOPES["demo-gp"]
    assert row.active is False


def test_thumbprint_matches_rfc7638_example():
    # RFC 7638 §3.1 worked example.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aP"
            "FFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl9"
            "3lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
            "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3"
            "XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }

    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_public_jwk_of_a_p256_key_is_refused():
    with pytest.raises(ValueError, match="P-384"):
        public_jwk(ec.generate_private_key(ec.SECP256R1()))


def test_cli_token_carries_the_registered_scopes_for_an_hour(db, settings):
    token = issue_token_for(db, settings, "demo-radiology")

    claims = jwt.decode(token, settings.secret_key, algorithms=["HS256"], issuer="scanpath")
    assert claims["sub"] == "demo-radiology"
    assert claims["scope"] == EXPECTED_SCOPES["demo-radiology"]
    assert claims["exp"] - claims["iat"] == 3600


def test_cli_token_for_unknown_client_is_a_clear_error(db, settings):
    with pytest.raises(InvalidClient, match="no active client is registered as 'nobody'"):
        issue_token_for(db, settings, "nobody")
