"""Request bodies over the size limit are refused whole, however they are framed."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

from tests.conftest import serving

MB = 1024 * 1024
STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=b0undary'


def _post_chunked(base: str, path: str, body: bytes, headers: dict[str, str]
                  ) -> tuple[int, dict]:
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length)."""
    where = urlsplit(base)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    try:
        chunks = (body[i:i + 64 * 1024] for i in range(0, len(body), 64 * 1024))
        connection.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_dicomweb_keeps_its_own_larger_limit_for_chunked_bodies(app, auth_headers):
    app.config["SCANPATH"] = app.config["SCANPATH"].model_copy(
        update={"dicomweb_max_body_bytes": 3 * MB})
    headers = {**auth_headers("demo-radiology"), "Content-Type": STOW_TYPE}
    with serving(app) as base:
        under = _post_chunked(base, "/dicomweb/studies", b"x" * (2 * MB + 100), headers)
        over = _post_chunked(base, "/dicomweb/studies", b"x" * (3 * MB + 100), headers)
        fhir = _post_chunked(base, "/fhir/Binary", b"x" * (2 * MB + 100),
                             {**auth_headers("demo-radiology"),
                              "Content-Type": "application/fhir+json"})

    assert under[0] != 413  # past SCANPATH_MAX_BODY_BYTES, within the DICOMweb limit
    assert over[0] == 413 and over[1]["resourceType"] == "OperationOutcome"
    assert fhir[0] == 413 and fhir[1]["issue"][0]["code"] == "too-costly"
