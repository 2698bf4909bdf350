"""CAD-RADS 2.0 categories for hand-made lesion lists, expected from the paper's table.

Cury 2022 (J Cardiovasc Comput Tomogr 16:536), stable chest pain: 0 (0 %),
1 (1-24 % or plaque), 2 (25-49 %), 3 (50-69 %), 4A (70-99 %), 4B (left main
>= 50 % or three-vessel >= 70 %), 5 (100 %), N (non-diagnostic).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from imaging_core.ctca import cadrads
from imaging_core.ctca.tree import VESSELS, Lesion, Segment, Tree


def full_tree(missing: tuple[str, ...] = ()) -> Tree:
    segs = {}
    for v in VESSELS:
        if v in missing:
            continue
        x = np.arange(0, 40.01, 0.5)
        segs[v] = Segment(id=v, vessel=v, parent=None, points_mm=np.zeros((len(x), 3)),
                          from_ostium_mm=x, area_mm2=np.full(len(x), math.pi * 1.5**2),
                          diameter_mm=np.full(len(x), 3.0))
    return Tree(segments=segs, ostia={}, missing=list(missing))


def les(vessel: str, pct: float, segment: str | None = None, plaque: str = "none") -> Lesion:
    ref = 3.0
    return Lesion(segment=segment or vessel, vessel=vessel, start_mm=10, centre_mm=12,  # type: ignore[arg-type]
                  end_mm=14, stenosis_pct=pct, reference_diameter_mm=ref,
                  proximal_reference_mm=ref, distal_reference_mm=ref,
                  minimal_lumen_diameter_mm=ref * (1 - pct / 100), plaque=plaque)  # type: ignore[arg-type]


@pytest.mark.parametrize(("lesions", "expected"), [
    ([], "0"),
    ([les("LAD", 20)], "1"),
    ([les("RCA", 0, plaque="calcified")], "1"),  # plaque without stenosis
    ([les("LAD", 30)], "2"),
    ([les("LCX", 49.9)], "2"),
    ([les("LCX", 50)], "3"),
    ([les("RCA", 69)], "3"),
    ([les("LAD", 70)], "4A"),
    ([les("LAD", 75), les("RCA", 90)], "4A"),  # two vessels
    ([les("LM", 45)], "2"),
    ([les("LM", 50)], "4B"),  # left main
    ([les("LAD", 70), les("LCX", 80), les("RCA", 90)], "4B"),  # three vessels
    ([les("LAD", 72, segment="LAD.1"), les("LCX", 80), les("RCA", 75)], "4B"),  # side branch
    ([les("LAD", 70), les("LCX", 80), les("RCA", 60)], "4A"),  # third vessel not severe
    ([les("RCA", 100)], "5"),
    ([les("RCA", 100), les("LM", 60)], "5"),
])
def test_category_from_the_maximal_stenosis(lesions, expected):
    assert cadrads.category(lesions, full_tree()) == expected


def test_missing_vessel_alone_is_non_diagnostic_never_zero():
    tree = full_tree(missing=("RCA",))
    assert cadrads.category([], tree) == "N"
    assert cadrads.category([les("LAD", 30)], tree) == "N"
    assert cadrads.not_assessed([], tree) == ["RCA"]


def test_missing_vessel_with_a_severe_lesion_elsewhere_keeps_4a_with_the_n_modifier():
    tree = full_tree(missing=("RCA",))
    assert cadrads.category([les("LAD", 70)], tree) == "4A"
    assert cadrads.label([les("LAD", 70)], tree) == "4A/N"
    assert cadrads.label([les("LCX", 60)], tree) == "3/N"


def test_two_severe_vessels_and_a_missing_third_is_not_called_three_vessel():
    tree = full_tree(missing=("RCA",))
    assert cadrads.category([les("LAD", 80), les("LCX", 80)], tree) == "4A"


def test_unmeasured_lumen_makes_the_vessel_not_assessed():
    tree = full_tree()
    tree.segments["LCX"].area_mm2[5] = np.nan
    assert cadrads.category([], tree) == "N"
    tree.segments["LCX"].area_mm2 = None
    assert cadrads.not_assessed([], tree) == ["LCX"]


def test_absent_segment_without_a_missing_entry_is_still_not_assessed():
    tree = full_tree()
    del tree.segments["LM"]
    assert cadrads.category([], tree) == "N"


def test_lesion_of_unknown_severity_is_not_assessed():
    assert cadrads.category([les("LAD", float("nan"))], full_tree()) == "N"


def test_full_assessed_tree_has_no_modifier():
    assert cadrads.label([les("LAD", 70)], full_tree()) == "4A"


def test_every_category_has_its_meaning_and_management():
    assert set(cadrads.MEANINGS) == {"0", "1", "2", "3", "4A", "4B", "5", "N"}
    assert "angiography is recommended" in cadrads.MEANINGS["4B"].management
    assert "cannot be excluded" in cadrads.MEANINGS["N"].interpretation
    assert all(m.for_patients for m in cadrads.MEANINGS.values())


@pytest.mark.parametrize(("lesions", "expected"), [
    # 67 % is 3 points under the 3/4A bound (Cury 2022 Table 2: 70-99 % is 4A)
    ([les("LAD", 67)], ["LAD 67 % lies within 5 points of the 70 % bound: the category "
                        "could be 4A rather than 3; judge this narrowing on the images."]),
    # a left main of 48 % could be 50 % or more: 4B rather than 2
    ([les("LM", 48)], ["LM 48 % lies within 5 points of the 50 % bound: the category "
                       "could be 4B rather than 2; judge this narrowing on the images."]),
    # three-vessel 4B rests on the LAD's 72 %: under 70 % it would be 4A
    ([les("LAD", 72), les("LCX", 80), les("RCA", 85)],
     ["LAD 72 % lies within 5 points of the 70 % bound: the category could be 4A rather "
      "than 4B; judge this narrowing on the images."]),
    ([les("LAD", 67), les("RCA", 80)], []),  # 4A either way: the RCA is severe
    ([les("LAD", 60)], []),  # 10 points from either bound
    ([les("RCA", 100)], []),  # an occlusion is not a measurement near a bound
])
def test_readings_near_a_category_bound_are_named(lesions: list[Lesion],
                                                  expected: list[str]) -> None:
    assert cadrads.near_bounds(lesions) == expected
