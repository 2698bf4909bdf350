"""The coronary tree of a CTCA: ostia, lumen, centrelines, LM/LAD/LCX/RCA (CONTRACT §5).

:func:`coronary_tree` runs the steps of ``ostia`` and ``centrelines`` in order:

1. the ascending aorta and its mean lumen HU (``ostia.find_ascending``);
2. the lumen threshold half way from fat to that HU (``ostia.contrast_threshold``);
3. the contrast mask after light smoothing, and the blood pool: the mask opened
   with a ball wider than any coronary (``ostia.blood_pool``);
4. the root lumen and the ostia: vessel pieces (contrast outside the pool)
   leaving the root (``ostia.find_ostia``);
5. per ostium, the lumen is that piece: a connected-threshold region grown
   from the ostium, held off the pool (the leak control of region growing
   reviewed by Lesage D, Angelini ED, Bloch I, Funka-Lea G. A review of 3D
   vessel lumen segmentation techniques: models, features and extraction
   schemes. Med Image Anal 2009;13:819-845, section 5.1) and refused when
   larger than any coronary tree (``ostia.MAX_TREE_MM3``);
6. centrelines, graph and labels (``centrelines``).

A vessel not found is listed in ``Tree.missing``, never left out silently.
Multiscale vesselness (Frangi AF et al. MICCAI 1998) is not used: on a
contrast-filled lumen held off the pool the threshold already separates the
lumen, and the filter would cost seconds per scale at full size.
"""

from __future__ import annotations

import logging

import numpy as np

from imaging_core.ctca import centrelines as cl
from imaging_core.ctca.ostia import (
    Ostium,
    blood_pool,
    contrast_mask,
    contrast_threshold,
    find_ascending,
    find_ostia,
    find_root,
)
from imaging_core.ctca.tree import Segment, Tree, Vessel
from imaging_core.errors import SegmentationError
from imaging_core.volume import Volume

log = logging.getLogger(__name__)

SIDES: dict[str, tuple[Vessel, ...]] = {"left": ("LM", "LAD", "LCX"), "right": ("RCA",)}


def coronary_tree(volume: Volume) -> Tree:
    """The coronary tree of a contrast-enhanced cardiac CT (module steps 1-6).

    Returns a :class:`~imaging_core.ctca.tree.Tree` whose segments carry
    centrelines in LPS mm every ~0.5 mm; vessels that could not be found are
    in ``missing``.

    Raises
    ------
    SegmentationError
        No contrast-filled ascending aorta or root: nothing can be traced.
    """
    ascending = find_ascending(volume)
    contrast = contrast_mask(volume, contrast_threshold(ascending.lumen_hu))
    pool, near_pool = blood_pool(contrast, volume.spacing)
    root = find_root(volume, ascending, pool)
    ostia = find_ostia(volume, root, contrast & ~near_pool)
    segments: dict[str, Segment] = {}
    missing: list[str] = []
    for side, vessels in SIDES.items():
        if side not in ostia:
            missing += list(vessels)
            continue
        found, lacking = side_tree(volume, ostia[side])
        segments.update(found)
        missing += lacking
    return Tree(segments, {side: o.point for side, o in ostia.items()}, missing)


def side_tree(volume: Volume, ostium: Ostium) -> tuple[dict[str, Segment], list[str]]:
    """The segments of one coronary tree from its ostium, and the main vessels it lacks."""
    try:
        graph = cl.skeleton_graph(volume, ostium.tree)
    except SegmentationError as failure:
        log.info("no centreline", extra={"side": ostium.side, "reason": str(failure)})
        return {}, list(SIDES[ostium.side])
    tree = cl.rooted(cl.pruned(graph, -1), ostium.point)
    tree = cl.rooted(cl.pruned(graph, tree.root), ostium.point)
    if ostium.side == "left":
        mains, lacking = cl.left_drafts(tree)
    else:
        mains, lacking = [cl.Draft("RCA", "RCA", None, tree.root, tree.follow(tree.root))], []
    taken = {d.steps[0][0] for d in mains if d.parent is not None and d.steps}
    drafts = mains + [b for d in mains for b in cl.side_drafts(tree, d, taken)]
    return cl.segments(tree, drafts, np.asarray(ostium.point)), lacking
