"""Coronary labels: each calcium candidate named by the artery or structure the phantom put it in.

Expected labels come from the phantom's own label map (which artery a plaque
was placed on, which structure the other calcium belongs to) and from the
geometry of the heart-centred frame, never from the labeller's output.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from imaging_core import chest
from imaging_core.calcium import CORONARY_ARTERIES, UNASSIGNED, CalciumResult
from imaging_core.coronary import HeartFrame, Root, artery
from tests.imaging_core.conftest import noisy, scanned
from tests.imaging_core.thorax import (
    AORTIC_PLAQUE,
    CANCELLOUS,
    CORONARY_PLAQUE,
    CORTICAL,
    MITRAL_CALCIUM,
    VALVE_CALCIUM,
    ThoraxImage,
    fov_cut,
    scan_changed,
    thorax_311,
    thorax_a0,
    with_plaques,
)

# The structure each painted calcium label belongs to, named as the labeller names it.
STRUCTURE = {CORTICAL: "bone", CANCELLOUS: "bone", AORTIC_PLAQUE: "aortic-wall",
             VALVE_CALCIUM: "aortic-valve", MITRAL_CALCIUM: "mitral-annulus"}
CASES = {
    "eleven plaques, 0.7 mm": with_plaques(thorax_311(), 11),
    "0.35 mm": scan_changed(thorax_311(), pixel_spacing=(0.35, 0.35)),
    "heart moved and turned": thorax_311(heart_offset_mm=(8.0, -6.0, 10.0),
                                         heart_rotation_deg=(8.0, 5.0, 0.0)),
    "field of view cuts the chest wall": fov_cut(thorax_311(), 280.0),
    "no coronary calcium, heart moved": thorax_a0(heart_offset_mm=(-6.0, 5.0, -8.0),
                                                  heart_rotation_deg=(-6.0, -4.0, 5.0)),
}


def painted(image: ThoraxImage, result: CalciumResult, index: int) -> str:
    """What the phantom painted under candidate ``index``: an artery or a structure."""
    voxels = result.lesion_map == index + 1
    label = Counter(int(v) for v in image.labels[voxels]).most_common(1)[0][0]
    if label == CORONARY_PLAQUE:
        plaque = max(range(len(image.thorax.plaques)),
                     key=lambda i: np.count_nonzero(image.plaque_mask(i) & voxels))
        return image.thorax.plaques[plaque].artery
    return STRUCTURE.get(label, "tissue")


@pytest.mark.parametrize("name", list(CASES))
def test_every_candidate_gets_the_label_of_what_the_phantom_put_there(name: str) -> None:
    image, volume = scanned(noisy(CASES[name]))
    result = chest.score_chest(volume)
    assert result.scorable, result.reason
    expected = [painted(image, result, i) for i in range(len(result.lesions))]
    assert [lesion.label for lesion in result.lesions] == expected
    plaques = {p.artery for p in image.thorax.plaques}
    assert {lesion.label for lesion in result.lesions if lesion.counted} == plaques
    assert {"aortic-valve", "mitral-annulus"} <= set(expected)  # they were there


# --- the heart-centred frame --------------------------------------------------------

AXIS = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)  # base to apex: anterior, left, inferior
FRAME = HeartFrame.from_landmarks({"av_plane_centre": (0.0, 0.0, 0.0),
                                   "long_axis": (float(AXIS[0]), float(AXIS[1]),
                                                 float(AXIS[2]))})
ROOT = Root(centre=np.array([-15.0, -5.0, 15.0]), radius=15.0)


def _at(t: float, degrees: float, radius: float = 40.0) -> np.ndarray:
    a = np.radians(degrees)
    return np.asarray(FRAME.origin + t * FRAME.axis
                      + radius * (np.cos(a) * FRAME.anterior + np.sin(a) * FRAME.left))


def test_the_frame_is_right_handed_anterior_and_left() -> None:
    assert FRAME.anterior @ np.array([0.0, -1.0, 0.0]) > 0  # LPS: anterior is -y
    assert FRAME.left @ np.array([1.0, 0.0, 0.0]) > 0  # LPS: left is +x
    for vector in (FRAME.anterior, FRAME.left):
        assert abs(vector @ FRAME.axis) < 1e-9
    for t, degrees in ((0.0, 0.0), (30.0, 90.0), (50.0, -120.0)):
        place = FRAME.place(_at(t, degrees))
        assert place == pytest.approx((t, degrees), abs=1e-6)


@pytest.mark.parametrize(("t", "degrees", "expected"), [
    (40.0, 25.0, "LAD"),  # anterior interventricular groove (Austen 1975 segments 6-8)
    (60.0, 0.0, "LAD"),
    (40.0, 120.0, "LCX"),  # obtuse marginal, left lateral wall (segments 12-14)
    (0.0, 100.0, "LCX"),  # left atrioventricular groove (segments 11, 13)
    (0.0, -60.0, "RCA"),  # right atrioventricular groove (segments 1-3)
    (30.0, -155.0, "RCA"),  # posterior interventricular groove, right dominance (segment 4)
    (40.0, -90.0, "RCA"),  # acute marginal, right ventricle
])
def test_artery_territories_follow_the_segment_model(t: float, degrees: float,
                                                     expected: str) -> None:
    assert artery(_at(t, degrees), FRAME, ROOT) == expected


def test_calcium_just_left_of_the_root_is_the_left_main() -> None:
    # Austen 1975 segment 5: from the left sinus, about 10 mm before it divides.
    leftwards = ROOT.centre + np.array([ROOT.radius + 5.0, 0.0, 0.0])
    rightwards = ROOT.centre - np.array([ROOT.radius + 5.0, 0.0, 0.0])
    assert artery(leftwards, FRAME, ROOT) == "LM"
    assert artery(rightwards, FRAME, ROOT) != "LM"


def test_without_a_frame_nothing_is_named_an_artery() -> None:
    assert artery(_at(40.0, 25.0), None, ROOT) == UNASSIGNED
    assert UNASSIGNED not in CORONARY_ARTERIES
