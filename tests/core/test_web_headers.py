"""Security headers, Cache-Control and CORS on every route family (core.web)."""

from __future__ import annotations

import re

import pytest

from core.web import PUBLIC_ENDPOINTS

EVIL = "https://evil.example"


def _urls(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every rule, each variable filled with a placeholder."""
    found = []
    for rule in app.url_map.iter_rules():
        method = "GET" if "GET" in rule.methods else sorted(rule.methods - {"OPTIONS"})[0]
        url = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: "Patient" if m[1] ==
                     "resource_type" else "x1", rule.rule)
        found.append((rule.endpoint, method, url))
    return found


def _assert_secure(response, endpoint: str, where: str) -> None:
    headers = response.headers
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), where
    # The API serves no page; the staff web app and the patient report pages load their
    # own scripts, styles and images but never inline ones, nor anything from another
    # origin.
    page = where.split()[2].startswith(("/staff", "/r/"))
    policy = headers.get("Content-Security-Policy", "")
    if page:
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, where
        assert "unsafe-inline" not in policy, where
    else:
        assert "default-src 'none'" in policy, where
    assert headers.get("Referrer-Policy") == "no-referrer", where
    assert "Access-Control-Allow-Origin" not in headers, where
    assert "Strict-Transport-Security" not in headers, where  # the public URL is http
    if endpoint not in PUBLIC_ENDPOINTS:
        assert headers.get("Cache-Control") == "no-store", where


def test_every_route_answers_with_the_security_headers(app, client, auth_headers):
    routes = _urls(app)
    assert {"fhir.metadata", "cds.discovery", "auth.token", "ops.metrics"} <= \
        {endpoint for endpoint, _m, _u in routes}
    for endpoint, method, url in routes:
        for headers in ({"Origin": EVIL}, {**auth_headers("demo-admin"), "Origin": EVIL}):
            response = client.open(url, method=method, headers=headers)
            _assert_secure(response, endpoint,
                           f"{endpoint} {method} {url} -> {response.status_code}")


def test_patient_data_is_never_cached(client, auth_headers):
    created = client.post("/fhir/Patient", json={"resourceType": "Patient",
                                                 "name": [{"family": "Nocache"}]},
                          headers=auth_headers("demo-admin"))
    assert created.status_code == 201
    for url in (f"/fhir/Patient/{created.get_json()['id']}", "/fhir/Patient?family=Nocache",
                "/dicomweb/studies"):
        response = client.get(url, headers=auth_headers("demo-admin"))
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store", url


def test_hsts_when_the_public_url_is_https(app, client):
    app.config["SCANPATH"] = app.config["SCANPATH"].model_copy(
        update={"public_base_url": "https://scanpath.example"})

    response = client.get("/fhir/metadata")

    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_hsts_when_the_request_came_over_tls(client):
    response = client.get("/healthz", base_url="https://localhost")

    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_cors_answers_only_a_configured_origin(app, client, auth_headers, method):
    app.config["SCANPATH"] = app.config["SCANPATH"].model_copy(
        update={"cors_origins": ["https://gp.example"]})
    headers = {**auth_headers("demo-gp"), "Access-Control-Request-Method": "GET"}

    allowed = client.open("/fhir/Patient", method=method,
                          headers={**headers, "Origin": "https://gp.example"})
    other = client.open("/fhir/Patient", method=method, headers={**headers, "Origin": EVIL})

    assert allowed.headers["Access-Control-Allow-Origin"] == "https://gp.example"
    assert "Origin" in allowed.headers.get("Vary", "")
    assert "Access-Control-Allow-Origin" not in other.headers
