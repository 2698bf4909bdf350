"""FFR-CT flow model against analytic solutions on hand-built tubes and trees.

Expected values come from the formulas written out here, with the constants
the module docstring cites (viscosity 3.5 mPa s and density 1060 kg/m3,
Taylor 2013; Young-Tsai with Kv = 32 (0.83 Ls + 1.64 Ds)/D0 (A0/As)^2 and
Kt = 1.52; outlet resting flow 150 mL/min x d^2.27 / (4.5^2.27 + 3.9^2.27),
hyperaemic resistance 0.24 x resting), never from the code's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from imaging_core.ctca import flow
from imaging_core.ctca.tree import Lesion, Segment, Tree

MU = 3.5e-3  # Pa s
RHO = 1060.0  # kg/m3
MMHG = 133.322387415  # Pa


def tube(sid: str, parent: str | None, start_mm: float, length_mm: float, d0_mm: float,
         d1_mm: float | None = None, children: tuple[str, ...] = ()) -> Segment:
    """A straight segment sampled every 0.5 mm, diameter linear from d0 to d1."""
    x = start_mm + np.arange(0, length_mm + 1e-9, 0.5)
    d = np.interp(x, [start_mm, start_mm + length_mm], [d0_mm, d0_mm if d1_mm is None else d1_mm])
    points = np.column_stack([x, np.zeros_like(x), np.zeros_like(x)])
    return Segment(id=sid, vessel="LAD", parent=parent, points_mm=points, from_ostium_mm=x,
                   area_mm2=math.pi * d**2 / 4, diameter_mm=d, children=list(children))


def tree_of(*segments: Segment) -> Tree:
    return Tree(segments={s.id: s for s in segments}, ostia={})


def narrowed(seg: Segment, start_mm: float, end_mm: float, d_mm: float) -> Segment:
    inside = (seg.from_ostium_mm > start_mm) & (seg.from_ostium_mm < end_mm)
    seg.area_mm2[inside] = math.pi * d_mm**2 / 4
    seg.diameter_mm[inside] = d_mm
    return seg


def lesion(start: float, end: float, ref: float, mld: float, segment: str = "LAD") -> Lesion:
    return Lesion(segment=segment, vessel="LAD", start_mm=start, centre_mm=(start + end) / 2,
                  end_mm=end, stenosis_pct=100 * (1 - mld / ref), reference_diameter_mm=ref,
                  proximal_reference_mm=ref, distal_reference_mm=ref,
                  minimal_lumen_diameter_mm=mld)


def poiseuille_pa(q_m3_s: float, length_mm: float, d_mm: float) -> float:
    r = d_mm / 2 * 1e-3
    return 8 * MU * length_mm * 1e-3 * q_m3_s / (math.pi * r**4)


def young_tsai_pa(q_m3_s: float, d0_mm: float, ds_mm: float, ls_mm: float) -> float:
    d0, ds, ls = d0_mm * 1e-3, ds_mm * 1e-3, ls_mm * 1e-3
    a0, as_ = math.pi * d0**2 / 4, math.pi * ds**2 / 4
    u = q_m3_s / a0
    kv = 32 * (0.83 * ls + 1.64 * ds) / d0 * (a0 / as_) ** 2
    return kv * MU * u / d0 + 1.52 * RHO / 2 * (a0 / as_ - 1) ** 2 * u**2


def outlet_resistance(d_mm: float, pa_mmhg: float = 93.0) -> float:
    q_rest = 150e-6 / 60 * d_mm**2.27 / (4.5**2.27 + 3.9**2.27)
    return 0.24 * pa_mmhg * MMHG / q_rest


def test_straight_tube_loses_the_poiseuille_pressure():
    t = tree_of(tube("LAD", None, 0, 100, 3.0))
    solved = flow.solve(t)
    q = solved.flow_ml_s["LAD"][0] * 1e-6
    drop = (solved.pressure_mmhg["LAD"][0] - solved.pressure_mmhg["LAD"][-1]) * MMHG
    assert drop == pytest.approx(poiseuille_pa(q, 100, 3.0), rel=0.02)
    # and the flow is the one the outlet resistance lets through: Pa = Q (R_tube + R_out)
    expected_q = 93 * MMHG / (poiseuille_pa(1.0, 100, 3.0) + outlet_resistance(3.0))
    assert q == pytest.approx(expected_q, rel=0.02)


def test_stenosis_loses_the_young_tsai_pressure_and_no_poiseuille_inside():
    t = tree_of(narrowed(tube("LAD", None, 0, 80, 3.0), 20, 30, 0.9))
    solved = flow.solve(t, [lesion(20, 30, 3.0, 0.9)])
    x, p = t.segments["LAD"].from_ostium_mm, solved.pressure_mmhg["LAD"]
    q = solved.flow_ml_s["LAD"][0] * 1e-6
    across = (p[x == 20][0] - p[x == 30][0]) * MMHG
    assert across == pytest.approx(young_tsai_pa(q, 3.0, 0.9, 10), rel=0.02)
    total = (p[0] - p[-1]) * MMHG
    assert total == pytest.approx(young_tsai_pa(q, 3.0, 0.9, 10) + poiseuille_pa(q, 70, 3.0),
                                  rel=0.02)


def test_bifurcation_conserves_flow_and_splits_by_resistance():
    parent = tube("LM", None, 0, 40, 4.0, children=("LAD", "LCX"))
    a = tube("LAD", "LM", 40, 60, 2.5)
    b = tube("LCX", "LM", 40, 60, 2.0)
    solved = flow.solve(tree_of(parent, a, b))
    q_parent = solved.flow_ml_s["LM"][-1]
    q_a, q_b = solved.flow_ml_s["LAD"][0], solved.flow_ml_s["LCX"][0]
    assert q_parent == pytest.approx(q_a + q_b, rel=1e-6)
    # both branches see the junction's pressure: Q_a R_a = Q_b R_b
    r_a = poiseuille_pa(1.0, 60, 2.5) + outlet_resistance(2.5)
    r_b = poiseuille_pa(1.0, 60, 2.0) + outlet_resistance(2.0)
    assert q_a / q_b == pytest.approx(r_b / r_a, rel=0.02)
    assert solved.pressure_mmhg["LAD"][0] == pytest.approx(solved.pressure_mmhg["LM"][-1])


def test_ffr_falls_monotonically_along_a_diseased_vessel():
    t = tree_of(narrowed(tube("LAD", None, 0, 100, 3.5, 2.0), 30, 42, 1.4))
    ffr = flow.ffr_ct(t, [lesion(30, 42, 3.0, 1.4)]).along["LAD"]
    assert ffr[0] == pytest.approx(1.0)
    assert np.all(np.diff(ffr) <= 1e-12)


def test_healthy_tapering_vessel_stays_above_0_85():
    t = tree_of(tube("LAD", None, 0, 120, 2.0, 1.0))
    assert flow.ffr_ct(t).distal("LAD") > 0.85


def test_70_percent_stenosis_of_a_3_mm_artery_is_significant_distally():
    # FAME (Tonino 2010, JACC 55:2816) found most 71-90 % angiographic stenoses with
    # FFR <= 0.80; a 10 mm long 70 % narrowing of a 3 mm proximal artery should be one.
    t = tree_of(narrowed(tube("LAD", None, 0, 80, 3.0), 20, 30, 0.9))
    ffr = flow.ffr_ct(t, [lesion(20, 30, 3.0, 0.9)])
    assert ffr.distal("LAD") <= 0.80
    assert ffr.at(t, "LAD", 15) > 0.95  # proximal to it the vessel is healthy


def test_a_stenosis_lowers_the_branch_flow():
    healthy = flow.solve(tree_of(tube("LAD", None, 0, 80, 3.0)))
    t = tree_of(narrowed(tube("LAD", None, 0, 80, 3.0), 20, 30, 0.9))
    diseased = flow.solve(t, [lesion(20, 30, 3.0, 0.9)])
    assert diseased.flow_ml_s["LAD"][0] < 0.8 * healthy.flow_ml_s["LAD"][0]


def test_more_myocardium_means_more_flow_and_a_lower_ffr_behind_the_same_stenosis():
    t = tree_of(narrowed(tube("LAD", None, 0, 80, 3.0), 20, 30, 1.5))
    les = [lesion(20, 30, 3.0, 1.5)]
    small = flow.ffr_ct(t, les, myocardial_mass_g=100).distal("LAD")
    large = flow.ffr_ct(t, les, myocardial_mass_g=250).distal("LAD")
    assert large < small


def test_unmeasured_lumen_is_not_assessed_never_normal():
    parent = tube("LM", None, 0, 20, 4.0, children=("LAD", "LCX"))
    lad = tube("LAD", "LM", 20, 60, 3.0, children=("LAD.1",))
    side = tube("LAD.1", "LAD", 40, 30, 2.0)
    lcx = tube("LCX", "LM", 20, 50, 3.0)
    lad.area_mm2[10] = np.nan
    ffr = flow.ffr_ct(tree_of(parent, lad, side, lcx))
    assert np.isnan(ffr.along["LAD"]).all()
    assert np.isnan(ffr.along["LAD.1"]).all()  # fed through the unknown LAD
    assert np.isfinite(ffr.along["LCX"]).all() and ffr.distal("LCX") < 1.0
    assert "LAD" in ffr.assumptions["not_assessed"]


def test_segment_without_areas_is_not_assessed():
    seg = tube("RCA", None, 0, 50, 3.5)
    seg.area_mm2 = None
    assert np.isnan(flow.ffr_ct(tree_of(seg)).along["RCA"]).all()


def test_total_occlusion_leaves_no_flow_distally():
    t = tree_of(narrowed(tube("LAD", None, 0, 80, 3.0), 20, 30, 0.0))
    ffr = flow.ffr_ct(t, [lesion(20, 30, 3.0, 0.0)])
    assert 0.0 <= ffr.distal("LAD") < 0.05


def test_side_branch_leaving_mid_vessel_takes_its_share():
    lad = tube("LAD", None, 0, 80, 3.0, children=("LAD.1",))
    side = tube("LAD.1", "LAD", 30, 40, 2.0)
    solved = flow.solve(tree_of(lad, side))
    x, q = lad.from_ostium_mm, solved.flow_ml_s["LAD"]
    assert q[x == 29.5][0] == pytest.approx(q[x == 30][0] + solved.flow_ml_s["LAD.1"][0],
                                            rel=1e-6)


def test_assumptions_name_their_sources():
    ffr = flow.ffr_ct(tree_of(tube("LAD", None, 0, 50, 3.0)), aortic_pressure_mmhg=100)
    for key, source in [("viscosity", "Taylor"), ("stenosis_loss", "Young"),
                        ("flow_split", "van der Giessen"), ("hyperaemia", "0.24")]:
        assert source in ffr.assumptions[key]
    assert "100 mmHg" in ffr.assumptions["aortic_pressure"]


def test_bad_inputs_raise_a_typed_error():
    t = tree_of(tube("LAD", None, 0, 50, 3.0))
    with pytest.raises(flow.FlowInputError):
        flow.ffr_ct(t, [lesion(10, 20, 3.0, 1.0, segment="RCA")])
    with pytest.raises(flow.FlowInputError):
        flow.ffr_ct(t, aortic_pressure_mmhg=0)
    with pytest.raises(flow.FlowInputError):
        flow.ffr_ct(t, myocardial_mass_g=-5)


def test_segment_not_connected_to_an_ostium_is_not_assessed():
    orphan = tube("LAD.1", "LAD.9", 30, 20, 2.0)  # its parent is not in the tree
    ffr = flow.ffr_ct(tree_of(tube("LAD", None, 0, 50, 3.0), orphan))
    assert np.isnan(ffr.along["LAD.1"]).all() and np.isfinite(ffr.along["LAD"]).all()


def test_overlapping_lesions_both_count():
    t = tree_of(narrowed(tube("LAD", None, 0, 80, 3.0), 20, 36, 1.5))
    one = flow.ffr_ct(t, [lesion(20, 30, 3.0, 1.5)]).distal("LAD")
    two = flow.ffr_ct(t, [lesion(20, 30, 3.0, 1.5), lesion(26, 36, 3.0, 1.5)]).distal("LAD")
    assert two < one


def test_missing_vessel_is_named_in_the_assumptions():
    t = tree_of(tube("LAD", None, 0, 50, 3.0))
    t.missing = ["RCA"]
    ffr = flow.ffr_ct(t)
    assert "RCA" not in ffr.along and "RCA" in ffr.assumptions["missing"]
