"""Centrelines of a coronary tree's lumen, its vessel graph and the AHA labels.

1. The lumen mask is thinned to a one-voxel skeleton (Lee TC, Kashyap RL, Chu
   CN. Building skeleton models via 3-D medial surface/axis thinning
   algorithms. CVGIP: Graphical Models and Image Processing 1994;56:462-478;
   ``skimage.morphology.skeletonize``) and read as a graph of junctions,
   ends and the paths between them with ``skan`` (Nunez-Iglesias J, Blanch
   AJ, Looker O, Dixon MW, Tilley L. A new Python library to analyse skeleton
   images confirms malaria parasite remodelling of the red blood cell
   membrane skeleton. PeerJ 2018;6:e4312).
2. End paths shorter than ``SPUR_MM`` are spurs of the thinning (a bump on
   the lumen's surface) and are pruned, again until none is left.
3. The graph is rooted at the node nearest the ostium; each node's
   downstream length is its longest path to an end. A vessel follows, at
   each junction, the child with the longest downstream length; the others
   are its side branches, numbered along it ("LAD.1", "LAD.2", ...).
4. Left tree: the left main (LM) runs from the ostium to the first junction
   where two children each run ``MAJOR_MM`` or more; of those two the LAD is
   the one running anterior (the anterior interventricular groove) and the
   LCX the one running posterior (the left atrioventricular groove), after the
   AHA segment model (Austen WG, Edwards JE, Frye RL, et al. A reporting
   system on patients evaluated for coronary artery disease. Circulation
   1975;51(4 Suppl):5-40: LM segment 5, LAD 6-10, LCX 11-15; RCA 1-4). The
   right tree is the RCA and its branches.
5. Each segment's points are carried to LPS mm, smoothed by a Gaussian of
   ``SMOOTH_MM`` along the arc and resampled every ``STEP_MM``;
   ``from_ostium_mm`` continues the parent's count from the junction
   (CONTRACT §5: LAD and LCX count from the left main ostium).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skan import Skeleton
from skimage.morphology import skeletonize

from imaging_core.ctca.tree import Segment, Vessel
from imaging_core.errors import SegmentationError
from imaging_core.volume import Volume

SPUR_MM = 3.0  # shorter end paths are thinning spurs (~ a lumen radius; project choice)
MAJOR_MM = 15.0  # both children this long: the LM's bifurcation (project choice)
SIDE_MIN_MM = 5.0  # shorter side branches are not kept (project choice)
SMOOTH_MM = 1.0  # Gaussian along the centreline: the voxel staircase smoothed away
STEP_MM = 0.5  # tree.Segment samples about every 0.5 mm
ANTERIOR = np.array([0.0, -1.0, 0.0])  # LPS anterior


@dataclass
class Graph:
    """A skeleton graph: ``paths[i]`` (n, 3) LPS mm from node ``ends[i][0]`` to ``ends[i][1]``."""

    paths: list[np.ndarray]
    ends: list[tuple[int, int]]
    nodes: dict[int, np.ndarray]
    lengths: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lengths = [float(_arc(p)[-1]) for p in self.paths]

    def length(self, i: int) -> float:
        return self.lengths[i]

    def incident(self, node: int) -> list[int]:
        return [i for i, e in enumerate(self.ends) if node in e]

    def nearest(self, point_mm: np.ndarray) -> int:
        """The node nearest to ``point_mm``."""
        return min(self.nodes, key=lambda n: float(np.linalg.norm(self.nodes[n] - point_mm)))


def skeleton_graph(volume: Volume, lumen: np.ndarray) -> Graph:
    """The skeleton of ``lumen`` (bool, volume grid) as a graph in LPS mm (steps 1).

    Raises
    ------
    SegmentationError
        The lumen thins to nothing (no path).
    """
    where = np.argwhere(lumen)
    lo, hi = where.min(axis=0), where.max(axis=0) + 1
    crop = lumen[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    skeleton = skeletonize(np.pad(crop, 1)).astype(bool)
    if np.count_nonzero(skeleton) < 2:
        raise SegmentationError("the lumen thins to no centreline")
    skel = Skeleton(skeleton)
    offset = lo - 1
    pixels = skel.paths_list()  # each path's pixel ids, from one node to the other
    paths = [volume.voxel_to_patient(skel.coordinates[ids] + offset) for ids in pixels]
    ends = [(int(ids[0]), int(ids[-1])) for ids in pixels]
    nodes = {n: volume.voxel_to_patient((skel.coordinates[n] + offset)[None])[0]
             for e in ends for n in e}
    return Graph(paths, ends, nodes)


def warm() -> None:
    """Compile skan's graph code now: once per worker process, not in the first job.

    skan (0.13) builds its graphs with numba functions that are compiled on
    their first call in a process (2.5-3 s on an idle 2-core machine, 5-13 s
    under load; docs/benchmarks.md). Several of them take a jitclass and are
    marked ``cache=False`` in skan (numba cannot cache those to disk), so
    ``NUMBA_CACHE_DIR`` does not help; a skeleton of a small cross is graphed
    here so that the compiled code is in memory (and in every process forked
    from this one) before a study arrives.
    """
    cross = np.zeros((3, 7, 7), dtype=bool)
    cross[1, 3, 1:6] = True
    cross[1, 1:6, 3] = True
    Skeleton(cross).paths_list()


def pruned(graph: Graph, keep: int) -> Graph:
    """``graph`` without end paths shorter than ``SPUR_MM``, repeated until none (step 2).

    ``keep`` (the root node) is never pruned, nor the last path.
    """
    alive = set(range(len(graph.paths)))
    while True:
        degree = Counter(n for i in alive for n in set(graph.ends[i]))
        spurs = {i for i in alive if graph.ends[i][0] != graph.ends[i][1]
                 and graph.length(i) < SPUR_MM
                 and any(degree[n] == 1 and n != keep for n in graph.ends[i])}
        if not spurs or len(spurs) >= len(alive):
            break
        alive -= spurs
    kept = sorted(alive)
    return Graph([graph.paths[i] for i in kept], [graph.ends[i] for i in kept], graph.nodes)


def _arc(points: np.ndarray) -> np.ndarray:
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


@dataclass
class Rooted:
    """``graph`` rooted at ``root``: children (path index, child node) and downstream lengths."""

    graph: Graph
    root: int
    children: dict[int, list[tuple[int, int]]]
    downstream: dict[int, float]

    def reach(self, edge: int, child: int) -> float:
        """Length of a child path plus the longest path on from its far node (mm)."""
        return self.graph.length(edge) + self.downstream[child]

    def follow(self, node: int) -> list[tuple[int, int]]:
        """(path, node reached) pairs from ``node``, on the farthest-reaching child each time."""
        out = []
        while self.children[node]:
            edge, node = max(self.children[node], key=lambda c: self.reach(*c))
            out.append((edge, node))
        return out

    def polyline(self, start: int, steps: list[tuple[int, int]]) -> np.ndarray:
        """The points (LPS mm) from node ``start`` along ``steps``, proximal first."""
        parts, node = [self.graph.nodes[start][None]], start
        for edge, nxt in steps:
            path = self.graph.paths[edge]
            parts.append((path if self.graph.ends[edge][0] == node else path[::-1])[1:])
            node = nxt
        return np.concatenate(parts)


def rooted(graph: Graph, point_mm: np.ndarray) -> Rooted:
    """``graph`` rooted at its node nearest ``point_mm`` (breadth first: loops are cut)."""
    root = graph.nearest(point_mm)
    children: dict[int, list[tuple[int, int]]] = {n: [] for n in graph.nodes}
    seen, order, queue = {root}, [root], [root]
    while queue:
        node = queue.pop(0)
        for edge in graph.incident(node):
            a, b = graph.ends[edge]
            other = b if a == node else a
            if other not in seen:
                seen.add(other)
                children[node].append((edge, other))
                order.append(other)
                queue.append(other)
    downstream = dict.fromkeys(graph.nodes, 0.0)
    for node in reversed(order):
        downstream[node] = max((graph.length(e) + downstream[c] for e, c in children[node]),
                               default=0.0)
    return Rooted(graph, root, children, downstream)


@dataclass
class Draft:
    """A segment before smoothing: from node ``start`` along ``steps`` of the rooted graph."""

    id: str
    vessel: Vessel
    parent: str | None
    start: int
    steps: list[tuple[int, int]]


def left_drafts(tree: Rooted) -> tuple[list[Draft], list[str]]:
    """LM, LAD and LCX of a left tree, and the vessels it lacks (step 4)."""
    path = tree.follow(tree.root)
    split = _split(tree, path)
    if split is None:
        return [Draft("LM", "LM", None, tree.root, path)], ["LAD", "LCX"]
    node = path[split][1]
    lm = Draft("LM", "LM", None, tree.root, path[:split + 1])
    ranked = sorted(tree.children[node], key=lambda c: -tree.reach(*c))
    majors = [c for c in ranked[:2] if tree.reach(*c) >= SIDE_MIN_MM]
    runs = [[c, *tree.follow(c[1])] for c in majors]
    scores = [float(((tree.polyline(node, run) - tree.graph.nodes[node]) @ ANTERIOR).mean())
              for run in runs]
    names: list[Vessel] = ["LAD", "LCX"] if len(runs) < 2 or scores[0] >= scores[1] \
        else ["LCX", "LAD"]
    if len(runs) == 1 and scores[0] < 0:
        names = ["LCX"]
    drafts = [lm] + [Draft(name, name, "LM", node, run) for name, run in zip(names, runs,
                                                                               strict=False)]
    return drafts, [v for v in ("LAD", "LCX") if v not in names[:len(runs)]]


def _split(tree: Rooted, path: list[tuple[int, int]]) -> int | None:
    """Index in ``path`` of the LM's split: two children of ``MAJOR_MM``, else any junction."""
    for want in (MAJOR_MM, SIDE_MIN_MM):
        for i, (_, node) in enumerate(path):
            if sum(tree.reach(*c) >= want for c in tree.children[node]) >= 2:
                return i
    return None


def side_drafts(tree: Rooted, main: Draft, taken: set[int]) -> list[Draft]:
    """Branches leaving ``main`` (``SIDE_MIN_MM`` or longer), numbered along it, and theirs."""
    out: list[Draft] = []
    first = 0 if main.parent is None else 1  # a branch's first node is its parent's junction
    node = main.start if first == 0 else main.steps[0][1]
    for k in range(first, len(main.steps) + 1):
        onward = main.steps[k][0] if k < len(main.steps) else None
        for edge, child in tree.children[node]:
            if edge == onward or edge in taken or tree.reach(edge, child) < SIDE_MIN_MM:
                continue
            branch = Draft(f"{main.id}.{len(out) + 1}", main.vessel, main.id, node,
                           [(edge, child), *tree.follow(child)])
            out.append(branch)
        if k < len(main.steps):
            node = main.steps[k][1]
    nested = [d for branch in list(out) for d in side_drafts(tree, branch, taken)]
    return out + nested


def segments(tree: Rooted, drafts: list[Draft], ostium: np.ndarray) -> dict[str, Segment]:
    """Smoothed, resampled segments (parents before children) with their distances (step 5)."""
    out: dict[str, Segment] = {}
    for draft in drafts:
        raw = tree.polyline(draft.start, draft.steps)
        if draft.parent is None:
            raw = np.concatenate([ostium[None], raw])
            offset = 0.0
        else:
            parent = out[draft.parent]
            at = int(np.argmin(np.linalg.norm(parent.points_mm - raw[0], axis=1)))
            offset = float(parent.from_ostium_mm[at])
            parent.children.append(draft.id)
        points = smoothed(raw)
        out[draft.id] = Segment(draft.id, draft.vessel, draft.parent, points,
                                offset + _arc(points))
    return out


def smoothed(points: np.ndarray) -> np.ndarray:
    """A polyline (n, 3) mm, smoothed (Gaussian, ``SMOOTH_MM``), resampled every ``STEP_MM``."""
    fine = resampled(points, STEP_MM / 2)
    if len(fine) > 3:
        fine = ndimage.gaussian_filter1d(fine, SMOOTH_MM / (STEP_MM / 2), axis=0, mode="nearest")
        fine[0] = points[0]
    return resampled(fine, STEP_MM)


def resampled(points: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` mm of arc length along a polyline (its ends kept)."""
    moves = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-9])
    points = points[moves]
    arc = _arc(points)
    at = np.linspace(0.0, arc[-1], max(2, int(round(arc[-1] / step)) + 1))
    return np.stack([np.interp(at, arc, points[:, i]) for i in range(3)], axis=1)
