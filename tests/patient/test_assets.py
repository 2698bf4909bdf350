"""The files of a patient's page, from real signed reports: key images decode, the GLB
passes the Khronos glTF validator, the still shows a picture, the PDF is the signed one;
nothing of another report is ever returned."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlmodel import Session

from core.db import engine_for
from fhir.store import Store
from patient import assets
from tests.imaging_core.test_reports import PDFTOTEXT, _pdf_text
from tests.patient.conftest import Pair

ROOT = Path(__file__).resolve().parents[2]
GLTF_VALIDATOR = ROOT / "tests" / "validator" / "gltf_validate.mjs"


def _store(pair: Pair) -> tuple[Session, Store]:
    session = Session(engine_for(pair.settings.database_url))
    return session, Store(session, pair.settings)


def test_key_images_are_pngs_of_the_report(signed_pair: Pair) -> None:
    session, store = _store(signed_pair)
    a = signed_pair.a
    with session:
        first = assets.key_image(store, a.report_id, a.version, 1)
        beyond = assets.key_image(store, a.report_id, a.version, 99)
        zero = assets.key_image(store, a.report_id, a.version, 0)
    assert first is not None and beyond is None and zero is None
    image = Image.open(io.BytesIO(first))
    assert image.format == "PNG" and image.size[0] > 0


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_the_model_is_valid_gltf(signed_pair: Pair, tmp_path: Path) -> None:
    session, store = _store(signed_pair)
    with session:
        glb = assets.model_glb(store, signed_pair.a.report_id, signed_pair.a.version)
    assert glb is not None and glb[:4] == b"glTF"
    path = tmp_path / "model.glb"
    path.write_bytes(glb)
    run = subprocess.run(["node", str(GLTF_VALIDATOR), str(path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    if run.returncode == 2:
        pytest.skip("gltf-validator is not installed (npm ci)")
    assert json.loads(run.stdout)["errors"] == 0


def test_the_still_shows_the_model(signed_pair: Pair) -> None:
    session, store = _store(signed_pair)
    with session:
        still = assets.model_still(store, signed_pair.a.report_id, signed_pair.a.version)
    assert still is not None
    pixels = np.asarray(Image.open(io.BytesIO(still)).convert("RGB"))
    assert pixels.shape[0] >= 200 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10
    background = np.array([240, 244, 245])
    drawn = np.any(pixels != background, axis=2).mean()
    assert 0.01 < drawn < 0.95  # something drawn, not a full-bleed block of one colour


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) not installed")
def test_the_pdf_is_the_signed_one(signed_pair: Pair, tmp_path: Path) -> None:
    session, store = _store(signed_pair)
    a = signed_pair.a
    with session:
        pdf = assets.report_pdf(store, a.report_id, a.version)
    assert pdf is not None and pdf.startswith(b"%PDF")
    text = _pdf_text(pdf, tmp_path)[0]
    assert "FINAL" in text and "PRELIMINARY" not in text


def test_nothing_of_another_report_or_an_unsigned_version(signed_pair: Pair) -> None:
    session, store = _store(signed_pair)
    a, b = signed_pair.a, signed_pair.b
    with session:
        mine = assets.key_image(store, a.report_id, a.version, 1)
        theirs = assets.key_image(store, b.report_id, b.version, 1)
        preliminary = str(int(a.version) - 1)
        assert assets.report_pdf(store, a.report_id, preliminary) is None
        assert assets.key_image(store, a.report_id, preliminary, 1) is None
        assert assets.model_glb(store, a.report_id, "999") is None
        assert assets.report_pdf(store, "no-such-report", "1") is None
    assert mine != theirs
