"""A radiologist's review of the candidate calcium lesions (issue 10 item 5; CONTRACT §5-6).

The preliminary report comes from automatic candidates (``calcium.Lesion``).
Two FHIR operations on the order's calcium-scoring DiagnosticReport let a
radiologist, through the staff app or a RIS (CONTRACT §6: everything through
FHIR), see the candidates and change them:

- ``GET /fhir/DiagnosticReport/{id}/$lesions`` (or POST without a body): a
  Parameters resource with one ``lesion`` per candidate (id, slice range,
  centre in patient LPS mm, largest area, peak HU, its Agatston, volume and
  mass, artery label, counted or not, who reviewed it), the ``score`` as the
  candidates now sum (total, per artery, CAC-DRS A/N), every ``decision`` so
  far, oldest first, and ``regeneration``: the jobs still rebuilding the report.
- ``POST /fhir/DiagnosticReport/{id}/$review`` with a Parameters body: one
  ``reviewer`` (``valueReference`` to an existing Practitioner) and one or more
  ``change`` parameters, each with parts ``lesion`` (valueString, a candidate
  id), ``action`` (valueCode ``reject``, ``accept`` or ``relabel``) and
  ``label`` (valueCode: an artery LM, LAD, LCX, RCA, a non-coronary class, or
  ``unassigned``; needed to relabel). The answer is the ``$lesions`` result
  with the changes applied.

Both need the token to allow ``update`` on DiagnosticReport (the radiology
scopes): the candidate list, bone and valve included, is working material for
those who may change the report, not for readers of it. A report that is not
``preliminary`` (signed off: ``final``, ``amended``, ``corrected``) is refused
with 409: after sign-off (``imaging_core.signoff``) the report changes only by
an amendment, which this operation does not make.

**Design.** Re-scoring from pixels and rebuilding the SR, SEG and PDF is long
work, so it is a job (CONVENTIONS), never done in the request. The request
checks the changes against the candidates, stores them (``LesionDecision``,
durable, in order, never rewritten), queues an analysis job
(``imaging_core.jobs``; idempotency key: the study's instance set plus
``review-{first decision id}``) and answers at once with the scores summed
again from the candidates (each carries its own share of every score, so the
sums are exact). The job scores the images again with every decision of the
order in order (``calcium.score(decisions=...)``), writes a new version of the
preliminary DiagnosticReport and of its Observations, a new SR, SEG and PDF,
and a Provenance whose agents are the reviewers (``author``) beside the
analyser. Lesion ids are stable for the same images, so decisions survive a
re-analysis; one whose lesion is gone after new images is named in the
report's quality notes, never silently dropped. The AuditEvent of each
``$review`` names the reviewer as an agent beside the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any, Literal, cast

from sqlmodel import Session, col, select

from core.errors import BadRequest, Conflict, NotFound, Unprocessable
from fhir.dates import instant, now_utc
from fhir.registry import Invocation, register_operation
from fhir.store import Store
from fhir.validation import valid_id
from imaging_core import calcium, jobs
from imaging_core.models import AnalysisJob, CalciumCandidates, LesionDecision

LESIONS_DEFINITION = "https://scanpath.example/fhir/OperationDefinition/DiagnosticReport-lesions"
REVIEW_DEFINITION = "https://scanpath.example/fhir/OperationDefinition/DiagnosticReport-review"
Action = Literal["reject", "accept", "relabel"]
ACTIONS: tuple[Action, ...] = ("reject", "accept", "relabel")
SIGNED_OFF = ("final", "amended", "corrected")
MAX_CHANGES = 1000  # per request; a study has far fewer candidates
_CHANGE_PARTS = {"lesion": "valueString", "action": "valueCode", "label": "valueCode"}


def register() -> None:
    """Serve ``$lesions`` and ``$review`` on DiagnosticReport (radiology scopes)."""
    register_operation("DiagnosticReport", "lesions", LESIONS_DEFINITION, lesions_operation,
                       interactions=("update",), affects_state=False)
    register_operation("DiagnosticReport", "review", REVIEW_DEFINITION, review_operation,
                       interactions=("update",))


# --- the operations -------------------------------------------------------------------

def lesions_operation(call: Invocation) -> dict[str, Any]:
    """``$lesions``: the report's candidates, scores, decisions and pending jobs.

    Raises NotFound (404) for a report that does not exist or has no scored
    calcium analysis.
    """
    store: Store = call.store
    store.read("DiagnosticReport", call.resource_id)
    row = _candidates_row(store.session, call.resource_id)
    decisions = decisions_for(store.session, row.service_request_id)
    return _parameters(current_lesions(row, decisions), decisions,
                       _pending_jobs(store.session, decisions))


def review_operation(call: Invocation) -> dict[str, Any]:
    """``$review``: record the changes, queue the regeneration, answer the new sums.

    Raises
    ------
    BadRequest (400)
        The body is not a Parameters resource of one ``reviewer`` and 1 to
        MAX_CHANGES ``change`` parameters shaped as the module says, or an
        action is not one of ACTIONS, or a relabel has no label.
    NotFound (404)
        No such report, or it has no scored calcium analysis.
    Conflict (409)
        The report is not ``preliminary`` (e.g. signed off).
    Unprocessable (422)
        The reviewer is no Practitioner here; a change names an unknown lesion
        or label, or accepts a lesion without an artery label.
    """
    store: Store = call.store
    report = store.read("DiagnosticReport", call.resource_id)
    if report.get("status") != "preliminary":
        raise Conflict(f"DiagnosticReport/{report['id']} is {report.get('status')}; only a "
                       "preliminary report is reviewed here: after sign-off, change the "
                       "report by an amendment (PUT or PATCH with status amended and a "
                       "reason, README)")
    row = _candidates_row(store.session, call.resource_id)
    reviewer, changes = parse_review(call.body)
    if not store.exists("Practitioner", reviewer.split("/", 1)[1]):
        raise Unprocessable(f"reviewer {reviewer} does not exist here", ["Parameters.parameter"])
    earlier = decisions_for(store.session, row.service_request_id)
    lesions = current_lesions(row, earlier)
    decisions = [_as_decision(lesion, action, reviewer, label)
                 for lesion, action, label in changes]
    try:
        calcium.apply_decisions(lesions, decisions)
    except ValueError as error:
        raise Unprocessable(str(error), ["Parameters.parameter"]) from error
    recorded = _record(store, row, decisions, call.client_id)
    call.agents.append(reviewer)
    everything = [*earlier, *recorded]
    return _parameters(lesions, everything, _pending_jobs(store.session, everything))


def parse_review(body: Any) -> tuple[str, list[tuple[str, str, str | None]]]:
    """``(reviewer reference, [(lesion id, action, label or None), ...])`` from a
    ``$review`` Parameters body; BadRequest (400) naming what is wrong."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("$review takes a Parameters resource", ["Parameters"])
    parameters = body.get("parameter")
    if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
        raise BadRequest("Parameters.parameter must be a list of parameters",
                         ["Parameters.parameter"])
    unknown = sorted({str(p.get("name")) for p in parameters} - {"reviewer", "change"})
    if unknown:
        raise BadRequest(f"$review takes reviewer and change parameters, not {unknown[0]}",
                         ["Parameters.parameter"])
    changes = [_change(p) for p in parameters if p.get("name") == "change"]
    if not 1 <= len(changes) <= MAX_CHANGES:
        raise BadRequest(f"$review takes 1 to {MAX_CHANGES} change parameters",
                         ["Parameters.parameter"])
    return _reviewer(parameters), changes


def _reviewer(parameters: list[dict[str, Any]]) -> str:
    """The one ``reviewer``: a ``Practitioner/{id}`` reference."""
    given = [p.get("valueReference") for p in parameters if p.get("name") == "reviewer"]
    reference = given[0].get("reference") if len(given) == 1 and isinstance(
        given[0], dict) else None
    kind, _, practitioner_id = str(reference).partition("/")
    if kind != "Practitioner" or not valid_id(practitioner_id):
        raise BadRequest("$review needs one reviewer parameter whose valueReference is "
                         "Practitioner/{id}, the radiologist making the changes",
                         ["Parameters.parameter"])
    return f"Practitioner/{practitioner_id}"


def _change(parameter: dict[str, Any]) -> tuple[str, str, str | None]:
    """One ``change``: its lesion id, action and optional label."""
    parts = parameter.get("part")
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise BadRequest("a change needs parts lesion, action and label",
                         ["Parameters.parameter.part"])
    values: dict[str, str] = {}
    for part in parts:
        name, kind = part.get("name"), _CHANGE_PARTS.get(str(part.get("name")))
        value = part.get(kind) if kind else None
        if kind is None or not isinstance(value, str) or not value or name in values:
            raise BadRequest(f"a change's parts are lesion (valueString), action and label "
                             f"(valueCode), each once; not {name!r}",
                             ["Parameters.parameter.part"])
        values[str(name)] = value
    action = values.get("action")
    if "lesion" not in values or action not in ACTIONS:
        raise BadRequest(f"a change needs a lesion and an action, one of {', '.join(ACTIONS)}; "
                         f"got {action!r}", ["Parameters.parameter.part"])
    if action == "relabel" and "label" not in values:
        raise BadRequest("a relabel needs a label", ["Parameters.parameter.part"])
    return values["lesion"], action, values.get("label")


# --- durable state ----------------------------------------------------------------------

def decisions_for(session: Session, order_id: str) -> list[LesionDecision]:
    """Every decision on an order's report, oldest first."""
    return list(session.exec(select(LesionDecision).where(
        col(LesionDecision.service_request_id) == order_id).order_by(
        col(LesionDecision.id))).all())


def as_decisions(rows: Iterable[LesionDecision]) -> list[calcium.Decision]:
    """The stored decisions as ``calcium.Decision``, in the order given."""
    return [_as_decision(r.lesion_id, r.action, r.reviewer, r.label) for r in rows]


def _as_decision(lesion: str, action: str, reviewer: str, label: str | None) -> calcium.Decision:
    """A ``calcium.Decision``; ``action`` is one of ACTIONS (checked where it came in)."""
    return calcium.Decision(lesion, cast(Action, action), reviewer, label)


def is_review_job(session: Session, job_id: int | None) -> bool:
    """Whether the job was queued by a review (rather than by images arriving)."""
    return session.exec(select(LesionDecision.id).where(
        col(LesionDecision.job_id) == job_id)).first() is not None


def save_candidates(session: Session, report_id: str, job: AnalysisJob,
                    result: calcium.CalciumResult | None, applied_through: int) -> None:
    """Keep the candidates a job scored, for ``$lesions`` and ``$review`` without pixels.

    A result that was not scored leaves none: there is nothing to review until
    the images are scored again.
    """
    row = session.get(CalciumCandidates, report_id)
    if result is None or not result.scorable:
        if row is not None:
            session.delete(row)
        return
    row = row or CalciumCandidates(
        diagnostic_report_id=report_id, service_request_id=job.service_request_id,
        study_uid=job.study_uid, job_id=job.id or 0, lesions="[]", updated_at=now_utc())
    row.job_id, row.study_uid, row.applied_through = job.id or 0, job.study_uid, applied_through
    row.lesions = json.dumps([asdict(lesion) for lesion in result.lesions])
    row.updated_at = now_utc()
    session.add(row)


def current_lesions(row: CalciumCandidates,
                    decisions: Sequence[LesionDecision]) -> list[calcium.Lesion]:
    """The candidates as last scored, with the decisions made since applied on top."""
    lesions = [calcium.Lesion(**{**item, "slices": tuple(item["slices"]),
                                 "centre_mm": tuple(item["centre_mm"])})
               for item in json.loads(row.lesions)]
    newer = [d for d in decisions if (d.id or 0) > row.applied_through]
    calcium.apply_decisions(lesions, as_decisions(newer))
    return lesions


def _candidates_row(session: Session, report_id: str) -> CalciumCandidates:
    row = session.get(CalciumCandidates, report_id)
    if row is None:
        raise NotFound(f"DiagnosticReport/{report_id} has no candidate calcium lesions: "
                       "it is not a scored calcium analysis")
    return row


def _record(store: Store, row: CalciumCandidates, decisions: Sequence[calcium.Decision],
            client_id: str) -> list[LesionDecision]:
    """Store the decisions and queue one job to regenerate the report for them."""
    now = now_utc()
    rows = [LesionDecision(service_request_id=row.service_request_id,
                           diagnostic_report_id=row.diagnostic_report_id,
                           study_uid=row.study_uid, lesion_id=d.lesion_id, action=d.action,
                           label=d.label, reviewer=d.reviewer, client_id=client_id,
                           recorded_at=now) for d in decisions]
    store.session.add_all(rows)
    store.session.flush()
    job_id = _queue(store.session, row, rows[0].id or 0)
    for decision in rows:
        decision.job_id = job_id
        store.session.add(decision)
    store.session.flush()
    return rows


def _queue(session: Session, row: CalciumCandidates, decision_id: int) -> int:
    """A queued analysis job of the study, for the analyser that made the candidates."""
    made_by = session.get(AnalysisJob, row.job_id)
    if made_by is None:
        raise Conflict(f"the analysis job {row.job_id} of this report is gone")
    return jobs.requeue(session, made_by, f"review-{decision_id}")


def _pending_jobs(session: Session, decisions: Sequence[LesionDecision]) -> list[AnalysisJob]:
    """Review jobs after the last one done: queued, running, or failed (said, never hidden).

    Each job applies every decision so far, so one done supersedes those before it.
    """
    ids = {d.job_id for d in decisions if d.job_id is not None}
    if not ids:
        return []
    found = list(session.exec(select(AnalysisJob).where(col(AnalysisJob.id).in_(ids))
                              .order_by(col(AnalysisJob.id))).all())
    last_done = max((j.id or 0 for j in found if j.status == "done"), default=0)
    return [j for j in found if (j.id or 0) > last_done]


# --- the answer -------------------------------------------------------------------------

def _parameters(lesions: Sequence[calcium.Lesion], decisions: Sequence[LesionDecision],
                pending: Sequence[AnalysisJob]) -> dict[str, Any]:
    """The Parameters resource both operations answer with."""
    return {"resourceType": "Parameters", "parameter": [
        _score(lesions), *(_lesion(lesion) for lesion in lesions),
        *(_decision(d) for d in decisions),
        *({"name": "regeneration", "part": [
            {"name": "job", "valueInteger": job.id or 0},
            {"name": "status", "valueCode": job.status}]} for job in pending)]}


def _score(lesions: Sequence[calcium.Lesion]) -> dict[str, Any]:
    """Scores summed from the counted candidates, per artery, with CAC-DRS A/N."""
    counted = [c for c in lesions if c.counted]
    agatston = sum(c.agatston for c in counted)
    vessels = calcium.cac_vessels(lesions)
    category = calcium.cac_drs(agatston)
    label = f"CAC-DRS A{category}" + ("" if vessels is None else f"/N{vessels}")
    parts: list[dict[str, Any]] = [
        {"name": "agatston", "valueDecimal": _decimal(agatston)},
        {"name": "volume-mm3", "valueDecimal": _decimal(sum(c.volume_mm3 for c in counted))},
        {"name": "lesion-count", "valueInteger": len(counted)},
        {"name": "cac-drs", "valueString": label}]
    if vessels is not None:
        parts.append({"name": "cac-vessels", "valueInteger": vessels})
        parts += [{"name": "artery", "part": [
            {"name": "code", "valueCode": artery},
            {"name": "agatston", "valueDecimal": _decimal(scores.agatston)},
            {"name": "volume-mm3", "valueDecimal": _decimal(scores.volume_mm3)},
            {"name": "lesion-count", "valueInteger": scores.lesion_count}]}
            for artery, scores in calcium.artery_scores(lesions).items()]
    return {"name": "score", "part": parts}


def _lesion(lesion: calcium.Lesion) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "id", "valueString": lesion.id},
        {"name": "label", "valueCode": lesion.label},
        {"name": "counted", "valueBoolean": lesion.counted},
        {"name": "first-slice", "valueInteger": lesion.slices[0]},
        {"name": "last-slice", "valueInteger": lesion.slices[1]},
        *({"name": f"centre-{axis}-mm", "valueDecimal": _decimal(value)}
          for axis, value in zip("xyz", lesion.centre_mm, strict=True)),
        {"name": "area-mm2", "valueDecimal": _decimal(lesion.area_mm2)},
        {"name": "peak-hu", "valueDecimal": _decimal(lesion.peak_hu)},
        {"name": "agatston", "valueDecimal": _decimal(lesion.agatston)},
        {"name": "volume-mm3", "valueDecimal": _decimal(lesion.volume_mm3)}]
    if lesion.mass_mg is not None:
        parts.append({"name": "mass-mg", "valueDecimal": _decimal(lesion.mass_mg)})
    if lesion.reviewed_by:
        parts.append({"name": "reviewed-by", "valueReference": {"reference": lesion.reviewed_by}})
    return {"name": "lesion", "part": parts}


def _decision(row: LesionDecision) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "id", "valueInteger": row.id or 0},
        {"name": "lesion", "valueString": row.lesion_id},
        {"name": "action", "valueCode": row.action},
        {"name": "reviewer", "valueReference": {"reference": row.reviewer}},
        {"name": "recorded", "valueInstant": instant(row.recorded_at)},
        {"name": "client", "valueString": row.client_id}]
    if row.label:
        parts.insert(3, {"name": "label", "valueCode": row.label})
    return {"name": "decision", "part": parts}


def _decimal(value: float) -> float:
    """Three decimals: finer than any score is reported, and stable in JSON."""
    return round(float(value), 3)


def decisions_json(decisions: Sequence[calcium.Decision]) -> str:
    """The decisions an analysis applied, for its Provenance."""
    return json.dumps([asdict(d) for d in decisions])
