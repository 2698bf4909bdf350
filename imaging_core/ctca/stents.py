"""Stent size and position for a lesion of 50 % or more: advice for a cardiologist, not a decision.

The interventional cardiologist sizes the stent at the table, usually with
intracoronary imaging; this is a starting point read from the CT lumen.

- **Which lesions.** Diameter stenosis of 50 % or more (CONTRACT §5: stent
  sizes are reported for lesions of 50 % or more). Below that: no advice.
- **Diameter.** From the *distal* reference lumen diameter, rounded *up* to
  the next catalogue diameter (0 to 0.25 mm above it). This is the
  lumen-based rule of intracoronary-imaging practice: when the external
  elastic lamina cannot be seen, the stent is 0-0.25 mm larger than the mean
  distal reference lumen diameter (Ali ZA et al., ILUMIEN III, Lancet
  2016;388:2618-2628, and its OCT sizing algorithm as summarised in Eur
  Heart J 2017;38:3139-3147; checked through a secondary summary only:
  unverified against the papers). A distal reference below 2.25 mm or above
  4.0 mm is outside the catalogue: no advice, with the reason.
- **Length.** The stent covers the lesion from healthy to healthy lumen. When
  the segment's diameters are given, the lesion's ends are first moved out
  to the nearest samples with less than 25 % narrowing against the reference
  (the proximal reference before the lesion, the distal after it, linear in
  between; 25 % is the threshold at which ``measure`` reports a lesion). A
  landing margin of 2 mm is added at each end (a 2-4 mm overlap of both
  lesion edges is the optimum used by Campbell PT et al., Catheter Cardiovasc
  Interv 2015;86:1177-1183; 2 mm is its lower end, the rounding up to a
  catalogue length supplies the rest), and the sum is rounded up to the
  next catalogue length, the excess shared equally between the ends.
- **Too long.** Needing more than the longest catalogue stent (38 mm), the
  lesion gets no single-stent advice: two overlapping stents or a longer
  device are the operator's choice, and the reason says so.
- **Position.** ``start_mm`` and ``end_mm`` are distances from the ostium
  along the centreline (CONTRACT §5).

Catalogue: the sizes of issue 14 (diameters 2.25-4.0 mm in 0.25 mm steps;
lengths 8, 12, 15, 18, 23, 28, 33, 38 mm). Vendor catalogues vary; these are
not taken from one vendor's catalogue: unverified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from imaging_core.ctca.tree import Lesion, Segment, Stent

# Issue 14's catalogue (vendor catalogues vary: unverified against any one vendor).
STENT_DIAMETERS_MM: tuple[float, ...] = tuple(2.25 + 0.25 * i for i in range(8))
STENT_LENGTHS_MM: tuple[float, ...] = (8.0, 12.0, 15.0, 18.0, 23.0, 28.0, 33.0, 38.0)
MIN_STENOSIS_PCT = 50.0  # CONTRACT §5
LANDING_MARGIN_MM = 2.0  # each end; Campbell 2015 (2-4 mm overlap), lower end
HEALTHY_BELOW_PCT = 25.0  # narrowing under which the lumen counts as healthy (Lesion's threshold)


@dataclass(frozen=True)
class StentAdvice:
    """The suggestion for one lesion: ``stent``, or None and the ``reason``; ``notes`` for both."""

    stent: Stent | None
    reason: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def suggest(lesion: Lesion, segment: Segment | None = None) -> Stent | None:
    """A catalogue stent for ``lesion``, or None (see :func:`advise` for the reason)."""
    return advise(lesion, segment).stent


def advise(lesion: Lesion, segment: Segment | None = None) -> StentAdvice:
    """Stent advice for ``lesion``; ``segment`` (its profile) extends it to healthy lumen.

    Distances in mm from the ostium; see the module docstring for each rule
    and its source. Never raises for a lesion outside the rules: it says why.
    """
    refusal = _refusal(lesion)
    if refusal is not None:
        return StentAdvice(stent=None, reason=refusal)
    diameter = next(d for d in STENT_DIAMETERS_MM if d >= lesion.distal_reference_mm - 1e-9)
    start, end, notes = _healthy_span(lesion, segment)
    need = end - start + 2 * LANDING_MARGIN_MM
    length = next((n for n in STENT_LENGTHS_MM if n >= need - 1e-9), None)
    if length is None:
        return StentAdvice(stent=None, notes=notes, reason=(
            f"needs {need:.0f} mm of stent, more than the longest single stent "
            f"({STENT_LENGTHS_MM[-1]:.0f} mm): two overlapping stents or a longer device "
            "are the operator's choice"))
    first = start - LANDING_MARGIN_MM - (length - need) / 2
    if segment is not None and segment.parent is None and first < segment.from_ostium_mm[0]:
        notes += ("the stent reaches the ostium: aorto-ostial placement is the operator's call",)
    stent = Stent(segment=lesion.segment, vessel=lesion.vessel, diameter_mm=diameter,
                  length_mm=length, start_mm=first, end_mm=first + length)
    return StentAdvice(stent=stent, notes=notes)


def _refusal(lesion: Lesion) -> str | None:
    """Why no stent is advised, or None."""
    if not math.isfinite(lesion.stenosis_pct) or lesion.stenosis_pct < MIN_STENOSIS_PCT:
        return f"stenosis {lesion.stenosis_pct:.0f} % is below {MIN_STENOSIS_PCT:.0f} %"
    ref = lesion.distal_reference_mm
    if not math.isfinite(ref):
        return "the distal reference diameter could not be measured"
    if ref < STENT_DIAMETERS_MM[0] or ref > STENT_DIAMETERS_MM[-1]:
        return (f"distal reference {ref:.2f} mm is outside the catalogue "
                f"({STENT_DIAMETERS_MM[0]:.2f}-{STENT_DIAMETERS_MM[-1]:.2f} mm)")
    return None


def _healthy_span(lesion: Lesion, segment: Segment | None) -> tuple[float, float, tuple[str, ...]]:
    """The lesion's start and end moved out to healthy lumen along ``segment``, with notes."""
    if segment is None or segment.diameter_mm is None:
        return lesion.start_mm, lesion.end_mm, ()
    x = np.asarray(segment.from_ostium_mm, dtype=float)
    d = np.asarray(segment.diameter_mm, dtype=float)
    ref = np.interp(x, [lesion.start_mm, lesion.end_mm],
                    [lesion.proximal_reference_mm, lesion.distal_reference_mm])
    narrowed = ~(d >= (1 - HEALTHY_BELOW_PCT / 100) * ref)  # NaN counts as not healthy
    start, start_known = _walk(x, narrowed, d, lesion.start_mm, -1)
    end, end_known = _walk(x, narrowed, d, lesion.end_mm, +1)
    notes = () if start_known and end_known else (
        "the lumen next to the lesion was not measured: healthy landing not confirmed",)
    return min(start, lesion.start_mm), max(end, lesion.end_mm), notes


def _walk(x: np.ndarray, narrowed: np.ndarray, d: np.ndarray, from_mm: float, step: int
          ) -> tuple[float, bool]:
    """From ``from_mm`` outwards (step -1 or +1) to the first healthy sample; was it measured?"""
    i = int(np.clip(np.searchsorted(x, from_mm), 0, len(x) - 1))
    while 0 <= i + step < len(x) and narrowed[i]:
        if not np.isfinite(d[i]):
            return float(x[i]), False
        i += step
    return float(x[i]), bool(np.isfinite(d[i]))
