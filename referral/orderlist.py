"""The radiology worklist and an order's detail, as the staff app shows them.

Read-only queries over the resource store's search index tables (the order's
Task: its indexed ``code``, ``business-status``, ``priority`` and ``authored-on``,
and ``focus`` joined to the ServiceRequest's ``code`` for the modality), paged on
the server with LIMIT/OFFSET in the order of an index. The rules engine's
decision is the GuidanceResponse the ordering hook names in
``ServiceRequest.supportingInfo`` (``rules.ordering``);
this module reads its contained Parameters (``rules.guidance``) without
importing ``rules``. An order with no GuidanceResponse shows "no decision
recorded": unknown is never shown as appropriate.

Where the labels come from:

- appropriateness: the ACR Appropriateness Criteria rating scale, 1-9
  (1-3 usually not appropriate, 4-6 may be appropriate, 7-9 usually
  appropriate; https://www.acr.org/Clinical-Resources/ACR-Appropriateness-Criteria);
- radiation: the ACR Relative Radiation Level, 0-5 (the same source, "Radiation
  Dose Assessment Introduction");
- urgency: FHIR R4 request-priority (https://hl7.org/fhir/R4/valueset-request-priority.html);
- states: ``referral.states`` (CONTRACT §6).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from core import fhirjson
from core.errors import BadRequest, NotFound
from fhir.models import DateIndex, ReferenceIndex, TokenIndex, table_of
from fhir.search import RESOURCE, run_search
from fhir.store import Store, spec_for
from referral.orders import FULFIL, order_task, state_of
from referral.states import STATES
from referral.vetting import DEPARTMENT_ZONE
from referral.worklist import NHS_NUMBER_SYSTEM

log = logging.getLogger(__name__)

PAGE_SIZE = 25
MAX_PAGE = 400  # deepest page offered: 10,000 orders at PAGE_SIZE
MAX_COUNTED = PAGE_SIZE * MAX_PAGE  # beyond this the page says "more than"
PRIORITIES = {"routine": "Routine", "urgent": "Urgent", "asap": "ASAP", "stat": "Immediate (stat)"}
SORTS = {"newest": "-authored-on", "oldest": "authored-on", "state": "business-status"}
NO_DECISION = "no decision recorded"
FULFIL_CODE = FULFIL["coding"][0]["code"]


@dataclass(frozen=True)
class Filters:
    """What the worklist is filtered and sorted by; every field optional but ``sort``."""

    state: str | None = None
    priority: str | None = None
    modality: str | None = None
    received_from: date | None = None
    received_to: date | None = None
    sort: str = "newest"
    page: int = 1


@dataclass
class Decision:
    """The rules engine's decision on one order, as the staff app shows it."""

    recorded: bool
    outcome: str = ""
    summary: str = NO_DECISION
    recommendation: str | None = None
    appropriateness: str | None = None
    radiation: str | None = None
    ordered: str | None = None
    against: str | None = None  # why the order goes against the guidance; None when it does not
    safety: list[dict[str, str]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    facts: list[dict[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    pack: str | None = None
    guidance_id: str | None = None


@dataclass
class Row:
    """One order on the worklist."""

    order_id: str
    task_id: str
    patient: str
    nhs_number: str | None
    procedure: str
    state: str
    state_display: str
    priority: str
    received: str
    decision: Decision


@dataclass
class Page:
    """One page of the worklist: its rows, how many orders match, which page of how many."""

    rows: list[Row]
    total: int  # at most MAX_COUNTED + 1: more than MAX_COUNTED when ``more``
    page: int
    pages: int
    more: bool = False


def parse_filters(args: dict[str, str], modalities: list[str]) -> Filters:
    """Filters from a query string; 400 (``BadRequest``) for a value not offered."""
    state = args.get("state") or None
    priority = args.get("priority") or None
    modality = args.get("modality") or None
    sort = args.get("sort") or "newest"
    checks: list[tuple[str, str | None, Collection[str]]] = [
        ("state", state, STATES), ("priority", priority, PRIORITIES),
              ("modality", modality, modalities), ("sort", sort, SORTS)]
    for name, value, allowed in checks:
        if value is not None and value not in allowed:
            raise BadRequest(f"Unknown {name} '{value}'; choose one the form offers", [name])
    return Filters(state, priority, modality, _date(args, "from"), _date(args, "to"),
                   sort, _page(args.get("page")))


def _date(args: dict[str, str], name: str) -> date | None:
    text = args.get(name) or ""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as error:
        raise BadRequest(f"The '{name}' date '{text}' is not a date (YYYY-MM-DD)",
                         [name]) from error


def _page(text: str | None) -> int:
    if not text:
        return 1
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise BadRequest(f"Page '{text}' is not a page number from 1 to {MAX_PAGE}", ["page"])
    return int(text)


def modalities(store: Store) -> dict[str, list[str]]:
    """Modality code -> the ``system|code`` tokens of the catalogue procedures it covers
    (``CodeSystem/procedure``, property ``modality``, the one the DICOM worklist reads),
    each procedure by its catalogue code and its SNOMED CT code."""
    if not store.exists("CodeSystem", "procedure"):
        return {}
    system = f"{store.settings.canonical_base}/CodeSystem/procedure"
    found: dict[str, list[str]] = {}
    for concept in store.read("CodeSystem", "procedure").get("concept", []):
        props = {p.get("code"): p for p in concept.get("property", [])}
        modality = (props.get("modality") or {}).get("valueCode")
        if not modality:
            continue
        snomed = (props.get("snomed") or {}).get("valueCoding") or {}
        tokens = found.setdefault(str(modality), [])
        tokens.append(f"{system}|{concept['code']}")
        if snomed.get("code"):
            tokens.append(f"{snomed.get('system')}|{snomed['code']}")
    return dict(sorted(found.items()))


def _page_query(store: Store, filters: Filters,
                reverse: bool = False) -> tuple[Select[Any], Select[Any]]:
    """The page's Task query and its count. Filters are ``id IN (index subquery)`` tests,
    each run once (as ``fhir.search`` runs them); the order comes from one join on the
    ``authored-on`` date row, read in the order of ``ix_search_date_lookup``, so a page
    stops after its rows (``run_search``'s correlated sort reads every match first)."""
    base = store.settings.canonical_base
    where = [RESOURCE.resource_type == "Task",
             RESOURCE.id.in_(_tokens("code", FULFIL["coding"][0]["system"], [FULFIL_CODE]))]
    if filters.state:
        where.append(RESOURCE.id.in_(_tokens("business-status",
                                             f"{base}/CodeSystem/order-state",
                                             [filters.state])))
    if filters.priority:
        where.append(_priority_is(filters.priority))
    if filters.modality:
        where.append(RESOURCE.id.in_(_focus_coded(modalities(store).get(filters.modality, []))))
    when = table_of(DateIndex).alias()
    joined = and_(when.c.resource_type == "Task", when.c.resource_id == RESOURCE.id,
                  when.c.param == "authored-on")
    if filters.received_from:
        joined = and_(joined, when.c.low >= _midnight(filters.received_from))
    if filters.received_to:
        joined = and_(joined, when.c.low < _midnight(filters.received_to + timedelta(days=1)))
    query = select(RESOURCE.content).join(when, joined).where(*where)
    count = select(func.count()).select_from(
        select(RESOURCE.id).join(when, joined).where(*where).limit(MAX_COUNTED + 1).subquery())
    if filters.sort == "state":
        state = table_of(TokenIndex).alias()
        query = query.join(state, and_(state.c.resource_type == "Task",
                                       state.c.resource_id == RESOURCE.id,
                                       state.c.param == "business-status",
                                       state.c.system == f"{base}/CodeSystem/order-state"))
        keys = [(state.c.code, True), (when.c.low, False), (RESOURCE.id, True)]
    else:
        keys = [(when.c.low, filters.sort == "oldest"), (RESOURCE.id, True)]
    # ``reverse``: the same order read from its other end (a page past the middle)
    return query.order_by(*[c.asc() if up != reverse else c.desc() for c, up in keys]), count


def _midnight(day: date) -> datetime:
    """The start of ``day`` on the department's clock (the dates staff type), in UTC."""
    return datetime.combine(day, dtime(), tzinfo=ZoneInfo(DEPARTMENT_ZONE)).astimezone(UTC)


def _priority_is(priority: str) -> ColumnElement[bool]:
    """Tasks of ``priority``. FHIR R4 Task.priority and ServiceRequest.priority: "if
    missing, this task should be performed with normal priority", so an order that states
    none is routine, never left out of the routine list."""
    stated = RESOURCE.id.in_(_tokens("priority", None, [priority]))
    if priority != "routine":
        return stated
    token = table_of(TokenIndex)
    any_priority = select(token.c.resource_id).where(token.c.resource_type == "Task",
                                                     token.c.param == "priority")
    return or_(stated, RESOURCE.id.not_in(any_priority))


def _tokens(param: str, system: str | None, codes: list[str]) -> Select[Any]:
    """Ids of Tasks with a ``param`` token of ``system`` (None: no system) and one of ``codes``."""
    token = table_of(TokenIndex)
    return select(token.c.resource_id).where(
        token.c.resource_type == "Task", token.c.param == param, token.c.code.in_(codes),
        token.c.system.is_(None) if system is None else token.c.system == system)


def _focus_coded(tokens: list[str]) -> Select[Any]:
    """Ids of Tasks whose focus is a ServiceRequest coded with one of ``tokens``."""
    focus, code = table_of(ReferenceIndex).alias(), table_of(TokenIndex).alias()
    pairs = [tuple(t.split("|", 1)) for t in tokens] or [("none", "none")]
    return select(focus.c.resource_id).join(code, and_(
        code.c.resource_type == "ServiceRequest", code.c.resource_id == focus.c.target_id,
        code.c.param == "code")).where(
        focus.c.resource_type == "Task", focus.c.param == "focus",
        focus.c.target_type == "ServiceRequest",
        or_(*[and_(code.c.system == system, code.c.code == value) for system, value in pairs]))


def worklist(store: Store, filters: Filters) -> Page:
    """One page of orders matching ``filters``."""
    query, count = _page_query(store, filters)
    total = int(store.session.execute(count).scalar_one())
    offset = (filters.page - 1) * PAGE_SIZE
    if total <= MAX_COUNTED and offset > total // 2:
        # A page past the middle is read from the far end: fewer index rows to skip.
        query, _ = _page_query(store, filters, reverse=True)
        skipped = max(0, total - offset - PAGE_SIZE)
        size = min(PAGE_SIZE, total - offset)
        contents = list(reversed(store.session.execute(
            query.offset(skipped).limit(max(0, size))).scalars().all()))
    else:
        contents = list(store.session.execute(
            query.offset(offset).limit(PAGE_SIZE)).scalars().all())
    tasks = [fhirjson.loads(content) for content in contents]
    included = _referenced(store, tasks)
    guidance = _guidance(store, [r for r in included.values()
                                 if r["resourceType"] == "ServiceRequest"])
    rows = [_row(store, task, included, guidance) for task in tasks]
    pages = min(MAX_PAGE, max(1, -(-total // PAGE_SIZE)))
    return Page(rows, total, filters.page, pages, total > MAX_COUNTED)


def _referenced(store: Store, tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The orders and Patients the page's Tasks name, by ``Type/id``, two queries."""
    found: dict[str, dict[str, Any]] = {}
    for resource_type, element in (("ServiceRequest", "focus"), ("Patient", "for")):
        ids = [str(t.get(element, {}).get("reference", "")).removeprefix(f"{resource_type}/")
               for t in tasks]
        if ids:
            rows = store.session.execute(select(RESOURCE.id, RESOURCE.content).where(
                RESOURCE.resource_type == resource_type, RESOURCE.id.in_(ids)))
            found |= {f"{resource_type}/{rid}": fhirjson.loads(c) for rid, c in rows}
    return found


def _guidance(store: Store, orders: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ids = [gid for order in orders if (gid := guidance_id(order))]
    if not ids:
        return {}
    found = run_search(store.session, spec_for("GuidanceResponse"),
                       [("_id", ",".join(ids))], count=len(ids), with_total=False)
    return {str(g["id"]): g for g in found.matches}


def guidance_id(order: dict[str, Any]) -> str | None:
    """The id of the GuidanceResponse the rules engine recorded for ``order``; None if none."""
    for info in order.get("supportingInfo", []):
        reference = str((info or {}).get("reference", ""))
        if reference.startswith("GuidanceResponse/"):
            return reference.removeprefix("GuidanceResponse/")
    return None


def _row(store: Store, task: dict[str, Any], included: dict[str, dict[str, Any]],
         guidance: dict[str, dict[str, Any]]) -> Row:
    order = included.get(str(task.get("focus", {}).get("reference")), {})
    patient = included.get(str(task.get("for", {}).get("reference")), {})
    state = state_of(store, task) or "received"
    gid = guidance_id(order)
    return Row(order_id=str(order.get("id", "")), task_id=str(task["id"]),
               patient=patient_name(patient), nhs_number=nhs_number(patient),
               procedure=procedure_text(order), state=state,
               state_display=STATES[state].display if state in STATES else state,
               priority=PRIORITIES.get(str(task.get("priority", "routine")), "Routine"),
               received=str(task.get("authoredOn", ""))[:10],
               decision=read_decision(guidance.get(gid) if gid else None))


def patient_name(patient: dict[str, Any]) -> str:
    """The Patient's official (else first) name as "FAMILY, Given"; "name not recorded"."""
    names = patient.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    family, given = str(name.get("family", "")), " ".join(name.get("given", []))
    text = ", ".join(part for part in (family.upper(), given) if part)
    return text or str(name.get("text") or "name not recorded")


def nhs_number(patient: dict[str, Any]) -> str | None:
    """The Patient's NHS number; None if it has none."""
    return next((str(i["value"]) for i in patient.get("identifier", [])
                 if i.get("system") == NHS_NUMBER_SYSTEM and i.get("value")), None)


def procedure_text(order: dict[str, Any]) -> str:
    code = order.get("code") or {}
    displays = [c.get("display") for c in code.get("coding", []) if c.get("display")]
    return str(code.get("text") or (displays[0] if displays else "procedure not named"))


# --- the decision ---------------------------------------------------------------------------

def read_decision(guidance: dict[str, Any] | None) -> Decision:
    """The decision a GuidanceResponse records; ``recorded`` False when there is none."""
    params = _parameters(guidance) if guidance else None
    if guidance is None or params is None:
        return Decision(recorded=False)
    single = {p["name"]: p for p in params if "part" not in p}
    options = [_parts(p) for p in params if p["name"] == "option"]
    chosen = _code(single.get("chosen"))
    ordered = _code(single.get("ordered"))
    option = next((o for o in options if _code(o.get("procedure")) == chosen), None)
    decision = Decision(
        recorded=True, outcome=str(single.get("outcome", {}).get("valueCode", "")),
        summary=str(single.get("summary", {}).get("valueString", "")),
        recommendation=_display(option.get("procedure")) if option else None,
        appropriateness=appropriateness_label(option), radiation=radiation_label(option),
        ordered=_display(single.get("ordered")), pack=_string(single.get("pack")),
        guidance_id=str(guidance.get("id")))
    decision.against = _against(decision, ordered, chosen, single)
    decision.safety = [_safety(_parts(p)) for p in params if p["name"] == "safety"]
    decision.rules = [_rule(p) for p in params if p["name"] == "rule"]
    decision.facts = [_fact(_parts(p)) for p in params if p["name"] == "fact"]
    decision.unknown = [str(p.get("valueString")) for p in params if p["name"] == "unknown"]
    decision.missing = [str(p.get("valueString")) for p in params if p["name"] == "missing"]
    return decision


def _parameters(guidance: dict[str, Any]) -> list[dict[str, Any]] | None:
    for contained in guidance.get("contained", []):
        if contained.get("resourceType") == "Parameters":
            return [p for p in contained.get("parameter", []) if isinstance(p, dict)]
    return None


def _parts(param: dict[str, Any] | None) -> dict[str, Any]:
    return {p["name"]: p for p in (param or {}).get("part", []) if isinstance(p, dict)}


def _value(param: dict[str, Any] | None) -> Any:
    return next((v for k, v in (param or {}).items() if k.startswith("value")), None)


def _string(param: dict[str, Any] | None) -> str | None:
    value = _value(param)
    return None if value is None else str(value)


def _code(param: dict[str, Any] | None) -> str | None:
    coding = (param or {}).get("valueCoding") or {}
    return str(coding["code"]) if coding.get("code") else None


def _display(param: dict[str, Any] | None) -> str | None:
    coding = (param or {}).get("valueCoding") or {}
    return str(coding.get("display") or coding.get("code")) if coding else None


def appropriateness_label(option: dict[str, Any] | None) -> str | None:
    """"7/9 usually appropriate", on the ACR scale (module docstring); None without a rating."""
    rating = _value((option or {}).get("appropriateness"))
    if not isinstance(rating, int):
        return None
    band = ("usually not appropriate" if rating <= 3 else
            "may be appropriate" if rating <= 6 else "usually appropriate")
    return f"{rating}/9 {band}"


def radiation_label(option: dict[str, Any] | None) -> str | None:
    """"RRL 3/5 adult, 4/5 child" (ACR Relative Radiation Level); None when not rated."""
    adult = _value((option or {}).get("rrlAdult"))
    child = _value((option or {}).get("rrlPaediatric"))
    if not isinstance(adult, int):
        return None
    return f"RRL {adult}/5 adult" + (f", {child}/5 child" if isinstance(child, int) else "")


def _against(decision: Decision, ordered: str | None, chosen: str | None,
             single: dict[str, dict[str, Any]]) -> str | None:
    if decision.outcome and decision.outcome != "imaging":
        return f"The guidance does not recommend this imaging as ordered ({decision.outcome})"
    if single.get("better"):
        return f"A better-rated option exists: {_display(single['better'])}"
    if ordered and chosen and ordered != chosen:
        return f"Ordered {decision.ordered}; the guidance recommends {decision.recommendation}"
    return None


def _safety(parts: dict[str, Any]) -> dict[str, str]:
    return {key: str(_value(parts.get(key)) or "") for key in
            ("severity", "summary", "detail", "citation")} | {
        "check": str(_code(parts.get("check")) or "")}


def _rule(param: dict[str, Any]) -> dict[str, Any]:
    parts = [p for p in param.get("part", []) if isinstance(p, dict)]
    first = {p["name"]: _value(p) for p in parts if p["name"] != "reason"}
    return {"id": first.get("id"), "title": first.get("title"),
            "citation": first.get("citation"), "url": first.get("url"),
            "matched": bool(first.get("matched")),
            "reasons": [str(_value(p)) for p in parts if p["name"] == "reason"]}


def _fact(parts: dict[str, Any]) -> dict[str, str]:
    reference = (parts.get("reference") or {}).get("valueReference") or {}
    return {"kind": str(_value(parts.get("kind")) or ""),
            "display": str(_value(parts.get("display")) or ""),
            "date": str(_value(parts.get("date")) or ""),
            "reference": str(reference.get("reference") or "")}


# --- one order ------------------------------------------------------------------------------

@dataclass
class Detail:
    """One order with its decision and its Task's history."""

    order: dict[str, Any]
    task: dict[str, Any]
    state: str
    patient: dict[str, Any]
    decision: Decision
    history: list[dict[str, str]]
    notes: list[str]
    studies: list[str] = field(default_factory=list)
    reports: list[dict[str, str]] = field(default_factory=list)


def order_detail(store: Store, order_id: str) -> Detail:
    """The order, its Task, its Patient, its decision and its Task's versions.

    Raises
    ------
    NotFound
        When no such order exists, or it has no Task (a draft is not an order yet).
    """
    order = store.read("ServiceRequest", order_id)
    task = order_task(store, order_id)
    if task is None:
        raise NotFound(f"ServiceRequest/{order_id} has no order Task (not an active order)")
    patient_ref = str(order.get("subject", {}).get("reference", ""))
    patient = _read_reference(store, patient_ref)
    gid = guidance_id(order)
    guidance = _read_reference(store, f"GuidanceResponse/{gid}") if gid else None
    notes = [str(n.get("text")) for n in order.get("note", []) if n.get("text")]
    return Detail(order, task, state_of(store, task) or "received", patient or {},
                  read_decision(guidance), task_history(store, str(task["id"])), notes,
                  study_uids(store, order_id), order_reports(store, order_id))


def _based_on(store: Store, resource_type: str, order_id: str) -> list[dict[str, Any]]:
    """The resources of ``resource_type`` whose ``basedOn`` names the order (at most 20)."""
    params = [("based-on", f"ServiceRequest/{order_id}")]
    return store.search(spec_for(resource_type), params, count=20, with_total=False).matches


def study_uids(store: Store, order_id: str) -> list[str]:
    """The StudyInstanceUIDs of the order's ImagingStudies (``urn:dicom:uid`` identifiers,
    FHIR R4 ImagingStudy.identifier), for the image viewer's links."""
    return [str(identifier["value"]).removeprefix("urn:oid:")
            for study in _based_on(store, "ImagingStudy", order_id)
            for identifier in study.get("identifier", [])
            if identifier.get("system") == "urn:dicom:uid" and identifier.get("value")]


def order_reports(store: Store, order_id: str) -> list[dict[str, str]]:
    """The order's DiagnosticReports: ``id``, ``status`` and the code's text."""
    return [{"id": str(report["id"]), "status": str(report.get("status", "")),
             "title": str(report.get("code", {}).get("text") or "Report")}
            for report in _based_on(store, "DiagnosticReport", order_id)]


def _read_reference(store: Store, reference: str) -> dict[str, Any] | None:
    resource_type, _, resource_id = reference.partition("/")
    if not resource_id or not store.exists(resource_type, resource_id):
        return None
    return store.read(resource_type, resource_id)


def task_history(store: Store, task_id: str) -> list[dict[str, str]]:
    """Each version of the Task, oldest first: when, the state and the reason or note."""
    rows = []
    for _method, version in reversed(store.history("Task", task_id)):
        state = state_of(store, version) or ""
        rows.append({"when": str(version.get("lastModified") or version["meta"]["lastUpdated"]),
                     "state": STATES[state].display if state in STATES else state,
                     "reason": str((version.get("statusReason") or {}).get("text") or "")})
    return rows
