"""The coronary tree of a CTCA: ostia, lumen, centrelines, LM/LAD/LCX/RCA (CONTRACT §5).

:func:`coronary_tree` runs the steps of ``ostia`` and ``centrelines`` in order:

1. the ascending aorta and its mean lumen HU (``ostia.find_ascending``); the
   volume is then cut to a box round the heart (``ostia.heart_crop``);
2. the lumen threshold half way from fat to that HU (``ostia.contrast_threshold``);
3. the contrast mask after light smoothing, and the blood pool: the mask opened
   with a ball wider than any coronary (``ostia.blood_pool``);
4. the root lumen and the ostia: vessel pieces (contrast outside the pool)
   leaving the root (``ostia.find_ostia``);
5. per ostium, the lumen is that piece: a connected-threshold region grown
   from the ostium, held off the pool (the leak control of region growing
   reviewed by Lesage D, Angelini ED, Bloch I, Funka-Lea G. A review of 3D
   vessel lumen segmentation techniques: models, features and extraction
   schemes. Med Image Anal 2009;13:819-845; its section not checked here)
   and refused when larger than any coronary tree (``ostia.MAX_TREE_MM3``);
   where a lesion leaves too little lumen for the threshold, the tree's ends
   are carried across the gap into the piece ahead (:func:`bridged`);
6. centrelines, graph and labels (``centrelines``).

A vessel not found is listed in ``Tree.missing``, never left out silently; when
none is found at all the step raises (:func:`coronary_tree`).
Multiscale vesselness (Frangi AF et al. MICCAI 1998) is not used: on a
contrast-filled lumen held off the pool the threshold already separates the
lumen, and the filter would cost seconds per scale at full size.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from imaging_core.ctca import centrelines as cl
from imaging_core.ctca.ostia import (
    Ascending,
    Ostium,
    blood_pool,
    box_around,
    contrast_mask,
    contrast_threshold,
    find_ascending,
    find_ostia,
    find_root,
    heart_crop,
)
from imaging_core.ctca.tree import Segment, Tree, Vessel
from imaging_core.errors import SegmentationError
from imaging_core.volume import Volume

log = logging.getLogger(__name__)

SIDES: dict[str, tuple[Vessel, ...]] = {"left": ("LM", "LAD", "LCX"), "right": ("RCA",)}
# Gap bridging across a lesion the threshold loses: an occlusion or a severe stenosis is
# rarely longer than this (project choice; chronic occlusions can be longer, unverified).
BRIDGE_MM = 15.0
BRIDGE_DEG = 40.0  # the piece lies ahead of the end, within this angle of its course
END_MM = 3.0  # an end's direction is taken over its last 3 mm
MIN_PIECE_MM3 = 5.0  # smaller pieces are noise, not vessel (~6 mm of 0.5 mm radius lumen)
MAX_BRIDGES = 4  # rounds of bridging (lesions in a row along one vessel)


def coronary_tree(volume: Volume, ascending: Ascending | None = None) -> Tree:
    """The coronary tree of a contrast-enhanced cardiac CT (module steps 1-6).

    ``ascending`` is the ascending aorta when the caller has found it already
    (``qa.check`` finds it with ``ostia.find_ascending``, its ``ascending``);
    else it is found here. Returns a :class:`~imaging_core.ctca.tree.Tree`
    whose segments carry
    centrelines in LPS mm every ~0.5 mm; vessels that could not be found are
    in ``missing``.

    Raises
    ------
    SegmentationError
        No contrast-filled ascending aorta or root, or no artery traced from
        it: a tree with no vessel at all is a failure to analyse (the pipeline
        reports the study "not analysable" with this reason), never an empty
        tree that could be read as a normal one.
    """
    ascending = find_ascending(volume) if ascending is None else ascending
    volume = heart_crop(volume, ascending)
    contrast = contrast_mask(volume, contrast_threshold(ascending.lumen_hu))
    pool, near_pool = blood_pool(contrast, volume.spacing)
    root = find_root(volume, ascending, pool)
    vessels = contrast & ~near_pool
    ostia = find_ostia(volume, root, vessels)
    for ostium in ostia.values():
        vessels &= ~ostium.tree
    segments: dict[str, Segment] = {}
    missing: list[str] = []
    for side, names in SIDES.items():
        if side not in ostia:
            missing += list(names)
            continue
        found, lacking = side_tree(volume, ostia[side], vessels)
        segments.update(found)
        missing += lacking
    if not segments:
        raise SegmentationError(_nothing_found(ostia))
    return Tree(segments, {side: o.point for side, o in ostia.items()}, missing)


def _nothing_found(ostia: dict[str, Ostium]) -> str:
    """Why no artery was traced: no ostium at the root, or no centreline from those found."""
    why = (f"no centreline could be traced from the {' and '.join(sorted(ostia))} ostium"
           if ostia else "no coronary ostium was found at the aortic root")
    return f"no coronary artery found ({why}): LM, LAD, LCX and RCA not assessed"


def side_tree(volume: Volume, ostium: Ostium, others: np.ndarray
              ) -> tuple[dict[str, Segment], list[str]]:
    """The segments of one coronary tree from its ostium, and the main vessels it lacks.

    ``others`` (bool, volume grid) is the contrast of vessel pieces in no
    tree: where a lesion cuts the lumen, the tree continues into them
    (:func:`bridged`).
    """
    try:
        tree = bridged(volume, ostium, others)
    except SegmentationError as failure:
        log.info("no centreline", extra={"side": ostium.side, "reason": str(failure)})
        return {}, list(SIDES[ostium.side])
    if ostium.side == "left":
        mains, lacking = cl.left_drafts(tree)
    else:
        mains, lacking = [cl.Draft("RCA", "RCA", None, tree.root, tree.follow(tree.root))], []
    taken = {d.steps[0][0] for d in mains if d.parent is not None and d.steps}
    drafts = mains + [b for d in mains for b in cl.side_drafts(tree, d, taken)]
    return cl.segments(tree, drafts, np.asarray(ostium.point)), lacking


def traced(volume: Volume, lumen: np.ndarray, ostium: np.ndarray) -> cl.Rooted:
    """The pruned skeleton graph of ``lumen`` rooted at the node nearest the ostium."""
    graph = cl.skeleton_graph(volume, lumen)
    return cl.rooted(cl.pruned(graph, graph.nearest(ostium)), ostium)


def bridged(volume: Volume, ostium: Ostium, others: np.ndarray) -> cl.Rooted:
    """The tree's graph, its ends carried across lumen gaps into the pieces they lead to.

    A severe stenosis or an occlusion leaves less lumen than the threshold
    sees, and the vessel beyond it is a piece of its own. Each end of the
    tree looks ``BRIDGE_MM`` ahead, within ``BRIDGE_DEG`` of its direction
    (gap bridging as vessel trackers do, reviewed by Lesage et al. 2009; the
    reach and angle are this project's, unverified); the nearest piece of at least
    ``MIN_PIECE_MM3`` found there joins the tree along a straight line, so
    the centreline runs through the lesion and the lesion can be measured.
    Repeated until no end finds one (``MAX_BRIDGES`` at most).

    Raises
    ------
    SegmentationError
        The lumen thins to no centreline.
    """
    lumen = ostium.tree.copy()
    others = others & ~lumen
    tree = traced(volume, lumen, ostium.point)
    for _ in range(MAX_BRIDGES):
        labels, _ = ndimage.label(others, structure=np.ones((3, 3, 3), dtype=bool))
        sizes = np.bincount(labels.ravel()) * float(np.prod(volume.spacing))
        joins = [j for j in (_ahead(volume, end, way, labels, sizes) for end, way in _ends(tree))
                 if j is not None]
        if not joins:
            return tree
        for label, start, stop in joins:
            piece = labels == label
            lumen |= piece | _line(volume, start, stop)
            others &= ~piece
        tree = traced(volume, lumen, ostium.point)
    return tree


def _ends(tree: cl.Rooted) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each end of the tree (LPS mm) and its unit direction over the last ``END_MM``."""
    out = []
    for node, children in tree.children.items():
        for edge, child in children:
            if tree.children[child]:
                continue
            back = tree.polyline(node, [(edge, child)])[::-1]
            arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(back, axis=0),
                                                                   axis=1))])
            way = back[0] - back[min(int(np.searchsorted(arc, END_MM)), len(back) - 1)]
            if np.linalg.norm(way) > 0:
                out.append((back[0], way / np.linalg.norm(way)))
    return out


def _ahead(volume: Volume, end: np.ndarray, way: np.ndarray, labels: np.ndarray,
           sizes: np.ndarray) -> tuple[int, np.ndarray, np.ndarray] | None:
    """The piece nearest ahead of an end (label, the end, its nearest voxel), or None."""
    box = box_around(volume, end, BRIDGE_MM)
    where = np.argwhere(labels[box] > 0)
    if not len(where):
        return None
    where += [b.start for b in box]
    points = volume.voxel_to_patient(where)
    offset = points - end
    reach = np.linalg.norm(offset, axis=1)
    cone = (reach <= BRIDGE_MM) & (offset @ way >= np.cos(np.radians(BRIDGE_DEG)) * reach)
    cone &= sizes[labels[tuple(where.T)]] >= MIN_PIECE_MM3
    if not cone.any():
        return None
    best = int(np.flatnonzero(cone)[np.argmin(reach[cone])])
    return int(labels[tuple(where[best])]), end, points[best]


def _line(volume: Volume, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Voxels along the straight line from ``start`` to ``stop`` (LPS mm), a voxel thick."""
    n = int(np.ceil(np.linalg.norm(stop - start) / (min(volume.spacing) / 2))) + 1
    points = start + np.linspace(0.0, 1.0, n)[:, None] * (stop - start)
    voxels = np.round(volume.patient_to_voxel(points)).astype(int)
    voxels = np.clip(voxels, 0, np.array(volume.shape) - 1)
    out = np.zeros(volume.shape, dtype=bool)
    out[tuple(voxels.T)] = True
    return np.asarray(ndimage.binary_dilation(out, iterations=1)) if n > 1 else out
