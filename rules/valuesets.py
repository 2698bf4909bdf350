"""Value sets compiled for matching: code sets, groups by meaning, units.

A fact matches a value set by its ``(system, code)`` alone, never by display
(systems are normalised when the context is built, ``rules.context``). A
value set may include others by name, so "any history of cancer" is the union
of its parts. An observation's value is read in the value set's unit through
``rules.units``; a value whose unit does not convert is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rules.context import Code, Fact
from rules.schema import ValueSet
from rules.units import convert


class ValueSetError(ValueError):
    """A value set that includes an unknown name or itself."""


@dataclass(frozen=True)
class Compiled:
    name: str
    codes: frozenset[Code]
    unit: str | None
    molar_mass: float | None


class ValueSets:
    """Named value sets, with includes expanded once."""

    def __init__(self, sets: Mapping[str, ValueSet]) -> None:
        self.sets = dict(sets)
        self._compiled: dict[str, Compiled] = {}
        for name in self.sets:
            self._compile(name, ())

    def __contains__(self, name: str) -> bool:
        return name in self.sets

    def _compile(self, name: str, path: tuple[str, ...]) -> Compiled:
        found = self._compiled.get(name)
        if found is not None:
            return found
        if name in path:
            raise ValueSetError(f"value set '{name}' includes itself ({' > '.join(path)})")
        if name not in self.sets:
            where = f" (included by '{path[-1]}')" if path else ""
            raise ValueSetError(f"unknown value set '{name}'{where}")
        vs = self.sets[name]
        codes = {(c.system, c.code) for c in vs.codes}
        for part in vs.include:
            codes |= self._compile(part, (*path, name)).codes
        compiled = self._compiled[name] = Compiled(name, frozenset(codes), vs.unit,
                                                   vs.molar_mass)
        return compiled

    def get(self, name: str) -> Compiled:
        return self._compiled[name]

    def codes(self, name: str) -> frozenset[Code]:
        return self._compiled[name].codes


def value_in(fact: Fact, value_set: Compiled) -> float | None:
    """The fact's number in the value set's unit (None when absent or not convertible)."""
    if fact.value is None:
        return None
    return convert(fact.value, fact.unit, value_set.unit, value_set.molar_mass)


def matching(facts: Iterable[Fact], codes: frozenset[Code]) -> list[Fact]:
    """The facts coded with any of ``codes``."""
    return [f for f in facts if not codes.isdisjoint(f.codes)]
