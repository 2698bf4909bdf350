"""Bearer token checks: 401 without a valid token, 403 without the scope (RFC 6750, SMART)."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from auth.clients import issue_token_for
from auth.guard import current_principal


def get(client, path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers)


def assert_outcome(response, status: int, code: str) -> str:
    assert response.status_code == status
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    diagnostics: str = body["issue"][0]["diagnostics"]
    return diagnostics


def test_no_token_is_401(client):
    response = get(client, "/_probe/Patient/read")

    assert_outcome(response, 401, "login")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="scanpath"'


def test_other_scheme_is_401(client):
    response = client.get("/_probe/Patient/read", headers={"Authorization": "Basic Zm9vOmJhcg=="})

    assert_outcome(response, 401, "login")


def test_tampered_token_is_401(client, access_token):
    header, payload, signature = access_token("demo-gp", "system/Patient.rs").split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["scope"] = "system/*.cruds"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()

    response = get(client, "/_probe/Patient/delete", f"{header}.{forged}.{signature}")

    assert_outcome(response, 401, "login")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="scanpath", error="invalid_token"'


def test_token_signed_with_another_secret_is_401(client, settings):
    now = int(time.time())
    claims = {"iss": settings.token_issuer, "sub": "demo-admin", "scope": "system/*.cruds",
              "iat": now, "exp": now + 600}
    forged = jwt.encode(claims, "an-attacker-secret-of-32-bytes-or-more", algorithm="HS256",
                        headers={"typ": "at+jwt"})

    assert_outcome(get(client, "/_probe/Patient/read", forged), 401, "login")


def test_expired_token_is_401(client, settings):
    now = int(time.time())
    claims = {"iss": settings.token_issuer, "sub": "demo-admin", "scope": "system/*.cruds",
              "iat": now - 7200, "exp": now - 3600}
    expired = jwt.encode(claims, settings.secret_key, algorithm="HS256",
                         headers={"typ": "at+jwt"})

    diagnostics = assert_outcome(get(client, "/_probe/Patient/read", expired), 401, "login")
    assert "expired" in diagnostics


def test_token_from_another_issuer_is_401(client, settings):
    now = int(time.time())
    claims = {"iss": "someone-else", "sub": "demo-admin", "scope": "system/*.cruds",
              "iat": now, "exp": now + 600}
    token = jwt.encode(claims, settings.secret_key, algorithm="HS256", headers={"typ": "at+jwt"})

    assert_outcome(get(client, "/_probe/Patient/read", token), 401, "login")


def test_insufficient_scope_is_403_naming_the_scope(client, access_token):
    token = access_token("demo-gp", "system/Task.rs")

    response = get(client, "/_probe/Task/delete", token)

    diagnostics = assert_outcome(response, 403, "forbidden")
    assert "system/Task.d" in diagnostics
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_granted_scope_lets_the_request_through(client, access_token):
    token = access_token("demo-gp", "system/Task.rs")

    response = get(client, "/_probe/Task/read", token)

    assert response.status_code == 200
    assert response.get_json() == {"client_id": "demo-gp"}


def test_token_carries_only_the_granted_scopes(client, access_token):
    # demo-gp may create Patients, but this token was asked only for reading.
    token = access_token("demo-gp", "system/Patient.rs")

    assert_outcome(get(client, "/_probe/Patient/create", token), 403, "forbidden")


@pytest.mark.parametrize(("client_id", "resource_type", "interaction", "status"), [
    ("demo-radiology", "Task", "update", 200),
    ("demo-radiology", "DiagnosticReport", "update", 200),
    ("demo-radiology", "Patient", "create", 403),
    ("demo-gp", "ServiceRequest", "create", 200),
    ("demo-gp", "DiagnosticReport", "update", 403),
    ("demo-admin", "AuditEvent", "delete", 200),
])
def test_cli_tokens_carry_the_registered_scopes(client, db, settings, client_id, resource_type,
                                                interaction, status):
    token = issue_token_for(db, settings, client_id)
    db.rollback()  # end the read: SQLite transactions here take the write lock

    assert get(client, f"/_probe/{resource_type}/{interaction}", token).status_code == status


def test_principal_is_verified_once_per_request(app, access_token):
    token = access_token("demo-gp", "system/Patient.rs")

    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        first = current_principal()
        assert current_principal() is first
        assert first.client_id == "demo-gp"


def test_a_disabled_clients_tokens_stop_at_once(client, access_token, db):
    """CONTRACT §9: disabling a client stops its unexpired tokens on the next request."""
    from auth.clients import set_active

    token = access_token("demo-gp", "system/Task.rs")
    assert get(client, "/_probe/Task/read", token).status_code == 200
    set_active(db, "demo-gp", False)
    db.commit()
    diagnostics = assert_outcome(get(client, "/_probe/Task/read", token), 401, "login")
    assert "not active" in diagnostics
    set_active(db, "demo-gp", True)
    db.commit()
    # Enabled again, the client asks for new tokens; the old ones stay stopped.
    assert_outcome(get(client, "/_probe/Task/read", token), 401, "login")
    assert get(client, "/_probe/Task/read", access_token("demo-gp", "system/Task.rs")
               ).status_code == 200


def test_replacing_a_client_stops_the_tokens_it_holds(client, access_token, db):
    """Narrowed scopes or new keys apply at once: earlier tokens carry the old ones."""
    from auth.clients import register_client
    from auth.models import Client

    token = access_token("demo-gp", "system/Task.rs")
    assert get(client, "/_probe/Task/read", token).status_code == 200
    jwks = json.loads(db.get(Client, "demo-gp").jwks)
    with pytest.raises(ValueError, match="already registered"):
        register_client(db, "demo-gp", "GP", "system/Patient.rs", jwks=jwks)
    register_client(db, "demo-gp", "GP", "system/Patient.rs", jwks=jwks, replace=True)
    db.commit()
    assert_outcome(get(client, "/_probe/Task/read", token), 401, "login")
    assert get(client, "/_probe/Patient/read", access_token("demo-gp", "system/Patient.rs")
               ).status_code == 200
