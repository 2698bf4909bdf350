"""Stent advice: sizes from the rules in imaging_core/ctca/stents.py's docstring, by hand.

Diameter: the smallest catalogue diameter (2.25-4.0 mm, 0.25 mm steps) at or
above the distal reference lumen diameter. Length: lesion + 2 mm each side,
rounded up to 8, 12, 15, 18, 23, 28, 33 or 38 mm, centred on the lesion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from imaging_core.ctca import stents
from imaging_core.ctca.tree import Lesion, Segment


def lesion(start: float = 20.0, end: float = 30.0, pct: float = 70.0, distal: float = 3.0,
           proximal: float = 3.2) -> Lesion:
    ref = (proximal + distal) / 2
    return Lesion(segment="LAD", vessel="LAD", start_mm=start, centre_mm=(start + end) / 2,
                  end_mm=end, stenosis_pct=pct, reference_diameter_mm=ref,
                  proximal_reference_mm=proximal, distal_reference_mm=distal,
                  minimal_lumen_diameter_mm=ref * (1 - pct / 100))


def tube(d_mm: float, narrow: tuple[float, float, float] | None = None) -> Segment:
    x = np.arange(0, 80.01, 0.5)
    d = np.full_like(x, d_mm)
    if narrow is not None:
        lo, hi, dn = narrow
        d[(x > lo) & (x < hi)] = dn
    return Segment(id="LAD", vessel="LAD", parent="LM", points_mm=np.zeros((len(x), 3)),
                   from_ostium_mm=x, area_mm2=math.pi * d**2 / 4, diameter_mm=d)


@pytest.mark.parametrize(("distal", "expected"), [(2.25, 2.25), (2.9, 3.0), (3.0, 3.0),
                                                  (3.01, 3.25), (3.9, 4.0), (4.0, 4.0)])
def test_diameter_is_the_distal_reference_rounded_up_to_the_catalogue(distal, expected):
    stent = stents.suggest(lesion(distal=distal, proximal=distal + 0.3))
    assert stent is not None and stent.diameter_mm == pytest.approx(expected)


def test_ten_mm_lesion_gets_a_15_mm_stent_centred_with_margins():
    stent = stents.suggest(lesion(20, 30))
    # 10 + 2 x 2 = 14 mm -> 15 mm, the extra 1 mm shared: 17.5 to 32.5
    assert stent is not None
    assert (stent.length_mm, stent.start_mm, stent.end_mm) == pytest.approx((15, 17.5, 32.5))
    assert (stent.segment, stent.vessel) == ("LAD", "LAD")


def test_twelve_mm_lesion_needs_16_mm_so_gets_18():
    stent = stents.suggest(lesion(40, 52))
    assert stent is not None and stent.length_mm == 18


def test_narrowing_beyond_the_lesion_ends_is_covered_healthy_to_healthy():
    # lumen 3 mm, narrowed to 1.5 mm (50 %) for 18 < x < 32: healthy at 18 and 32
    stent = stents.suggest(lesion(20, 30, distal=3.0, proximal=3.0), tube(3.0, (18, 32, 1.5)))
    # 14 mm + 4 mm = 18 mm exactly: 16 to 34
    assert stent is not None
    assert (stent.length_mm, stent.start_mm, stent.end_mm) == pytest.approx((18, 16, 34))


def test_unmeasured_landing_zone_is_said():
    seg = tube(3.0, (18, 32, 1.5))
    seg.diameter_mm[(seg.from_ostium_mm > 31) & (seg.from_ostium_mm < 36)] = np.nan
    advice = stents.advise(lesion(20, 30, distal=3.0, proximal=3.0), seg)
    assert advice.stent is not None
    assert any("not measured" in n for n in advice.notes)


def test_below_50_percent_gets_no_stent_and_a_reason():
    advice = stents.advise(lesion(pct=45))
    assert advice.stent is None and "below 50" in (advice.reason or "")


@pytest.mark.parametrize("distal", [2.0, 4.5])
def test_reference_outside_the_catalogue_gets_no_stent(distal):
    advice = stents.advise(lesion(distal=distal, proximal=distal))
    assert advice.stent is None and "outside the catalogue" in (advice.reason or "")


def test_unmeasured_distal_reference_gets_no_stent():
    advice = stents.advise(lesion(distal=float("nan")))
    assert advice.stent is None and "could not be measured" in (advice.reason or "")


def test_lesion_longer_than_the_longest_stent_gets_no_single_stent():
    advice = stents.advise(lesion(10, 46))  # 36 + 4 = 40 mm > 38 mm
    assert advice.stent is None and "two overlapping stents" in (advice.reason or "")


def test_34_mm_lesion_still_fits_the_38_mm_stent():
    stent = stents.suggest(lesion(10, 44))
    assert stent is not None and stent.length_mm == 38
