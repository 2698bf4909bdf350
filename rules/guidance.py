"""A decision as FHIR: the GuidanceResponse, its Provenance, and procedure codings.

The GuidanceResponse carries the pack version (``moduleUri`` and an
extension) and the full explanation in a contained Parameters resource that
``outputParameters`` points at: outcome, ranked options, safety findings,
the facts used (with their references and dates), every rule considered and
why, and the input context so that ``$replay`` can run it again.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fhir.dates import instant, now_utc
from rules.context import Fact, PatientContext
from rules.engine import Decision, RankedOption
from rules.safety import Finding
from rules.schema import Missing, Procedure

STATUS = {"data-requested": "data-requested"}  # everything else is "success"
# The FHIR type each part of the history comes from (Missing.history).
HISTORY_TYPES = {"patient": "Patient", "conditions": "Condition", "observations": "Observation",
                 "allergies": "AllergyIntolerance", "devices": "Device",
                 "imaging": "ImagingStudy"}


def procedure_system(base: str) -> str:
    return f"{base}/CodeSystem/procedure"


def procedure_codings(proc: Procedure, base: str) -> list[dict[str, Any]]:
    """The catalogue coding and the SNOMED CT coding of a procedure (CONTRACT §3)."""
    return [{"system": procedure_system(base), "code": proc.key, "display": proc.display},
            {"system": proc.snomed.system, "code": proc.snomed.code,
             "display": proc.snomed.display}]


def guidance_response(decision: Decision, ctx: PatientContext, base: str,
                      card_ids: list[str] | None = None) -> dict[str, Any]:
    """The GuidanceResponse recording ``decision`` for ``ctx``."""
    module = f"{base}/rule-pack/{decision.pack_id}/{decision.pack_version}"
    resource: dict[str, Any] = {
        "resourceType": "GuidanceResponse",
        "contained": [{"resourceType": "Parameters", "id": "decision",
                       "parameter": decision_parameters(decision, ctx, base)}],
        "extension": [{"url": f"{base}/StructureDefinition/rule-pack-version",
                       "valueString": f"{decision.pack_id}|{decision.pack_version}"}],
        "requestIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "moduleUri": module,
        "status": STATUS.get(decision.outcome, "success"),
        "occurrenceDateTime": instant(now_utc()),
        "outputParameters": {"reference": "#decision"},
    }
    if card_ids:  # FHIR JSON has no empty arrays
        resource["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{c}"}
                                  for c in card_ids]
    if ctx.patient_ref:
        resource["subject"] = {"reference": ctx.patient_ref}
    if decision.missing:
        resource["dataRequirement"] = [_data_requirement(m, base) for m in decision.missing]
    return resource


def _data_requirement(missing: Missing, base: str) -> dict[str, Any]:
    """An Observation, or the Patient element (birthDate, gender), that is wanted."""
    wanted: dict[str, Any] = {"type": HISTORY_TYPES.get(missing.history or "", "Observation")
                              if not missing.patient_element else "Patient"}
    if missing.patient_element:
        wanted["mustSupport"] = [missing.patient_element]
    wanted["extension"] = [{"url": f"{base}/StructureDefinition/data-requested",
                            "valueString": missing.name}]
    return wanted


def provenance(target: str, decision: Decision, base: str) -> dict[str, Any]:
    """Who produced the guidance: the rules engine with this pack version."""
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": instant(now_utc()),
        "agent": [{"type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "assembler", "display": "Assembler"}]},
            "who": {"display": f"ScanPath rules engine ({decision.pack_id})"}}],
        "entity": [{"role": "source", "what": {"identifier": {
            "system": f"{base}/rule-pack/{decision.pack_id}", "value": decision.pack_version}}}],
    }


def decision_parameters(decision: Decision, ctx: PatientContext,
                        base: str) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": "outcome", "valueCode": decision.outcome},
        {"name": "summary", "valueString": decision.summary},
        {"name": "pack", "valueString": f"{decision.pack_id}|{decision.pack_version}"},
    ]
    params += [_option(o, base, ctx) for o in decision.options]
    if decision.chosen:
        params.append({"name": "chosen",
                       "valueCoding": procedure_codings(decision.chosen.procedure, base)[0]})
    if decision.ordered:
        params.append({"name": "ordered",
                       "valueCoding": procedure_codings(decision.ordered, base)[0]})
    if decision.better:
        params.append({"name": "better",
                       "valueCoding": procedure_codings(decision.better.procedure, base)[0]})
    params += [{"name": "missing", "valueString": m.name} for m in decision.missing]
    refer = decision.deciding[0].outcome.refer if decision.deciding else None
    if refer:
        params.append({"name": "refer", "valueString": refer})
    params += [{"name": "passedOver", "part": [
        {"name": "procedure", "valueCoding": procedure_codings(o.procedure, base)[0]},
        {"name": "reason", "valueString": f.summary}]} for o, f in decision.passed_over]
    params += [{"name": "unknown", "valueString": f"{name}: {why}"}
               for name, why in ctx.unknown.items()]
    params += [_safety(f, base) for f in decision.safety]
    params += [_fact(f) for f in decision.facts]
    params += [_rule(t.rule, t.matched, t.reasons) for t in decision.trace]
    params.append({"name": "notConsidered", "valueInteger": decision.not_considered})
    params.append({"name": "context", "valueString": json.dumps(ctx.to_json())})
    return params


def _option(option: RankedOption, base: str, ctx: PatientContext) -> dict[str, Any]:
    codings = procedure_codings(option.procedure, base)
    return {"name": "option", "part": [
        {"name": "procedure", "valueCoding": codings[0]},
        {"name": "snomed", "valueCoding": codings[1]},
        {"name": "appropriateness", "valueInteger": option.appropriateness},
        {"name": "category", "valueCode": option.category},
        {"name": "rrlAdult", "valueInteger": option.procedure.adult.rrl},
        {"name": "rrlPaediatric", "valueInteger": option.procedure.paediatric.rrl},
        {"name": "rationale", "valueString": option.rationale},
        {"name": "rule", "valueString": option.rule_id}]}


def _safety(finding: Finding, base: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "check", "valueCoding": {"system": f"{base}/CodeSystem/safety-check",
                                          "code": finding.check}},
        {"name": "severity", "valueCode": finding.severity},
        {"name": "summary", "valueString": finding.summary},
        {"name": "detail", "valueString": finding.detail},
        {"name": "citation", "valueString": finding.citation.label()}]
    if finding.procedure:
        parts.append({"name": "procedure", "valueString": finding.procedure})
    parts += [{"name": "fact", "valueReference": {"reference": f.reference}}
              for f in finding.facts if f.reference]
    return {"name": "safety", "part": parts}


def _fact(fact: Fact) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "kind", "valueCode": fact.kind},
                                   {"name": "display", "valueString": fact.display or "-"}]
    parts += [{"name": "code", "valueCoding": {"system": s, "code": c}} for s, c in fact.codes]
    if fact.reference:
        parts.append({"name": "reference", "valueReference": {"reference": fact.reference}})
    if fact.when:
        parts.append({"name": "date", "valueDate": fact.when.isoformat()})
    if fact.value is not None:
        parts.append({"name": "value", "valueDecimal": fact.value})
    return {"name": "fact", "part": parts}


def _rule(rule: Any, matched: bool, reasons: list[str]) -> dict[str, Any]:
    return {"name": "rule", "part": [
        {"name": "id", "valueString": rule.id},
        {"name": "title", "valueString": rule.title},
        {"name": "citation", "valueString": rule.citation.label()},
        {"name": "url", "valueUri": rule.citation.url},
        {"name": "priority", "valueInteger": rule.priority},
        {"name": "matched", "valueBoolean": matched},
        *[{"name": "reason", "valueString": r} for r in reasons]]}


def stored_context(guidance: dict[str, Any]) -> PatientContext | None:
    """The input context saved in a GuidanceResponse, for replay."""
    for contained in guidance.get("contained", []):
        for param in contained.get("parameter", []):
            if param.get("name") == "context":
                return PatientContext.from_json(json.loads(param["valueString"]))
    return None
