"""Issue 9: generated JSON posted to every write endpoint never gives a 500.

Hypothesis builds random JSON, and resources of each served type whose
elements (top level, or anywhere inside a valid resource) hold values of the
wrong JSON type, and sends them to create (every writable type), update,
PATCH (JSON Patch and merge patch), transaction, batch, ``$validate`` and the
CDS Hooks call and feedback. Whatever comes back must be below 500 and, for
an error, an OperationOutcome. Bounded per test (``max_examples``), on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir.registry import REGISTRY
from fhir.resources.R4B import get_fhir_model_class
from tests.factories import condition, patient, service_request
from tests.rules.vignettes import SHARED, load

WRITABLE = sorted(t for t, spec in REGISTRY.items() if "create" in spec.interactions)
BOUNDED = settings(max_examples=60, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

# Any JSON: the primitives FHIR uses and some it does not (huge, negative, empty).
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=2**31),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
                    st.sampled_from(["", "Patient/1", "urn:uuid:x", "2026-13-45", "\u0663",
                                     "x" * 300, "Patient/" + "a" * 70]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)


def _elements(resource_type: str) -> list[str]:
    model = get_fhir_model_class(resource_type)
    return sorted(f.alias or n for n, f in model.model_fields.items()
                  if (f.alias or n) not in ("resourceType", "id"))


@st.composite
def shaped(draw: Callable[..., Any], resource_type: str | None = None) -> dict[str, Any]:
    """A resource of a served type whose elements hold random JSON of any type."""
    kind = resource_type or draw(st.sampled_from(WRITABLE))
    names = draw(st.lists(st.sampled_from(_elements(kind)), min_size=1, max_size=4))
    return {"resourceType": kind, **{name: draw(JSON) for name in names}}


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    items = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if key != "resourceType":
            found += _paths(value, (*path, key))
    return found


@st.composite
def mutated(draw: Callable[..., Any], valid: dict[str, Any]) -> dict[str, Any]:
    """``valid`` with one element, at any depth, replaced by random JSON."""
    resource = copy.deepcopy(valid)
    path = draw(st.sampled_from(_paths(resource)))
    parent = resource
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = draw(JSON)
    return resource


def _templates(patient_ref: str) -> list[dict[str, Any]]:
    return [patient(), condition(patient_ref), service_request(patient_ref),
            {"resourceType": "Observation", "status": "final", "code": {"text": "eGFR"},
             "subject": {"reference": patient_ref}, "valueQuantity": {"value": 55, "unit": "x"}}]


@pytest.fixture
def plain(app):
    """A test client that does not re-validate answers (speed; only statuses matter)."""
    return FlaskClient(app, app.response_class, use_cookies=False)


@pytest.fixture
def admin(auth_headers):
    return auth_headers("demo-admin")


@pytest.fixture
def existing(plain, admin):
    made = plain.post("/fhir/Patient", json=patient(), headers=admin)
    assert made.status_code == 201
    return made.get_json()


def _no_500(response: Any) -> None:
    assert response.status_code < 500, response.data[:500]
    if response.status_code >= 400 and "json" in response.content_type:
        body = response.get_json(force=True)
        assert body.get("resourceType") == "OperationOutcome" or "error" in body, body


def _post(client: FlaskClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    return _post_as(client, "post", path, body, headers)


@BOUNDED
@given(body=st.one_of(JSON, shaped()))
def test_create_of_any_type_never_500(plain, admin, body):
    kind = body.get("resourceType") if isinstance(body, dict) else "Patient"
    for resource_type in {kind if kind in REGISTRY else "Patient", "Observation"}:
        response = _post(plain, f"/fhir/{resource_type}", body, admin)
        if response is not None:
            _no_500(response)


@BOUNDED
@given(data=st.data())
def test_create_of_mutated_resources_never_500(plain, admin, existing, data):
    valid = data.draw(st.sampled_from(_templates(f"Patient/{existing['id']}")))
    body = data.draw(mutated(valid))
    _no_500(_post(plain, f"/fhir/{valid['resourceType']}", body, admin) or plain.get("/"))


@BOUNDED
@given(data=st.data())
def test_update_and_patch_never_500(plain, admin, existing, data):
    url = f"/fhir/Patient/{existing['id']}"
    body = data.draw(st.one_of(mutated(existing), shaped("Patient"), JSON))
    for response in (_post_as(plain, "put", url, body, admin),
                     _post_as(plain, "patch", url, body, {
                         **admin, "Content-Type": "application/merge-patch+json"}),
                     _post_as(plain, "patch", url, data.draw(_json_patch()), {
                         **admin, "Content-Type": "application/json-patch+json"}),
                     _post_as(plain, "put", "/fhir/Patient?identifier=x|y", body, admin)):
        if response is not None:
            _no_500(response)


def _json_patch() -> st.SearchStrategy[Any]:
    operation = st.fixed_dictionaries({
        "op": st.sampled_from(["add", "replace", "remove", "test", "copy", "move", "x"]),
        "path": st.sampled_from(["/gender", "/name/0/family", "/id", "/", "/x", "", "/name/-"]),
    }, optional={"value": JSON, "from": st.sampled_from(["/name", "/gender", "/zz"])})
    return st.one_of(st.lists(operation, max_size=3), JSON)


def _post_as(client: FlaskClient, method: str, path: str, body: Any,
             headers: dict[str, str]) -> Any:
    from core import fhirjson

    try:
        data = fhirjson.dumps(body)
    except (ValueError, TypeError):  # not representable (NaN); the server never sees it
        return None
    return client.open(path, method=method.upper(), data=data, headers=headers)


@st.composite
def bundles(draw: Callable[..., Any]) -> Any:
    entry = st.one_of(JSON, st.fixed_dictionaries({
        "request": st.one_of(JSON, st.fixed_dictionaries({
            "method": st.sampled_from(["POST", "PUT", "GET", "DELETE", "PATCH"]),
            "url": st.sampled_from(["Patient", "Patient/abc", "Observation", "AuditEvent",
                                    "CodeSystem/x", "Patient?name=a", "Patient/_history",
                                    "Nope", "", "Patient/" + "a" * 70])},
            optional={"ifNoneExist": JSON, "ifMatch": JSON}))},
        optional={"resource": st.one_of(shaped(), JSON), "fullUrl": JSON}))
    return draw(st.one_of(JSON, st.fixed_dictionaries({
        "resourceType": st.just("Bundle"),
        "type": st.sampled_from(["transaction", "batch", "collection"]),
        "entry": st.one_of(st.lists(entry, max_size=3), JSON)})))


@BOUNDED
@given(body=bundles())
def test_transaction_and_batch_never_500(plain, admin, body):
    response = _post(plain, "/fhir", body, admin)
    if response is not None:
        _no_500(response)


@BOUNDED
@given(body=st.one_of(JSON, shaped(), st.builds(
    lambda r: {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": r}]},
    st.one_of(shaped(), JSON))))
def test_validate_never_500(plain, admin, body):
    kind = body.get("resourceType") if isinstance(body, dict) else None
    response = _post(plain, f"/fhir/{kind if kind in REGISTRY else 'Patient'}/$validate",
                     body, admin)
    if response is not None:
        _no_500(response)


@pytest.fixture(scope="module")
def cds_request():
    from rules.context import today_utc

    return load(SHARED / "angina-ctca.json", today_utc())["request"]


@BOUNDED
@given(data=st.data())
def test_cds_hooks_call_and_feedback_never_500(plain, admin, cds_request, data):
    body = data.draw(st.one_of(JSON, mutated(cds_request)))
    for path in ("/cds-services/imaging-order-select", "/cds-services/imaging-order-sign",
                 "/cds-services/imaging-order-select/feedback"):
        response = _post(plain, path, body, admin)
        if response is not None:
            _no_500(response)
