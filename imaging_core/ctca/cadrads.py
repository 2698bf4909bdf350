"""CAD-RADS 2.0: the per-patient category from the maximal stenosis, and what it means.

Source: Cury RC, Leipsic J, Abbara S, et al. CAD-RADS 2.0 - 2022 Coronary
Artery Disease-Reporting and Data System: an expert consensus document of
SCCT, ACC, ACR and NASCI. J Cardiovasc Comput Tomogr 2022;16:536-557, the
stenosis categories and their management for stable chest pain. The paper
itself could not be read here; the categories were checked against the 2016
table it keeps (Cury RC et al. J Cardiovasc Comput Tomogr 2016;10:269-281, as
given by Radiopaedia and the University of Washington's radiology reference)
and 2.0 summaries (radathand.com, radpigeon.news). The management sentences
are our plain-words paraphrase of the table: unverified wording.

========  ===============================================  ======================
Category  Maximal diameter stenosis                         Meaning
========  ===============================================  ======================
0         0 %, no plaque                                    absence of CAD
1         1-24 %, or plaque without stenosis                minimal non-obstructive
2         25-49 %                                           mild non-obstructive
3         50-69 %                                           moderate stenosis
4A        70-99 % in one or two vessels                     severe stenosis
4B        left main >= 50 %, or 70 % or more in all three   severe stenosis
          of LAD, LCX and RCA
5         100 %, total occlusion                            total coronary occlusion
N         non-diagnostic                                    obstructive CAD cannot
                                                            be excluded
========  ===============================================  ======================

The left-main boundary: the 2016 text reads "> 50 %", 2.0 summaries read
both "> 50 %" and ">= 50 %"; we use >= 50 % as issue 14 states (unverified).
Side branches count for the artery they belong to (``Lesion.vessel``).

Non-diagnostic (category N versus modifier N). A vessel is not assessed when
the tree names it missing, has no segment of it, or any of its segments lacks
lumen areas (None or NaN); a lesion with an unknown stenosis also leaves its
vessel not assessed. Unknown is never negative: with anything not assessed,
a maximal stenosis below 50 % (what would be 0, 1 or 2) gives ``N``, never
0. A finding of 50 % or more elsewhere keeps its category, because the
study has shown obstructive disease, and :func:`label` adds the modifier
``/N`` (e.g. ``4A/N``). This follows the 2016 document's use of N as a
modifier beside an obstructive finding, as recalled; the 2.0 paper's
exact wording was not available: unverified.

``0`` relies on the lesion list holding every narrowing and every plaque the
measurement found, down to 1 %: a finder that reports from 25 % only cannot
tell 0 from 1, and ``0`` would then claim more than was checked.

Plaque burden (P1-P4) is left out. CAD-RADS 2.0 grades it from the Agatston
calcium score, the segment involvement score over the 18-segment model, or a
visual or quantitative plaque estimate (per the summaries above). The lesions
here carry plaque volumes of narrowings only, neither an Agatston score nor
segment involvement, so no defensible P grade follows from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from imaging_core.ctca.tree import VESSELS, Lesion, Tree, Vessel

OBSTRUCTIVE_PCT = 50.0
SEVERE_PCT = 70.0
MILD_PCT = 25.0
OCCLUDED_PCT = 100.0
THREE_VESSELS: tuple[Vessel, ...] = ("LAD", "LCX", "RCA")
# How far a measured stenosis may lie from the truth: on the test phantoms a narrowing reads
# within 1-4 points (SD over noise seeds, bench/ctca_accuracy.py, docs/benchmarks.md), up to
# 6 for a short tight or calcified one. A reading this close to a category bound is said to
# be uncertain (project choice from those measurements, not a published figure: unverified).
BOUND_UNCERTAINTY_PCT = 5.0


@dataclass(frozen=True)
class Meaning:
    """One category's row: stenosis, interpretation, management, and words for a patient."""

    stenosis: str
    interpretation: str
    management: str
    for_patients: str


# CAD-RADS 2.0 (Cury 2022), the stable chest pain table; wording paraphrased (unverified).
MEANINGS: dict[str, Meaning] = {
    "0": Meaning("0 %, no plaque", "Absence of coronary artery disease",
                 "No further cardiac investigation; consider non-atherosclerotic causes "
                 "of chest pain.",
                 "No narrowing and no plaque were seen in the heart's arteries."),
    "1": Meaning("1-24 %, or plaque without stenosis", "Minimal non-obstructive CAD",
                 "Consider non-atherosclerotic causes of chest pain; preventive therapy and "
                 "risk-factor modification.",
                 "There is a little plaque in the heart's arteries, narrowing them very "
                 "slightly; prevention matters."),
    "2": Meaning("25-49 %", "Mild non-obstructive CAD",
                 "Consider non-atherosclerotic causes of chest pain; preventive therapy and "
                 "risk-factor modification.",
                 "Plaque narrows a heart artery mildly; it does not block blood flow, but "
                 "prevention matters."),
    "3": Meaning("50-69 %", "Moderate stenosis",
                 "Consider functional assessment; preventive and anti-anginal therapy and "
                 "risk-factor modification.",
                 "A heart artery is moderately narrowed; a further test can show whether it "
                 "limits blood flow."),
    "4A": Meaning("70-99 % in one or two vessels", "Severe stenosis",
                  "Consider invasive coronary angiography or functional assessment; "
                  "preventive and anti-anginal therapy; revascularisation as the guidelines "
                  "advise.",
                  "A heart artery is severely narrowed; your doctor will discuss an "
                  "angiogram or a test of blood flow."),
    "4B": Meaning("Left main 50 % or more, or three-vessel disease of 70 % or more",
                  "Severe stenosis",
                  "Invasive coronary angiography is recommended; preventive and anti-anginal "
                  "therapy; revascularisation as the guidelines advise.",
                  "The main heart artery, or all three large heart arteries, are severely "
                  "narrowed; an angiogram is recommended."),
    "5": Meaning("100 % (total occlusion)", "Total coronary occlusion",
                 "Consider invasive coronary angiography and/or viability assessment; "
                 "preventive and anti-anginal therapy.",
                 "A heart artery is completely blocked; your doctor will discuss an angiogram "
                 "or a test of the heart muscle."),
    "N": Meaning("Non-diagnostic study", "Obstructive CAD cannot be excluded",
                 "Additional or alternative evaluation may be needed.",
                 "Part of the heart's arteries could not be judged on this scan, so a "
                 "narrowing there cannot be ruled out; another test may be needed."),
}


def category(lesions: Sequence[Lesion], tree: Tree) -> str:
    """The CAD-RADS 2.0 stenosis category: "0", "1", "2", "3", "4A", "4B", "5" or "N".

    ``lesions`` are every narrowing found (stenosis in % diameter); ``tree``
    tells which vessels were assessed. See the module docstring for the rules.
    """
    graded = _graded(lesions)
    if not_assessed(lesions, tree) and graded in ("0", "1", "2"):
        return "N"
    return graded


def label(lesions: Sequence[Lesion], tree: Tree) -> str:
    """The category with the non-diagnostic modifier when it applies, e.g. "4A/N"."""
    code = category(lesions, tree)
    return f"{code}/N" if code != "N" and not_assessed(lesions, tree) else code


def near_bounds(lesions: Sequence[Lesion]) -> list[str]:
    """A sentence for each lesion whose stenosis lies within ``BOUND_UNCERTAINTY_PCT`` of a
    category bound (25, 50, 70 %) where reading it on the other side would change the
    category, e.g. "LAD 67 % lies within 5 points of the 70 % bound: the category could be
    4A rather than 3; judge this narrowing on the images."; [] when none does."""
    known = [les for les in lesions if math.isfinite(les.stenosis_pct)]
    graded = _graded(known)
    said = []
    for lesion in known:
        for bound in (MILD_PCT, OBSTRUCTIVE_PCT, SEVERE_PCT):
            if lesion.stenosis_pct >= OCCLUDED_PCT or \
                    abs(lesion.stenosis_pct - bound) >= BOUND_UNCERTAINTY_PCT:
                continue
            across = bound - 0.01 if lesion.stenosis_pct >= bound else bound
            other = _graded([replace(les, stenosis_pct=across) if les is lesion else les
                             for les in known])
            if other != graded:
                said.append(f"{lesion.vessel} {lesion.stenosis_pct:.0f} % lies within "
                            f"{BOUND_UNCERTAINTY_PCT:.0f} points of the {bound:.0f} % bound: "
                            f"the category could be {other} rather than {graded}; judge "
                            "this narrowing on the images.")
    return said


def not_assessed(lesions: Sequence[Lesion], tree: Tree) -> list[Vessel]:
    """The main vessels that could not be assessed, in LM, LAD, LCX, RCA order."""
    unknown = {les.vessel for les in lesions if not math.isfinite(les.stenosis_pct)}
    return [v for v in VESSELS if v in unknown or not _assessed(tree, v)]


def _assessed(tree: Tree, vessel: Vessel) -> bool:
    if vessel in tree.missing:
        return False
    segs = [s for s in tree.segments.values() if s.vessel == vessel]
    return bool(segs) and all(s.area_mm2 is not None and bool(np.isfinite(s.area_mm2).all())
                              for s in segs)


def _graded(lesions: Sequence[Lesion]) -> str:
    """The category from the measured lesions alone (no regard to what was not assessed)."""
    known = [les for les in lesions if math.isfinite(les.stenosis_pct)]
    worst = max((les.stenosis_pct for les in known), default=0.0)
    severe = {les.vessel for les in known if les.stenosis_pct >= SEVERE_PCT}
    if worst >= OCCLUDED_PCT or any(les.minimal_lumen_diameter_mm <= 0 for les in known):
        return "5"
    if any(les.vessel == "LM" and les.stenosis_pct >= OBSTRUCTIVE_PCT for les in known) or all(
            v in severe for v in THREE_VESSELS):
        return "4B"
    for floor, code in ((SEVERE_PCT, "4A"), (OBSTRUCTIVE_PCT, "3"), (MILD_PCT, "2")):
        if worst >= floor:
            return code
    plaque = any(les.plaque != "none" or les.calcified_volume_mm3 > 0
                 or les.noncalcified_volume_mm3 > 0 for les in known)
    return "1" if worst > 0 or plaque else "0"
