"""A decision as CDS Hooks cards (https://cds-hooks.hl7.org/2.0/#card-attributes).

One card carries the outcome (with the recommended order as the single
``isRecommended`` suggestion when imaging is indicated); each safety finding
of warning or critical severity adds a card whose ``source.topic`` is coded
from ``{base}/CodeSystem/safety-check``. Informational findings are listed in
the main card's detail.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from rules.engine import Decision, RankedOption, RuleTrace
from rules.guidance import procedure_codings
from rules.safety import Finding

# ACR Appropriateness Criteria: 1-3 "usually not appropriate", 4-6 "may be
# appropriate", 7-9 "usually appropriate"; the lower band is never offered.
MAY_BE_APPROPRIATE = 4
SUMMARY_LIMIT = 140  # CDS Hooks: summary SHOULD be under 140 characters
INDICATOR = {"imaging": "info", "no-imaging": "warning", "emergency": "critical",
             "data-requested": "info", "no-rule": "info"}
# Local override reasons, offered on every card ({base}/CodeSystem/override-reason).
OVERRIDE_REASONS = [
    ("clinical-judgement", "Clinical judgement: the guideline does not fit this patient"),
    ("discussed-with-radiologist", "Discussed with a radiologist"),
    ("already-known", "Already known or addressed"),
    ("patient-preference", "Patient's informed preference"),
]


def build_cards(decision: Decision, draft: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """The main card and one card per warning or critical safety finding."""
    main = _main_card(decision, draft, base)
    safety = [_safety_card(f, base) for f in decision.safety if f.severity != "info"]
    return [main, *safety]


def _card(summary: str, indicator: str, detail: str, source: dict[str, Any],
          base: str) -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "summary": _short(summary), "indicator": indicator,
            "detail": detail, "source": source,
            "overrideReasons": [{"system": f"{base}/CodeSystem/override-reason", "code": code,
                                 "display": display} for code, display in OVERRIDE_REASONS]}


def _short(text: str) -> str:
    return text if len(text) < SUMMARY_LIMIT else text[:SUMMARY_LIMIT - 2] + "…"


def _main_card(decision: Decision, draft: dict[str, Any], base: str) -> dict[str, Any]:
    rule = decision.deciding[0] if decision.deciding else None
    source = {"label": rule.citation.label() if rule else "ScanPath rules engine"}
    if rule:
        source["url"] = rule.citation.url
    card = _card(_summary(decision), INDICATOR[decision.outcome], _detail(decision), source,
                 base)
    if decision.chosen:
        card["suggestions"] = [_suggestion(o, o is decision.chosen, draft, base)
                               for o in decision.options
                               if o.appropriateness >= MAY_BE_APPROPRIATE]
        card["selectionBehavior"] = "at-most-one"
    return card


def _summary(decision: Decision) -> str:
    chosen, better = decision.chosen, decision.better
    if decision.outcome == "imaging" and better and decision.ordered:
        return f"Consider {better.procedure.display} instead of {decision.ordered.display}"
    if decision.outcome == "imaging" and chosen and decision.passed_over:
        unsafe = decision.passed_over[0][0].procedure.display
        return f"Recommended: {chosen.procedure.display} ({unsafe} is unsafe for this patient)"
    if decision.outcome == "imaging" and chosen:
        return f"Recommended: {chosen.procedure.display}"
    if decision.outcome == "data-requested":
        return "More information needed: " + ", ".join(m.name for m in decision.missing)
    refer = decision.deciding[0].outcome.refer if decision.deciding else None
    if decision.outcome == "emergency":
        return "Emergency, not for direct-access imaging: " + (refer or decision.summary)
    if decision.outcome == "no-imaging" and refer:
        return f"Refer, do not image: {refer}"
    if decision.outcome == "no-imaging":
        return "Imaging not indicated. " + decision.summary
    return decision.summary


def _detail(decision: Decision) -> str:
    lines = [decision.summary, ""]
    lines += [f"**Not recommended:** {o.procedure.display}: {finding_summary(f)}. "
              f"{f.detail} ({f.citation.label()})" for o, f in decision.passed_over]
    for option in decision.options:
        lines.append(_option_line(option))
    if decision.missing:
        lines += ["", "**Missing:** " + ", ".join(m.name for m in decision.missing)]
    notes = [f for f in decision.safety if f.severity == "info"]
    lines += [f"- *{f.check}*: {finding_summary(f)}. {f.detail} ({f.citation.label()})"
              for f in notes]
    lines += ["", "**Why:**"] + [f"- {t.rule.title} ({t.rule.citation.label()}): "
                                  f"{_verdict(t, decision)}" for t in _explained(decision)]
    used = [f"{f.display or f.kind}" + (f" ({f.when.isoformat()})" if f.when else "")
            for f in decision.facts]
    if used:
        lines += ["", "**Facts used:** " + "; ".join(used)]
    lines += ["", f"Rule pack {decision.pack_id} version {decision.pack_version}. "
              "Advice only: radiology justifies every exposure."]
    return "\n".join(lines)


def _explained(decision: Decision) -> list[RuleTrace]:
    """The trace in the order a reader needs it: the deciding rules and why the choice
    moved, then rules that also applied but were outranked, then those that did not."""
    deciding = {r.id for r in decision.deciding}
    return sorted(decision.trace, key=lambda t: (t.rule.id not in deciding, not t.matched,
                                                 -t.rule.priority))


def _verdict(trace: RuleTrace, decision: Decision) -> str:
    if not trace.matched:
        return "does not apply: " + "; ".join(trace.reasons)
    if trace.rule not in decision.deciding:
        return "also applies, outranked by a more specific rule"
    moved = [r for r in trace.reasons if r != "all criteria met"]
    return "applies" + (": " + "; ".join(moved) if moved else "")


def _option_line(option: RankedOption) -> str:
    proc = option.procedure
    return (f"- **{proc.display}** ({proc.key}): appropriateness {option.appropriateness}/9, "
            f"{option.category.replace('-', ' ')}; radiation level {proc.adult.rrl}/5 adult, "
            f"{proc.paediatric.rrl}/5 child (adult dose band {proc.adult.band_msv} mSv). "
            f"{option.rationale}")


def _suggestion(option: RankedOption, recommended: bool, draft: dict[str, Any],
                base: str) -> dict[str, Any]:
    order = copy.deepcopy(draft)
    order["code"] = {"coding": procedure_codings(option.procedure, base),
                     "text": option.procedure.display}
    action = "update" if order.get("id") else "create"
    return {"label": f"Order {option.procedure.display}", "uuid": str(uuid.uuid4()),
            "isRecommended": recommended,
            "actions": [{"type": action, "description": f"Order {option.procedure.display}",
                         "resource": order}]}


def _safety_card(finding: Finding, base: str) -> dict[str, Any]:
    source = {"label": finding.citation.label(), "url": finding.citation.url,
              "topic": {"system": f"{base}/CodeSystem/safety-check", "code": finding.check,
                        "display": finding.check.replace("-", " ")}}
    detail = finding.detail + "".join(
        f"\n- {f.display} ({f.when.isoformat() if f.when else 'undated'})"
        for f in finding.facts)
    return _card(finding_summary(finding), finding.severity, detail, source, base)


def finding_summary(finding: Finding) -> str:
    """The finding's summary, naming the procedure it is about (e.g. "For CTCA: ...")."""
    return f"For {finding.procedure}: {finding.summary}" if finding.procedure \
        else finding.summary
