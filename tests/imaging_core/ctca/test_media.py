"""CTCA media and documents on the hand-made case: GLB colours, straightened PNG, SR, PDF.

Expected values come from ``handmade.py``'s geometry (a 3.0 mm lumen narrowed
to 1.2 mm between 8 and 11 mm from the ostium) and from the FFR-CT colour bands
documented in ``imaging_core.ctca_reports`` (above 0.80 green, 0.76-0.80
yellow, 0.75 or less red). The Khronos glTF validator and dciodvfy are the
independent checkers; a test that needs one skips where it is not installed.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from imaging_core import ctca_media
from imaging_core.ctca.straightened import frames, straighten
from imaging_core.ctca.tree import CtcaResult
from imaging_core.ctca_reports import build_pdf, build_sr, conclusion_text
from imaging_core.volume import Volume
from tests.imaging_core.ctca import handmade
from tests.imaging_core.test_mesh import GLTF_VALIDATOR, ROOT, accessor_data, parse_glb
from tests.imaging_core.test_phantom_iod import DCIODVFY, _errors

GREEN, YELLOW, RED = (0.10, 0.65, 0.25), (0.95, 0.80, 0.10), (0.85, 0.10, 0.10)
PDFTOTEXT = shutil.which("pdftotext")


@pytest.fixture(scope="module")
def case() -> tuple[list[Dataset], Volume, CtcaResult]:
    sources = handmade.sources()
    volume = handmade.volume(sources)
    return sources, volume, handmade.result(volume)


def _mesh_colours(glb: bytes, name_start: str) -> np.ndarray:
    document, blob = parse_glb(glb)
    mesh = next(m for m in document["meshes"] if m["name"].startswith(name_start))
    return accessor_data(document, blob, mesh["primitives"][0]["attributes"]["COLOR_0"])


def test_ffr_bands_follow_the_documented_thresholds() -> None:
    colours = ctca_media.ffr_colours(np.array([0.92, 0.81, 0.80, 0.76, 0.75, 0.5, np.nan]))
    np.testing.assert_allclose(colours, [GREEN, GREEN, YELLOW, YELLOW, RED, RED,
                                         (0.6, 0.6, 0.6)], atol=1e-6)


def test_glb_tubes_are_coloured_by_ffr(case: Any) -> None:
    _, _, result = case
    glb = ctca_media.tree_glb(result)
    assert glb is not None
    lad = _mesh_colours(glb, "LAD ")
    np.testing.assert_allclose(lad[0], GREEN, atol=1e-6)  # 0.99 at the LAD's start
    np.testing.assert_allclose(lad[-1], RED, atol=1e-6)  # 0.72 at its end
    lcx = _mesh_colours(glb, "LCX ")
    np.testing.assert_allclose(lcx[-1], GREEN, atol=1e-6)  # 0.85


def test_tube_radius_is_the_measured_lumen(case: Any) -> None:
    _, _, result = case
    glb = ctca_media.tree_glb(result)
    assert glb is not None
    document, blob = parse_glb(glb)
    mesh = next(m for m in document["meshes"] if m["name"].startswith("LAD "))
    vertices = accessor_data(document, blob, mesh["primitives"][0]["attributes"]["POSITION"])
    segment = result.tree.segments["LAD"]
    axis = segment.points_mm[-1] - segment.points_mm[0]
    axis /= np.linalg.norm(axis)
    offset = vertices - segment.points_mm[0]
    along = offset @ axis + segment.from_ostium_mm[0]
    radial = np.linalg.norm(offset - np.outer(offset @ axis, axis), axis=1)
    assert radial[along < 7.5] == pytest.approx(1.5, abs=1e-3)  # 3.0 mm lumen
    assert radial[(along > 8.5) & (along < 10.5)] == pytest.approx(0.6, abs=1e-3)  # 1.2 mm


@pytest.mark.skipif(shutil.which("node") is None
                    or not (ROOT / "node_modules" / "gltf-validator").is_dir(),
                    reason="Khronos gltf-validator (npm) not installed in node_modules")
def test_coloured_glb_passes_the_khronos_validator(case: Any, tmp_path: Path) -> None:
    _, _, result = case
    glb = ctca_media.tree_glb(result)
    assert glb is not None
    path = tmp_path / "tree.glb"
    path.write_bytes(glb)
    run = subprocess.run(["node", str(GLTF_VALIDATOR), str(path)], capture_output=True,
                         text=True, timeout=120, cwd=ROOT, check=True)
    report = json.loads(run.stdout)
    assert (report["errors"], report["warnings"]) == (0, 0), report["messages"]


def test_frames_stay_perpendicular_on_a_helix() -> None:
    t = np.linspace(0, 4 * np.pi, 400)
    helix = np.stack([10 * np.cos(t), 10 * np.sin(t), 3 * t], axis=1)
    tangents, normals, binormals = frames(helix)
    np.testing.assert_allclose(np.einsum("ij,ij->i", tangents, normals), 0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(binormals, axis=1), 1, atol=1e-9)
    # Rotation-minimising: the normal turns only as much as the tangent does.
    assert np.max(np.linalg.norm(np.diff(normals, axis=0), axis=1)) < 0.1


def _lumen_width_mm(column: np.ndarray, step_mm: float) -> float:
    """The width of the bright (contrast, above 220 HU: half of 40 and 400) run."""
    return float(np.count_nonzero(column > 220.0)) * step_mm


def test_straightened_view_shows_the_narrowing_where_it_is(case: Any) -> None:
    _, volume, result = case
    lad = result.tree.segments["LAD"]
    view = straighten(volume, lad.points_mm, lad.from_ostium_mm)
    at = {mm: int(np.argmin(np.abs(view.along_mm - mm))) for mm in (6.0, 9.5, 14.0)}
    widths = {mm: _lumen_width_mm(view.hu[:, j], 0.5) for mm, j in at.items()}
    assert widths[6.0] == pytest.approx(3.0, abs=0.6)
    assert widths[14.0] == pytest.approx(3.0, abs=0.6)
    assert widths[9.5] == pytest.approx(1.2, abs=0.6)


def test_straightened_png_is_dark_at_the_narrowing_and_boxes_it(case: Any) -> None:
    _, volume, result = case
    images = {image.name: image for image in ctca_media.straightened_images(volume, result)}
    assert set(images) == {"straightened-LAD", "straightened-LCX"}  # RCA not found
    png = Image.open(io.BytesIO(images["straightened-LAD"].png)).convert("RGB")
    pixels = np.asarray(png).astype(int)
    lad = result.tree.segments["LAD"]
    view = straighten(volume, np.concatenate([result.tree.segments["LM"].points_mm,
                                              lad.points_mm]),
                      np.concatenate([result.tree.segments["LM"].from_ostium_mm,
                                      lad.from_ostium_mm]))
    top, bottom = ctca_media.MARGIN_PX + 4, ctca_media.MARGIN_PX + view.hu.shape[0] * 3 - 4
    centre = (top + bottom) // 2
    mid = int(ctca_media.column_of(view, 9.5))
    healthy = int(ctca_media.column_of(view, 5.0))
    # Contrast (400 HU) is grey 175 in W800/L250, the 40 HU background 60; the red marks
    # are not grey.
    red, green, blue = (pixels[top:bottom, :, k] for k in range(3))
    bright = (red > 120) & (red == green) & (green == blue)
    assert bright[:, healthy].sum() > 2 * bright[:, mid].sum()
    # The lesion's box is red at its start and end columns.
    left = int(round(ctca_media.column_of(view, handmade.LAD_LESION.start_mm)))
    assert tuple(pixels[centre, left]) == ctca_media.LESION_RED
    assert "60 % at 9.5 mm" in images["straightened-LAD"].description


def test_sr_is_valid_and_holds_the_lesion(case: Any, tmp_path: Path) -> None:
    sources, volume, result = case
    sr = build_sr(sources, volume, result, conclusion_text(result))
    values = _numeric_items(sr)
    assert values[("408715008", "SCT")] == [pytest.approx(60.0), pytest.approx(30.0)]
    assert values[("408716009", "SCT")] == [pytest.approx(3.0), pytest.approx(2.0)]
    assert pytest.approx(handmade.FFR_AFTER_LAD_LESION) in values[("ffr-ct", "99SCANPATH")]
    if DCIODVFY is None:
        pytest.skip("dciodvfy (dicom3tools) not installed")
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    assert _errors(path) == []


def _numeric_items(ds: Dataset) -> dict[tuple[str, str], list[float]]:
    """Every NUM item in the SR tree, by concept (code, scheme), in document order."""
    found: dict[tuple[str, str], list[float]] = {}

    def walk(items: Any) -> None:
        for item in items:
            if item.ValueType == "NUM":
                name = item.ConceptNameCodeSequence[0]
                code = name.get("CodeValue") or name.get("LongCodeValue")  # > 16 chars
                key = (str(code), str(name.CodingSchemeDesignator))
                found.setdefault(key, []).append(float(item.MeasuredValueSequence[0]
                                                       .NumericValue))
            walk(item.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) not installed")
def test_pdf_says_the_lesions_the_category_and_preliminary(case: Any, tmp_path: Path) -> None:
    _, volume, result = case
    images = ctca_media.straightened_images(volume, result)
    pdf = build_pdf(result, patient_name="Doe^Jane", accession="CTCA0001",
                    study_date="20250101", images=images, conclusion=conclusion_text(result))
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    assert PDFTOTEXT is not None
    text = " ".join(subprocess.run([PDFTOTEXT, str(path), "-"], capture_output=True,
                                   text=True, timeout=30, check=True).stdout.split())
    assert "PRELIMINARY" in text and "CAD-RADS 3" in text
    assert "60 %" in text and "9.5 mm" in text and "0.74" in text
    assert "green above 0.80" in text
