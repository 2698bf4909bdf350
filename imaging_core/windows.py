"""CT display windows (presets) the staff viewer offers, each with its source.

Clinical content as data (CONVENTIONS): a window is a centre (level) and a width in
Hounsfield units, applied as the linear VOI LUT of DICOM PS3.3 C.11.2.1.2.
"""

from __future__ import annotations

from dataclasses import dataclass

RADIOPAEDIA = "Radiopaedia, 'Windowing (CT)', https://radiopaedia.org/articles/windowing-ct"


@dataclass(frozen=True)
class WindowPreset:
    """A named CT window: centre and width in HU, and where the values come from."""

    key: str
    label: str
    center: int
    width: int
    source: str

    @property
    def parameter(self) -> str:
        """The DICOMweb ``window=center,width,linear`` value (PS3.18 §8.3.5.1.4)."""
        return f"{self.center},{self.width},linear"


PRESETS = (
    WindowPreset("soft-tissue", "Soft tissue", 40, 400, RADIOPAEDIA),
    WindowPreset("lung", "Lung", -600, 1500, RADIOPAEDIA),
    WindowPreset("bone", "Bone", 400, 1800, RADIOPAEDIA),
    # No guideline names a display window for calcium scoring; ScanPath's choice
    # (unverified): wide enough to see plaque from the 130 HU Agatston threshold
    # (Agatston 1990) up to dense calcium without clipping it white.
    WindowPreset("calcium", "Calcium", 300, 800,
                 "ScanPath's choice (unverified: no guideline names a calcium window)"),
)
BY_KEY = {preset.key: preset for preset in PRESETS}
DEFAULT = BY_KEY["soft-tissue"]
