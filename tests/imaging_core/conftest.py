"""Fixtures for DICOM in: a var directory per test, orders, phantom studies, the listener.

``settings`` wraps the shared one (SQLite and PostgreSQL) with a var
directory of the test's own, so counting stored files is exact.
"""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlmodel import Session, SQLModel, select

from core.db import engine_for
from core.settings import Settings
from imaging_core.volume import Volume, load_volume
from tests import factories
from tests.imaging_core.phantoms import Phantom, datasets
from tests.imaging_core.thorax import Thorax, ThoraxImage, build, scan_changed
from tests.imaging_core.thorax import datasets as thorax_datasets

STORESCU = shutil.which("storescu")
needs_dcmtk = pytest.mark.skipif(STORESCU is None, reason="dcmtk (storescu) not installed")


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The shared settings with a var directory of this test's own and an ephemeral DICOM port."""
    return settings.model_copy(update={"var_dir": tmp_path / "var", "dicom_port": 0})


@dataclass(frozen=True)
class Order:
    id: str
    accession: str
    subject: dict[str, Any]


@pytest.fixture
def order(client: FlaskClient, auth_headers: Callable[..., dict[str, str]]) -> Callable[[], Order]:
    """``order()``: a Patient and an imaging ServiceRequest created through the FHIR API."""

    def create() -> Order:
        headers = auth_headers("demo-gp")
        patient = client.post("/fhir/Patient", json=factories.patient(), headers=headers)
        assert patient.status_code == 201, patient.get_json()
        reference = f"Patient/{patient.get_json()['id']}"
        created = client.post("/fhir/ServiceRequest", json=factories.service_request(reference),
                              headers=headers)
        assert created.status_code == 201, created.get_json()
        body = created.get_json()
        acsn = [i["value"] for i in body["identifier"]
                if i.get("type", {}).get("coding", [{}])[0].get("code") == "ACSN"]
        return Order(body["id"], acsn[0], body["subject"])

    return create


@pytest.fixture
def practitioner(client: FlaskClient,
                 auth_headers: Callable[..., dict[str, str]]) -> Callable[[str], str]:
    """``practitioner(family)``: a Practitioner (given name Sam) made by an admin; its
    reference."""
    def create(family: str) -> str:
        made = client.post("/fhir/Practitioner", headers=auth_headers("demo-admin"),
                           json={"resourceType": "Practitioner",
                                 "name": [{"family": family, "given": ["Sam"]}]})
        assert made.status_code == 201, made.get_json()
        return f"Practitioner/{made.get_json()['id']}"
    return create


def encoded(ds: Dataset) -> bytes:
    """``ds`` as a Part 10 file's bytes."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def cac_order(client: FlaskClient, auth_headers: Callable[..., dict[str, str]]) -> dict[str, Any]:
    """A CT calcium-scoring ServiceRequest (SNOMED CT 426005005) created through the API."""
    return imaging_order(client, auth_headers, "426005005", "Cardiac CT for calcium scoring")


def ctca_order(client: FlaskClient, auth_headers: Callable[..., dict[str, str]]) -> dict[str, Any]:
    """A CT coronary angiography ServiceRequest (SNOMED CT 419545005, catalogue ``CTCA``)."""
    return imaging_order(client, auth_headers, "419545005",
                         "Computed tomography angiography of coronary artery with contrast")


def imaging_order(client: FlaskClient, auth_headers: Callable[..., dict[str, str]],
                  snomed: str, display: str) -> dict[str, Any]:
    """An imaging ServiceRequest for a new Patient, its code SNOMED CT ``snomed``."""
    sct = "http://snomed.info/sct"
    pid = client.post("/fhir/Patient", json=factories.patient(),
                      headers=auth_headers()).get_json()["id"]
    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "subject": {"reference": f"Patient/{pid}"},
             "category": [{"coding": [{"system": sct, "code": "363679005"}]}],
             "code": {"coding": [{"system": sct, "code": snomed, "display": display}]}}
    response = client.post("/fhir/ServiceRequest", json=order, headers=auth_headers())
    assert response.status_code == 201, response.data
    return dict(response.get_json())


def accession_of(order: dict[str, Any]) -> str:
    """The value of the order's ACSN identifier."""
    return str(next(i["value"] for i in order["identifier"]
                    if i["type"]["coding"][0]["code"] == "ACSN"))


def study(accession: str, n_slices: int = 4, **changes: Any) -> list[Dataset]:
    """A small CT phantom series of a study of its own, carrying ``accession``."""
    phantom = Phantom(n_slices=n_slices, accession=accession, study_uid=generate_uid())
    return datasets(replace(phantom, **changes))


def rows(settings: Settings, model: type[SQLModel]) -> list[Any]:
    """Every row of ``model``, read in a fresh session (what other processes see)."""
    with Session(engine_for(settings.database_url)) as session:
        return list(session.exec(select(model)).all())


def stored_files(settings: Settings) -> list[Path]:
    """Files under the store, temporary ones included (none should be left)."""
    root = settings.var_dir / "dicom"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def scp(settings: Settings) -> Iterator[int]:
    """The C-STORE listener on an ephemeral loopback port; yields the port."""
    from imaging_core.scp import start_scp, stop_scp

    server = start_scp(settings)
    try:
        yield int(server.server_address[1])
    finally:
        stop_scp(server)


def storescu(port: int, files: list[Path], *options: str,
             calling_ae: str = "STORESCU") -> subprocess.CompletedProcess[str]:
    """dcmtk's storescu sending ``files`` to the listener; ``-v`` logs each response status."""
    assert STORESCU is not None
    return subprocess.run([STORESCU, "-v", "-aet", calling_ae, "-aec", "SCANPATH", *options,
                           "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True, text=True, timeout=60)


@functools.lru_cache(maxsize=4)
def scanned(thorax: Thorax) -> tuple[ThoraxImage, Volume]:
    """``thorax`` built, written as CT instances and loaded back (cached: tests only read it)."""
    image = build(thorax)
    return image, load_volume(thorax_datasets(image))


NOISY_HU = 5.0  # the noise: sigma 5 HU


def noisy(thorax: Thorax) -> Thorax:
    """``thorax`` scanned with ``NOISY_HU`` Gaussian noise."""
    return scan_changed(thorax, noise_sigma=NOISY_HU)
