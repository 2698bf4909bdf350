"""Issue 9: the authorisation matrix, every route and interaction x every demo client.

Each demo client's registered scopes (auth/clients.py, DEMO_CLIENTS) are read
here with the SMART App Launch 2.x rules written out independently of
``auth.scopes``: ``system/<Type|*>.<cruds>``, and the permission each REST
interaction needs (SMART 2.x "Scopes for requesting FHIR Resources"). The
expected status of each request follows from them alone:

- no token: 401;
- an interaction the type does not serve (FHIR registry, e.g. AuditEvent is
  read-only): 405, whoever asks;
- a scope that does not cover it: 403;
- otherwise the request is let through: anything but 401, 403 and 405, and
  never a 500.

The staff web app (``/staff``) authenticates by session cookie, never by bearer
token: its routes are rows of their own (STAFF_PAGES, STAFF_FORMS), public to
tokens, and ``test_staff_routes_need_a_session`` checks that without a session
every page redirects to the login and every form without its CSRF token is a 400.

Routes come from ``app.url_map``; a route or method that no row covers fails
``test_every_route_is_in_the_matrix``, so a new route must join the matrix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient

from auth.clients import DEMO_CLIENTS
from fhir.registry import REGISTRY

CLIENTS = (None, "demo-gp", "demo-radiology", "demo-admin")
# SMART 2.x: the permission letter each interaction needs ($operations read).
LETTER = {"create": "c", "read": "r", "vread": "r", "history-instance": "r", "operation": "r",
          "update": "u", "patch": "u", "delete": "d", "search-type": "s", "history-type": "s"}
_V2 = re.compile(r"system/(\*|[A-Z][A-Za-z]*)\.(c?r?u?d?s?)")


def granted(client_id: str) -> dict[str, set[str]]:
    """``{type or *: permission letters}`` of a demo client's registered scopes."""
    scopes = next(c.scopes for c in DEMO_CLIENTS if c.client_id == client_id)
    out: dict[str, set[str]] = {}
    for scope in scopes.split():
        match = _V2.fullmatch(scope)
        assert match, f"the matrix reads v2 system scopes only, not {scope}"
        out.setdefault(match[1], set()).update(match[2])
    return out


def allows(client_id: str, resource_type: str, letter: str) -> bool:
    scopes = granted(client_id)
    return letter in scopes.get(resource_type, set()) | scopes.get("*", set())


@dataclass
class Probe:
    """One request and what it needs: ``(type, interaction)`` pairs, all required."""

    method: str
    path: str
    rule: str
    needs: list[tuple[str, str]] = field(default_factory=list)
    served: bool = True
    public: bool = False
    body: Any = None
    content_type: str = "application/fhir+json"
    accept: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def expected(self, client_id: str | None) -> str:
        if self.public:
            return "public"
        if client_id is None:
            return "401"
        if not self.served:
            return "405"
        if not all(allows(client_id, t, LETTER[i]) for t, i in self.needs):
            return "403"
        return "allowed"


def _served(resource_type: str, interaction: str) -> bool:
    return interaction == "operation" or interaction in REGISTRY[resource_type].interactions


def _fhir(method: str, path: str, rule: str, resource_type: str, *interactions: str,
          **kwargs: Any) -> Probe:
    """A FHIR REST probe: served if the type serves the first interaction."""
    return Probe(method, path, rule, [(resource_type, i) for i in interactions],
                 served=_served(resource_type, interactions[0]), **kwargs)


def rest_probes() -> Iterator[Probe]:
    for t in REGISTRY:
        new = {"resourceType": t, "id": "matrix-new"}
        yield _fhir("GET", f"/fhir/{t}/matrix-none", "/fhir/<resource_type>/<resource_id>",
                    t, "read")
        yield _fhir("GET", f"/fhir/{t}/matrix-none/_history/1",
                    "/fhir/<resource_type>/<resource_id>/_history/<version_id>", t, "vread")
        yield _fhir("GET", f"/fhir/{t}/matrix-none/_history",
                    "/fhir/<resource_type>/<resource_id>/_history", t, "history-instance")
        yield _fhir("GET", f"/fhir/{t}/_history", "/fhir/<resource_type>/_history", t,
                    "history-type")
        yield _fhir("GET", f"/fhir/{t}?_id=matrix-none", "/fhir/<resource_type>", t,
                    "search-type")
        yield _fhir("POST", f"/fhir/{t}/_search", "/fhir/<resource_type>/_search", t,
                    "search-type", body="_id=matrix-none",
                    content_type="application/x-www-form-urlencoded")
        yield _fhir("POST", f"/fhir/{t}", "/fhir/<resource_type>", t, "create",
                    body={"resourceType": t})
        yield _fhir("POST", f"/fhir/{t}", "/fhir/<resource_type>", t, "create",
                    "search-type", body={"resourceType": t},
                    headers={"If-None-Exist": "_id=matrix-none"})
        # An update that would create needs the create permission too.
        yield _fhir("PUT", f"/fhir/{t}/matrix-new", "/fhir/<resource_type>/<resource_id>", t,
                    "update", "create", body=new)
        yield _fhir("PATCH", f"/fhir/{t}/matrix-none", "/fhir/<resource_type>/<resource_id>",
                    t, "patch", "read", body=[],
                    content_type="application/json-patch+json")
        yield _fhir("DELETE", f"/fhir/{t}/matrix-none", "/fhir/<resource_type>/<resource_id>",
                    t, "delete")
        yield _fhir("DELETE", f"/fhir/{t}?_id=matrix-none", "/fhir/<resource_type>", t,
                    "delete", "search-type")
        yield _fhir("PUT", f"/fhir/{t}?_id=matrix-none", "/fhir/<resource_type>", t,
                    "update", "search-type", "create", body={"resourceType": t})
        yield _fhir("POST", f"/fhir/{t}/$validate", "/fhir/<resource_type>/$validate", t,
                    "operation", body={"resourceType": t})
        yield _fhir("POST", f"/fhir/{t}/matrix-none/$validate",
                    "/fhir/<resource_type>/<resource_id>/$validate", t, "operation",
                    body={"resourceType": t})
    yield _fhir("POST", "/fhir/GuidanceResponse/matrix-none/$replay",
                "/fhir/<resource_type>/<resource_id>/$<operation>", "GuidanceResponse",
                "operation")
    yield _fhir("POST", "/fhir/Patient/matrix-none/$replay",
                "/fhir/<resource_type>/<resource_id>/$<operation>", "Patient", "operation")
    # A radiologist's lesion review changes the report: it needs update besides the read.
    for method, name in (("GET", "lesions"), ("POST", "lesions"), ("POST", "review")):
        yield _fhir(method, f"/fhir/DiagnosticReport/matrix-none/${name}",
                    "/fhir/<resource_type>/<resource_id>/$<operation>", "DiagnosticReport",
                    "operation", "update", body={"resourceType": "Parameters"})


def bundle_probes() -> Iterator[Probe]:
    """One entry per Bundle, for each type and entry method, in a transaction and a batch."""
    for t in REGISTRY:
        entries = [
            ({"resource": {"resourceType": t}, "request": {"method": "POST", "url": t}},
             ("create",)),
            ({"resource": {"resourceType": t, "id": "matrix-new"},
              "request": {"method": "PUT", "url": f"{t}/matrix-new"}}, ("update", "create")),
            ({"request": {"method": "GET", "url": f"{t}/matrix-none"}}, ("read",)),
            ({"request": {"method": "GET", "url": f"{t}?_id=matrix-none"}}, ("search-type",)),
            ({"resource": {"resourceType": t}, "request": {
                "method": "POST", "url": t, "ifNoneExist": "_id=matrix-none"}},
             ("create", "search-type")),
        ]
        for entry, interactions in entries:
            for kind in ("transaction", "batch"):
                yield _fhir("POST", "/fhir", f"bundle:{kind}", t, *interactions,
                            body={"resourceType": "Bundle", "type": kind, "entry": [entry]})


def other_probes() -> Iterator[Probe]:
    public = dict(public=True)
    yield Probe("GET", "/", "/", **public)
    yield Probe("GET", "/healthz", "/healthz", **public)
    yield Probe("GET", "/readyz", "/readyz", **public)
    yield Probe("GET", "/.well-known/smart-configuration", "/.well-known/smart-configuration",
                **public)
    yield Probe("GET", "/fhir/metadata", "/fhir/metadata", **public)
    yield Probe("GET", "/static/home.css", "/static/home.css", **public)
    yield Probe("GET", "/static/nothing.css", "/static/<path:filename>", **public)
    yield Probe("GET", "/cds-services", "/cds-services", **public)
    # The token endpoint authenticates by its own client assertion, never by a bearer.
    yield Probe("POST", "/auth/token", "/auth/token", body="grant_type=client_credentials",
                content_type="application/x-www-form-urlencoded", **public)
    # A CDS Hooks call is an operation for ServiceRequest (CONTRACT §4).
    for path in ("/cds-services/imaging-order-select",
                 "/cds-services/imaging-order-select/feedback"):
        rule = path.replace("imaging-order-select", "<service_id>")
        yield Probe("POST", path, rule, [("ServiceRequest", "operation")], body={},
                    content_type="application/json")
    # /metrics is for operators: those who may search AuditEvents.
    yield Probe("GET", "/metrics", "/metrics", [("AuditEvent", "search-type")])
    # Every type a token may search: one is enough to get an (empty or filtered) page.
    yield Probe("GET", "/fhir/_history", "/fhir/_history", [("Patient", "history-type")])
    yield from dicomweb_probes()


def dicomweb_probes() -> Iterator[Probe]:
    """QIDO-RS is a search, WADO-RS a read, STOW-RS a create, of ImagingStudy."""
    s, se, i = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    qido = [("/dicomweb/studies", "/dicomweb/studies"),
            ("/dicomweb/series", "/dicomweb/series"),
            ("/dicomweb/instances", "/dicomweb/instances"),
            (f"/dicomweb/studies/{s}/series", "/dicomweb/studies/<study>/series"),
            (f"/dicomweb/studies/{s}/instances", "/dicomweb/studies/<study>/instances"),
            (f"/dicomweb/studies/{s}/series/{se}/instances",
             "/dicomweb/studies/<study>/series/<series>/instances")]
    for path, rule in qido:
        yield Probe("GET", path, rule, [("ImagingStudy", "search-type")],
                    accept="application/dicom+json")
    base = "/dicomweb/studies/<study>/series/<series>/instances/<sop>"
    wado = [(f"/dicomweb/studies/{s}", "/dicomweb/studies/<study>"),
            (f"/dicomweb/studies/{s}/series/{se}", "/dicomweb/studies/<study>/series/<series>"),
            (f"/dicomweb/studies/{s}/series/{se}/instances/{i}", base),
            (f"/dicomweb/studies/{s}/metadata", "/dicomweb/studies/<study>/metadata"),
            (f"/dicomweb/studies/{s}/series/{se}/metadata",
             "/dicomweb/studies/<study>/series/<series>/metadata"),
            (f"/dicomweb/studies/{s}/series/{se}/instances/{i}/metadata", base + "/metadata"),
            (f"/dicomweb/studies/{s}/series/{se}/instances/{i}/frames/1",
             base + "/frames/<frames>"),
            (f"/dicomweb/studies/{s}/series/{se}/instances/{i}/rendered", base + "/rendered"),
            (f"/dicomweb/studies/{s}/series/{se}/instances/{i}/frames/1/rendered",
             base + "/frames/<int:frame>/rendered")]
    for path, rule in wado:
        yield Probe("GET", path, rule, [("ImagingStudy", "read")], accept="*/*")
    stow = "multipart/related; type=\"application/dicom\"; boundary=matrix"
    for path, rule in (("/dicomweb/studies", "/dicomweb/studies"),
                       (f"/dicomweb/studies/{s}", "/dicomweb/studies/<study>")):
        yield Probe("POST", path, rule, [("ImagingStudy", "create")], body="--matrix--\r\n",
                    content_type=stow)


# Staff web app routes: (path to request, url_map rule). Pages need a session; the
# login page itself is open. Each part adds its own rows here.
STAFF_PAGES = [("/staff", "/staff")]
# Image review (imaging_core.staffviewer); its DICOMweb reads are the rows above, and
# tests/imaging_core/test_staff_viewer.py checks them with a staff session.
STAFF_PAGES += [("/staff/studies/1.2.3", "/staff/studies/<study>"),
                ("/staff/studies/1.2.3/overlay.json", "/staff/studies/<study>/overlay.json"),
                ("/staff/studies/1.2.3/model.glb", "/staff/studies/<study>/model.glb")]
STAFF_OPEN_PAGES = [("/staff/login", "/staff/login")]
STAFF_FORMS = [("/staff/login", "/staff/login"), ("/staff/logout", "/staff/logout")]
# staff-worklist: worklist, order detail, vetting, scheduling, the admin page.
STAFF_PAGES += [("/staff/worklist", "/staff/worklist"),
                ("/staff/orders/o-1", "/staff/orders/<order_id>"),
                ("/staff/admin", "/staff/admin")]
STAFF_FORMS += [("/staff/orders/o-1/vet", "/staff/orders/<order_id>/vet"),
                ("/staff/orders/o-1/schedule", "/staff/orders/<order_id>/schedule"),
                ("/staff/admin/holds/t-1", "/staff/admin/holds/<task_id>"),
                ("/staff/admin/notifications/1/retry",
                 "/staff/admin/notifications/<int:notification_id>/retry")]

# Calcium lesion review and report sign-off (imaging_core/staffviews.py).
_REPORT = "/staff/reports/<report_id>"
STAFF_PAGES += [("/staff/reports/r1", _REPORT),
                ("/staff/reports/r1/key-images/1", f"{_REPORT}/key-images/<int:number>"),
                ("/staff/reports/r1/lesions", f"{_REPORT}/lesions"),
                ("/staff/reports/r1/lesions/L001-002-003/image",
                 f"{_REPORT}/lesions/<lesion_id>/image")]
STAFF_FORMS += [("/staff/reports/r1/sign-off", f"{_REPORT}/sign-off"),
                ("/staff/reports/r1/amend", f"{_REPORT}/amend"),
                ("/staff/reports/r1/lesions/L001-002-003", f"{_REPORT}/lesions/<lesion_id>")]

# Patient report links (patient/views.py): the revoke form is a staff form; the /r/ pages
# authenticate by link token, date of birth and session, never by bearer token, so they
# are public to the token matrix (tests/patient/ checks the link's own rules).
STAFF_FORMS += [("/staff/reports/r1/patient-link/revoke", f"{_REPORT}/patient-link/revoke")]
_LINK = "/r/<token>"
PATIENT_PAGES = [("/r/t0", _LINK), ("/r/t0/images/1.png", f"{_LINK}/images/<int:number>.png"),
                 ("/r/t0/model.glb", f"{_LINK}/model.glb"),
                 ("/r/t0/model.png", f"{_LINK}/model.png"),
                 ("/r/t0/report.pdf", f"{_LINK}/report.pdf")]
PATIENT_FORMS = [("/r/t0", _LINK), ("/r/t0/close", f"{_LINK}/close")]


def patient_probes() -> Iterator[Probe]:
    """Bearer tokens neither open nor close /r/: public to the token matrix."""
    for path, rule in PATIENT_PAGES:
        yield Probe("GET", path, rule, public=True, accept="text/html")
    for path, rule in PATIENT_FORMS:
        yield Probe("POST", path, rule, public=True, body="",
                    content_type="application/x-www-form-urlencoded", accept="text/html")


def staff_probes() -> Iterator[Probe]:
    """Bearer tokens neither open nor close /staff: public to the token matrix."""
    for path, rule in STAFF_PAGES + STAFF_OPEN_PAGES:
        yield Probe("GET", path, rule, public=True, accept="text/html")
    for path, rule in STAFF_FORMS:
        yield Probe("POST", path, rule, public=True, body="",
                    content_type="application/x-www-form-urlencoded", accept="text/html")


def all_probes() -> list[Probe]:
    return [*rest_probes(), *bundle_probes(), *other_probes(), *staff_probes(),
            *patient_probes()]


def test_staff_routes_need_a_session(app):
    """Without a session every staff page is a 302 to the login page (coming back to
    it after); every staff form without its CSRF token is a 400 HTML page."""
    client = app.test_client()
    for path, _rule in STAFF_PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/staff/login?next="), path
    for path, _rule in STAFF_OPEN_PAGES:
        assert client.get(path).status_code == 200, path
    for path, _rule in STAFF_FORMS:
        response = client.post(path, data={})
        assert response.status_code == 400, path
        assert response.content_type.startswith("text/html"), path


def test_every_route_is_in_the_matrix(app):
    covered = {(p.rule, p.method) for p in all_probes()}
    covered |= {("/fhir/", "POST")} if ("bundle:transaction", "POST") in covered else set()
    covered |= {("/fhir", "POST")} if ("bundle:batch", "POST") in covered else set()
    missing = sorted((rule.rule, method) for rule in app.url_map.iter_rules()
                     for method in rule.methods - {"HEAD", "OPTIONS"}
                     if (rule.rule, method) not in covered)
    assert not missing, f"routes with no row in the authorisation matrix: {missing}"


def _send(client: FlaskClient, probe: Probe, headers: dict[str, str]) -> Any:
    headers = {**headers, **probe.headers, "Content-Type": probe.content_type,
               "Accept": probe.accept or "application/fhir+json"}
    kwargs: dict[str, Any] = {"json": probe.body} if isinstance(probe.body, dict | list) \
        else {"data": probe.body}
    if probe.content_type != "application/fhir+json" and isinstance(probe.body, dict):
        kwargs = {"json": probe.body}
    return client.open(probe.path, method=probe.method, headers=headers, **kwargs)


def _status(response: Any, probe: Probe) -> int:
    """The HTTP status, or a Bundle's one entry status for a batch."""
    if probe.rule == "bundle:batch" and response.status_code == 200:
        return int(response.get_json()["entry"][0]["response"]["status"].split()[0])
    return int(response.status_code)


@pytest.mark.parametrize("client_id", CLIENTS, ids=lambda c: c or "no-token")
def test_authorisation_matrix(app, token, client_id):
    client = FlaskClient(app, app.response_class, use_cookies=False)
    headers = {"Authorization": f"Bearer {token(client_id)}"} if client_id else {}
    wrong = []
    for probe in all_probes():
        response = _send(client, probe, headers)
        status, expected = _status(response, probe), probe.expected(client_id)
        ok = {"public": status < 500 and status not in (401, 403),
              "allowed": status < 500 and status not in (401, 403, 405)}.get(
            expected, str(status) == expected)
        if not ok:
            wrong.append(f"{probe.method} {probe.path} {probe.rule}: {status}, "
                         f"expected {expected}; {response.data[:160]!r}")
    assert not wrong, f"{len(wrong)} requests answered against the scopes:\n" + "\n".join(wrong)


def test_expectations_follow_the_registered_scopes():
    """A guard on the matrix itself, from the seeded scope strings by hand."""
    assert allows("demo-admin", "AuditEvent", "s") and not allows("demo-gp", "AuditEvent", "r")
    assert allows("demo-radiology", "ServiceRequest", "u")
    assert not allows("demo-radiology", "ServiceRequest", "c")
    assert not allows("demo-gp", "ImagingStudy", "c") and allows("demo-gp", "Patient", "d")
