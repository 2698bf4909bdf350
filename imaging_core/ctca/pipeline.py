"""The CTCA analysis in order: QA, coronary tree, cross sections, lesions, FFR-CT, stents, CAD-RADS.

Each step's wall time goes into ``CtcaResult.timings_s`` under its name. A
failure is recorded, never read as "nothing there":

- QA refusing the study gives "not analysable" with its reason;
- a tree, cross sections or lesions that cannot be made give "not
  analysable" naming the step and its error (no stenosis could be judged);
- FFR-CT, stent sizing or CAD-RADS failing keep the lesions and record the
  step in ``CtcaResult.failed``; what it would have given is unknown;
- a vessel the tree did not find stays in ``Tree.missing`` (not assessed;
  CAD-RADS then gives N, or the obstructive category with the /N modifier);
- no vessel found at all is "not analysable" with the reason (the tree step
  raises): nothing was assessed, so this is the software failing to read the
  study, not a reader's non-diagnostic N, and an analysable result with an
  empty tree and no lesions could be taken for a normal study.

The steps are the sibling modules' functions: ``qa.check(volume)``
(``.analysable``, ``.reason``, ``.measured``, ``.caveats``),
``lumen.coronary_tree(volume, ascending)`` (on the ascending aorta QA found),
``measure.measure_tree(volume, tree)`` (the
cross sections and the lesions, timed together as "measure"),
``flow.ffr_ct(tree, lesions)``, ``stents.suggest(lesion, segment)`` and
``cadrads.category(lesions, tree)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from imaging_core.ctca import cadrads, flow, lumen, measure, qa, stents
from imaging_core.ctca.ostia import Ascending
from imaging_core.ctca.tree import CtcaResult, Ffr, Lesion, Stent, Tree
from imaging_core.volume import Volume

log = logging.getLogger(__name__)
T = TypeVar("T")


class StepFailed(RuntimeError):
    """A step the rest of the analysis needs raised; ``step`` names it."""

    def __init__(self, step: str, error: Exception) -> None:
        super().__init__(f"{step} failed: {type(error).__name__}: {error}")
        self.step = step


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = time.perf_counter() - started


def _run(timings: dict[str, float], step: str, work: Callable[[], T]) -> T:
    """``work()`` timed under ``step``; any error becomes :class:`StepFailed`."""
    with _timed(timings, step):
        try:
            return work()
        except Exception as error:  # a step's failure is reported, never swallowed
            log.warning("CTCA step failed", extra={"step": step, "error": str(error)})
            raise StepFailed(step, error) from error


def analyse(volume: Volume) -> CtcaResult:
    """The whole CTCA analysis of ``volume`` (a contrast-enhanced cardiac CT, HU).

    Never raises for a study it cannot analyse: the result says why.
    """
    timings: dict[str, float] = {}
    verdict = _run_or_none(timings, "qa", lambda: qa.check(volume))
    if isinstance(verdict, StepFailed):
        return CtcaResult(False, reason=str(verdict), timings_s=timings)
    measured = verdict.known
    caveats = list(verdict.caveats)
    if not verdict.analysable:
        return CtcaResult(False, reason=verdict.reason, qa=measured, timings_s=timings,
                          caveats=caveats)
    try:
        tree, lesions = _anatomy(volume, verdict.ascending, timings)
    except StepFailed as failure:
        return CtcaResult(False, reason=str(failure), qa=measured, timings_s=timings,
                          caveats=caveats)
    result = CtcaResult(True, qa=measured, tree=tree, lesions=lesions, timings_s=timings,
                        caveats=caveats)
    _physiology(result, tree, lesions)
    return result


def _run_or_none(timings: dict[str, float], step: str,
                 work: Callable[[], T]) -> T | StepFailed:
    try:
        return _run(timings, step, work)
    except StepFailed as failure:
        return failure


def _anatomy(volume: Volume, ascending: Ascending | None, timings: dict[str, float]
             ) -> tuple[Tree, list[Lesion]]:
    """The tree with its cross sections measured, and its lesions; StepFailed if any fails.

    ``ascending`` is the aorta QA found (None: the tree step finds it).
    """
    traced = _run(timings, "coronary-tree", lambda: lumen.coronary_tree(volume, ascending))
    return _run(timings, "measure", lambda: measure.measure_tree(volume, traced))


def _physiology(result: CtcaResult, tree: Tree, lesions: list[Lesion]) -> None:
    """FFR-CT, stent suggestions and CAD-RADS; a failure is kept in ``result.failed``."""
    timings = result.timings_s
    ffr = _run_or_none(timings, "ffr-ct", lambda: flow.ffr_ct(tree, lesions))
    suggested = _run_or_none(timings, "stents", lambda: _stents(tree, lesions))
    category = _run_or_none(timings, "cad-rads",
                            lambda: cadrads.category(lesions, tree))
    result.ffr = ffr if isinstance(ffr, Ffr) else None
    result.stents = suggested if isinstance(suggested, list) else []
    result.cad_rads = category if isinstance(category, str) else None
    result.failed = {f.step: str(f) for f in (ffr, suggested, category)
                     if isinstance(f, StepFailed)}


def _stents(tree: Tree, lesions: list[Lesion]) -> list[Stent]:
    """A suggestion for each lesion the sizing rule takes (50 % or more)."""
    made = (stents.suggest(lesion, tree.segments[lesion.segment]) for lesion in lesions)
    return [stent for stent in made if stent is not None]
