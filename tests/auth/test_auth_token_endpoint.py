"""The token endpoint and discovery document, against real ES384 and RS384 signatures."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import select

from auth.clients import client_assertion, load_private_key, public_jwk
from auth.models import Client, UsedAssertion

TOKEN_URL = "http://localhost/auth/token"  # the Flask test client's host


def assert_oauth_error(response, status: int, error: str) -> None:
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["error"] == error
    assert body["error_description"]


def test_discovery_advertises_backend_services(client):
    response = client.get("/.well-known/smart-configuration")

    assert response.status_code == 200
    config = response.get_json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["grant_types_supported"] == ["client_credentials"]
    assert "system/*.cruds" in config["scopes_supported"]
    assert config["capabilities"] == ["client-confidential-asymmetric", "permission-v2"]


def test_discovery_never_takes_the_host_header(client):
    """Links come from SCANPATH_PUBLIC_BASE_URL: a forged Host changes nothing."""
    config = client.get("/.well-known/smart-configuration",
                        base_url="https://attacker.example:8443").get_json()

    assert config["token_endpoint"] == TOKEN_URL


def test_es384_client_gets_a_token(post_token, private_key, settings):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)
    assert jwt.get_unverified_header(assertion)["alg"] == "ES384"

    response = post_token(assertion, "system/Patient.rs system/ServiceRequest.c")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "system/Patient.rs system/ServiceRequest.c"
    claims = jwt.decode(body["access_token"], settings.secret_key, algorithms=["HS256"],
                        issuer="scanpath")
    assert claims["sub"] == "demo-gp"
    assert claims["scope"] == body["scope"]
    assert claims["exp"] - claims["iat"] == 3600


def test_rs384_client_gets_a_token(post_token, private_key):
    assertion = client_assertion("demo-radiology", private_key("demo-radiology"), TOKEN_URL)
    assert jwt.get_unverified_header(assertion)["alg"] == "RS384"

    response = post_token(assertion, "system/Task.cruds system/DiagnosticReport.ru")

    assert response.status_code == 200
    assert response.get_json()["scope"] == "system/Task.cruds system/DiagnosticReport.ru"


def test_hs256_assertion_is_rejected(post_token, private_key):
    # The classic algorithm-confusion attack: an HMAC "signed" with public key material.
    jwk = public_jwk(load_private_key(private_key("demo-gp")))
    claims = {"iss": "demo-gp", "sub": "demo-gp", "aud": TOKEN_URL,
              "exp": int(time.time()) + 60, "jti": "hs256-attempt"}
    forged = jwt.encode(claims, jwk["x"] * 2, algorithm="HS256", headers={"kid": jwk["kid"]})

    assert_oauth_error(post_token(forged, "system/Patient.rs"), 401, "invalid_client")


def test_rs256_assertion_is_rejected_even_with_the_registered_key(post_token, private_key):
    key = load_private_key(private_key("demo-radiology"))
    claims = {"iss": "demo-radiology", "sub": "demo-radiology", "aud": TOKEN_URL,
              "exp": int(time.time()) + 60, "jti": "rs256-attempt"}
    assertion = jwt.encode(claims, key, algorithm="RS256", headers={"kid": public_jwk(key)["kid"]})

    assert_oauth_error(post_token(assertion, "system/Patient.rs"), 401, "invalid_client")


def test_assertion_for_another_audience_is_rejected(post_token, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"),
                                 "https://other-server.example/auth/token")

    assert_oauth_error(post_token(assertion, "system/Patient.rs"), 401, "invalid_client")


def test_expired_assertion_is_rejected(post_token, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL,
                                 lifetime_seconds=-120)

    assert_oauth_error(post_token(assertion, "system/Patient.rs"), 401, "invalid_client")


def test_assertion_living_longer_than_five_minutes_is_rejected(post_token, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL,
                                 lifetime_seconds=3600)

    assert_oauth_error(post_token(assertion, "system/Patient.rs"), 401, "invalid_client")


def test_replayed_assertion_is_rejected(post_token, private_key, db):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL, jti="once-only")

    assert post_token(assertion, "system/Patient.rs").status_code == 200
    assert_oauth_error(post_token(assertion, "system/Patient.rs"), 401, "invalid_client")
    used = db.exec(select(UsedAssertion)).all()
    assert [(u.jti, u.client_id) for u in used] == [("once-only", "demo-gp")]


def test_fresh_assertions_with_distinct_jti_both_succeed(post_token, private_key):
    for _ in range(2):
        assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)
        assert post_token(assertion, "system/Patient.rs").status_code == 200


def test_unknown_client_is_rejected(post_token):
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    assertion = client_assertion("stranger", pem, TOKEN_URL)

    assert_oauth_error(post_token(assertion, "system/Patient.rs"), 401, "invalid_client")


def test_client_cannot_sign_as_another_client(post_token, private_key):
    # demo-admin's key, demo-gp's name: the kid is not in demo-gp's JWKS.
    assertion = client_assertion("demo-gp", private_key("demo-admin"), TOKEN_URL)

    assert_oauth_error(post_token(assertion, "system/Patient.rs"), 401, "invalid_client")


def test_inactive_client_is_rejected(post_token, private_key, db):
    row = db.get(Client, "demo-gp")
    row.active = False
    db.add(row)
    db.commit()
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)

    assert_oauth_error(post_token(assertion, "system/Patient.rs"), 401, "invalid_client")


def test_tampered_assertion_is_rejected(post_token, private_key):
    header, payload, signature = client_assertion(
        "demo-gp", private_key("demo-gp"), TOKEN_URL).split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = claims["iss"] = "demo-admin"
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()

    response = post_token(f"{header}.{forged_payload}.{signature}", "system/*.cruds")

    assert_oauth_error(response, 401, "invalid_client")


def test_unregistered_scopes_are_dropped(post_token, private_key):
    # demo-gp holds system/Task.rs only, and nothing on Basic.
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)

    response = post_token(assertion, "system/Patient.rs system/Task.cud system/Basic.r")

    assert response.status_code == 200
    assert response.get_json()["scope"] == "system/Patient.rs"


def test_partly_registered_scope_is_narrowed(post_token, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)

    response = post_token(assertion, "system/Task.cruds")

    assert response.get_json()["scope"] == "system/Task.rs"


def test_v1_scope_is_granted_as_requested(post_token, private_key):
    assertion = client_assertion("demo-admin", private_key("demo-admin"), TOKEN_URL)

    response = post_token(assertion, "system/Patient.read")

    assert response.get_json()["scope"] == "system/Patient.read"


def test_no_registered_scope_left_is_invalid_scope(post_token, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)

    assert_oauth_error(post_token(assertion, "system/Task.d patient/Patient.rs"),
                       400, "invalid_scope")


def test_missing_scope_is_invalid_scope(post_token, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)

    assert_oauth_error(post_token(assertion, ""), 400, "invalid_scope")


def test_other_grant_type_is_unsupported(post_token, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)

    response = post_token(assertion, "system/Patient.rs", grant_type="authorization_code")

    assert_oauth_error(response, 400, "unsupported_grant_type")


def test_other_assertion_type_is_invalid_request(post_token, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)

    response = post_token(assertion, "system/Patient.rs",
                          client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer")

    assert_oauth_error(response, 400, "invalid_request")


def test_garbage_assertion_is_invalid_client(post_token):
    assert_oauth_error(post_token("x.y.z", "system/Patient.rs"), 401, "invalid_client")


def test_repeated_parameter_is_invalid_request(client, private_key):
    assertion = client_assertion("demo-gp", private_key("demo-gp"), TOKEN_URL)
    body = [("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
            ("scope", "system/Patient.rs"), ("scope", "system/*.cruds")]
    response = client.post("/auth/token", data=urlencode(body),
                           content_type="application/x-www-form-urlencoded")

    assert_oauth_error(response, 400, "invalid_request")


def test_an_assertion_addressed_to_the_host_header_gets_no_token(client, private_key):
    """The expected aud is SCANPATH_PUBLIC_BASE_URL's token URL, whatever Host says."""
    for forged in ("http://evil.example/auth/token", "https://evil.example/auth/token"):
        assertion = client_assertion("demo-gp", private_key("demo-gp"), forged)
        form = {"grant_type": "client_credentials", "client_assertion": assertion,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "scope": "system/Patient.rs"}
        response = client.post("/auth/token", data=form, base_url=forged.rsplit("/auth", 1)[0],
                               headers={"Host": "evil.example",
                                        "X-Forwarded-Host": "evil.example",
                                        "X-Forwarded-Proto": "https"})

        assert_oauth_error(response, 401, "invalid_client")
        assert "access_token" not in response.get_json()


def test_discovery_ignores_forwarded_headers_and_script_name(client):
    config = client.get("/.well-known/smart-configuration",
                        headers={"X-Forwarded-Host": "evil.example",
                                 "X-Forwarded-Prefix": "/evil"},
                        environ_overrides={"SCRIPT_NAME": "/evil"}).get_json()

    assert config["token_endpoint"] == TOKEN_URL
