"""Order to report for CTCA: a CTCA order, the CTCA phantom sent with dcmtk's storescu, the report.

The phantom (tests/imaging_core/ctca/phantom.py) is scanned without contrast,
so the aortic root is about 40 HU, under SCCT's 250 HU (Abbara 2016): the
study must come back "not analysable" with that reason, its FFR-CT and
CAD-RADS Observations absent (never a number, never CAD-RADS 0), through the
whole path: C-STORE, the completion scheduler, the job queue choosing the
CTCA analyser from the order's procedure, the FHIR report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imaging_core import jobs
from tests.imaging_core import phantoms
from tests.imaging_core.conftest import accession_of, ctca_order, storescu
from tests.imaging_core.ctca import phantom as P
from tests.imaging_core.test_end_to_end import (  # noqa: F401 (fixtures)
    _report,
    imaging_settings,
    listener,
    pytestmark,
)


def _send(settings: Any, accession: str, tmp_path: Path) -> None:
    series = P.datasets(P.build(P.no_contrast(P.ctca_default())))
    for ds in series:
        ds.AccessionNumber = accession
    done = storescu(settings.dicom_port, phantoms.write(series, tmp_path))
    assert done.returncode == 0, done.stderr


def _measure(observation: dict[str, Any]) -> str:
    return next(c["code"] for c in observation["code"]["coding"]
                if c["system"].endswith("/CodeSystem/measure"))


def test_a_ctca_without_contrast_is_reported_not_analysable(
        client, auth_headers, listener, tmp_path):  # noqa: F811
    order = ctca_order(client, auth_headers)
    worker = jobs.Worker(listener)
    worker.start()
    try:
        _send(listener, accession_of(order), tmp_path)
        found = _report(client, auth_headers, order["id"], seconds=180)
    finally:
        worker.stop()
        worker.join(timeout=60)
    report = found["entry"][0]["resource"]
    assert report["status"] == "preliminary"
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{order['id']}"}]
    assert "could not be analysed" in report["conclusion"]
    assert "no contrast in the aortic root" in report["conclusion"]
    observations = [client.get(f"/fhir/{ref['reference']}", headers=auth_headers()).get_json()
                    for ref in report["result"]]
    assert sorted(map(_measure, observations)) == ["cad-rads"] + ["ffr-ct"] * 4
    for observation in observations:
        assert "valueQuantity" not in observation and "valueCodeableConcept" not in observation
        assert observation["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert [f["contentType"] for f in report["presentedForm"]] == ["application/pdf"]
