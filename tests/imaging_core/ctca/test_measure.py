"""Lumen cross-sections, stenoses and plaque measured on tubes of known geometry.

Expected values come from the geometry each test builds (``tubes``: radius,
narrowing grade, length and centre, plaque HU) or from the CTCA phantom's
truth, never from the measuring code. Volumes are small (under 0.2 M voxels
for the tubes, the phantom's 4 M-voxel cardiac crop); tube voxels 0.5-0.6 mm,
a 0.4 mm Gaussian blur and 20 HU noise. The phantom is measured along its
truth centrelines, so these tests do not depend on the lumen step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from imaging_core.ctca import measure as M
from imaging_core.ctca.tree import Lesion, Segment, Tree
from tests.imaging_core.ctca import phantom as P
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


@pytest.mark.parametrize("grade", [80.0, 90.0])
def test_severe_stenosis_of_a_narrow_lumen_keeps_its_grade(grade: float) -> None:
    """80 % and 90 % of a 3 mm lumen in 50 HU plaque: residual lumens of 0.6 and 0.3 mm,
    narrower than the 0.4 mm blur plus 0.5 mm voxels resolve. The grade from the geometry
    within 10 points (issue 14), never read low into the moderate range; a 0.3 mm lumen
    may read as no lumen (100 %: below the image's resolution)."""
    radius = T.narrowing(1.5, grade, centre_mm=18.0, length_mm=8.0)
    _, found = _measured(T.hu_of(STRAIGHT, radius, 1.5, T.SOFT_PLAQUE_HU, remodel_mm=0.5),
                         STRAIGHT)
    assert len(found) == 1
    assert abs(found[0].stenosis_pct - grade) <= 10
    assert abs(found[0].centre_mm - 18.0) <= 2


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


@pytest.mark.parametrize("grade", [50.0, 70.0])
def test_eccentric_calcified_nodule_keeps_its_grade(grade: float) -> None:
    """Calcium as a crescent on one side, the lumen pushed against the other wall, and the
    centreline on the vessel's axis (inside the calcium at the narrowest point)."""
    radius = T.narrowing(1.5, grade, centre_mm=18.0, length_mm=8.0)
    _, found = _measured(T.hu_of(STRAIGHT, radius, 1.5, T.CALCIUM_HU, eccentric=True),
                         STRAIGHT)
    assert len(found) == 1
    assert abs(found[0].stenosis_pct - grade) <= 10
    assert abs(found[0].centre_mm - 18.0) <= 2
    assert found[0].plaque in ("calcified", "mixed") and found[0].calcified_volume_mm3 > 0


def test_no_lumen_is_unknown_never_normal() -> None:
    """A centreline through fat with no vessel: every section is NaN, and no lesion."""
    sections, found = _measured(T.hu_of(STRAIGHT, T.constant(0.0), 0.0, T.FAT_HU), STRAIGHT)
    assert np.all(np.isnan(sections.segment.diameter_mm))
    assert np.all(np.isnan(sections.segment.area_mm2))
    assert found == []


def test_occluded_stretch_is_a_total_occlusion() -> None:
    """A 3 mm lumen filled with 50 HU plaque over 6 mm (8 mm with the shoulders), contrast
    on both sides (as collaterals fill it): a lesion of 100 % with no lumen (CAD-RADS 2.0,
    Cury 2022: 100 % = total occlusion), centred where the tube is occluded."""
    radius = T.narrowing(1.5, 100.0, centre_mm=18.0, length_mm=8.0)
    sections, found = _measured(T.hu_of(STRAIGHT, radius, 1.5, T.SOFT_PLAQUE_HU), STRAIGHT)
    assert len(found) == 1
    assert found[0].stenosis_pct == 100.0 and found[0].minimal_lumen_diameter_mm == 0.0
    assert abs(found[0].centre_mm - 18.0) <= 2
    along = sections.segment.from_ostium_mm
    assert sections.occluded is not None
    assert np.all(sections.segment.diameter_mm[sections.occluded] == 0.0)
    assert np.all(np.abs(along[sections.occluded] - 18.0) <= 3.0)  # the 6 mm without lumen


def test_a_centreline_beyond_the_vessel_end_is_no_occlusion() -> None:
    """The vessel stops 31 mm along (tube of 26 mm plus its 5 mm run-out); the centreline
    runs on 5 mm through fat. Nothing bounds that stretch distally: not an occlusion."""
    short = T.Tube(c=STRAIGHT.c, u=STRAIGHT.u, v=STRAIGHT.v, length_mm=26.0)
    sections, found = _measured(T.hu_of(short, T.constant(1.5), 1.5, T.FAT_HU), STRAIGHT)
    assert sections.occluded is not None and not sections.occluded.any()
    assert all(lesion.stenosis_pct < 100 for lesion in found)


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


# --- the CTCA phantom, measured along its TRUTH centrelines (independent of the lumen step) ---

def _phantom_lesions(ctca: P.Ctca) -> tuple[P.Truth, list[Lesion]]:
    """The phantom's lesions found by :func:`measure_tree` on a Tree of its truth lumen
    centrelines (the lumen's centre, as a tracker of the contrast lumen finds it; the
    vessel's axis elsewhere than at an eccentric stenosis)."""
    image = P.build(ctca)
    segments = {name: Segment(id=name, vessel=v.vessel,  # type: ignore[arg-type]
                              parent=v.parent, points_mm=v.lumen_points_mm,
                              from_ostium_mm=v.from_ostium_mm)
                for name, v in image.truth.vessels.items()}
    measured, found = M.measure_tree(P.volume(image), Tree(segments=segments, ostia={}))
    assert all(s.diameter_mm is not None for s in measured.segments.values())
    return image.truth, found


def _matching(lesion: Lesion, stenoses: list[P.StenosisTruth]) -> list[P.StenosisTruth]:
    """The stenoses whose centre lies within the lesion's extent (2 mm slack)."""
    return [s for s in stenoses if s.segment == lesion.segment
            and lesion.start_mm - 2 <= s.centre_mm <= lesion.end_mm + 2]


@pytest.mark.parametrize("preset", [P.ctca_default, P.ctca_three_vessel, P.ctca_left_main,
                                    P.ctca_eccentric, P.ctca_healthy])
def test_phantom_stenoses_found_graded_and_never_invented(
        preset: Callable[[], P.Ctca]) -> None:
    """Default (LAD 70 %, calcified LCX 50 %, RCA 30 %), three vessels (75, calcified 70,
    80 %), left main 60 %, the default grades eccentric, healthy: every stenosis found
    within 10 points and its centre within 2 mm; no lesion where the phantom has none."""
    truth, found = _phantom_lesions(preset())
    for stenosis in truth.stenoses:
        near = [lesion for lesion in found if _matching(lesion, [stenosis])]
        assert len(near) == 1, (stenosis, found)
        assert abs(near[0].stenosis_pct - stenosis.stenosis_pct) <= 10
        assert abs(near[0].centre_mm - stenosis.centre_mm) <= 2
    for lesion in found:
        assert _matching(lesion, truth.stenoses), lesion


# The eccentric calcified LCX plaque is a crescent whose far side is the phantom's 0.5 mm of
# remodelling: painted with its partial volume and blurred, that thin calcium stays under
# CALCIUM_HU and counts as non-calcified (17.2 mm3 calcified, 13.2 non-calcified: "mixed").
THIN_CALCIUM = pytest.mark.xfail(strict=True, reason=(
    "eccentric calcified LCX: its 0.5 mm calcium rim, partial-volumed, reads non-calcified"))


@pytest.mark.parametrize("preset", [P.ctca_default, P.ctca_three_vessel, P.ctca_left_main,
                                    pytest.param(P.ctca_eccentric, marks=THIN_CALCIUM)])
def test_phantom_plaque_kind(preset: Callable[[], P.Ctca]) -> None:
    """Each stenosis' plaque kind (non-calcified or calcified, the phantom's)."""
    truth, found = _phantom_lesions(preset())
    for stenosis in truth.stenoses:
        near = [lesion for lesion in found if _matching(lesion, [stenosis])]
        assert [lesion.plaque for lesion in near] == [stenosis.plaque], stenosis
