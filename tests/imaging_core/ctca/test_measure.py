"""Lumen cross-sections, stenoses and plaque measured on tubes of known geometry.

Expected values come from the geometry each test builds (``tubes``: radius,
narrowing grade, length and centre, plaque HU) or from the CTCA phantom's
truth, never from the measuring code. Volumes are small (under 0.2 M voxels
for the tubes); voxels 0.5-0.6 mm, a 0.4 mm Gaussian blur and 20 HU noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from imaging_core.ctca import measure as M
from imaging_core.ctca.tree import Lesion, Segment
from tests.imaging_core.ctca import tubes as T

STRAIGHT = T.Tube(c=np.array([4.13, 11.91, 2.0]), u=np.array([0.25, -0.15, 1.0]) / math.hypot(
    0.25, 0.15, 1.0), v=np.array([1.0, 0.0, -0.25]) / math.hypot(1.0, 0.25), length_mm=36.0)
SHAPE = (66, 36, 36)  # z, y, x voxels at (0.6, 0.5, 0.5) mm


def _measured(hu: Callable[[np.ndarray], np.ndarray], tube: T.Tube,
              shape: tuple[int, int, int] = SHAPE) -> tuple[M.Sections, list[Lesion]]:
    sections = M.measure(T.volume_of(hu, shape), T.segment_of(tube))
    return sections, M.lesions(sections.segment, sections)


def _inner(values: np.ndarray, margin: int = 6) -> np.ndarray:
    """Samples away from the tube's two ends (where the tube stops, the lumen is cut)."""
    return values[margin:-margin]


@pytest.mark.parametrize("radius", [1.0, 1.5, 2.0])
def test_straight_oblique_tube_area_and_diameter(radius: float) -> None:
    sections, found = _measured(T.hu_of(STRAIGHT, T.constant(radius), radius, T.FAT_HU),
                                STRAIGHT)
    area = _inner(sections.segment.area_mm2)
    diameter = _inner(sections.segment.diameter_mm)
    assert np.all(np.isfinite(area))
    assert abs(float(np.mean(area)) / (math.pi * radius ** 2) - 1) <= 0.05
    assert abs(float(np.mean(diameter)) - 2 * radius) <= 0.1
    assert np.percentile(np.abs(diameter - 2 * radius), 90) <= 0.15
    assert found == []


def test_curved_tube_is_measured_across_its_bend() -> None:
    """An arc of 15 mm radius in a plane tilted 27 degrees off the slices."""
    u = np.array([1.0, 0.0, 0.5]) / math.hypot(1.0, 0.5)
    arc = T.Tube(c=np.array([4.1, 22.2, 4.3]), u=u, v=np.array([0.0, 1.0, 0.0]),
                 length_mm=22.0, bend_mm=15.0)
    sections, found = _measured(T.hu_of(arc, T.constant(1.5), 1.5, T.FAT_HU), arc,
                                shape=(30, 52, 44))
    diameter = _inner(sections.segment.diameter_mm, 4)
    assert abs(float(np.mean(_inner(sections.segment.area_mm2, 4))) / (math.pi * 1.5 ** 2)
               - 1) <= 0.05
    assert np.percentile(np.abs(diameter - 3.0), 90) <= 0.15
    assert found == []


@pytest.mark.parametrize("grade", [50.0, 70.0])
def test_stenosis_grade_length_and_centre(grade: float) -> None:
    """A narrowing of known grade over 8 mm (1 mm shoulders) centred 18 mm along."""
    radius = T.narrowing(1.5, grade, centre_mm=18.0, length_mm=8.0)
    _, found = _measured(T.hu_of(STRAIGHT, radius, 1.5, T.SOFT_PLAQUE_HU, remodel_mm=0.5),
                         STRAIGHT)
    assert len(found) == 1
    lesion = found[0]
    assert abs(lesion.stenosis_pct - grade) <= 10
    assert abs(lesion.centre_mm - 18.0) <= 2
    assert abs(lesion.length_mm - 8.0) <= 2
    assert abs(lesion.reference_diameter_mm - 3.0) <= 0.15
    assert abs(lesion.minimal_lumen_diameter_mm - 3.0 * (1 - grade / 100)) <= 0.3
    assert lesion.plaque == "non-calcified"
    assert lesion.noncalcified_volume_mm3 > 0 and lesion.calcified_volume_mm3 == 0


def test_tapering_tube_has_no_lesion() -> None:
    """Radius 2 -> 1 mm over 36 mm, healthy all along: no narrowing may be invented."""
    radius = lambda s: 2.0 - s / 36.0  # noqa: E731
    sections, found = _measured(T.hu_of(STRAIGHT, radius, 2.0, T.FAT_HU), STRAIGHT)
    along = _inner(sections.segment.from_ostium_mm)
    assert np.percentile(np.abs(_inner(sections.segment.diameter_mm) - 2 * radius(along)),
                         90) <= 0.15
    assert found == []


@pytest.mark.parametrize("grade", [50.0, 70.0])
def test_calcified_stenosis_keeps_its_grade(grade: float) -> None:
    """A ring of 900 HU calcium narrows the lumen: calcium is not lumen, blooming or not."""
    radius = T.narrowing(1.5, grade, centre_mm=18.0, length_mm=8.0)
    _, found = _measured(T.hu_of(STRAIGHT, radius, 1.5, T.CALCIUM_HU, remodel_mm=0.5),
                         STRAIGHT)
    assert len(found) == 1
    assert abs(found[0].stenosis_pct - grade) <= 10
    assert abs(found[0].centre_mm - 18.0) <= 2
    assert found[0].plaque == "calcified"


def test_no_lumen_is_unknown_never_normal() -> None:
    """A centreline through fat with no vessel: every section is NaN, and no lesion."""
    sections, found = _measured(T.hu_of(STRAIGHT, T.constant(0.0), 0.0, T.FAT_HU), STRAIGHT)
    assert np.all(np.isnan(sections.segment.diameter_mm))
    assert np.all(np.isnan(sections.segment.area_mm2))
    assert found == []


def test_reference_interpolates_across_a_narrowing_from_both_sides() -> None:
    """Exponential taper 4 -> 2 mm with a 60 % dip in the middle: the reference follows
    the taper through the dip (an analytic profile, no image)."""
    s = np.arange(0.0, 60.0, 0.5)
    healthy = 4.0 * np.exp(-s * math.log(2) / 60.0)
    dip = np.where(np.abs(s - 30.0) < 4.0, 0.4, 1.0)
    reference = M.reference_diameter(s, healthy * dip)
    assert np.max(np.abs(reference - healthy)) <= 0.05


def test_bad_centreline_is_refused() -> None:
    segment = Segment(id="LAD", vessel="LAD", parent=None, points_mm=np.zeros((3, 2)),
                      from_ostium_mm=np.arange(3.0))
    with pytest.raises(M.ImagingError):
        M.measure(T.volume_of(T.hu_of(STRAIGHT, T.constant(1.0), 1.0, T.FAT_HU), (8, 8, 8)),
                  segment)
