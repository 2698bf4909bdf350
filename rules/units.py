"""Units of measure: an observation's value in the unit a value set states.

Units are UCUM (https://ucum.org/ucum), parsed by ``ucumvert`` into ``pint``
quantities, so ``ug/L`` and ``ng/mL`` are the same and ``mL/min/{1.73_m2}``
is ``mL/min`` with an annotation. GP systems in England often send the
printed unit instead of the UCUM code (``ml/min/1.73m2``, ``µmol/L``); the few
such spellings below are mapped to UCUM first. A mass concentration becomes a
substance concentration through the analyte's molar mass (creatinine
113.12 g/mol, so 1 mg/dL = 88.4 µmol/L). A unit that cannot be read or
converted gives ``None``: the value is unknown, never a normal result.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# Printed units seen from UK GP systems and laboratories, in lower case with
# spaces removed, and their UCUM codes. eGFR's "per 1.73 m2" is an annotation.
_PRINTED = {
    "umol/l": "umol/L", "micromol/l": "umol/L", "mmol/l": "mmol/L",
    "mg/dl": "mg/dL", "mg/l": "mg/L", "ug/l": "ug/L", "ng/ml": "ng/mL",
    "ml/min": "mL/min", "u/ml": "U/mL", "ku/l": "kU/L",
    # Tumour markers: laboratories print U and IU for one arbitrary unit
    # (NICE NG12 1.5.8 writes "35 IU/ml" for CA125 reported in U/mL or kU/L).
    "iu/ml": "U/mL", "kiu/l": "kU/L", "ugfeu/ml": "ug/mL", "mgfeu/l": "mg/L", "ngfeu/ml": "ng/mL",
    "ug/mlfeu": "ug/mL", "mg/lfeu": "mg/L", "ng/mlfeu": "ng/mL",
}
_EGFR_PRINTED = re.compile(r"^ml/min(/|per)1\.73(m2|m\^2|m\*2|sqm|m²)$")
_MICRO = str.maketrans({"µ": "u", "μ": "u"})
# International units have no fixed size (UCUM): only the same unit converts.
_ARBITRARY = ("[iU]", "[IU]")


def ucum_code(unit: str) -> str:
    """The UCUM code for ``unit``, mapping the printed spellings UK systems send."""
    key = unit.translate(_MICRO).replace(" ", "").lower()
    if _EGFR_PRINTED.match(key):
        return "mL/min/{1.73_m2}"
    return _PRINTED.get(key, unit.strip().translate(_MICRO))


@lru_cache(maxsize=1)
def _registry() -> Any:
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


@lru_cache(maxsize=512)
def _quantity(code: str) -> Any:
    """One ``code`` as a pint quantity, or None when it is not UCUM."""
    try:
        quantity = _registry().from_ucum(code)
    except Exception:  # ucumvert raises lark and pint errors of many kinds
        return None
    return quantity if hasattr(quantity, "dimensionality") else None


@lru_cache(maxsize=1024)
def factor(unit: str, target: str, molar_mass: float | None = None) -> float | None:
    """What a value in ``unit`` is multiplied by to be in ``target`` (both UCUM or printed).

    ``molar_mass`` (g/mol) lets a mass concentration convert to a substance
    concentration and back. None when either unit is unreadable, the
    dimensions differ, or an arbitrary unit ([iU]) would change.
    """
    source, wanted = ucum_code(unit), ucum_code(target)
    if source == wanted:
        return 1.0
    if any(a in source or a in wanted for a in _ARBITRARY):
        return None
    have, want = _quantity(source), _quantity(wanted)
    if have is None or want is None:
        return None
    if have.dimensionality != want.dimensionality and molar_mass:
        have = _by_molar_mass(have, want, molar_mass)
    if have is None or have.dimensionality != want.dimensionality:
        return None
    # pint's float arithmetic leaves 1 ug/L = 0.9999999999999999 ng/mL: keep 12
    # significant digits so that a value at a threshold stays at it.
    return float(f"{(have / want).to('dimensionless').magnitude:.12g}")


def _by_molar_mass(have: Any, want: Any, molar_mass: float) -> Any:
    """``have`` moved between mass and substance concentration, if that is the gap."""
    per_mole = molar_mass * _quantity("g/mol")
    for candidate in (have / per_mole, have * per_mole):
        if candidate.dimensionality == want.dimensionality:
            return candidate
    return None


def convert(value: float, unit: str | None, target: str | None,
            molar_mass: float | None = None) -> float | None:
    """``value`` in ``unit`` expressed in ``target``.

    A value set without a unit (scores, counts) compares the number as sent.
    A value with no unit, or one that does not convert, is unknown (None).
    """
    if target is None:
        return value
    if not unit:
        return None
    scale = factor(unit, target, molar_mass)
    return None if scale is None else value * scale
