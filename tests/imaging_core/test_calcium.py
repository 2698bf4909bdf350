"""Agatston scoring against analytic phantoms; expected values come from geometry.

Density weights (Agatston 1990): peak 130-199 -> 1, 200-299 -> 2, 300-399 -> 3,
>= 400 -> 4; below 130 HU nothing is calcium. CAC-DRS (Hecht 2018): 0 -> 0,
1-99 -> 1, 100-299 -> 2, >= 300 -> 3.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from imaging_core.calcium import ANALYSER_VERSION, CalciumParams, cac_drs, score
from imaging_core.volume import load_volume
from tests.imaging_core.phantoms import (
    Insert,
    Phantom,
    covered_slices,
    datasets,
    disc_mask,
    expected_agatston,
    expected_volume_mm3,
    oblique,
    shuffled,
)

PIXEL = 0.5  # mm: a pixel is 0.25 mm^2, so 1 mm^2 is exactly four pixels
THREE_INSERTS = Phantom(rows=96, cols=96, n_slices=14, inserts=(
    Insert(u=12, v=12, radius=2.0, w0=3, w1=24, hu=350),
    Insert(u=34, v=14, radius=1.5, w0=9, w1=15, hu=160, peak=450),
    Insert(u=22, v=36, radius=3.0, w0=0, w1=6, hu=250),
))


def _score(phantom: Phantom, params: CalciumParams | None = None):  # type: ignore[no-untyped-def]
    return score(load_volume(shuffled(datasets(phantom))), params)


@pytest.mark.parametrize(("peak_hu", "weight"), [
    (129, 0), (130, 1), (199, 1), (200, 2), (299, 2), (300, 3), (399, 3), (400, 4),
])
def test_density_weight_boundaries(peak_hu: int, weight: int) -> None:
    insert = Insert(u=16, v=16, radius=2.0, w0=3, w1=9, hu=peak_hu)
    phantom = Phantom(n_slices=5, inserts=(insert,))
    area = int(disc_mask(phantom, insert).sum()) * PIXEL * PIXEL  # 49 pixels
    slices = len(covered_slices(phantom, insert))  # 3 slices at 3 mm
    result = _score(phantom)
    assert result.scorable
    assert result.agatston == pytest.approx(area * weight * slices)
    assert result.lesion_count == (1 if weight else 0)


def test_weight_comes_from_peak_not_mean() -> None:
    insert = Insert(u=16, v=16, radius=2.0, w0=0, w1=0, hu=150, peak=400)
    phantom = Phantom(n_slices=3, inserts=(insert,))
    area = int(disc_mask(phantom, insert).sum()) * PIXEL * PIXEL
    assert _score(phantom).agatston == pytest.approx(area * 4)


@pytest.mark.parametrize(("centre", "radius", "pixels", "counted"), [
    ((10.2, 10.2), 0.73 * PIXEL, 3, False),  # 0.75 mm^2: below the minimum
    ((10.25, 10.25), 0.36, 4, True),  # exactly 1 mm^2: centre between four pixels
    ((10.0, 10.0), 1.0 * PIXEL, 5, True),  # 1.25 mm^2
])
def test_minimum_lesion_area(centre: tuple[float, float], radius: float, pixels: int,
                             counted: bool) -> None:
    insert = Insert(u=centre[0], v=centre[1], radius=radius, w0=0, w1=0, hu=500)
    phantom = Phantom(n_slices=3, inserts=(insert,))
    assert int(disc_mask(phantom, insert).sum()) == pixels
    result = _score(phantom)
    assert result.agatston == pytest.approx(pixels * 0.25 * 4 if counted else 0.0)
    assert result.lesion_count_2d == (1 if counted else 0)


def test_three_inserts_scores_volume_and_counts() -> None:
    result = _score(THREE_INSERTS)
    assert result.agatston == pytest.approx(expected_agatston(THREE_INSERTS))
    assert result.volume_mm3 == pytest.approx(expected_volume_mm3(THREE_INSERTS))
    assert result.lesion_count == 3
    assert result.lesion_count_2d == sum(len(covered_slices(THREE_INSERTS, i))
                                         for i in THREE_INSERTS.inserts)
    assert result.cac_drs == cac_drs_from_table(expected_agatston(THREE_INSERTS))


def cac_drs_from_table(agatston: float) -> int:
    """Hecht 2018 categories written out independently of the code under test."""
    return 0 if agatston == 0 else 1 if agatston < 100 else 2 if agatston < 300 else 3


def test_overlapping_2p5mm_increment_is_weighted_by_increment_over_3mm() -> None:
    phantom = replace(THREE_INSERTS, increment=2.5, thickness=3.0, n_slices=16)
    result = _score(phantom)
    assert result.scorable
    assert result.params["increment_factor"] == pytest.approx(2.5 / 3.0)
    assert result.agatston == pytest.approx(expected_agatston(phantom))
    assert result.volume_mm3 == pytest.approx(expected_volume_mm3(phantom))


def test_overlapping_1p5mm_increment_is_refused_not_scaled() -> None:
    result = _score(replace(THREE_INSERTS, increment=1.5, thickness=3.0, n_slices=27))
    assert not result.scorable
    assert result.reason == "slice increment 1.5 mm outside the accepted 2.5-3 mm"
    assert result.agatston is None


def test_reversed_z_order_scores_the_same() -> None:
    phantom = replace(THREE_INSERTS, reversed_z=True)
    assert _score(phantom).agatston == pytest.approx(expected_agatston(THREE_INSERTS))


def test_oblique_orientation_scores_the_same() -> None:
    phantom = oblique(THREE_INSERTS, 25)
    assert _score(phantom).agatston == pytest.approx(expected_agatston(THREE_INSERTS))


def test_noise_sigma_15_within_3_percent() -> None:
    phantom = Phantom(rows=128, cols=128, n_slices=16, noise_sigma=15.0, seed=7, inserts=(
        Insert(u=20, v=20, radius=3.0, w0=6, w1=30, hu=600),
        Insert(u=44, v=24, radius=2.0, w0=12, w1=21, hu=700),
        Insert(u=30, v=46, radius=4.0, w0=0, w1=12, hu=650),
    ))
    expected = expected_agatston(phantom)
    volume = load_volume(shuffled(datasets(phantom)))
    background = volume.hu[:, 100:, 100:]  # no insert reaches here
    assert float(background.std()) == pytest.approx(15.0, rel=0.05)  # the noise is there
    result = score(volume)
    assert abs(result.agatston - expected) <= 0.03 * expected
    assert result.lesion_count == 3  # no speckle lesion, no fragmentation


def test_mass_needs_a_calibration_factor() -> None:
    insert = Insert(u=16, v=16, radius=2.0, w0=0, w1=6, hu=500)
    phantom = Phantom(n_slices=4, inserts=(insert,))
    uncalibrated = _score(phantom)
    assert uncalibrated.mass_mg is None
    assert any(q.startswith("mass-not-calibrated") for q in uncalibrated.qa)
    voxels = int(disc_mask(phantom, insert).sum()) * len(covered_slices(phantom, insert))
    volume_cm3 = voxels * PIXEL * PIXEL * 3.0 / 1000.0
    calibrated = _score(phantom, CalciumParams(mass_calibration=0.8))
    assert calibrated.mass_mg == pytest.approx(0.8 * 500 * volume_cm3)


def test_region_mask_limits_scoring() -> None:
    volume = load_volume(datasets(THREE_INSERTS))
    roi = np.zeros(volume.shape, dtype=bool)
    roi[:, :48, :48] = True  # pixel centres u, v < 24 mm: only the first insert
    first = replace(THREE_INSERTS, inserts=THREE_INSERTS.inserts[:1])
    result = score(volume, roi=roi)
    assert result.agatston == pytest.approx(expected_agatston(first))
    assert result.region == "region mask"


def test_no_calcium_scores_zero() -> None:
    result = _score(Phantom(n_slices=4))
    assert (result.agatston, result.cac_drs, result.lesion_count) == (0.0, 0, 0)


@pytest.mark.parametrize(("agatston", "category"), [
    (0, 0), (0.5, 1), (1, 1), (99, 1), (100, 2), (299, 2), (300, 3), (2500, 3),
])
def test_cac_drs_boundaries(agatston: float, category: int) -> None:
    assert cac_drs(agatston) == category


@pytest.mark.parametrize(("change", "reason"), [
    ({"contrast_agent": "Iohexol"}, "contrast"),
    ({"kvp": 100.0}, "100 kVp"),
    ({"kvp": None}, "KVP"),
    ({"thickness": 1.5, "increment": 1.5}, "slice thickness 1.5"),
    ({"thickness": 5.0, "increment": 5.0}, "slice thickness 5"),
    ({"missing": (6,)}, "slice-gap"),
    ({"increment": 4.0}, "non-contiguous-slices"),
])
def test_qa_gate_refuses_with_reason(change: dict[str, object], reason: str) -> None:
    result = _score(replace(THREE_INSERTS, **change))  # type: ignore[arg-type]
    assert not result.scorable
    assert reason in (result.reason or "")
    assert (result.agatston, result.volume_mm3, result.mass_mg, result.cac_drs) == (
        None, None, None, None)


def test_thickness_2p5_is_accepted() -> None:
    phantom = replace(THREE_INSERTS, thickness=2.5, increment=2.5, n_slices=16)
    result = _score(phantom)
    assert result.scorable
    assert result.agatston == pytest.approx(expected_agatston(phantom))


def test_result_dict_records_version_and_parameters() -> None:
    document = _score(THREE_INSERTS).as_dict()
    json.dumps(document)  # storable as JSON
    assert document["analyser_version"] == ANALYSER_VERSION
    assert document["params"]["threshold_hu"] == 130.0
    assert document["params"]["min_lesion_area_mm2"] == 1.0
    assert document["params"]["connectivity_2d"] == 8
    assert "Agatston" in document["params"]["sources"]["threshold_hu"]
    assert document["cac_drs_label"].startswith("CAC-DRS A")
    assert "weight_map" not in document
