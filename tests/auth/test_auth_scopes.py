"""SMART scope parsing and permission checks (SMART App Launch 2.x, Scopes and Launch Context)."""

from __future__ import annotations

import pytest

from auth.scopes import ScopeSet, scope_needed

INTERACTIONS = ("create", "read", "vread", "update", "delete", "search-type",
                "history-instance", "operation")


def allowed(scopes: str, resource_type: str = "Observation") -> set[str]:
    scope_set = ScopeSet.parse(scopes)
    return {i for i in INTERACTIONS if scope_set.allows(resource_type, i)}


# Expected sets follow the spec's table: c=create; r=read, vread, instance history;
# u=update; d=delete; s=search. $operations count as reads here.
READS = {"read", "vread", "history-instance", "operation"}


def test_v2_rs_allows_reading_and_searching_only():
    assert allowed("system/Observation.rs") == READS | {"search-type"}


def test_v2_cruds_allows_everything_on_its_type_only():
    assert allowed("system/Observation.cruds") == set(INTERACTIONS)
    assert allowed("system/Observation.cruds", "Patient") == set()


@pytest.mark.parametrize(("scope", "expected"), [
    ("system/Observation.c", {"create"}),
    ("system/Observation.u", {"update"}),
    ("system/Observation.d", {"delete"}),
    ("system/Observation.s", {"search-type"}),
    ("system/Observation.cud", {"create", "update", "delete"}),
])
def test_v2_single_letters(scope, expected):
    assert allowed(scope) == expected


def test_v2_wildcard_type_covers_every_type():
    assert allowed("system/*.cruds", "ImagingStudy") == set(INTERACTIONS)
    assert allowed("system/*.rs", "Binary") == READS | {"search-type"}


def test_v1_read_is_v2_rs():
    assert allowed("system/Observation.read") == READS | {"search-type"}


def test_v1_write_is_v2_cud():
    assert allowed("system/Observation.write") == {"create", "update", "delete"}


def test_v1_star_is_everything():
    assert allowed("system/Observation.*") == set(INTERACTIONS)
    assert allowed("system/*.*", "Task") == set(INTERACTIONS)


def test_permissions_add_up_across_scopes():
    assert allowed("system/Observation.r system/Observation.c") == READS | {"create"}


@pytest.mark.parametrize("text", [
    "patient/Observation.rs",          # not a system scope
    "user/*.cruds",
    "system/Observation.sr",           # v2 letters out of order
    "system/Observation.rr",           # repeated letter
    "system/Observation.rs?category=laboratory",  # granular: not supported, so not granted
    "system/observation.rs",           # resource types are capitalised
    "system/Observation.",
    "system/Observation.x",
    "openid",
    "launch",
])
def test_unsupported_scopes_grant_nothing(text):
    scopes = ScopeSet.parse(text)
    assert not scopes
    assert str(scopes) == ""


def test_text_round_trips():
    text = "system/Patient.rs system/Task.read"
    assert str(ScopeSet.parse(text)) == text


def test_unknown_interaction_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown interaction"):
        ScopeSet.parse("system/*.cruds").allows("Patient", "explode")


def test_scope_needed_names_the_narrowest_v2_scope():
    assert scope_needed("Task", "delete") == "system/Task.d"
    assert scope_needed("Patient", "search-type") == "system/Patient.s"
    assert scope_needed("Observation", "operation") == "system/Observation.r"


@pytest.mark.parametrize(("requested", "registered", "granted"), [
    # unregistered scopes are dropped
    ("system/Patient.rs system/Basic.r", "system/Patient.cruds system/Task.rs",
     "system/Patient.rs"),
    # a scope partly registered is narrowed to what is registered
    ("system/Task.cruds", "system/Task.rs", "system/Task.rs"),
    # a wildcard request becomes the registered types
    ("system/*.rs", "system/Patient.cruds system/Binary.r", "system/Patient.rs system/Binary.r"),
    # a fully covered request keeps the client's own (v1) spelling
    ("system/Patient.read", "system/*.cruds", "system/Patient.read"),
    # a v1 request narrowed by a v2 registration comes back in v2 form
    ("system/Patient.*", "system/Patient.rs", "system/Patient.rs"),
    # nothing in common
    ("system/Task.d", "system/Task.rs", ""),
    ("patient/Patient.rs", "system/*.cruds", ""),
])
def test_granted_by(requested, registered, granted):
    assert str(ScopeSet.parse(requested).granted_by(ScopeSet.parse(registered))) == granted
