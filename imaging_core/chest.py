"""Calcium scoring of a whole chest: anatomy, image QA, coronary candidates, labels, score.

A calcium-scoring CT shows the whole thorax; only coronary calcium may count
(CONTRACT §5). :func:`score_chest` runs, in order:

1. the Agatston protocol gate (``calcium.protocol_refusal``: tags and
   sampling), before any image work;
2. the anatomy (``imaging_core.anatomy.segment``). Without a heart there is
   nothing to score: the result is "not scorable" with the reason, never 0;
   nor without the aortic root and the heart's frame, which the artery
   labels need;
3. the image QA gate (``imaging_core.scanqa.image_qa``): its refusal makes the
   result not scorable, its caveats go into the result's ``qa``;
4. candidates: lesions >= 130 HU (Agatston 1990) inside the heart region grown
   by ``CANDIDATE_MARGIN_MM``, so calcium on the heart's surface is kept and
   what lies just outside is shown (as ``outside-heart``) rather than lost;
5. labels (``imaging_core.coronary.labeller``) and the score
   (``calcium.score``), with a radiologist's decisions applied last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imaging_core import anatomy as anatomy_steps
from imaging_core import calcium, coronary, scanqa
from imaging_core.anatomy import Anatomy
from imaging_core.calcium import CalciumParams, CalciumResult, Decision
from imaging_core.volume import Volume

CANDIDATE_MARGIN_MM = 10.0  # heart region grown by this to look for candidates (project choice)
REGION = "coronary candidates in the heart region, labelled by artery"
# Without these the labels cannot be given: the heart and the frame's landmarks.
NEEDED_LANDMARKS = ("aortic_root", "av_plane_centre", "long_axis")


@dataclass
class ChestScore:
    """A chest's calcium result with the anatomy it was scored in (None when never segmented)."""

    result: CalciumResult
    anatomy: Anatomy | None


def score_chest(volume: Volume, params: CalciumParams | None = None,
                decisions: Sequence[Decision] = ()) -> CalciumResult:
    """Coronary calcium of a chest CT, per artery, or "not scorable" with the reason.

    Parameters
    ----------
    volume : Volume
        From :func:`imaging_core.volume.load_volume` (HU, padding as air).
    params : CalciumParams, optional
        Agatston thresholds and protocol limits.
    decisions : sequence of Decision
        A radiologist's changes to candidate lesions, applied after the labels.

    Raises
    ------
    ValueError
        A decision naming an unknown lesion or label (``calcium.apply_decisions``).
    """
    return analyse_chest(volume, params, decisions).result


def analyse_chest(volume: Volume, params: CalciumParams | None = None,
                  decisions: Sequence[Decision] = ()) -> ChestScore:
    """:func:`score_chest` with the anatomy kept (for overlays and review)."""
    params = params or CalciumParams()
    refusal = calcium.protocol_refusal(volume, params)
    if refusal is not None:
        return ChestScore(calcium.not_scorable(volume, params, REGION, refusal), None)
    anatomy = anatomy_steps.segment(volume)
    why = unlabelable(anatomy)
    if why is not None:
        return ChestScore(calcium.not_scorable(volume, params, REGION, why), anatomy)
    qa = scanqa.image_qa(volume, anatomy)
    if qa.refusal is not None:
        return ChestScore(calcium.not_scorable(volume, params, REGION, qa.refusal), anatomy)
    roi = anatomy_steps.grown(anatomy.heart, volume.spacing, CANDIDATE_MARGIN_MM)
    result = calcium.score(volume, params, roi, labeller=coronary.labeller(anatomy),
                           decisions=decisions)
    result.region = REGION
    result.qa += qa.caveats + [f"anatomy-missing: {item}" for item in anatomy.missing]
    return ChestScore(result, anatomy)


def unlabelable(anatomy: Anatomy) -> str | None:
    """Why the candidates cannot be told coronary or not (no heart, no frame), or None."""
    if not anatomy.heart.any():
        reason = next((m for m in anatomy.missing if m.startswith("heart")), "heart not found")
        return f"the heart could not be found ({reason}); coronary calcium cannot be located"
    absent = [name for name in NEEDED_LANDMARKS if name not in anatomy.landmarks]
    if absent:
        return (f"the heart's landmarks ({', '.join(absent)}) could not be found; "
                "calcium cannot be assigned to arteries")
    return None

