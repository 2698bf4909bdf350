"""STOW-RS and WADO-RS (DICOM PS3.18 §10.4, §10.5), on SQLite and PostgreSQL.

Requests are built by hand and responses split with the standard library's
``email`` parser, so neither side uses the server's multipart code.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from pydicom import dcmread
from pydicom.uid import RLELossless, generate_uid

from auth.tokens import mint_access_token
from core.settings import Settings
from imaging_core.models import DicomInstance, ReceivedStudy
from tests.imaging_core.conftest import Order, encoded, rows, sha256, stored_files, study
from tests.imaging_core.phantoms import compressed

BOUNDARY = "scanpath-test-7d1c"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
# Tags of the Store Instances Response Module (PS3.18 Table I.1-1)
RETRIEVE_URL, FAILED, REFERENCED = "00081190", "00081198", "00081199"
SOP_CLASS, SOP_INSTANCE, FAILURE_REASON = "00081150", "00081155", "00081197"

Headers = Callable[..., dict[str, str]]


def multipart(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    body = b"".join(b"--" + BOUNDARY.encode() + f"\r\nContent-Type: {part_type}\r\n\r\n".encode()
                    + part + b"\r\n" for part in parts)
    return body + b"--" + BOUNDARY.encode() + b"--\r\n"


def stow_headers(auth_headers: Headers, client_id: str = "demo-radiology") -> dict[str, str]:
    return {"Authorization": auth_headers(client_id)["Authorization"], "Content-Type": STOW_TYPE,
            "Accept": "application/dicom+json"}


def bearer(auth_headers: Headers, client_id: str = "demo-radiology", **extra: str) -> dict:
    return {"Authorization": auth_headers(client_id)["Authorization"], **extra}


def split_multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                       policy=email.policy.HTTP)
    assert message.is_multipart()
    return [(part.get_content_type() + "; " + str(part.get_param("transfer-syntax")),
             part.get_payload(decode=True)) for part in message.iter_parts()]


def test_stow_stores_all_parts_and_links_the_order(
        settings: Settings, client: FlaskClient, order: Callable[[], Order],
        auth_headers: Headers) -> None:
    placed = order()
    series = study(placed.accession, n_slices=3)
    response = client.post("/dicomweb/studies", data=multipart(*map(encoded, series)),
                           headers=stow_headers(auth_headers))
    assert response.status_code == 200
    assert response.content_type == "application/dicom+json"
    body = response.get_json()
    study_uid = series[0].StudyInstanceUID
    assert body[RETRIEVE_URL]["Value"] == [f"http://localhost/dicomweb/studies/{study_uid}"]
    referenced = body[REFERENCED]["Value"]
    assert {item[SOP_INSTANCE]["Value"][0] for item in referenced} == \
        {ds.SOPInstanceUID for ds in series}
    assert FAILED not in body
    [received] = rows(settings, ReceivedStudy)
    assert received.matched and received.service_request_id == placed.id
    assert {row.source for row in rows(settings, DicomInstance)} == {"stow"}


def test_stow_with_two_good_parts_and_one_bad_answers_202(
        settings: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    good = study("ACC-STOW", n_slices=2)
    body = multipart(encoded(good[0]), b"this part is not DICOM" * 10, encoded(good[1]))
    response = client.post("/dicomweb/studies", data=body, headers=stow_headers(auth_headers))
    assert response.status_code == 202  # stored some, failed others (PS3.18 Table 10.5.3-1)
    result = response.get_json()
    assert [item[SOP_INSTANCE]["Value"][0] for item in result[REFERENCED]["Value"]] == \
        [good[0].SOPInstanceUID, good[1].SOPInstanceUID]
    [failed] = result[FAILED]["Value"]
    assert failed[FAILURE_REASON] == {"vr": "US", "Value": [0xC000]}
    assert "not a dicom file" in response.headers["Warning"].lower()
    assert len(rows(settings, DicomInstance)) == 2 and len(stored_files(settings)) == 2


def test_stow_failures_name_the_instance_and_reason(settings: Settings, client: FlaskClient,
                                                    auth_headers: Headers) -> None:
    ds = study("ACC-NOPIX", n_slices=1)[0]
    del ds.PixelData
    response = client.post("/dicomweb/studies", data=multipart(encoded(ds)),
                           headers=stow_headers(auth_headers))
    assert response.status_code == 409  # none stored
    [failed] = response.get_json()[FAILED]["Value"]
    assert failed[SOP_CLASS]["Value"] == [ds.SOPClassUID]
    assert failed[SOP_INSTANCE]["Value"] == [ds.SOPInstanceUID]
    assert failed[FAILURE_REASON]["Value"] == [0xA900]
    assert stored_files(settings) == []


def test_stow_to_a_study_refuses_instances_of_another(settings: Settings, client: FlaskClient,
                                                      auth_headers: Headers) -> None:
    ds = study("ACC-OTHER", n_slices=1)[0]
    response = client.post(f"/dicomweb/studies/{generate_uid()}", data=multipart(encoded(ds)),
                           headers=stow_headers(auth_headers))
    assert response.status_code == 409  # "Study Instance UID mismatch" (PS3.18 10.5.3)
    [failed] = response.get_json()[FAILED]["Value"]
    assert failed[FAILURE_REASON]["Value"] == [0xC409]
    assert rows(settings, DicomInstance) == []


def test_stow_takes_a_series_larger_than_the_fhir_body_limit(
        settings: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    series = study("ACC-BIG", n_slices=6, rows=512, cols=512)  # 6 x 512 KiB
    body = multipart(*map(encoded, series))
    assert len(body) > settings.max_body_bytes
    response = client.post("/dicomweb/studies", data=body, headers=stow_headers(auth_headers))
    assert response.status_code == 200
    assert len(rows(settings, DicomInstance)) == 6


@pytest.mark.parametrize("content_type", [
    "application/dicom",
    'multipart/related; type="application/dicom+json"; boundary=x',
    "application/json",
])
def test_stow_of_another_media_type_is_415(client: FlaskClient, auth_headers: Headers,
                                           content_type: str) -> None:
    headers = {**stow_headers(auth_headers), "Content-Type": content_type}
    response = client.post("/dicomweb/studies", data=b"{}", headers=headers)
    assert response.status_code == 415
    assert response.get_json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("content_type", "body"), [
    ('multipart/related; type="application/dicom"', b"--x\r\n\r\nabc\r\n--x--"),  # no boundary
    (STOW_TYPE, b"no delimiter anywhere"),
    (STOW_TYPE, b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\nunclosed"),
    (STOW_TYPE, b"--" + BOUNDARY.encode() + b"--\r\n"),  # no parts
])
def test_stow_of_a_malformed_multipart_body_is_400(settings: Settings, client: FlaskClient,
                                                   auth_headers: Headers, content_type: str,
                                                   body: bytes) -> None:
    headers = {**stow_headers(auth_headers), "Content-Type": content_type}
    response = client.post("/dicomweb/studies", data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["diagnostics"]
    assert stored_files(settings) == []


def test_dicomweb_needs_a_token_with_imaging_study_scopes(
        settings: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    data = multipart(encoded(study("ACC-AUTH", n_slices=1)[0]))
    no_token = client.post("/dicomweb/studies", data=data, headers={"Content-Type": STOW_TYPE})
    assert no_token.status_code == 401
    assert no_token.headers["WWW-Authenticate"].startswith("Bearer")
    gp = client.post("/dicomweb/studies", data=data, headers=stow_headers(auth_headers, "demo-gp"))
    assert gp.status_code == 403  # the GP system may read ImagingStudy, not create it
    assert "system/ImagingStudy.c" in gp.get_json()["issue"][0]["diagnostics"]
    patients_only = mint_access_token(settings, "demo-gp", "system/Patient.rs", 1)
    wado = client.get(f"/dicomweb/studies/{generate_uid()}",
                      headers={"Authorization": f"Bearer {patients_only}"})
    assert wado.status_code == 403
    assert client.get(f"/dicomweb/studies/{generate_uid()}/metadata").status_code == 401
    assert rows(settings, DicomInstance) == []


@pytest.fixture
def stowed(client: FlaskClient, auth_headers: Headers) -> list[bytes]:
    """Three instances of one series stored by STOW-RS; their bytes as sent."""
    parts = [encoded(ds) for ds in study("ACC-WADO", n_slices=3)]
    response = client.post("/dicomweb/studies", data=multipart(*parts),
                           headers=stow_headers(auth_headers))
    assert response.status_code == 200
    return parts


def test_wado_returns_the_stored_bytes(client: FlaskClient, auth_headers: Headers,
                                       stowed: list[bytes]) -> None:
    first = dcmread(io.BytesIO(stowed[0]))
    study_url = f"/dicomweb/studies/{first.StudyInstanceUID}"
    response = client.get(study_url, headers=bearer(auth_headers, "demo-gp"))
    assert response.status_code == 200
    parts = split_multipart(response.headers["Content-Type"], response.data)
    assert sorted(sha256(data) for _, data in parts) == sorted(map(sha256, stowed))
    assert {kind for kind, _ in parts} == {"application/dicom; 1.2.840.10008.1.2.1"}

    series_url = f"{study_url}/series/{first.SeriesInstanceUID}"
    series = client.get(series_url, headers=bearer(
        auth_headers, Accept='multipart/related; type="application/dicom"; transfer-syntax=*'))
    assert len(split_multipart(series.headers["Content-Type"], series.data)) == 3

    instance_url = f"{series_url}/instances/{first.SOPInstanceUID}"
    single = client.get(instance_url, headers=bearer(auth_headers, Accept="application/dicom"))
    assert single.status_code == 200
    assert single.content_type.startswith("application/dicom")
    assert sha256(single.data) == sha256(stowed[0])


def test_wado_metadata_is_dicom_json_with_pixels_as_bulk_data(
        client: FlaskClient, auth_headers: Headers, stowed: list[bytes]) -> None:
    first = dcmread(io.BytesIO(stowed[0]))
    url = f"/dicomweb/studies/{first.StudyInstanceUID}/metadata"
    response = client.get(url, headers=bearer(auth_headers, Accept="application/dicom+json"))
    assert response.status_code == 200 and response.content_type == "application/dicom+json"
    metadata = response.get_json()
    assert len(metadata) == 3
    assert {m["00080018"]["Value"][0] for m in metadata} == \
        {dcmread(io.BytesIO(p)).SOPInstanceUID for p in stowed}
    assert all(set(m["7FE00010"]) == {"vr", "BulkDataURI"} for m in metadata)
    assert metadata[0]["00080050"]["Value"] == ["ACC-WADO"]
    instance = client.get(f"/dicomweb/studies/{first.StudyInstanceUID}/series/"
                          f"{first.SeriesInstanceUID}/instances/{first.SOPInstanceUID}/metadata",
                          headers=bearer(auth_headers))
    assert [m["00080018"]["Value"][0] for m in instance.get_json()] == [first.SOPInstanceUID]


def test_wado_of_unknown_uids_is_404(client: FlaskClient, auth_headers: Headers) -> None:
    response = client.get(f"/dicomweb/studies/{generate_uid()}", headers=bearer(auth_headers))
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_wado_serves_explicit_vr_little_endian_unless_asked_for_as_stored(
        client: FlaskClient, auth_headers: Headers) -> None:
    """PS3.18 §8.7.3.5.2: without a transfer-syntax parameter application/dicom means
    Explicit VR Little Endian, so compressed instances are decompressed; '*' serves the
    file as received."""
    ds = compressed(study("ACC-RLE", n_slices=1), RLELossless)[0]
    stow = client.post("/dicomweb/studies", data=multipart(encoded(ds)),
                       headers=stow_headers(auth_headers))
    assert stow.status_code == 200
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    default = client.get(url, headers=bearer(auth_headers))
    [(kind, data)] = split_multipart(default.headers["Content-Type"], default.data)
    assert kind == "application/dicom; 1.2.840.10008.1.2.1"
    decoded = dcmread(io.BytesIO(data))
    assert decoded.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (decoded.pixel_array == ds.pixel_array).all()
    as_sent = client.get(url, headers=bearer(
        auth_headers, Accept='multipart/related; type="application/dicom"; transfer-syntax=*'))
    [(kind, data)] = split_multipart(as_sent.headers["Content-Type"], as_sent.data)
    assert kind == f"application/dicom; {RLELossless}"
    assert dcmread(io.BytesIO(data)).PixelData == ds.PixelData
    jpeg = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    assert client.get(url, headers=bearer(auth_headers, Accept=jpeg)).status_code == 406
    # Accept is read as leniently as STOW's Content-Type: unquoted, any case.
    for accept in ("multipart/related; type=application/dicom; transfer-syntax=*",
                   "Multipart/Related; Type=Application/DICOM; transfer-syntax=*"):
        loose = client.get(url, headers=bearer(auth_headers, Accept=accept))
        assert loose.status_code == 200, accept
        [(kind, _)] = split_multipart(loose.headers["Content-Type"], loose.data)
        assert kind == f"application/dicom; {RLELossless}"


@pytest.mark.parametrize("content_type", [
    f'Multipart/Related; type="Application/DICOM"; boundary={BOUNDARY}',
    f"multipart/related; type=application/dicom; boundary={BOUNDARY}",
])
def test_stow_media_types_compare_case_insensitively(client: FlaskClient, auth_headers: Headers,
                                                     content_type: str) -> None:
    """RFC 7231 §3.1.1.1: type and parameter values are case-insensitive; older clients
    send the type parameter unquoted."""
    ds = study("ACC-CASE", n_slices=1)[0]
    headers = {**stow_headers(auth_headers), "Content-Type": content_type}
    body = multipart(encoded(ds), part_type="Application/DICOM")
    assert client.post("/dicomweb/studies", data=body, headers=headers).status_code == 200


def test_retrieve_urls_come_from_the_public_base_not_the_host_header(
        client: FlaskClient, auth_headers: Headers) -> None:
    ds = study("ACC-HOST", n_slices=1)[0]
    response = client.post("/dicomweb/studies", data=multipart(encoded(ds)),
                           headers=stow_headers(auth_headers),
                           base_url="https://attacker.example")
    assert response.get_json()[RETRIEVE_URL]["Value"] == \
        [f"http://localhost/dicomweb/studies/{ds.StudyInstanceUID}"]


def test_dicomweb_requests_are_audited(client: FlaskClient, auth_headers: Headers) -> None:
    missing = generate_uid()
    client.get(f"/dicomweb/studies/{missing}", headers=bearer(auth_headers))
    events = client.get("/fhir/AuditEvent?subtype=read&outcome=4",
                        headers=auth_headers("demo-admin")).get_json()
    queries = [e["resource"]["entity"][0]["query"] for e in events["entry"]]
    assert base64.b64encode(f"/dicomweb/studies/{missing}".encode()).decode() in queries


@pytest.mark.parametrize("suffix", [",OTHER", "|OTHER", "\\,X"])
def test_an_accession_holding_a_search_separator_names_no_order(
        settings: Settings, client: FlaskClient, order: Callable[[], Order],
        auth_headers: Headers, suffix: str) -> None:
    """AccessionNumber ``SP1,OTHER`` is not ``SP1`` or ``OTHER``: a comma in a DICOM value
    must not become a FHIR search OR and link images to another patient's order."""
    placed = order()
    series = study(placed.accession + suffix, n_slices=1)
    response = client.post("/dicomweb/studies", data=multipart(*map(encoded, series)),
                           headers=stow_headers(auth_headers))
    assert response.status_code == 200
    [received] = rows(settings, ReceivedStudy)
    assert not received.matched and received.service_request_id is None
