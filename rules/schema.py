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
    """An explicit list of codes (no terminology server is consulted)."""

    description: str
    source: str
    codes: list[CodeRef] = Field(min_length=1)


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


class Missing(Strict):
    """What a ``data-requested`` outcome asks for: an observation or a Patient element."""

    name: str
    observation: str | None = None  # value set of the observation wanted
    patient_element: Literal["birthDate", "gender"] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Missing:
        if (self.observation is None) == (self.patient_element is None):
            raise ValueError("name exactly one of observation or patient_element")
        return self


class Outcome(Strict):
    kind: OutcomeKind
    summary: str
    options: list[Option] = []
    missing: list[Missing] = []

    @model_validator(mode="after")
    def _shape(self) -> Outcome:
        if self.kind == "imaging" and not self.options:
            raise ValueError("an imaging outcome needs at least one option")
        if self.kind == "data-requested" and not self.missing:
            raise ValueError("a data-requested outcome must name what is missing")
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
    warning_below: float
    info_below: float
    gadolinium_warning_below: float
    max_age_days: int
    screen_over_age: int  # ask for a current eGFR when age > this
    egfr: list[CodeRef]
    aki: list[CodeRef]
    ckd: list[CodeRef]


class ContrastAllergyConfig(CheckConfig):
    iodinated: list[CodeRef]
    gadolinium: list[CodeRef]


class PregnancyConfig(CheckConfig):
    min_age: int  # inclusive
    max_age_inclusive: int
    status_valid_days: int
    high_dose_max_cycle_day: int
    low_dose_max_cycle_day: int
    status: list[CodeRef]
    lmp: list[CodeRef]
    pregnant: list[CodeRef]
    not_pregnant: list[CodeRef]


class MriImplantConfig(CheckConfig):
    high_risk: list[CodeRef]
    mr_safe: list[CodeRef]
    mr_conditional: list[CodeRef]
    mr_unsafe: list[CodeRef]


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
