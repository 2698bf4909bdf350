"""The shapes the CTCA steps pass on: tree segments, lumen profiles, lesions, stents.

All positions are DICOM patient coordinates (LPS) in millimetres; all
lengths in millimetres, areas in mm², pressures as a fraction of aortic
pressure (FFR). Distances "from the ostium" follow CONTRACT §5: measured
along the centreline from the vessel's ostium in the aorta, the LAD and the
LCX counting from the left main ostium.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Vessel = Literal["LM", "LAD", "LCX", "RCA"]
VESSELS: tuple[Vessel, ...] = ("LM", "LAD", "LCX", "RCA")
PlaqueKind = Literal["calcified", "non-calcified", "mixed", "none"]


@dataclass
class Segment:
    """One unbranched piece of the coronary tree, proximal to distal.

    ``id`` is unique in the tree ("LM", "LAD", "LCX", "RCA" for the main
    vessels; side branches get "LAD.1", "LAD.2", ... in order along their
    parent). ``vessel`` is the main artery a side branch belongs to.
    ``points_mm`` (n, 3) samples the centreline about every 0.5 mm;
    ``from_ostium_mm`` (n,) is each sample's distance from the ostium (see the
    module docstring), so a side branch continues its parent's count.
    ``area_mm2`` and ``diameter_mm`` (n,) are the lumen cross-section there,
    filled by ``measure`` (NaN where it could not be measured: unknown is never
    "normal"). ``children`` are the ids of segments that leave this one.
    """

    id: str
    vessel: Vessel
    parent: str | None
    points_mm: np.ndarray
    from_ostium_mm: np.ndarray
    area_mm2: np.ndarray | None = None
    diameter_mm: np.ndarray | None = None
    children: list[str] = field(default_factory=list)

    @property
    def length_mm(self) -> float:
        return float(self.from_ostium_mm[-1] - self.from_ostium_mm[0])


@dataclass
class Tree:
    """The coronary tree: segments by id; ``ostia`` maps "left"/"right" to the ostium (3,) in mm.

    ``missing`` names what could not be found (for example "RCA" when no right
    ostium was found): such a vessel is reported as not assessed, never as
    healthy.
    """

    segments: dict[str, Segment]
    ostia: dict[str, np.ndarray]
    missing: list[str] = field(default_factory=list)

    def roots(self) -> list[Segment]:
        return [s for s in self.segments.values() if s.parent is None]


@dataclass(frozen=True)
class Lesion:
    """One narrowing of 25 % diameter stenosis or more (CAD-RADS 2.0 grades from 1 %).

    ``stenosis_pct`` = 100 * (1 - minimal_lumen_diameter / reference_diameter),
    the reference interpolated at the narrowest point from the healthy
    segments proximal and distal to the lesion. ``start_mm``, ``centre_mm`` and
    ``end_mm`` are distances from the ostium; ``length_mm`` = end - start.
    ``plaque`` and the plaque volumes (mm³) describe the wall round the
    narrowing.
    """

    segment: str
    vessel: Vessel
    start_mm: float
    centre_mm: float
    end_mm: float
    stenosis_pct: float
    reference_diameter_mm: float
    proximal_reference_mm: float
    distal_reference_mm: float
    minimal_lumen_diameter_mm: float
    plaque: PlaqueKind = "none"
    calcified_volume_mm3: float = 0.0
    noncalcified_volume_mm3: float = 0.0

    @property
    def length_mm(self) -> float:
        return self.end_mm - self.start_mm


@dataclass(frozen=True)
class Stent:
    """A stent suggestion for one lesion: advice for a cardiologist, not a decision.

    ``diameter_mm`` and ``length_mm`` are catalogue sizes; ``start_mm`` and
    ``end_mm`` are distances from the ostium of the stented stretch.
    """

    segment: str
    vessel: Vessel
    diameter_mm: float
    length_mm: float
    start_mm: float
    end_mm: float


@dataclass
class Ffr:
    """FFR-CT along the tree: per segment id, (n,) values matching ``Segment.from_ostium_mm``.

    ``assumptions`` lists each constant the model used with its source.
    """

    along: dict[str, np.ndarray]
    assumptions: dict[str, str] = field(default_factory=dict)

    def distal(self, segment: str) -> float:
        return float(self.along[segment][-1])

    def at(self, tree: Tree, segment: str, from_ostium_mm: float) -> float:
        """FFR-CT at a distance from the ostium on a segment (linear interpolation)."""
        seg = tree.segments[segment]
        return float(np.interp(from_ostium_mm, seg.from_ostium_mm, self.along[segment]))


@dataclass
class CtcaResult:
    """What the CTCA pipeline found. ``analysable`` False comes with ``reason`` and nothing else.

    ``qa`` holds the measured QA values (for example ``root_mean_hu``,
    ``slice_thickness_mm``); ``timings_s`` each step's wall time in seconds.
    ``failed`` maps a step that failed after the lesions were found ("ffr-ct",
    "stents", "cad-rads") to its error: what it would have given is unknown,
    never "none". ``caveats`` are QA doubts that did not refuse the study
    (what could not be checked), for the report.
    """

    analysable: bool
    reason: str | None = None
    qa: dict[str, float] = field(default_factory=dict)
    tree: Tree | None = None
    lesions: list[Lesion] = field(default_factory=list)
    stents: list[Stent] = field(default_factory=list)
    ffr: Ffr | None = None
    cad_rads: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
