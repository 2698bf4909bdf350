"""The CTCA pipeline's refusals: a study QA refuses is "not analysable" with its reason.

On the CTCA phantom (tests/imaging_core/ctca/phantom.py): without contrast
the aortic root is about 40 HU, under SCCT's 250 HU (Abbara 2016); slices
3 mm thick are not a CTCA reconstruction. Neither may come back as a tree
with no lesions.
"""

from __future__ import annotations

from imaging_core.ctca import pipeline
from tests.imaging_core.ctca import phantom as P


def test_no_contrast_is_not_analysable_with_the_reason_and_the_qa_time() -> None:
    result = pipeline.analyse(P.volume(P.build(P.no_contrast(P.ctca_default()))))
    assert not result.analysable
    assert "no contrast in the aortic root" in (result.reason or "")
    assert result.tree is None and result.lesions == [] and result.cad_rads is None
    assert result.qa["root_mean_hu"] < 250.0  # SCCT's minimum (Abbara 2016)
    assert set(result.timings_s) == {"qa"}  # nothing after QA ran


def test_thick_slices_are_not_analysable() -> None:
    result = pipeline.analyse(P.volume(P.build(P.thick_slices(P.ctca_default()))))
    assert not result.analysable
    assert "slices 3 mm thick" in (result.reason or "")
