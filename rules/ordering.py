"""Decision support on every imaging ServiceRequest the service accepts.

An order is imaging when it has the imaging category (SNOMED CT 363679005) or
the generic code, or when its code names a catalogue procedure or another
imaging procedure, whatever category it carries. A new one with no specific
code, or the generic one, gets the chosen procedure's codes; one that names a
catalogue procedure is kept as ordered and rated, and a better-rated option is
recorded. One that names a specific procedure outside the catalogue keeps its
code as sent and is tagged for vetting with the recommended option in a note.
Orders are never dropped: when the outcome is no imaging, an emergency, missing
data or no rule, the order is stored and tagged for radiology vetting (a human
justifies every exposure, IR(ME)R 2017 reg. 11).
"""

from __future__ import annotations

from typing import Any

from fhir.store import Store, register_write_hook
from rules.cards import finding_summary
from rules.context import IMAGING_CODE, Code, codes_of
from rules.engine import Decision, engine
from rules.guidance import procedure_codings
from rules.service import context_from_store, decide, record

IMAGING_PROCEDURES = "imaging-procedure"  # library value set beyond the catalogue
VETTING_OUTCOMES = {"no-imaging", "emergency", "data-requested", "no-rule"}


def register() -> None:
    register_write_hook("ServiceRequest", advise_order)


def is_imaging(order: dict[str, Any]) -> bool:
    """Imaging by its category or generic code, or because its code names a catalogue
    procedure, whatever category the GP system sent (or none)."""
    codes = codes_of(order.get("code"))
    if IMAGING_CODE in codes_of(order.get("category", [])) or IMAGING_CODE in codes:
        return True
    eng = engine()
    return eng.resolve_codes(codes) is not None or \
        not eng.value_sets.codes(IMAGING_PROCEDURES).isdisjoint(codes)


def advise_order(store: Store, order: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Decide on a newly accepted imaging order and record the guidance with it."""
    if previous is not None or not is_imaging(order):
        return
    ctx = context_from_store(store, order)
    decision = decide(ctx)
    guidance = record(store, decision, ctx)
    base = store.settings.canonical_base
    order["supportingInfo"] = [*order.get("supportingInfo", []), {
        "reference": f"GuidanceResponse/{guidance['id']}", "display": "ScanPath decision"}]
    unknown = ctx.ordered_codes if decision.ordered is None else ()
    if not unknown:
        _code(order, decision, base)
    _flag(order, decision, base, unknown)


def _code(order: dict[str, Any], decision: Decision, base: str) -> None:
    target = decision.target
    if target is None:
        return
    kept = [c for c in (order.get("code") or {}).get("coding", [])
            if (c.get("system"), c.get("code")) != IMAGING_CODE]
    wanted = procedure_codings(target, base)
    missing = [c for c in wanted if not any(
        (k.get("system"), k.get("code")) == (c["system"], c["code"]) for k in kept)]
    order["code"] = {**(order.get("code") or {}), "coding": missing + kept}
    order["code"].setdefault("text", target.display)


def _uncatalogued(codes: tuple[Code, ...], decision: Decision) -> str:
    sent = ", ".join(f"{system}|{code}" for system, code in codes)
    chosen = decision.chosen
    advice = f"; recommended option: {chosen.procedure.display} ({chosen.procedure.key})" \
        if chosen else ""
    return f"ordered code {sent} is not in the procedure catalogue and was kept as sent{advice}"


def _flag(order: dict[str, Any], decision: Decision, base: str,
          unknown: tuple[Code, ...]) -> None:
    reasons = [_uncatalogued(unknown, decision)] if unknown else []
    if decision.outcome in VETTING_OUTCOMES:
        reasons.append(f"{decision.outcome}: {decision.summary}")
    if decision.better:
        reasons.append(f"better rated: {decision.better.procedure.display}")
    reasons += [f"{f.check}: {finding_summary(f)}" for f in decision.safety
                if f.severity != "info"]
    if not reasons:
        return
    tag = {"system": f"{base}/CodeSystem/order-flag", "code": "vetting-required",
           "display": "Radiology vetting required"}
    meta = order.setdefault("meta", {})
    meta["tag"] = [*meta.get("tag", []), tag]
    order["note"] = [*order.get("note", []), *({"text": f"ScanPath: {r}"} for r in reasons)]
