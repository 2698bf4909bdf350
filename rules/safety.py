"""Safety checks on the procedure an order will carry.

Each check is a separate function taking the patient context, the procedure
and its thresholds (``rules/data/safety.yaml``, each with its citation), and
returns findings coded from ``{base}/CodeSystem/safety-check``. A finding
advises; it never blocks: a human justifies every exposure (IR(ME)R 2017).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date

from rules.context import Code, Fact, PatientContext
from rules.schema import (
    Citation,
    CodeRef,
    ContrastRenalConfig,
    PregnancyConfig,
    Procedure,
    SafetyConfig,
)

CHECK_CODES = ("contrast-renal", "contrast-allergy", "pregnancy-radiation", "mri-implant",
               "duplicate-imaging", "paediatric-dose")


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # info | warning | critical
    summary: str
    detail: str
    citation: Citation
    facts: tuple[Fact, ...] = ()
    # The catalogue key of the procedure checked ("A and B" once identical
    # findings on two procedures are merged).
    procedure: str = ""


@dataclass(frozen=True)
class Rated:
    """A procedure as a matched rule rated it."""

    procedure: Procedure
    appropriateness: int


def codeset(refs: Iterable[CodeRef]) -> frozenset[Code]:
    return frozenset((r.system, r.code) for r in refs)


def matching(facts: Iterable[Fact], codes: frozenset[Code]) -> list[Fact]:
    return [f for f in facts if codes.intersection(f.codes)]


def latest(facts: Iterable[Fact], codes: frozenset[Code]) -> Fact | None:
    """The most recent fact with one of ``codes`` (undated facts count as oldest)."""
    found = matching(facts, codes)
    return max(found, key=lambda f: f.when or date.min) if found else None


def days_ago(ctx: PatientContext, fact: Fact) -> int | None:
    return (ctx.today - fact.when).days if fact.when else None


def contrast_renal(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig) -> list[Finding]:
    """Kidney function before contrast (ACR-NKF 2020; ACR Manual on Contrast Media)."""
    c = cfg.contrast_renal
    if proc.contrast == "none":
        return []
    aki = [f for f in matching(ctx.conditions, codeset(c.aki)) if f.active]
    if aki:
        return [_aki(proc, c, aki)]
    egfr = latest([f for f in ctx.observations if f.value is not None], codeset(c.egfr))
    age = days_ago(ctx, egfr) if egfr else None
    current = egfr if egfr and age is not None and age <= c.max_age_days else None
    if proc.contrast == "gadolinium":
        if current and current.value is not None and current.value < c.gadolinium_warning_below:
            return [_finding("contrast-renal", "warning", f"eGFR {current.value:g} before "
                             "gadolinium: risk of nephrogenic systemic fibrosis",
                             "Use a group II agent only if the MRI is essential.",
                             c.gadolinium_citation, current)]
        return []
    if current is None:
        return _missing_egfr(ctx, c, egfr)
    return _egfr_band(current, c)


def _aki(proc: Procedure, c: ContrastRenalConfig, aki: list[Fact]) -> Finding:
    """Active AKI: a risk for iodinated contrast (ACR-NKF 2020) and, with gadolinium, a
    risk factor for nephrogenic systemic fibrosis (ACR Manual on Contrast Media)."""
    if proc.contrast == "gadolinium":
        return _finding("contrast-renal", "warning", "Acute kidney injury recorded before "
                        "gadolinium: risk of nephrogenic systemic fibrosis",
                        "Use a group II agent only if the MRI is essential; consider a "
                        "non-contrast test.", c.gadolinium_citation, *aki)
    return _finding("contrast-renal", "warning", "Acute kidney injury recorded before "
                    "iodinated contrast", "Discuss with radiology; consider a non-contrast "
                    "test.", c.citation, *aki)


def _missing_egfr(ctx: PatientContext, c: ContrastRenalConfig,
                  stale: Fact | None) -> list[Finding]:
    """No current eGFR: ask for one when a screening risk factor is present."""
    ckd = matching(ctx.conditions, codeset(c.ckd))
    older = ctx.age is not None and ctx.age > c.screen_over_age
    if not (ckd or older):
        return []
    why = f"aged {ctx.age}" if older else "chronic kidney disease"
    seen = f"; the last was {days_ago(ctx, stale)} days ago" if stale else ""
    return [_finding("contrast-renal", "warning",
                     f"No eGFR in the last {c.max_age_days} days ({why})",
                     f"Ask for a current eGFR before iodinated contrast{seen}.",
                     c.screening_citation, *ckd, *([stale] if stale else []))]


def _egfr_band(egfr: Fact, c: ContrastRenalConfig) -> list[Finding]:
    assert egfr.value is not None
    if egfr.value < c.warning_below:
        return [_finding("contrast-renal", "warning",
                         f"eGFR {egfr.value:g}: high risk of contrast-associated kidney injury",
                         "Prophylactic IV fluids are indicated unless contraindicated; "
                         "consider a non-contrast alternative.", c.citation, egfr)]
    if egfr.value < c.info_below:
        return [_finding("contrast-renal", "info", f"eGFR {egfr.value:g}: low risk",
                         "Prophylaxis at the referrer's discretion (high-risk patients).",
                         c.citation, egfr)]
    return []


def contrast_allergy(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig) -> list[Finding]:
    """A previous contrast reaction is flagged, never silently blocked (RCR 2015)."""
    c = cfg.contrast_allergy
    if proc.contrast == "none":
        return []
    codes = codeset(c.iodinated if proc.contrast == "iodinated" else c.gadolinium)
    reactions = [f for f in matching(ctx.allergies, codes) if f.active]
    if not reactions:
        return []
    return [_finding("contrast-allergy", "warning",
                     f"Previous reaction to contrast: {reactions[0].display}",
                     f"{proc.display} uses {proc.contrast} contrast. Radiology will decide on "
                     "an alternative agent, premedication or another test.", c.citation,
                     *reactions)]


def pregnancy_radiation(ctx: PatientContext, proc: Procedure,
                        cfg: SafetyConfig) -> list[Finding]:
    """Possible pregnancy before ionising exams of the diaphragm-to-knees region."""
    c = cfg.pregnancy_radiation
    age = ctx.age
    if not (proc.ionising and proc.pelvis_in_beam and ctx.sex == "female" and age is not None
            and c.min_age <= age <= c.max_age_inclusive):
        return []
    pregnant = codeset(c.pregnant)
    status = latest(ctx.observations, codeset(c.status))
    conditions = [f for f in matching(ctx.conditions, pregnant) if f.active]
    if conditions or (status and pregnant.intersection(status.value_codes)):
        facts = [*conditions, *([status] if status else [])]
        return [_finding("pregnancy-radiation", "critical", "Patient is pregnant",
                         f"{proc.display} irradiates the pelvis. Justify with radiology or "
                         "choose a non-ionising test.", c.citation, *facts)]
    status_age = days_ago(ctx, status) if status else None
    if status and status_age is not None and status_age <= c.status_valid_days and \
            codeset(c.not_pregnant).intersection(status.value_codes):
        return []
    return _by_menstrual_cycle(ctx, proc, c)


def _by_menstrual_cycle(ctx: PatientContext, proc: Procedure,
                        c: PregnancyConfig) -> list[Finding]:
    lmp = latest([f for f in ctx.observations if f.value_date], codeset(c.lmp))
    if lmp is None or lmp.value_date is None:
        return [_finding("pregnancy-radiation", "warning", "Pregnancy status not recorded",
                         "Ask about pregnancy before referral (IR(ME)R).", c.citation)]
    cycle_day = (ctx.today - lmp.value_date).days + 1
    limit = c.high_dose_max_cycle_day if proc.high_dose else c.low_dose_max_cycle_day
    if cycle_day <= limit:
        return []
    rule = "10-day" if proc.high_dose else "28-day"
    return [_finding("pregnancy-radiation", "warning",
                     f"Day {cycle_day} of the menstrual cycle ({rule} rule)",
                     "Pregnancy cannot be excluded: confirm status before the exposure.",
                     c.citation, lmp)]


def mri_implant(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig) -> list[Finding]:
    """Implants whose MR status is unsafe, unknown or (for active implants) conditional.

    A device labelled MR Unsafe is critical: ASTM F2503 defines MR Unsafe as
    posing unacceptable risks in all MR environments. The others need radiology
    to confirm MR safety (warning).
    """
    c = cfg.mri_implant
    if proc.modality != "MR":
        return []
    high_risk, safe = codeset(c.high_risk), codeset(c.mr_safe)
    conditional, unsafe = codeset(c.mr_conditional), codeset(c.mr_unsafe)
    flagged = [d for d in ctx.devices if not safe.intersection(d.safety) and
               (high_risk.intersection(d.codes) or not conditional.intersection(d.safety))]
    banned = [d for d in ctx.devices if unsafe.intersection(d.safety)]
    others = [d for d in flagged if d not in banned]
    found = []
    if banned:
        found.append(_finding("mri-implant", "critical", "MR Unsafe implant: "
                              + ", ".join(d.display for d in banned),
                              "Do not scan with MRI; choose another test with radiology.",
                              c.citation, *banned))
    if others:
        found.append(_finding("mri-implant", "warning", "Implanted device before MRI: "
                              + ", ".join(d.display for d in others),
                              "MR safety must be confirmed by radiology (device, leads, "
                              "conditions).", c.citation, *others))
    return found


def duplicate_imaging(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
                      resolve: Callable[[Fact], Procedure | None]) -> list[Finding]:
    """The same test, or the same modality and region, done or ordered recently."""
    c = cfg.duplicate_imaging
    recent = []
    for fact in ctx.imaging:
        ago = days_ago(ctx, fact)
        prior = resolve(fact)
        if ago is None or not 0 <= ago <= c.window_days or prior is None:
            continue
        if prior.key == proc.key or (prior.modality, prior.region) == (proc.modality,
                                                                       proc.region):
            recent.append((ago, prior, fact))
    if not recent:
        return []
    ago, prior, fact = min(recent, key=lambda r: r[0])
    return [_finding("duplicate-imaging", "warning",
                     f"{prior.display} {'done' if fact.kind == 'imaging' else 'ordered'} "
                     f"{ago} days ago", "Check the earlier result before repeating it.",
                     c.citation, fact)]


def paediatric_dose(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
                    rated: list[Rated]) -> list[Finding]:
    """A child and a higher-dose test where a lower-dose one rates the same."""
    c = cfg.paediatric_dose
    if ctx.age is None or ctx.age >= c.child_below_age:
        return []
    mine = next((r for r in rated if r.procedure.key == proc.key), None)
    if mine is None:
        return []
    lower = [r for r in rated if r.appropriateness == mine.appropriateness and
             r.procedure.paediatric.rrl < proc.paediatric.rrl]
    if not lower:
        return []
    better = min(lower, key=lambda r: r.procedure.paediatric.rrl).procedure
    return [_finding("paediatric-dose", "warning",
                     f"Lower-dose {better.display} rates the same for a child",
                     f"{proc.display} (paediatric RRL {proc.paediatric.rrl}) versus "
                     f"{better.display} (RRL {better.paediatric.rrl}).", c.citation)]


def _finding(check: str, severity: str, summary: str, detail: str, citation: Citation,
             *facts: Fact) -> Finding:
    return Finding(check, severity, summary, detail, citation, tuple(facts))


def run_checks(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig, rated: list[Rated],
               resolve: Callable[[Fact], Procedure | None]) -> list[Finding]:
    """Every safety check on ``proc``, in CHECK_CODES order, each naming ``proc``."""
    found = [*contrast_renal(ctx, proc, cfg), *contrast_allergy(ctx, proc, cfg),
             *pregnancy_radiation(ctx, proc, cfg), *mri_implant(ctx, proc, cfg),
             *duplicate_imaging(ctx, proc, cfg, resolve), *paediatric_dose(ctx, proc, cfg, rated)]
    return [replace(f, procedure=proc.key) for f in found]


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per identical result, naming every procedure it was found for."""
    merged: dict[tuple[object, ...], Finding] = {}
    for finding in findings:
        key = (finding.check, finding.severity, finding.summary, finding.detail,
               finding.citation, finding.facts)
        seen = merged.get(key)
        if seen is None:
            merged[key] = finding
        elif finding.procedure and finding.procedure not in seen.procedure.split(" and "):
            merged[key] = replace(seen, procedure=f"{seen.procedure} and {finding.procedure}")
    return list(merged.values())

