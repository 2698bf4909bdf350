"""The whole CTCA pipeline on the phantom, graded against the phantom's truth.

Expected values come from the phantom's geometry and its own CAD-RADS table
(``phantom.truth``, ``phantom.cad_rads``), never from the pipeline: a total
occlusion is 100 % and CAD-RADS 5 (Cury 2022); FFR-CT of 0.80 or less is
the ischaemic threshold of the FFR-CT trials (Norgaard BL et al. JACC
2014;63:1145-1155, NXT), not this project's number.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from imaging_core.ctca import pipeline
from imaging_core.ctca.tree import CtcaResult
from tests.imaging_core.ctca import phantom as P

ISCHAEMIC_FFR = 0.80  # NXT (Norgaard 2014)


@cache
def _analysed(preset: str) -> tuple[P.Truth, CtcaResult]:
    image = P.build(getattr(P, preset)())
    return image.truth, pipeline.analyse(P.volume(image))


def test_an_occluded_rca_is_a_total_occlusion_cad_rads_5() -> None:
    """RCA occluded over 8 mm, contrast beyond it: one RCA lesion of 100 % without lumen,
    CAD-RADS 5 as the truth's table gives it, and FFR-CT beyond it ischaemic."""
    truth, result = _analysed("ctca_occluded")
    assert result.analysable and result.ffr is not None and result.tree is not None
    (expected,) = truth.stenoses
    rca = [lesion for lesion in result.lesions if lesion.vessel == "RCA"]
    assert len(rca) == 1
    assert rca[0].stenosis_pct == 100.0 and rca[0].minimal_lumen_diameter_mm == 0.0
    assert abs(rca[0].centre_mm - expected.centre_mm) <= 2
    assert result.cad_rads == truth.cad_rads == "5"
    beyond = result.ffr.at(result.tree, rca[0].segment, rca[0].end_mm + 2.0)
    assert beyond <= ISCHAEMIC_FFR
    assert result.ffr.distal(rca[0].segment) <= ISCHAEMIC_FFR


@pytest.mark.parametrize("preset", ["ctca_healthy", "ctca_default"])
def test_no_occlusion_is_invented(preset: str) -> None:
    """No stenosis of the healthy or default phantom is an occlusion: no 100 % lesion, no
    section without lumen, and CAD-RADS is not 5."""
    _, result = _analysed(preset)
    assert result.analysable and result.tree is not None
    assert all(lesion.stenosis_pct < 100 and lesion.minimal_lumen_diameter_mm > 0
               for lesion in result.lesions)
    for segment in result.tree.segments.values():
        assert segment.diameter_mm is not None
        assert not np.any(segment.diameter_mm == 0.0), segment.id
    assert result.cad_rads != "5"
