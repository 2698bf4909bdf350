"""FFR-CT estimate: a one-dimensional reduced-order model of hyperaemic coronary flow.

FFR = Pd / Pa (Pijls NH, van Son JA, Kirkeeide RL, et al. Experimental basis
of determining maximum coronary, myocardial, and collateral blood flow by
pressure measurements for assessing functional stenosis severity before and
after percutaneous transluminal coronary angioplasty. Circulation
1993;87:1354-1367), with venous pressure taken as zero as that simplified
definition does. The tree is a network: every sample interval of every
segment is a series element, every junction conserves flow, every segment end
that no segment continues is an outlet with a lumped resistance to zero
pressure. Steady mean flow; the losses are quadratic in flow, so the network
is solved by a damped fixed-point (Picard) iteration on the element
resistances, each step an exact linear solve on the tree.

========================  ============================  =====================================
Quantity                  Value                          Source
========================  ============================  =====================================
blood viscosity mu        3.5 mPa s (Newtonian)          Taylor CA, Fonte TA, Min JK. J Am Coll
                                                         Cardiol 2013;61:2233-2241 and Kim HJ et
                                                         al. Ann Biomed Eng 2010;38:3195-3209
                                                         (0.035 P); unverified: not re-read
blood density rho         1060 kg/m3                     same sources (1.06 g/cm3); unverified
viscous loss              dP = 8 mu L Q / (pi r^4)       Poiseuille; r from the lumen area,
                          per sample interval            1/A^2 averaged over the interval ends
stenosis loss             dP = Kv mu U / D0              Young DF, Tsai FY. J Biomech
                          + Kt rho/2 (A0/As-1)^2 U^2     1973;6:395-410 and 547-559; Kv form of
                          Kv = 32 (0.83 Ls + 1.64 Ds)    Seeley BD, Young DF. J Biomech
                          / D0 * (A0/As)^2, Kt = 1.52    1976;9:439-448 (coefficients as given
                          U = Q / A0 (reference lumen)   in the issue; not re-read: unverified)
mean aortic pressure      93 mmHg by default             mean of 120/80 mmHg by the DBP +
                                                         (SBP - DBP)/3 rule; a patient's own
                                                         value should be passed
hyperaemic outlet         0.24 x resting resistance      Taylor 2013 (adenosine; Wilson RF et
resistance                                               al. Circulation 1990;82:1595-1606)
resting total flow        150 mL/min at 150 g,           resting myocardial blood flow about
                          x (mass / 150 g)^0.75          1 mL/min/g (PET: Chareonthaitawee P et
                                                         al. Cardiovasc Res 2001;50:151-161;
                                                         unverified); mass^0.75 scaling: Taylor
                                                         2013
myocardial mass default   150 g                          a typical adult left ventricle (Lang RM
                                                         et al. J Am Soc Echocardiogr
                                                         2015;28:1-39, normal ranges 67-224 g;
                                                         the 150 g midpoint is our choice)
flow vs diameter          Q ~ d^2.27                     van der Giessen AG et al. J Biomech
                                                         2011;44:1089-1095 (fit to Doriot 2000's
                                                         flows in normal coronaries; Murray's
                                                         d^3 underestimates side-branch flow)
typical root diameters    LM 4.5 mm, RCA 3.9 mm          Dodge JT Jr et al. Circulation
                                                         1992;86:232-246 (unverified: recalled)
========================  ============================  =====================================

How flow is set. Each outlet j gets a resting flow
``Q_rest(d_j) = Q_total_rest * d_j^2.27 / (4.5^2.27 + 3.9^2.27)``: the typical
heart's resting flow shared by the diameter law as if d_j were a root of a
left main and right coronary of typical size. ``d_j`` is the median lumen
diameter over the last 5 mm of the outlet's segment outside any lesion. The
outlet's resistance is ``0.24 * Pa / Q_rest``: at rest the whole aortic
pressure drives the outlet's share, hyperaemia lowers the resistance to
0.24 of it. A stenosis upstream therefore lowers the branch's flow. Because
the law is applied per outlet, a tree with a vessel missing does not pour
that vessel's flow into the others; ``myocardial_mass_g`` only scales the
total. The aortic pressure is assumed unchanged in hyperaemia (adenosine
lowers it a few mmHg; FFR is a ratio, so only the small quadratic share of
the losses changes).

Lesions. Each :class:`Lesion` on a segment replaces the Poiseuille losses of
the sample intervals inside ``[start_mm, end_mm]`` by its Young-Tsai loss
(never both), spread over those intervals in proportion to their length so
that the FFR profile falls through the lesion rather than at one point. D0 is
the lesion's ``reference_diameter_mm``, Ds its ``minimal_lumen_diameter_mm``,
Ls its length. A total occlusion is modelled with Ds = 0.01 mm: there is no
collateral flow in this model, so the FFR distal to it is about 0.

Unknown is never normal: a segment with no areas or any NaN area, or carrying
a lesion with a NaN size, cannot be assessed; its FFR, and that of every
segment fed through it, is NaN. For the rest of the tree such a segment is
taken as healthy (NaNs interpolated), which passes the most flow and so the
lowest pressure upstream and in its siblings: the conservative side.

Limits: no collateral flow; rigid walls; steady mean flow (no pulsatility,
no inertial term Ku); Newtonian blood; no losses at junctions or bends;
venous (outflow) pressure zero; microvascular resistance and hyperaemic
response of a healthy heart (no microvascular disease, no prior infarct);
flow split from lumen size only. This is an estimate from documented
classical methods, not a validated FFR-CT product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from imaging_core.ctca.tree import Ffr, Lesion, Segment, Tree
from imaging_core.errors import ImagingError

PA_PER_MMHG = 133.322387415
BLOOD_VISCOSITY_PA_S = 3.5e-3
BLOOD_DENSITY_KG_M3 = 1060.0
YOUNG_TSAI_KT = 1.52
YOUNG_TSAI_LENGTH = (0.83, 1.64)  # La = 0.83 Ls + 1.64 Ds (Seeley and Young 1976)
DEFAULT_AORTIC_PRESSURE_MMHG = 93.0
HYPERAEMIC_RESISTANCE_FRACTION = 0.24
REFERENCE_MASS_G = 150.0
RESTING_FLOW_AT_REFERENCE_ML_MIN = 150.0
MASS_EXPONENT = 0.75
FLOW_DIAMETER_EXPONENT = 2.27
TYPICAL_ROOT_DIAMETERS_MM = (4.5, 3.9)  # left main, right coronary (Dodge 1992)
OUTLET_WINDOW_MM = 5.0
OCCLUDED_LUMEN_MM = 0.01

ASSUMPTIONS: dict[str, str] = {
    "model": "1-D steady reduced-order network; FFR = Pd/Pa with venous pressure 0 "
             "(Pijls 1993, Circulation 87:1354)",
    "viscosity": "3.5 mPa s, Newtonian (Taylor 2013 JACC 61:2233; unverified)",
    "density": "1060 kg/m3 (Taylor 2013 JACC 61:2233; unverified)",
    "viscous_loss": "Poiseuille 8 mu L Q / (pi r^4) per sample interval, outside lesions",
    "stenosis_loss": "Young and Tsai 1973 (J Biomech 6:395, 547): Kv mu U/D0 + Kt rho/2 "
                     "(A0/As-1)^2 U^2, Kv = 32 (0.83 Ls + 1.64 Ds)/D0 (A0/As)^2 (Seeley and "
                     "Young 1976), Kt = 1.52; replaces Poiseuille inside the lesion",
    "aortic_pressure": "mean aortic pressure, 93 mmHg unless given; not lowered in hyperaemia",
    "hyperaemia": "outlet resistance 0.24 x resting (Taylor 2013; Wilson 1990)",
    "resting_flow": "150 mL/min for a 150 g heart (about 1 mL/min/g, unverified), "
                    "scaled by (mass/150 g)^0.75 (Taylor 2013)",
    "flow_split": "outlet resting flow ~ d^2.27 (van der Giessen 2011 J Biomech 44:1089), "
                  "normalised to typical LM 4.5 mm and RCA 3.9 mm (Dodge 1992; unverified)",
    "limits": "no collaterals, rigid walls, steady flow, no junction or bend losses, "
              "healthy microcirculation; occlusion modelled as 0.01 mm lumen (FFR about 0)",
}


class FlowInputError(ImagingError):
    """The tree or the lesions cannot be turned into a flow model (e.g. a lesion on no segment)."""


@dataclass
class Haemodynamics:
    """The solved network: per segment id, (n,) values matching ``Segment.from_ostium_mm``.

    ``pressure_mmhg`` is the mean pressure at each sample; ``flow_ml_s`` the
    flow leaving each sample distally (the last sample: the segment's outflow).
    NaN for segments that could not be assessed. ``not_assessed`` maps those
    segment ids to the reason.
    """

    pressure_mmhg: dict[str, np.ndarray]
    flow_ml_s: dict[str, np.ndarray]
    aortic_pressure_mmhg: float
    iterations: int
    converged: bool
    not_assessed: dict[str, str] = field(default_factory=dict)


@dataclass
class _Element:
    """One segment as network elements: per-interval loss dP = a Q + b Q^2 (SI units)."""

    seg: Segment
    a: np.ndarray
    b: np.ndarray
    kids: dict[int, list[str]]
    r_out: float | None


def ffr_ct(tree: Tree, lesions: Sequence[Lesion] = (), *,
           aortic_pressure_mmhg: float = DEFAULT_AORTIC_PRESSURE_MMHG,
           myocardial_mass_g: float | None = None) -> Ffr:
    """FFR-CT along every segment of ``tree``: (n,) per segment id, NaN where not assessable.

    ``lesions`` add Young-Tsai losses on their segments. ``aortic_pressure_mmhg``
    is the patient's mean aortic pressure; ``myocardial_mass_g`` scales the
    total flow (None: the 150 g reference). Raises :class:`FlowInputError` for
    a lesion on an unknown segment or non-positive pressure or mass. See the
    module docstring for every constant and its source.
    """
    solved = solve(tree, lesions, aortic_pressure_mmhg=aortic_pressure_mmhg,
                   myocardial_mass_g=myocardial_mass_g)
    along = {sid: p / aortic_pressure_mmhg for sid, p in solved.pressure_mmhg.items()}
    assumptions = dict(ASSUMPTIONS)
    assumptions["aortic_pressure"] = (
        f"{aortic_pressure_mmhg:g} mmHg mean aortic pressure; not lowered in hyperaemia")
    mass = REFERENCE_MASS_G if myocardial_mass_g is None else myocardial_mass_g
    assumptions["myocardial_mass"] = (
        f"{mass:g} g" + (" (default: typical adult LV, Lang 2015 ranges)"
                         if myocardial_mass_g is None else " (given)"))
    assumptions["solver"] = f"damped fixed point, {solved.iterations} iterations" + (
        "" if solved.converged else ", NOT converged: treat the values as unreliable")
    if tree.missing:
        assumptions["missing"] = f"not found, so no FFR-CT: {', '.join(tree.missing)}"
    if solved.not_assessed:
        assumptions["not_assessed"] = "; ".join(
            f"{sid}: {why}" for sid, why in sorted(solved.not_assessed.items()))
    return Ffr(along=along, assumptions=assumptions)


def solve(tree: Tree, lesions: Sequence[Lesion] = (), *,
          aortic_pressure_mmhg: float = DEFAULT_AORTIC_PRESSURE_MMHG,
          myocardial_mass_g: float | None = None,
          tolerance: float = 1e-10, max_iterations: int = 500) -> Haemodynamics:
    """Solve the hyperaemic network: pressures (mmHg) and flows (mL/s) at every sample."""
    if not aortic_pressure_mmhg > 0:
        raise FlowInputError(f"aortic pressure must be > 0 mmHg, got {aortic_pressure_mmhg}")
    if myocardial_mass_g is not None and not myocardial_mass_g > 0:
        raise FlowInputError(f"myocardial mass must be > 0 g, got {myocardial_mass_g}")
    short = [sid for sid, seg in tree.segments.items() if len(seg.from_ostium_mm) < 2]
    if short:
        raise FlowInputError(f"segments need two samples or more: {', '.join(short)}")
    by_segment = _lesions_by_segment(tree, lesions)
    not_assessed = _not_assessed(tree, by_segment)
    pa = aortic_pressure_mmhg * PA_PER_MMHG
    q_total = _resting_total_m3_s(myocardial_mass_g)
    net = {sid: _element(tree, tree.segments[sid], by_segment.get(sid, []), pa, q_total)
           for sid in _topological(tree)}
    flows, iterations, converged = _iterate(net, tree, pa, tolerance, max_iterations)
    pressures = _pressures(net, tree, flows, pa)
    for sid, seg in tree.segments.items():  # unreachable: no pressure to give
        pressures.setdefault(sid, np.full(len(seg.from_ostium_mm), np.nan))
        flows.setdefault(sid, np.full(len(seg.from_ostium_mm) - 1, np.nan))
    return Haemodynamics(
        pressure_mmhg=_masked(pressures, not_assessed, 1 / PA_PER_MMHG),
        flow_ml_s=_masked({s: _per_sample(q) for s, q in flows.items()}, not_assessed, 1e6),
        aortic_pressure_mmhg=aortic_pressure_mmhg, iterations=iterations,
        converged=converged, not_assessed=not_assessed)


# --- inputs -----------------------------------------------------------------------

def _lesions_by_segment(tree: Tree, lesions: Sequence[Lesion]) -> dict[str, list[Lesion]]:
    out: dict[str, list[Lesion]] = {}
    for lesion in lesions:
        if lesion.segment not in tree.segments:
            raise FlowInputError(f"lesion on segment {lesion.segment!r}, which the tree lacks")
        out.setdefault(lesion.segment, []).append(lesion)
    return out


def _not_assessed(tree: Tree, by_segment: dict[str, list[Lesion]]) -> dict[str, str]:
    """Segments whose lumen or lesions are unknown, and every segment fed through them."""
    order = _topological(tree)
    reasons: dict[str, str] = {sid: "not connected to an ostium through its parents"
                               for sid in tree.segments if sid not in order}
    for sid in order:
        seg = tree.segments[sid]
        if seg.parent in reasons:
            reasons[sid] = f"fed through {seg.parent}, which could not be assessed"
        elif seg.area_mm2 is None or not np.isfinite(seg.area_mm2).all():
            reasons[sid] = "lumen area not measured along the whole segment"
        elif any(not (math.isfinite(les.reference_diameter_mm)
                      and math.isfinite(les.minimal_lumen_diameter_mm))
                 for les in by_segment.get(sid, [])):
            reasons[sid] = "a lesion on it has no measured size"
    return reasons


def _topological(tree: Tree) -> list[str]:
    """Segment ids reachable from the roots, every parent before its children, each once."""
    order = [s.id for s in tree.roots()]
    seen = set(order)
    for sid in order:
        for cid in tree.segments[sid].children:
            child = tree.segments.get(cid)
            if child is not None and child.parent == sid and cid not in seen:
                seen.add(cid)
                order.append(cid)
    return order


def _filled_area_m2(tree: Tree, seg: Segment) -> np.ndarray:
    """The lumen area (m^2) with NaNs interpolated; a segment without any, its parent's end."""
    n = len(seg.from_ostium_mm)
    area = (np.full(n, np.nan) if seg.area_mm2 is None
            else np.asarray(seg.area_mm2, dtype=float).copy())
    ok = np.isfinite(area) & (area > 0)
    if ok.any():
        area[~ok] = np.interp(seg.from_ostium_mm[~ok], seg.from_ostium_mm[ok], area[ok])
    elif seg.parent is not None and seg.parent in tree.segments:
        area[:] = _filled_area_m2(tree, tree.segments[seg.parent])[-1] * 1e6
    else:
        area[:] = math.pi * (TYPICAL_ROOT_DIAMETERS_MM[1] / 2) ** 2
    return area * 1e-6


def _resting_total_m3_s(mass_g: float | None) -> float:
    mass = REFERENCE_MASS_G if mass_g is None else mass_g
    ml_min = RESTING_FLOW_AT_REFERENCE_ML_MIN * (mass / REFERENCE_MASS_G) ** MASS_EXPONENT
    return ml_min * 1e-6 / 60.0


# --- the elements -------------------------------------------------------------------

def _element(tree: Tree, seg: Segment, lesions: list[Lesion], pa: float,
             q_total: float) -> _Element:
    area = _filled_area_m2(tree, seg)
    x = np.asarray(seg.from_ostium_mm, dtype=float) * 1e-3
    inv_a2 = 1.0 / area**2
    a = 8 * math.pi * BLOOD_VISCOSITY_PA_S * np.diff(x) * 0.5 * (inv_a2[:-1] + inv_a2[1:])
    b = np.zeros_like(a)
    in_lesion = np.zeros(len(x), dtype=bool)
    for lesion in lesions:  # no Poiseuille loss inside any lesion, then each lesion's own
        a[_intervals_inside(x, lesion)] = 0.0
    for lesion in lesions:
        _add_stenosis(a, b, x, lesion)
        in_lesion |= (x >= lesion.start_mm * 1e-3) & (x <= lesion.end_mm * 1e-3)
    kids = _attachments(tree, seg)
    r_out = None if len(x) - 1 in kids else pa * HYPERAEMIC_RESISTANCE_FRACTION / _resting_flow(
        _outlet_diameter_mm(x, area, in_lesion), q_total)
    return _Element(seg=seg, a=a, b=b, kids=kids, r_out=r_out)


def young_tsai_coefficients(d0_mm: float, ds_mm: float, length_mm: float) -> tuple[float, float]:
    """Young-Tsai steady loss as dP = a Q + b Q^2 (Pa, Q in m^3/s); see the module table."""
    d0, ds, ls = d0_mm * 1e-3, max(ds_mm, OCCLUDED_LUMEN_MM) * 1e-3, max(length_mm, 0.0) * 1e-3
    ratio = (d0 / ds) ** 2  # A0 / As
    a0 = math.pi * d0**2 / 4
    la = YOUNG_TSAI_LENGTH[0] * ls + YOUNG_TSAI_LENGTH[1] * ds
    kv = 32 * la / d0 * ratio**2
    return (kv * BLOOD_VISCOSITY_PA_S / (d0 * a0),
            YOUNG_TSAI_KT * BLOOD_DENSITY_KG_M3 / 2 * (ratio - 1) ** 2 / a0**2)


def _add_stenosis(a: np.ndarray, b: np.ndarray, x: np.ndarray, lesion: Lesion) -> None:
    """Replace the Poiseuille loss inside the lesion by its Young-Tsai loss (never both)."""
    if not (math.isfinite(lesion.reference_diameter_mm)
            and math.isfinite(lesion.minimal_lumen_diameter_mm)):
        return  # the segment is reported as not assessed
    if lesion.reference_diameter_mm <= 0:
        raise FlowInputError(f"lesion on {lesion.segment}: reference diameter must be > 0")
    inside = _intervals_inside(x, lesion)
    lengths = np.diff(x)[inside]
    share = lengths / lengths.sum() if lengths.sum() > 0 else np.full(len(lengths),
                                                                        1 / len(lengths))
    ya, yb = young_tsai_coefficients(lesion.reference_diameter_mm,
                                     lesion.minimal_lumen_diameter_mm, lesion.length_mm)
    a[inside] += ya * share
    b[inside] += yb * share


def _intervals_inside(x: np.ndarray, lesion: Lesion) -> np.ndarray:
    """The sample intervals (midpoint) within the lesion; at least the one at its centre."""
    mid = 0.5 * (x[:-1] + x[1:])
    inside = (mid >= lesion.start_mm * 1e-3) & (mid <= lesion.end_mm * 1e-3)
    if not inside.any():
        inside[max(min(int(np.searchsorted(x, lesion.centre_mm * 1e-3)), len(mid)) - 1, 0)] = True
    return inside


def _attachments(tree: Tree, seg: Segment) -> dict[int, list[str]]:
    """Children by the parent's sample index they leave from (nearest distance from the ostium)."""
    kids: dict[int, list[str]] = {}
    for cid in seg.children:
        child = tree.segments.get(cid)
        if child is not None:
            at = int(np.argmin(np.abs(seg.from_ostium_mm - child.from_ostium_mm[0])))
            kids.setdefault(at, []).append(cid)
    return kids


def _outlet_diameter_mm(x: np.ndarray, area: np.ndarray, in_lesion: np.ndarray) -> float:
    window = (x >= x[-1] - OUTLET_WINDOW_MM * 1e-3) & ~in_lesion
    if not window.any():
        window = ~in_lesion if (~in_lesion).any() else np.ones(len(x), dtype=bool)
    return float(2 * np.sqrt(np.median(area[window]) / math.pi) * 1e3)


def _resting_flow(d_mm: float, q_total: float) -> float:
    k = FLOW_DIAMETER_EXPONENT
    return q_total * d_mm**k / sum(d**k for d in TYPICAL_ROOT_DIAMETERS_MM)


# --- the solve ----------------------------------------------------------------------

def _iterate(net: dict[str, _Element], tree: Tree, pa: float, tolerance: float,
             max_iterations: int) -> tuple[dict[str, np.ndarray], int, bool]:
    """Damped Picard iteration: resistances a + b Q from the last flows, then a linear solve.

    For one element behind a resistance the undamped map has slope -bQ/(R + a + bQ) in
    (-1, 0); halving the step makes it a contraction with factor below 1/2.
    """
    flows = {sid: np.zeros(len(el.a)) for sid, el in net.items()}
    for iteration in range(1, max_iterations + 1):
        r = {sid: el.a + el.b * flows[sid] for sid, el in net.items()}
        new = _linear_flows(net, tree, r, pa)
        change = max((float(np.max(np.abs(new[s] - flows[s]), initial=0.0)) for s in net),
                     default=0.0)
        scale = max((float(np.max(np.abs(new[s]), initial=0.0)) for s in net), default=0.0)
        flows = new if iteration == 1 else {s: 0.5 * (flows[s] + new[s]) for s in net}
        if change <= tolerance * max(scale, 1e-30):
            return new, iteration, True
    return flows, max_iterations, False


def _linear_flows(net: dict[str, _Element], tree: Tree, r: dict[str, np.ndarray],
                  pa: float) -> dict[str, np.ndarray]:
    """Interval flows (m^3/s) of the tree with fixed interval resistances ``r``."""
    to_ground: dict[str, np.ndarray] = {}
    for sid in reversed(_topological(tree)):
        to_ground[sid] = _node_resistances(net[sid], r[sid], to_ground)
    flows: dict[str, np.ndarray] = {}
    for root in tree.roots():
        _push_flows(root.id, pa, net, r, to_ground, flows)
    return flows


def _node_resistances(el: _Element, r: np.ndarray, to_ground: dict[str, np.ndarray]
                      ) -> np.ndarray:
    """(n,) resistance from each sample to zero pressure, children at that sample included."""
    n = len(r) + 1
    out = np.empty(n)
    nodes = sorted(k for k in el.kids if k < n - 1)
    end = el.r_out if el.r_out is not None else _parallel(
        [to_ground[c][0] for c in el.kids[n - 1]])
    out[n - 1] = end
    stops = [0, *(k for k in nodes if k > 0), n - 1]
    for lo, hi in reversed(list(zip(stops[:-1], stops[1:], strict=True))):
        tail = np.cumsum(r[lo:hi][::-1])[::-1]  # series resistance from each sample to hi
        out[lo:hi] = out[hi] + tail
        out[lo] = _parallel([out[lo], *(to_ground[c][0] for c in el.kids.get(lo, []))])
    return out


def _push_flows(sid: str, p_in: float, net: dict[str, _Element], r: dict[str, np.ndarray],
                to_ground: dict[str, np.ndarray], flows: dict[str, np.ndarray]) -> None:
    """Distribute flow down a segment from its inlet pressure, then into its children.

    Between two samples where children leave the flow is constant: the pressure at
    the first over the series resistance from it to ground along the segment.
    """
    el, rg, rs = net[sid], to_ground[sid], r[sid]
    n = len(rg)
    q = np.empty(n - 1)
    stops = [0, *sorted(k for k in el.kids if 0 < k < n - 1), n - 1]
    p = p_in
    for lo, hi in zip(stops[:-1], stops[1:], strict=True):
        for cid in el.kids.get(lo, []):
            _push_flows(cid, p, net, r, to_ground, flows)
        q[lo:hi] = p / (rg[hi] + float(np.sum(rs[lo:hi])))
        p = float(q[hi - 1] * rg[hi])
    for cid in el.kids.get(n - 1, []):
        _push_flows(cid, p, net, r, to_ground, flows)
    flows[sid] = q


def _parallel(resistances: list[float]) -> float:
    conductance = sum(1.0 / x for x in resistances)
    return math.inf if conductance == 0 else 1.0 / conductance


def _pressures(net: dict[str, _Element], tree: Tree, flows: dict[str, np.ndarray],
               pa: float) -> dict[str, np.ndarray]:
    """Sample pressures (Pa) from the converged flows: dP = a Q + b Q^2 on every interval."""
    out: dict[str, np.ndarray] = {}
    for sid in _topological(tree):
        el, q = net[sid], flows[sid]
        seg = tree.segments[sid]
        p_in = pa if seg.parent is None else float(
            out[seg.parent][_attached_at(net[seg.parent], sid)])
        drop = el.a * q + el.b * q**2
        out[sid] = np.maximum(p_in - np.concatenate([[0.0], np.cumsum(drop)]), 0.0)
    return out


def _attached_at(parent: _Element, child: str) -> int:
    return next(k for k, cids in parent.kids.items() if child in cids)


def _per_sample(q: np.ndarray) -> np.ndarray:
    """Interval flows as per-sample flows: each sample's distal interval, the last its outflow."""
    return np.concatenate([q, q[-1:]]) if len(q) else np.zeros(1)


def _masked(values: dict[str, np.ndarray], not_assessed: dict[str, str], scale: float
            ) -> dict[str, np.ndarray]:
    return {sid: np.full(len(v), np.nan) if sid in not_assessed else v * scale
            for sid, v in values.items()}
