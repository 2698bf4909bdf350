"""Safety checks on the procedure an order will carry.

Each check is a separate function taking the patient context, the procedure,
its thresholds (``rules/data/safety.yaml``, each with its citation) and the
value sets that name the facts it reads, and returns findings coded from
``{base}/CodeSystem/safety-check``. A finding advises; it never blocks: a
human justifies every exposure (IR(ME)R 2017).

Unknown is never negative: when a check applies to the procedure but the
history it reads could not be read (``PatientContext.unknown``), and the
data that did arrive shows nothing, the check says it could not be made.
A finding that makes the procedure unsafe (MR Unsafe implant, eGFR below 30
or acute kidney injury before contrast, pregnancy before an ionising pelvic
exam) is marked ``contraindicates`` so that the engine can move to the best
safe option the guideline allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date

from rules.context import DICOM, Fact, PatientContext
from rules.schema import (
    Citation,
    ContrastRenalConfig,
    PregnancyConfig,
    Procedure,
    SafetyConfig,
)
from rules.valuesets import Compiled, ValueSets, matching, value_in

CHECK_CODES = ("contrast-renal", "contrast-allergy", "pregnancy-radiation", "mri-implant",
               "duplicate-imaging", "paediatric-dose")
# What each check reads, among the lists a context may not have been able to read.
READS = {"contrast-renal": ("observations", "conditions", "patient"),
         # findings (conditions and observations) are read too: PatientContext.findings
         "contrast-allergy": ("allergies", "conditions", "observations"),
         "pregnancy-radiation": ("observations", "conditions", "patient"),
         "mri-implant": ("devices", "conditions", "observations"),
         "duplicate-imaging": ("imaging",),
         "paediatric-dose": ("patient",)}


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
    contraindicates: bool = False  # the procedure is unsafe for this patient
    unchecked: bool = False  # the check could not be made: data unknown


@dataclass(frozen=True)
class Rated:
    """A procedure as a matched rule rated it."""

    procedure: Procedure
    appropriateness: int


def latest(facts: Iterable[Fact], codes: frozenset[tuple[str, str]]) -> Fact | None:
    """The most recent fact with one of ``codes`` (undated facts count as oldest)."""
    found = matching(facts, codes)
    return max(found, key=lambda f: f.when or date.min) if found else None


def days_ago(ctx: PatientContext, fact: Fact) -> int | None:
    return (ctx.today - fact.when).days if fact.when else None


def _current(ctx: PatientContext, vs: Compiled, max_days: int) -> tuple[Fact, float] | None:
    """The latest fact of ``vs`` within ``max_days`` whose value reads in the set's unit."""
    dated = [(f, value_in(f, vs)) for f in matching(ctx.observations, vs.codes)
             if f.when and 0 <= (ctx.today - f.when).days <= max_days]
    usable = [(f, v) for f, v in dated if v is not None]
    return max(usable, key=lambda pair: pair[0].when or date.min) if usable else None


def contrast_renal(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
                   vs: ValueSets) -> list[Finding]:
    """Kidney function before contrast (ACR-NKF 2020; ACR Manual on Contrast Media).

    The eGFR is read by code (LOINC or SNOMED CT, NHS GP codes included) in
    mL/min/1.73 m2; without a current one, a current creatinine gives the
    CKD-EPI 2021 eGFR when age and sex are known.
    """
    c = cfg.contrast_renal
    if proc.contrast == "none":
        return []
    aki = [f for f in matching(ctx.findings, vs.codes(c.aki)) if f.active]
    if aki:
        return [_aki(proc, c, aki)]
    egfr = _egfr(ctx, c, vs)
    if proc.contrast == "gadolinium":
        return _gadolinium(proc, c, egfr)
    if egfr is None:
        # A recorded eGFR or creatinine that could not be read: the check could not
        # be made (_unchecked says so, naming what could not be read).
        if _unreadable_for("contrast-renal", ctx, cfg, vs):
            return []
        return _missing_egfr(ctx, c, vs)
    return _egfr_band(*egfr, c)


def _egfr(ctx: PatientContext, c: ContrastRenalConfig,
          vs: ValueSets) -> tuple[Fact, float, str] | None:
    """The current eGFR, recorded or calculated from creatinine, with how it was got."""
    recorded = _current(ctx, vs.get(c.egfr), c.max_age_days)
    if recorded:
        return recorded[0], recorded[1], ""
    creatinine = _current(ctx, vs.get(c.creatinine), c.max_age_days)
    if creatinine is None or ctx.age is None or ctx.sex not in ("male", "female"):
        return None
    value = ckd_epi_2021(creatinine[1], ctx.age, ctx.sex)
    return creatinine[0], value, (f" (calculated from creatinine {creatinine[1]:.0f} umol/L, "
                                  f"{c.creatinine_citation.label()})")


def ckd_epi_2021(creatinine_umol_l: float, age: int, sex: str) -> float:
    """eGFR in mL/min/1.73 m2 from serum creatinine, by the race-free CKD-EPI 2021 equation.

    eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age [x 1.012 if
    female], Scr in mg/dL, k = 0.7 (female) or 0.9 (male), a = -0.241 (female)
    or -0.302 (male) (Inker et al., N Engl J Med 2021;385:1737-49).
    """
    female = sex == "female"
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine_umol_l / 88.4 / kappa
    egfr = 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.200 * 0.9938 ** age
    return round(egfr * (1.012 if female else 1.0), 1)


def _aki(proc: Procedure, c: ContrastRenalConfig, aki: list[Fact]) -> Finding:
    """Active AKI: a risk for iodinated contrast (ACR-NKF 2020) and, with gadolinium, a
    risk factor for nephrogenic systemic fibrosis (ACR Manual on Contrast Media)."""
    if proc.contrast == "gadolinium":
        return _finding("contrast-renal", "warning", "Acute kidney injury recorded before "
                        "gadolinium: risk of nephrogenic systemic fibrosis",
                        "Use a group II agent only if the MRI is essential; consider a "
                        "non-contrast test.", c.gadolinium_citation, *aki, contraindicates=True)
    return _finding("contrast-renal", "warning", "Acute kidney injury recorded before "
                    "iodinated contrast", "Discuss with radiology; consider a non-contrast "
                    "test.", c.citation, *aki, contraindicates=True)


def _gadolinium(proc: Procedure, c: ContrastRenalConfig,
                egfr: tuple[Fact, float, str] | None) -> list[Finding]:
    if egfr is None or egfr[1] >= c.gadolinium_warning_below:
        return []
    fact, value, how = egfr
    return [_finding("contrast-renal", "warning", f"eGFR {value:g} before gadolinium: risk "
                     "of nephrogenic systemic fibrosis", "Use a group II agent only if the "
                     f"MRI is essential{how}.", c.gadolinium_citation, fact,
                     contraindicates=True)]


def _missing_egfr(ctx: PatientContext, c: ContrastRenalConfig,
                  vs: ValueSets) -> list[Finding]:
    """No usable current eGFR: ask for one when a screening risk factor is, or may be,
    present, or when the eGFR recorded could not be read."""
    ckd = matching(ctx.findings, vs.codes(c.ckd))
    egfr = vs.get(c.egfr)
    last = latest(ctx.observations, egfr.codes)
    unreadable = last is not None and last.value is not None and value_in(last, egfr) is None
    why = _screen_reason(ctx, c, bool(ckd), unreadable)
    if why is None:
        return []
    return [_finding("contrast-renal", "warning",
                     f"No usable eGFR from the last {c.max_age_days} days ({why})",
                     f"Ask for a current eGFR before iodinated contrast"
                     f"{_egfr_seen(ctx, last, egfr)}.",
                     c.screening_citation, *ckd, *([last] if last else []))]


def _screen_reason(ctx: PatientContext, c: ContrastRenalConfig, ckd: bool,
                   unreadable: bool) -> str | None:
    if unreadable:
        return "the recorded eGFR's unit could not be read"
    if ckd:
        return "chronic kidney disease"
    if ctx.age is None:
        return "age not recorded"
    return f"aged {ctx.age}" if ctx.age > c.screen_over_age else None


def _egfr_seen(ctx: PatientContext, stale: Fact | None, vs: Compiled) -> str:
    if stale is None:
        return ""
    if stale.value is not None and value_in(stale, vs) is None:
        return f"; the last one's unit ({stale.unit or 'none'}) could not be read as {vs.unit}"
    ago = days_ago(ctx, stale)
    value = f" ({value_in(stale, vs):g} {vs.unit})" if value_in(stale, vs) is not None else ""
    return f"; the last{value} was {ago} days ago" if ago is not None else \
        f"; the last{value} is undated"


def _egfr_band(egfr: Fact, value: float, how: str, c: ContrastRenalConfig) -> list[Finding]:
    if value < c.warning_below:
        return [_finding("contrast-renal", "warning",
                         f"eGFR {value:g}: high risk of contrast-associated kidney injury",
                         "Prophylactic IV fluids are indicated unless contraindicated; "
                         f"consider a non-contrast alternative{how}.", c.citation, egfr,
                         contraindicates=True)]
    if value < c.info_below:
        return [_finding("contrast-renal", "info", f"eGFR {value:g}: low risk",
                         f"Prophylaxis at the referrer's discretion (high-risk patients){how}.",
                         c.citation, egfr)]
    return []


def contrast_allergy(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
                     vs: ValueSets) -> list[Finding]:
    """A previous contrast reaction is flagged, never silently blocked (RCR 2015).

    Read from AllergyIntolerance (code or reaction substance) and from
    findings: GP systems also record "allergy to contrast media" as a problem.
    """
    c = cfg.contrast_allergy
    if proc.contrast == "none":
        return []
    codes = vs.codes(c.iodinated if proc.contrast == "iodinated" else c.gadolinium)
    reactions = [f for f in matching([*ctx.allergies, *ctx.findings], codes) if f.active]
    if not reactions:
        return []
    return [_finding("contrast-allergy", "warning",
                     f"Previous reaction to contrast: {reactions[0].display}",
                     f"{proc.display} uses {proc.contrast} contrast. Radiology will decide on "
                     "an alternative agent, premedication or another test.", c.citation,
                     *reactions)]


def _may_be_pregnant(ctx: PatientContext, c: PregnancyConfig) -> bool:
    """Female (or sex unknown) and 12-55, or age unknown: the guidance applies."""
    if ctx.sex not in (None, "unknown", "female"):
        return False
    return ctx.age is None or c.min_age <= ctx.age <= c.max_age_inclusive


def pregnancy_radiation(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
                        vs: ValueSets) -> list[Finding]:
    """Possible pregnancy before ionising exams of the diaphragm-to-knees region.

    Pregnancy is read from an active pregnancy Condition, or from the latest
    recorded answer: a pregnancy status observation's value (LOINC 82810-3),
    or an entry coded "pregnant" or "not pregnant" as UK GP systems record it.
    """
    c = cfg.pregnancy_radiation
    if not (proc.ionising and proc.pelvis_in_beam and _may_be_pregnant(ctx, c)):
        return []
    pregnant = vs.codes(c.pregnant)
    conditions = [f for f in matching(ctx.conditions, pregnant) if f.active]
    answer = _pregnancy_answer(ctx, c, vs)
    if conditions or (answer and answer[1] and _within(ctx, answer[0], PREGNANCY_DAYS)):
        facts = [*conditions, *([answer[0]] if answer else [])]
        return [_finding("pregnancy-radiation", "critical", "Patient is pregnant",
                         f"{proc.display} irradiates the pelvis. Justify with radiology or "
                         "choose a non-ionising test.", c.citation, *facts,
                         contraindicates=True)]
    if answer and not answer[1] and _within(ctx, answer[0], c.status_valid_days):
        return []
    return _by_menstrual_cycle(ctx, proc, c, vs)


# A "pregnant" entry older than a full-term pregnancy (42 weeks) no longer says
# the patient is pregnant now.
PREGNANCY_DAYS = 294


def _pregnancy_answer(ctx: PatientContext, c: PregnancyConfig,
                      vs: ValueSets) -> tuple[Fact, bool] | None:
    """The latest dated answer to "is she pregnant?" and the fact that gives it."""
    status, pregnant, not_pregnant = (vs.codes(c.status), vs.codes(c.pregnant),
                                      vs.codes(c.not_pregnant))
    answers: list[tuple[Fact, bool]] = []
    for fact in ctx.observations:
        said = fact.value_codes if not status.isdisjoint(fact.codes) else fact.codes
        if not pregnant.isdisjoint(said) or not not_pregnant.isdisjoint(said):
            answers.append((fact, not pregnant.isdisjoint(said)))
    dated = [(f, yes) for f, yes in answers if f.when]
    return max(dated, key=lambda pair: pair[0].when or date.min) if dated else None


def _within(ctx: PatientContext, fact: Fact, days: int) -> bool:
    ago = days_ago(ctx, fact)
    return ago is not None and 0 <= ago <= days


def _by_menstrual_cycle(ctx: PatientContext, proc: Procedure, c: PregnancyConfig,
                        vs: ValueSets) -> list[Finding]:
    """The 28-day and 10-day rules from the first day of the last period.

    The date is the observation's value, or, when it has none, its own date:
    UK GP systems record "Last menstrual period - first day" as a dated entry.
    """
    lmps = [(f, f.value_date or f.when) for f in matching(ctx.observations, vs.codes(c.lmp))]
    dated = [(f, d) for f, d in lmps if d is not None]
    if not dated:
        who = "" if ctx.sex == "female" and ctx.age is not None else \
            " (sex or age not recorded)"
        return [_finding("pregnancy-radiation", "warning", f"Pregnancy status not recorded{who}",
                         "Ask about pregnancy before referral (IR(ME)R).", c.citation)]
    lmp, first_day = max(dated, key=lambda pair: pair[1])
    cycle_day = (ctx.today - first_day).days + 1
    limit = c.high_dose_max_cycle_day if proc.high_dose else c.low_dose_max_cycle_day
    if cycle_day <= limit:
        return []
    rule = "10-day" if proc.high_dose else "28-day"
    return [_finding("pregnancy-radiation", "warning",
                     f"Day {cycle_day} of the menstrual cycle ({rule} rule)",
                     "Pregnancy cannot be excluded: confirm status before the exposure.",
                     c.citation, lmp)]


def mri_implant(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
                vs: ValueSets) -> list[Finding]:
    """Implants whose MR status is unsafe, unknown or (for active implants) conditional.

    A device labelled MR Unsafe is critical: ASTM F2503 defines MR Unsafe as
    posing unacceptable risks in all MR environments. The others need radiology
    to confirm MR safety (warning). Implants recorded as findings ("cardiac
    pacemaker in situ") count as devices of unknown MR status.
    """
    c = cfg.mri_implant
    if proc.modality != "MR":
        return []
    high_risk, safe = vs.codes(c.high_risk), vs.codes(c.mr_safe)
    conditional, unsafe = vs.codes(c.mr_conditional), vs.codes(c.mr_unsafe)
    devices = [*ctx.devices, *(f for f in matching(ctx.findings, high_risk) if f.active)]
    flagged = [d for d in devices if safe.isdisjoint(d.safety) and
               (not high_risk.isdisjoint(d.codes) or conditional.isdisjoint(d.safety))]
    banned = [d for d in devices if not unsafe.isdisjoint(d.safety)]
    others = [d for d in flagged if d not in banned]
    found = []
    if banned:
        found.append(_finding("mri-implant", "critical", "MR Unsafe implant: "
                              + ", ".join(d.display for d in banned),
                              "Do not scan with MRI; choose another test with radiology.",
                              c.citation, *banned, contraindicates=True))
    if others:
        found.append(_finding("mri-implant", "warning", "Implanted device before MRI: "
                              + ", ".join(d.display for d in others),
                              "MR safety must be confirmed by radiology (device, leads, "
                              "conditions).", c.citation, *others))
    return found


def duplicate_imaging(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
                      resolve: Callable[[Fact], Procedure | None]) -> list[Finding]:
    """The same test, or the same modality and region, done or ordered recently.

    An order still open counts whatever its date: booked for next week, or
    with no date at all, it is still a request for the same test. A recent
    study or order whose procedure cannot be recognised, but whose modality is
    the same, may be the same test: it is named, not ignored.
    """
    c = cfg.duplicate_imaging
    recent, unrecognised = [], []
    for fact in ctx.imaging:
        ago, prior = days_ago(ctx, fact), resolve(fact)
        if not _recent(fact, ago, c.window_days):
            continue
        distance = abs(ago) if ago is not None else 0
        if prior is None and _same_modality(fact, proc):
            unrecognised.append((distance, fact))
        elif prior is not None and (prior.key == proc.key or (
                prior.modality, prior.region) == (proc.modality, proc.region)):
            recent.append((distance, prior, fact))
    if recent:
        _, prior, fact = min(recent, key=lambda r: r[0])
        return [_finding("duplicate-imaging", "warning", f"{prior.display} {_when(ctx, fact)}",
                         "Check the earlier result or request before repeating it.",
                         c.citation, fact)]
    if unrecognised:
        _, fact = min(unrecognised, key=lambda r: r[0])
        return [_finding("duplicate-imaging", "warning",
                         f"A {proc.modality} study of unrecognised type {_when(ctx, fact)}",
                         f"Check whether it already covered what {proc.display} would show.",
                         c.citation, fact)]
    return []


def _same_modality(fact: Fact, proc: Procedure) -> bool:
    """Whether the fact's DICOM modality codes (ImagingStudy.modality) name ``proc``'s."""
    return any(system == DICOM and code == proc.modality for system, code in fact.codes)


def _recent(fact: Fact, ago: int | None, window: int) -> bool:
    if fact.kind == "order":
        return ago is None or ago <= window
    return ago is not None and 0 <= ago <= window


def _when(ctx: PatientContext, fact: Fact) -> str:
    ago = days_ago(ctx, fact)
    if fact.kind == "imaging":
        return f"done {ago} days ago"
    if ago is None:
        return "already ordered (no date)"
    return f"booked in {-ago} days" if ago < 0 else f"ordered {ago} days ago"


def paediatric_dose(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
                    rated: list[Rated]) -> list[Finding]:
    """A child and a higher-dose test where a lower-dose one rates the same or better.

    The procedure may be one the GP named that no matched rule rated: then
    any rated lower-dose option is the comparison (ICRP 121: justify and
    optimise every paediatric exposure).
    """
    c = cfg.paediatric_dose
    if ctx.age is None or ctx.age >= c.child_below_age or proc.paediatric.rrl == 0:
        return []
    mine = next((r.appropriateness for r in rated if r.procedure.key == proc.key), 0)
    lower = [r for r in rated if r.appropriateness >= mine and
             r.procedure.paediatric.rrl < proc.paediatric.rrl]
    if not lower:
        return []
    better = min(lower, key=lambda r: (r.procedure.paediatric.rrl, -r.appropriateness))
    return [_finding("paediatric-dose", "warning",
                     f"Lower-dose {better.procedure.display} rates as well for a child",
                     f"{proc.display} (paediatric RRL {proc.paediatric.rrl}) versus "
                     f"{better.procedure.display} (RRL {better.procedure.paediatric.rrl}, "
                     f"appropriateness {better.appropriateness}/9).", c.citation)]


def _finding(check: str, severity: str, summary: str, detail: str, citation: Citation,
             *facts: Fact, contraindicates: bool = False) -> Finding:
    return Finding(check, severity, summary, detail, citation, tuple(facts),
                   contraindicates=contraindicates)


def _applies(check: str, ctx: PatientContext, proc: Procedure, cfg: SafetyConfig) -> bool:
    """Whether ``check`` is relevant to ``proc`` for this patient at all."""
    if check in ("contrast-renal", "contrast-allergy"):
        return proc.contrast != "none"
    if check == "pregnancy-radiation":
        return proc.ionising and proc.pelvis_in_beam and \
            _may_be_pregnant(ctx, cfg.pregnancy_radiation)
    if check == "mri-implant":
        return proc.modality == "MR"
    if check == "paediatric-dose":
        return proc.ionising and ctx.age is None
    return True


def _relevant(check: str, ctx: PatientContext, cfg: SafetyConfig,
              vs: ValueSets) -> list[Fact]:
    """The facts ``check`` reads (by code; devices and imaging all count)."""
    if check == "contrast-renal":
        c = cfg.contrast_renal
        codes = vs.codes(c.egfr) | vs.codes(c.creatinine) | vs.codes(c.aki) | vs.codes(c.ckd)
    elif check == "contrast-allergy":
        a = cfg.contrast_allergy
        codes = vs.codes(a.iodinated) | vs.codes(a.gadolinium)
        return matching([*ctx.allergies, *ctx.findings], codes)
    elif check == "pregnancy-radiation":
        p = cfg.pregnancy_radiation
        codes = vs.codes(p.status) | vs.codes(p.pregnant) | vs.codes(p.not_pregnant) | \
            vs.codes(p.lmp)
    elif check == "mri-implant":
        # A device's date is not read here; a finding's status is.
        return matching(ctx.findings, vs.codes(cfg.mri_implant.high_risk))
    elif check == "duplicate-imaging":
        return list(ctx.imaging)
    else:
        return []
    return matching(ctx.findings, codes)


def _unreadable_for(check: str, ctx: PatientContext, cfg: SafetyConfig,
                    vs: ValueSets) -> list[str]:
    """Why facts ``check`` reads could not be read: present, but unknown, never absent."""
    seen: dict[str, None] = {}
    for fact in _relevant(check, ctx, cfg, vs):
        for problem in fact.unreadable:
            seen[f"{fact.reference or fact.display or fact.kind}: {problem}"] = None
    return list(seen)


def _unchecked(check: str, ctx: PatientContext, proc: Procedure, cfg: SafetyConfig,
               vs: ValueSets, found: list[Finding]) -> Finding | None:
    """A warning that ``check`` could not be made, when what it reads is unknown: a list
    that could not be read, or a fact it reads whose value, date or status could not."""
    unknown = [ctx.unknown[name] for name in READS[check] if name in ctx.unknown]
    unknown += _unreadable_for(check, ctx, cfg, vs)
    settled = any(f.severity != "info" for f in found)
    if not unknown or settled or not _applies(check, ctx, proc, cfg):
        return None
    citation = getattr(cfg, check.replace("-", "_")).citation
    return Finding(check, "warning", f"Could not check: {_CHECK_NAMES[check]}",
                   "; ".join(unknown) + ". Check this before the request is sent.", citation,
                   unchecked=True)


_CHECK_NAMES = {"contrast-renal": "kidney function before contrast",
                "contrast-allergy": "previous reactions to contrast",
                "pregnancy-radiation": "pregnancy before an ionising exam of the pelvis",
                "mri-implant": "implanted devices before MRI",
                "duplicate-imaging": "recent or booked imaging of the same kind",
                "paediatric-dose": "a lower-dose test for a child (age not recorded)"}


def run_checks(ctx: PatientContext, proc: Procedure, cfg: SafetyConfig, vs: ValueSets,
               rated: list[Rated],
               resolve: Callable[[Fact], Procedure | None]) -> list[Finding]:
    """Every safety check on ``proc``, in CHECK_CODES order, each naming ``proc``."""
    results = {"contrast-renal": contrast_renal(ctx, proc, cfg, vs),
               "contrast-allergy": contrast_allergy(ctx, proc, cfg, vs),
               "pregnancy-radiation": pregnancy_radiation(ctx, proc, cfg, vs),
               "mri-implant": mri_implant(ctx, proc, cfg, vs),
               "duplicate-imaging": duplicate_imaging(ctx, proc, cfg, resolve),
               "paediatric-dose": paediatric_dose(ctx, proc, cfg, rated)}
    found: list[Finding] = []
    for check in CHECK_CODES:
        missing = _unchecked(check, ctx, proc, cfg, vs, results[check])
        found += [*results[check], *([missing] if missing else [])]
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
