"""The CTCA pipeline's refusals: a study QA refuses is "not analysable" with its reason.

On the CTCA phantom (tests/imaging_core/ctca/phantom.py): without contrast
the aortic root is about 40 HU, under SCCT's 250 HU (Abbara 2016); slices
3 mm thick are not a CTCA reconstruction; with every coronary painted over
with fat no artery can be traced. None may come back as a tree with no lesions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.spatial import cKDTree

from imaging_core.ctca import pipeline
from imaging_core.ctca.ostia import FAT_REFERENCE_HU
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


def test_a_study_where_no_artery_is_found_is_not_analysable_never_cad_rads_0() -> None:
    """Every coronary painted over with fat: no tree, so "not analysable" naming the four
    arteries and why, with no CAD-RADS at all (never 0, the category of a normal study)."""
    image = P.build(P.ctca_default())
    volume = P.volume(image)
    hu = volume.hu.copy()
    zyx = np.argwhere(np.ones(hu.shape, dtype=bool))
    for vessel in image.truth.vessels.values():
        near = cKDTree(vessel.points_mm).query(volume.voxel_to_patient(zyx),
                                               distance_upper_bound=vessel.radius_mm.max() + 1.5)[0]
        hu[np.isfinite(near).reshape(hu.shape)] = FAT_REFERENCE_HU
    result = pipeline.analyse(replace(volume, hu=hu))
    assert not result.analysable
    reason = result.reason or ""
    assert "no coronary artery found" in reason and "LM, LAD, LCX and RCA not assessed" in reason
    assert result.tree is None and result.lesions == [] and result.cad_rads is None
    assert "coronary-tree" in result.timings_s and "cad-rads" not in result.timings_s
