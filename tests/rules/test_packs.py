"""Loading the catalogue and rule packs: errors that name file, rule and field; shipped data.

Expected values come from the sources, not from the loader: the catalogue keys
from CONTRACT §3, the dose bands from the ACR Relative Radiation Level table,
the verification flags from shared/CODES.md ("no UK or International code was
found for CT KUB, CTPA, or leg-vein Doppler").
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.packs import (
    CATALOGUE_FILE,
    PACKS_DIR,
    PackError,
    active_packs,
    catalogue,
    library_data,
    parse_catalogue,
    parse_pack,
)
from rules.schema import CodeRef

PACK_FILE = "test-pack.yaml"
SHIPPED_PACK = PACKS_DIR / "uk-gp-imaging.yaml"
VIGNETTES = Path(__file__).resolve().parent / "vignettes"

# CONTRACT §3.
CONTRACT_KEYS = {
    "XR-CHEST", "XR-ABDO", "XR-LSPINE", "XR-KNEE", "XR-HIP",
    "CT-HEAD", "CT-CHEST", "CT-CAP", "CT-ABDO-PELVIS", "CT-KUB", "CTPA", "CTCA", "CT-CAC",
    "CT-COLON",
    "MR-BRAIN", "MR-LSPINE", "MR-WHOLE-SPINE", "MR-KNEE", "MR-SHOULDER", "MR-PROSTATE", "MRCP",
    "US-ABDO", "US-PELVIS", "US-PELVIS-TV", "US-DVT", "US-THYROID", "US-SCROTUM",
    "DEXA",
}
# ACR Appropriateness Criteria, Radiation Dose Assessment Introduction (mSv bands).
ACR_ADULT = {0: "0", 1: "<0.1", 2: "0.1-1", 3: "1-10", 4: "10-30", 5: "30-100"}
ACR_PAEDIATRIC = {0: "0", 1: "<0.03", 2: "0.03-0.3", 3: "0.3-3", 4: "3-10", 5: "10-30"}


def _code(code: str, display: str, system: str = "http://snomed.info/sct") -> dict[str, Any]:
    return {"system": system, "code": code, "display": display, "verified": True,
            "source": "shared/CODES.md"}


def minimal_pack() -> dict[str, Any]:
    """A small valid pack: one imaging rule and one data-requested rule."""
    citation = {"guideline": "NICE CG95", "section": "1.3.4.3", "year": 2016,
                "url": "https://www.nice.org.uk/guidance/cg95"}
    return {
        "id": "test-pack",
        "title": "Test pack",
        "value_sets": {
            "angina": {"description": "Angina", "source": "CODES.md",
                       "codes": [_code("194828000", "Angina")]},
            "egfr": {"description": "eGFR", "source": "CODES.md",
                     "codes": [_code("98979-8", "eGFR", "http://loinc.org")]},
        },
        "rules": [
            {"id": "first-rule", "title": "Angina: CTCA", "citation": citation,
             "priority": 600,
             "applies": {"age": {"min": 18}, "reasons": ["angina"]},
             "outcome": {"kind": "imaging", "summary": "CTCA first line.",
                         "options": [{"procedure": "CTCA", "appropriateness": 9,
                                      "category": "indicated", "rationale": "First line."}]}},
            {"id": "second-rule", "title": "Angina: eGFR first", "citation": citation,
             "priority": 500,
             "applies": {"reasons": ["angina"]},
             "outcome": {"kind": "data-requested", "summary": "Need eGFR.",
                         "missing": [{"name": "eGFR", "observation": "egfr"}]}},
        ],
    }


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def _parse(data: Any) -> Any:
    return parse_pack(_dump(data), PACK_FILE, catalogue())


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting ``value`` at a dotted path (list indexes as numbers)."""
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value
    return mutate


_DELETE = object()

SCHEMA_ERRORS = [
    pytest.param(_set("rules.0.colour", "red"), "first-rule", "colour", id="unknown-field"),
    pytest.param(_set("rules.0.citation", _DELETE), "first-rule", "citation",
                 id="missing-citation"),
    pytest.param(_set("rules.0.citation.url", _DELETE), "first-rule", "citation.url",
                 id="citation-without-url"),
    pytest.param(_set("rules.0.outcome.options.0.appropriateness", 10), "first-rule",
                 "outcome.options.0.appropriateness", id="appropriateness-10"),
    pytest.param(_set("rules.0.applies.reasons", ["no-such-set"]), "first-rule",
                 "applies.reasons.0", id="unknown-value-set"),
    pytest.param(_set("rules.0.applies.requires", [{"observation": "no-such-set"}]),
                 "first-rule", "applies.requires.0.observation", id="unknown-value-set-in-test"),
    pytest.param(_set("rules.0.outcome.options.0.procedure", "XR-NOSE"), "first-rule",
                 "outcome.options.0.procedure", id="unknown-procedure-key"),
    pytest.param(_set("rules.1.id", "first-rule"), "first-rule", "id", id="duplicate-rule-id"),
    pytest.param(_set("rules.1.outcome.missing", []), "second-rule", "outcome",
                 id="data-requested-without-missing"),
    pytest.param(_set("rules.0.applies.requires", [{"observation": "egfr", "comparator": "<"}]),
                 "first-rule", "applies.requires.0", id="comparator-without-value"),
    pytest.param(_set("rules.0.applies.requires",
                      [{"observation": "egfr", "condition": "angina"}]),
                 "first-rule", "applies.requires.0", id="two-subjects-in-one-test"),
    pytest.param(_set("rules.0.applies.requires", [{"observation": "egfr", "history": True}]),
                 "first-rule", "applies.requires.0", id="history-on-an-observation"),
    pytest.param(_set("rules.1.outcome.missing", [{"name": "eGFR"}]), "second-rule",
                 "outcome.missing.0", id="missing-without-what"),
]


def test_minimal_pack_loads() -> None:
    loaded = _parse(minimal_pack())
    assert [rule.id for rule in loaded.pack.rules] == ["first-rule", "second-rule"]


@pytest.mark.parametrize(("mutate", "rule", "field"), SCHEMA_ERRORS)
def test_schema_error_names_file_rule_and_field(
        mutate: Callable[[dict[str, Any]], None], rule: str, field: str) -> None:
    data = minimal_pack()
    mutate(data)
    with pytest.raises(PackError) as error:
        _parse(data)
    message = str(error.value)
    assert PACK_FILE in message
    assert f"rule '{rule}'" in message
    assert f"field {field}" in message


def test_bad_yaml_names_the_file() -> None:
    with pytest.raises(PackError, match=f"^{PACK_FILE}: not valid YAML"):
        parse_pack("rules: [first-rule\n  title: oops", PACK_FILE, catalogue())


def test_catalogue_error_names_procedure_and_field() -> None:
    data = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))
    data["procedures"][0]["adult"]["rrl"] = 6
    with pytest.raises(PackError) as error:
        parse_catalogue(_dump(data), "catalogue.yaml")
    message = str(error.value)
    assert "catalogue.yaml" in message
    assert f"procedure '{data['procedures'][0]['key']}'" in message
    assert "field adult.rrl" in message


# --- the shipped catalogue ------------------------------------------------------

def _catalogue_codes() -> Iterator[tuple[str, CodeRef]]:
    for key, procedure in catalogue().items():
        yield f"{key}.snomed", procedure.snomed
        yield f"{key}.body_site", procedure.body_site
        if procedure.nicip:
            yield f"{key}.nicip", procedure.nicip


def _pack_codes() -> Iterator[tuple[str, CodeRef]]:
    for loaded in active_packs():
        for name, value_set in loaded.pack.value_sets.items():
            for code in value_set.codes:
                yield f"{loaded.pack.id}/{name}/{code.code}", code


def test_catalogue_has_every_contract_key() -> None:
    assert set(catalogue()) >= CONTRACT_KEYS


def test_dose_bands_follow_the_acr_table() -> None:
    for key, procedure in catalogue().items():
        assert procedure.adult.band_msv == ACR_ADULT[procedure.adult.rrl], key
        assert procedure.paediatric.band_msv == ACR_PAEDIATRIC[procedure.paediatric.rrl], key
        assert (procedure.adult.rrl == 0) == (not procedure.ionising), key


def test_pregnancy_flags_only_on_ionising_pelvic_exams() -> None:
    pelvic = {k for k, p in catalogue().items() if p.pelvis_in_beam}
    high = {k for k, p in catalogue().items() if p.high_dose}
    # RCR/SCoR/BIR 2009: CT of the abdomen/pelvis is the high-dose (10-day rule) group.
    assert high == {"CT-CAP", "CT-ABDO-PELVIS", "CT-KUB", "CT-COLON"}
    assert pelvic == high | {"XR-ABDO", "XR-LSPINE", "XR-HIP", "DEXA"}
    assert all(catalogue()[key].ionising for key in pelvic)


def test_contrast_per_procedure() -> None:
    contrast = {key: procedure.contrast for key, procedure in catalogue().items()}
    for key in ("CTCA", "CTPA", "CT-CAP", "CT-ABDO-PELVIS", "CT-COLON"):
        assert contrast[key] == "iodinated", key
    for key in ("CT-KUB", "CT-CAC", "MRCP", "MR-BRAIN"):
        assert contrast[key] == "none", key
    assert contrast["MR-PROSTATE"] == "gadolinium"  # PI-RADS v2.1: mpMRI includes DCE


def test_no_us_edition_codes() -> None:
    for where, code in [*_catalogue_codes(), *_pack_codes()]:
        assert "1000119" not in code.code, where


def test_every_code_says_where_it_comes_from() -> None:
    for where, code in [*_catalogue_codes(), *_pack_codes()]:
        assert code.source.strip(), where
        if not code.verified:
            assert len(code.source) >= 25, f"{where}: unverified code needs a reason"


def test_codes_without_a_uk_concept_are_flagged_unverified() -> None:
    procedures = catalogue()
    for key in ("CT-KUB", "CTPA", "US-DVT"):
        assert not procedures[key].snomed.verified, key
    for key in CONTRACT_KEYS - {"CT-KUB", "CTPA", "US-DVT"}:
        assert procedures[key].snomed.verified, key
    unverified = {where for where, code in _pack_codes() if not code.verified}
    assert "uk-gp-imaging/d-dimer/48066-5" in unverified  # CODES.md: probable
    assert "uk-gp-imaging/d-dimer/48065-7" not in unverified  # CODES.md: confirmed


# --- the shipped pack -------------------------------------------------------------

def test_shipped_pack_loads_with_cited_rules() -> None:
    packs = active_packs()
    assert [loaded.pack.id for loaded in packs] == ["uk-gp-imaging"]
    rules = packs[0].pack.rules
    assert len(rules) >= 30
    for rule in rules:
        assert rule.citation.url.startswith("https://"), rule.id
        assert rule.citation.guideline.strip(), rule.id


def test_wells_scores_use_the_documented_local_code() -> None:
    value_sets = active_packs()[0].pack.value_sets
    for name in ("wells-dvt", "wells-pe"):
        (code,) = value_sets[name].codes
        assert code.system == "https://scanpath.example/fhir/CodeSystem/score"
        assert code.code == name
        assert code.verified


def test_content_hash_ignores_formatting_but_not_content() -> None:
    text, shared = SHIPPED_PACK.read_text(encoding="utf-8"), library_data()
    original = parse_pack(text, SHIPPED_PACK.name, catalogue(), shared).version
    data = yaml.safe_load(text)
    reformatted = "# a comment\n" + yaml.safe_dump(data, sort_keys=True, width=60)
    assert parse_pack(reformatted, SHIPPED_PACK.name, catalogue(), shared).version == original
    changed = copy.deepcopy(data)
    changed["rules"][0]["priority"] -= 1
    assert parse_pack(_dump(changed), SHIPPED_PACK.name, catalogue(), shared).version != original


def test_a_stored_pack_replays_with_the_library_it_was_built_with() -> None:
    """The merged source is self-contained: parsed again without the library, it is the
    same version with the same value sets."""
    shipped = active_packs()[0]
    again = parse_pack(shipped.source, "stored", catalogue())
    assert again.version == shipped.version
    assert again.pack.value_sets == shipped.pack.value_sets
    assert set(library_data()) <= set(shipped.pack.value_sets)


def test_the_pack_does_not_redefine_a_library_value_set() -> None:
    own = yaml.safe_load(SHIPPED_PACK.read_text(encoding="utf-8"))["value_sets"]
    assert not set(own) & set(library_data())


def test_a_value_set_that_includes_an_unknown_or_itself_is_refused() -> None:
    from rules.schema import ValueSet
    from rules.valuesets import ValueSetError, ValueSets

    part = {"description": "d", "source": "s"}
    with pytest.raises(ValueSetError, match="unknown value set 'nope'"):
        ValueSets({"a": ValueSet(**part, include=["nope"])})
    with pytest.raises(ValueSetError, match="includes itself"):
        ValueSets({"a": ValueSet(**part, include=["b"]), "b": ValueSet(**part, include=["a"])})


# --- the vignettes ------------------------------------------------------------------

def _generator() -> Any:
    path = Path(__file__).resolve().parent / "make_vignettes.py"
    spec = importlib.util.spec_from_file_location("make_vignettes", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_vignettes_are_the_generator_output() -> None:
    """Every rule is covered (the generator checks) and the files are up to date."""
    expected = _generator().build()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in VIGNETTES.glob("*.json")}
    assert len(expected) >= 70
    assert on_disk == expected


def test_no_emergency_rule_hangs_on_an_unconfirmed_code() -> None:
    """An emergency rule must fire on at least one code confirmed in a public source, and
    never on one unconfirmed code alone (thunderclap: 95660002 and SAH 21454007)."""
    from rules.valuesets import ValueSets

    shipped = active_packs()[0]
    sets = shipped.pack.value_sets
    compiled = ValueSets(sets)
    verified = {(c.system, c.code) for vs in sets.values() for c in vs.codes if c.verified}
    for rule in shipped.pack.rules:
        if rule.outcome.kind != "emergency":
            continue
        codes = set().union(*(compiled.codes(name) for name in rule.applies.reasons))
        assert codes & verified, rule.id


def test_every_rule_cites_a_section() -> None:
    for rule in active_packs()[0].pack.rules:
        assert rule.citation.section, rule.id
