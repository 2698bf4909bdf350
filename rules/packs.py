"""Load and check the catalogue and rule packs; version packs by content hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rules.schema import Pack, Procedure, SafetyConfig, ValueSet
from rules.valuesets import ValueSetError, ValueSets

DATA_DIR = Path(__file__).resolve().parent / "data"
CATALOGUE_FILE = DATA_DIR / "catalogue.yaml"
PACKS_DIR = DATA_DIR / "packs"
# Value sets shared by every pack and by the safety checks: the facts a
# decision reads (labs, history, devices, allergies), each with provenance.
LIBRARY_DIR = DATA_DIR / "valuesets"


class PackError(ValueError):
    """A catalogue or rule pack that does not load; the message names file, rule and field."""


@dataclass(frozen=True)
class LoadedPack:
    pack: Pack
    version: str  # content hash of the parsed data
    source: str  # the YAML text, kept so that old versions can be replayed


def content_version(data: Any) -> str:
    """A short hash of the data itself, blind to YAML formatting."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _yaml(text: str, name: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PackError(f"{name}: not valid YAML: {exc}") from exc


def _where(name: str, data: Any, loc: tuple[Any, ...]) -> str:
    """``file, rule 'id', field a.b.c`` for a pydantic error location."""
    rule = ""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules", []) if isinstance(data, dict) else []
        if loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rule = f", rule '{rules[loc[1]].get('id', loc[1])}'"
        loc = loc[2:]
    return f"{name}{rule}, field {'.'.join(str(p) for p in loc) or '(top)'}"


def parse_catalogue(text: str, name: str = "catalogue.yaml") -> dict[str, Procedure]:
    data = _yaml(text, name)
    entries = data.get("procedures") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise PackError(f"{name}: field procedures must be a list")
    catalogue: dict[str, Procedure] = {}
    for index, entry in enumerate(entries):
        try:
            procedure = Procedure.model_validate(entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            key = entry.get("key", index) if isinstance(entry, dict) else index
            raise PackError(f"{name}, procedure '{key}', field {field}: {err['msg']}") from exc
        if procedure.key in catalogue:
            raise PackError(f"{name}, procedure '{procedure.key}': duplicate key")
        catalogue[procedure.key] = procedure
    return catalogue


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Procedure]:
    """The procedure catalogue, by key."""
    return parse_catalogue(CATALOGUE_FILE.read_text(encoding="utf-8"))


def parse_pack(text: str, name: str, procedures: dict[str, Procedure],
               library: dict[str, Any] | None = None) -> LoadedPack:
    """Validate a pack's schema and its cross-references.

    With ``library`` (raw value sets by name), the library sets the pack does
    not define itself are merged into it first, and the merged YAML becomes
    the pack's source: a stored version replays with the value sets it had.
    """
    data = _yaml(text, name)
    if library and isinstance(data, dict) and isinstance(data.get("value_sets"), dict):
        data = {**data, "value_sets": {**library, **data["value_sets"]}}
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    try:
        pack = Pack.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PackError(f"{_where(name, data, tuple(err['loc']))}: {err['msg']}") from exc
    _check_references(pack, name, procedures)
    try:
        ValueSets(pack.value_sets)
    except ValueSetError as exc:
        raise PackError(f"{name}, value_sets: {exc}") from exc
    return LoadedPack(pack, content_version(data), text)


def _check_references(pack: Pack, name: str, procedures: dict[str, Procedure]) -> None:
    seen: set[str] = set()
    for rule in pack.rules:
        where = f"{name}, rule '{rule.id}'"
        if rule.id in seen:
            raise PackError(f"{where}, field id: duplicate rule id")
        seen.add(rule.id)
        for field, value_set in _value_set_uses(rule):
            if value_set not in pack.value_sets:
                raise PackError(f"{where}, field {field}: unknown value set '{value_set}'")
        for index, option in enumerate(rule.outcome.options):
            if option.procedure not in procedures:
                raise PackError(f"{where}, field outcome.options.{index}.procedure: "
                                f"'{option.procedure}' is not in the catalogue")


def _value_set_uses(rule: Any) -> list[tuple[str, str]]:
    uses = [(f"applies.reasons.{i}", v) for i, v in enumerate(rule.applies.reasons)]
    for group in ("requires", "requires_any", "excludes"):
        tests = list(enumerate(getattr(rule.applies, group)))
        uses += [(f"applies.{group}.{i}.{t.kind}", t.value_set) for i, t in tests]
        uses += [(f"applies.{group}.{i}.value_in", t.value_in) for i, t in tests if t.value_in]
    uses += [(f"outcome.missing.{i}.observation", m.observation)
             for i, m in enumerate(rule.outcome.missing) if m.observation]
    return uses


@lru_cache(maxsize=1)
def library_data() -> dict[str, Any]:
    """The shared value sets as raw YAML data, by name, from every library file."""
    merged: dict[str, Any] = {}
    for path in sorted(LIBRARY_DIR.glob("*.yaml")):
        data = _yaml(path.read_text(encoding="utf-8"), path.name)
        sets = data.get("value_sets") if isinstance(data, dict) else None
        if not isinstance(sets, dict):
            raise PackError(f"{path.name}: field value_sets must be a mapping")
        for key in sets.keys() & merged.keys():
            raise PackError(f"{path.name}, value set '{key}': defined in two library files")
        merged.update(sets)
    return merged


@lru_cache(maxsize=1)
def library() -> dict[str, ValueSet]:
    """The shared value sets, validated."""
    sets: dict[str, ValueSet] = {}
    for key, raw in library_data().items():
        try:
            sets[key] = ValueSet.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise PackError(f"valuesets, value set '{key}', field {where}: {err['msg']}") from exc
    try:
        ValueSets(sets)
    except ValueSetError as exc:
        raise PackError(f"valuesets: {exc}") from exc
    return sets


@lru_cache(maxsize=1)
def active_packs() -> tuple[LoadedPack, ...]:
    """Every pack shipped under ``rules/data/packs``, validated, with the library merged."""
    procedures, shared = catalogue(), library_data()
    return tuple(parse_pack(path.read_text(encoding="utf-8"), path.name, procedures, shared)
                 for path in sorted(PACKS_DIR.glob("*.yaml")))


@lru_cache(maxsize=1)
def safety_config() -> SafetyConfig:
    """Thresholds and code lists of the safety checks (``rules/data/safety.yaml``)."""
    name = "safety.yaml"
    data = _yaml((DATA_DIR / name).read_text(encoding="utf-8"), name)
    try:
        config = SafetyConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PackError(f"{name}, field {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
    shared = library()
    for where, value_set in config.value_set_names():
        if value_set not in shared:
            raise PackError(f"{name}, field {where}: unknown value set '{value_set}'")
    return config


@lru_cache(maxsize=1)
def verified_displays() -> dict[tuple[str, str], str]:
    """``{(system, code): display}`` of every code the shipped packs and library mark
    verified (confirmed in the source each names): the words for a coded fact that came
    without a display, e.g. a GP's SNOMED CT reasonCode."""
    sets = [*library().values(), *(vs for p in active_packs() for vs in p.pack.value_sets.values())]
    return {(ref.system, ref.code): ref.display for vs in sets for ref in vs.codes if ref.verified}
