"""The schema of the procedure catalogue and of rule packs (pydantic).

Clinical content lives in YAML under ``rules/data``; these models validate it
at load time so a mistake names its file, rule and field instead of surfacing
as a wrong recommendation. Every clinical item carries its source.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Modality = Literal["DX", "CT", "MR", "US", "DXA", "NM"]
Contrast = Literal["none", "iodinated", "gadolinium"]
Sex = Literal["male", "female", "other", "unknown"]
Comparator = Literal["<", "<=", ">", ">=", "=", "present", "absent", "positive", "negative"]
# RCR iRefer recommendation categories (https://www.irefer.org.uk/).
Category = Literal["indicated", "specialised", "specific-circumstances", "not-indicated"]
OutcomeKind = Literal["imaging", "no-imaging", "emergency", "data-requested"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Strict):
    """Where a rule, threshold or code comes from."""

    guideline: str
    section: str | None = None
    year: int = Field(ge=1980, le=2100)
    url: str

    def label(self) -> str:
        section = f" {self.section}" if self.section else ""
        return f"{self.guideline}{section} ({self.year})"


class CodeRef(Strict):
    """A code with its verification status."""

    system: str
    code: str
    display: str
    verified: bool
    source: str  # where the code was confirmed, or why it is unverified


class DoseBand(Strict):
    """ACR Relative Radiation Level (0-5) and its effective-dose band."""

    rrl: int = Field(ge=0, le=5)
    band_msv: str


class Procedure(Strict):
    """One catalogue entry: a key of CONTRACT §3 and what radiology needs to know."""

    key: str = Field(pattern=r"^[A-Z0-9-]+$")
    display: str
    snomed: CodeRef
    nicip: CodeRef | None = None
    modality: Modality
    body_site: CodeRef
    region: Literal["head", "neck", "chest", "heart", "abdomen", "pelvis", "abdomen-pelvis",
                    "chest-abdomen-pelvis", "spine", "whole-spine", "upper-limb", "lower-limb",
                    "hip", "scrotum", "whole-body"]
    contrast: Contrast
    adult: DoseBand
    paediatric: DoseBand
    # Exposes the region between the diaphragm and the knees to the primary beam
    # (RCR/SCoR/BIR 2009 pregnancy guidance); used by pregnancy-radiation.
    pelvis_in_beam: bool = False
    # A "high-dose" examination for the 10-day rule (same guidance).
    high_dose: bool = False

    @property
    def ionising(self) -> bool:
        return self.modality in ("DX", "CT", "DXA", "NM")


class ValueSet(Strict):
    """An explicit list of codes, plus the codes of the value sets it includes.

    No terminology server is consulted: a group by meaning ("any history of
    cancer") includes its parts by name. For observations with a quantity,
    ``unit`` is the UCUM unit values are compared in and ``molar_mass``
    (g/mol) lets mass and substance concentrations convert (rules.units).
    """

    description: str
    source: str
    codes: list[CodeRef] = []
    include: list[str] = []
    unit: str | None = None
    molar_mass: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _not_empty(self) -> ValueSet:
        if not self.codes and not self.include:
            raise ValueError("a value set needs codes or include")
        return self


class AgeBand(Strict):
    """Ages in whole years: ``min`` inclusive, ``max`` exclusive."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)


class FactTest(Strict):
    """One test on the patient's history.

    Exactly one of ``condition``, ``observation``, ``device``, ``allergy`` or
    ``reason`` names a value set; observations compare their latest value.
    """

    condition: str | None = None
    observation: str | None = None
    device: str | None = None
    allergy: str | None = None
    reason: str | None = None
    comparator: Comparator = "present"
    value: float | None = None
    # For observations with a coded value (valueCodeableConcept): a value set
    # the latest value must belong to, e.g. pregnancy status = Pregnant.
    value_in: str | None = None
    within_days: int | None = Field(default=None, ge=1)
    # Conditions: by default only current ones count (clinicalStatus active,
    # recurrence or relapse, or none recorded); ``history`` also counts past
    # ones (resolved, inactive, remission), for guidance about a history of X.
    history: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> FactTest:
        named = [n for n in ("condition", "observation", "device", "allergy", "reason")
                 if getattr(self, n)]
        if len(named) != 1:
            raise ValueError("name exactly one of condition, observation, device, allergy, "
                             f"reason (got {named or 'none'})")
        if self.comparator in ("<", "<=", ">", ">=", "=") and self.value is None:
            raise ValueError(f"comparator '{self.comparator}' needs a value")
        if (self.comparator in ("<", "<=", ">", ">=", "=", "positive", "negative")
                or self.value_in) and not self.observation:
            raise ValueError(f"comparator '{self.comparator}' and value_in apply to "
                             "observations only")
        if self.value_in and self.comparator != "present":
            raise ValueError("value_in needs the comparator 'present'")
        if self.history and not self.condition:
            raise ValueError("history applies to condition tests only")
        return self

    @property
    def value_set(self) -> str:
        return next(v for v in (self.condition, self.observation, self.device, self.allergy,
                                self.reason) if v)

    @property
    def kind(self) -> str:
        return next(n for n in ("condition", "observation", "device", "allergy", "reason")
                    if getattr(self, n))


class Applicability(Strict):
    age: AgeBand = AgeBand()
    sex: list[Sex] | None = None
    reasons: list[str] = Field(min_length=1, description="value sets; any reason code matches")
    requires: list[FactTest] = []
    requires_any: list[FactTest] = []
    excludes: list[FactTest] = []


class Option(Strict):
    procedure: str
    appropriateness: int = Field(ge=1, le=9)  # ACR Appropriateness Criteria scale
    category: Category
    rationale: str
    # The guideline offers this option when the ones rated above it are unsafe
    # for the patient (NG12 1.9.1: "MRI ... or CT if MRI is contraindicated").
    alternative: bool = False

    @model_validator(mode="after")
    def _usable_alternative(self) -> Option:
        if self.alternative and (self.appropriateness < 4 or self.category == "not-indicated"):
            raise ValueError("an alternative must be rated at least 4 (may be appropriate) "
                             "and not 'not-indicated'")
        return self


class Missing(Strict):
    """What a ``data-requested`` outcome asks for: an observation, a Patient element,
    or a part of the history that could not be read (a PatientContext list name)."""

    name: str
    observation: str | None = None  # value set of the observation wanted
    patient_element: Literal["birthDate", "gender"] | None = None
    history: Literal["patient", "conditions", "observations", "allergies", "devices",
                     "imaging"] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Missing:
        named = [t for t in (self.observation, self.patient_element, self.history) if t]
        if len(named) != 1:
            raise ValueError("name exactly one of observation, patient_element or history")
        return self


class Outcome(Strict):
    kind: OutcomeKind
    summary: str
    options: list[Option] = []
    missing: list[Missing] = []
    # "Refer, do not image": the referral the guideline asks for instead of a
    # GP-requested test (e.g. "suspected breast cancer pathway referral").
    refer: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Outcome:
        if self.kind == "imaging" and not self.options:
            raise ValueError("an imaging outcome needs at least one option")
        if self.kind == "data-requested" and not self.missing:
            raise ValueError("a data-requested outcome must name what is missing")
        if self.refer and self.kind not in ("no-imaging", "emergency"):
            raise ValueError("refer names the pathway of a no-imaging or emergency outcome")
        return self


class Rule(Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    title: str
    citation: Citation
    # Higher wins when several rules match: emergencies above specific rules
    # above general ones.
    priority: int = Field(ge=0, le=1000)
    applies: Applicability
    outcome: Outcome


class Pack(Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    title: str
    value_sets: dict[str, ValueSet]
    rules: list[Rule] = Field(min_length=1)


class CheckConfig(Strict):
    citation: Citation


class ContrastRenalConfig(CheckConfig):
    gadolinium_citation: Citation
    screening_citation: Citation
    creatinine_citation: Citation
    warning_below: float
    info_below: float
    gadolinium_warning_below: float
    max_age_days: int
    screen_over_age: int  # ask for a current eGFR when age > this
    # Value set names (rules/data/valuesets); every fact is read by code alone.
    egfr: str
    creatinine: str
    aki: str
    ckd: str


class ContrastAllergyConfig(CheckConfig):
    iodinated: str
    gadolinium: str


class PregnancyConfig(CheckConfig):
    min_age: int  # inclusive
    max_age_inclusive: int
    status_valid_days: int
    high_dose_max_cycle_day: int
    low_dose_max_cycle_day: int
    status: str
    lmp: str
    pregnant: str
    not_pregnant: str


class MriImplantConfig(CheckConfig):
    high_risk: str
    mr_safe: str
    mr_conditional: str
    mr_unsafe: str


class DuplicateConfig(CheckConfig):
    window_days: int = Field(ge=1)


class PaediatricConfig(CheckConfig):
    child_below_age: int


class SafetyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    contrast_renal: ContrastRenalConfig = Field(alias="contrast-renal")
    contrast_allergy: ContrastAllergyConfig = Field(alias="contrast-allergy")
    pregnancy_radiation: PregnancyConfig = Field(alias="pregnancy-radiation")
    mri_implant: MriImplantConfig = Field(alias="mri-implant")
    duplicate_imaging: DuplicateConfig = Field(alias="duplicate-imaging")
    paediatric_dose: PaediatricConfig = Field(alias="paediatric-dose")

    def value_set_names(self) -> list[tuple[str, str]]:
        """``(field path, value set name)`` of every value set the checks read."""
        names: list[tuple[str, str]] = []
        for check, config in self:
            names += [(f"{check}.{field}", value) for field, value in config
                      if isinstance(value, str)]
        return names
