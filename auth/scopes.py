"""SMART ``system/`` scopes: parsing, granting and deciding what they allow.

Both forms from SMART App Launch 2.x "Scopes and Launch Context" are read:
v2 ``system/<Type|*>.<cruds>`` and v1 ``system/<Type|*>.read|write|*``.
Anything else (``patient/`` and ``user/`` scopes, ``openid``, v2 scopes with
``?param=value`` restrictions) is not understood and therefore never granted.
Pure functions; no Flask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

V2_ORDER = "cruds"
SCOPES_SUPPORTED = ("system/*.cruds", "system/*.rs", "system/*.read", "system/*.write")

# SMART 2.x "Scopes for requesting FHIR Resources": v1 read = rs, write = cud, * = cruds.
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
# Same section, table of v2 permissions: which letter each REST interaction needs.
# ``operation`` ($validate and friends) is treated as a read.
_INTERACTION_PERMISSION = {
    "create": "c",
    "read": "r", "vread": "r", "history-instance": "r", "operation": "r",
    "update": "u", "patch": "u",
    "delete": "d",
    "search-type": "s", "history-type": "s", "search-system": "s", "history-system": "s",
}
_SCOPE = re.compile(r"system/(?P<type>\*|[A-Z][A-Za-z]*)\.(?P<perms>\*|[a-z]+)")
# v2 letters appear at most once each, in the order c, r, u, d, s.
_V2_PERMS = re.compile(r"c?r?u?d?s?")


@dataclass(frozen=True)
class Scope:
    """One ``system/`` scope: a resource type (or ``*``) and its permission letters."""

    resource_type: str
    permissions: frozenset[str]
    text: str

    @classmethod
    def v2(cls, resource_type: str, permissions: frozenset[str]) -> Scope:
        letters = "".join(p for p in V2_ORDER if p in permissions)
        return cls(resource_type, permissions, f"system/{resource_type}.{letters}")

    def covers(self, resource_type: str) -> bool:
        return self.resource_type in ("*", resource_type)


def parse_scope(text: str) -> Scope | None:
    """The scope ``text`` names, or None when it is not a ``system/`` scope read here."""
    match = _SCOPE.fullmatch(text)
    if match is None:
        return None
    perms = match["perms"]
    letters = _V1_PERMISSIONS.get(perms)
    if letters is None and perms and _V2_PERMS.fullmatch(perms):
        letters = perms
    if letters is None:
        return None
    return Scope(match["type"], frozenset(letters), text)


def permission_for(interaction: str) -> str:
    """The v2 permission letter an interaction needs."""
    try:
        return _INTERACTION_PERMISSION[interaction]
    except KeyError:
        raise ValueError(f"unknown interaction {interaction!r}") from None


def scope_needed(resource_type: str, interaction: str) -> str:
    """The narrowest v2 scope that allows ``interaction`` on ``resource_type``."""
    return f"system/{resource_type}.{permission_for(interaction)}"


def _narrow(requested: Scope, registered: Scope) -> Scope | None:
    """The part of ``requested`` that ``registered`` also covers, if any."""
    if "*" not in (requested.resource_type, registered.resource_type) and \
            requested.resource_type != registered.resource_type:
        return None
    letters = requested.permissions & registered.permissions
    if not letters:
        return None
    resource_type = (registered.resource_type if requested.resource_type == "*"
                     else requested.resource_type)
    if resource_type == requested.resource_type and letters == requested.permissions:
        return requested  # granted in full: keep the client's own spelling
    return Scope.v2(resource_type, frozenset(letters))


@dataclass(frozen=True)
class ScopeSet:
    """The scopes of a request or token; unrecognised scope strings are left out."""

    scopes: tuple[Scope, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ScopeSet:
        parsed = (parse_scope(part) for part in text.split())
        return cls(tuple(scope for scope in parsed if scope is not None))

    def __str__(self) -> str:
        return " ".join(scope.text for scope in self.scopes)

    def __bool__(self) -> bool:
        return bool(self.scopes)

    def allows(self, resource_type: str, interaction: str) -> bool:
        """Whether some scope permits ``interaction`` on ``resource_type``."""
        letter = permission_for(interaction)
        return any(s.covers(resource_type) and letter in s.permissions for s in self.scopes)

    def granted_by(self, registered: ScopeSet) -> ScopeSet:
        """What of these requested scopes ``registered`` allows (RFC 6749 §3.3 may narrow)."""
        granted: dict[str, Scope] = {}
        for requested in self.scopes:
            for scope in _grant(requested, registered):
                granted.setdefault(scope.text, scope)
        return ScopeSet(tuple(granted.values()))


def _grant(requested: Scope, registered: ScopeSet) -> list[Scope]:
    """``requested`` itself when some registered scope covers it all, else its covered parts."""
    parts = [scope for scope in (_narrow(requested, r) for r in registered.scopes) if scope]
    return [requested] if requested in parts else parts
