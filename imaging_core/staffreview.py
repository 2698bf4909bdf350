"""What the staff app's calcium review and sign-off pages show and do (issue 12 items 5-6).

No Flask here (``imaging_core.staffviews`` serves the pages); every change goes
through the code the FHIR API runs, so a page and a RIS can never disagree:

- a lesion decision is ``review.review_operation`` (``$review``): the decision
  is stored, a job re-scores the images and rebuilds the report, SR, SEG and
  PDF, and writes a Provenance naming the reviewer;
- the listing is ``review.lesions_operation`` (``$lesions``);
- sign-off and amendment are ``Store.update`` of the DiagnosticReport, as a
  FHIR PUT, so ``imaging_core.signoff``'s write hook applies unchanged.

Each action is audited as the FHIR interaction would be (``fhir.audit``),
the client being ``staff:{username}`` and the radiologist's Practitioner an
agent. A staff user acts as one Practitioner: the one whose identifier is
``{canonical base}/NamingSystem/staff-username`` | username, created on the
first action (no schema change: the link is the identifier).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from core.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from fhir import audit
from fhir.registry import Invocation
from fhir.store import Store
from imaging_core import review
from imaging_core.signoff import NEXT_STEP, REASON, SIGNED_OFF

log = logging.getLogger(__name__)

ARTERIES = ("LM", "LAD", "LCX", "RCA")  # CONTRACT §5, {base}/CodeSystem/coronary-vessel
STAFF_USERNAME = "/NamingSystem/staff-username"  # after the canonical base
MAX_TEXT = 10_000  # characters of a conclusion or an amendment reason


@dataclass(frozen=True)
class Scores:
    """A total Agatston score, its per-artery scores and the CAC-DRS text (None: unknown)."""

    total: float | None
    arteries: dict[str, float | None]
    cac_drs: str | None


@dataclass(frozen=True)
class LesionRow:
    """One candidate lesion as ``$lesions`` lists it."""

    id: str
    label: str
    counted: bool
    first_slice: int
    last_slice: int
    centre_mm: tuple[float, float, float]
    area_mm2: float
    peak_hu: float
    agatston: float
    reviewed_by: str | None


@dataclass(frozen=True)
class ReviewState:
    """The review page: the report, its candidates, the scores as reported and as summed."""

    report: dict[str, Any]
    lesions: list[LesionRow]
    summed: Scores
    reported: Scores
    jobs: list[str] = field(default_factory=list)  # statuses of review jobs not yet done

    @property
    def rescoring(self) -> bool:
        """Whether a review's re-scoring is queued or running."""
        return any(status in ("queued", "running") for status in self.jobs)

    @property
    def failed(self) -> bool:
        """Whether a review's re-scoring failed (the report lacks a decision)."""
        return "failed" in self.jobs


# --- who acts ---------------------------------------------------------------------------

def practitioner_for(store: Store, username: str, display_name: str) -> str:
    """``Practitioner/{id}`` of the staff user, created on first use."""
    system = f"{store.settings.canonical_base}{STAFF_USERNAME}"
    words = display_name.split() or [username]
    name: dict[str, Any] = {"text": display_name or username, "family": words[-1]}
    if words[:-1]:
        name["given"] = words[:-1]
    written = store.create("Practitioner", {
        "resourceType": "Practitioner", "identifier": [{"system": system, "value": username}],
        "active": True, "name": [name]}, if_none_exist=f"identifier={system}|{username}")
    return f"Practitioner/{written.resource['id']}"


def staff_client(username: str) -> str:
    """The client id a staff user's actions are recorded under."""
    return f"staff:{username}"


def record(store: Store, interaction: str, entity: str, client_id: str,
           practitioner: str) -> None:
    """The AuditEvent the FHIR API would write for this interaction, the person an agent."""
    audit.record(store, audit.Interaction(interaction, resource_type="DiagnosticReport",
                                          client_id=client_id, entities=[entity],
                                          agents=[practitioner]))


# --- reading -----------------------------------------------------------------------------

def review_state(store: Store, report_id: str) -> ReviewState:
    """The review page's content; NotFound (404) unless the report has scored candidates."""
    answer = review.lesions_operation(Invocation(store, report_id, None, "staff"))
    params = answer["parameter"]
    score = next(p for p in params if p["name"] == "score")
    return ReviewState(
        report=store.read("DiagnosticReport", report_id),
        lesions=[_lesion_row(_parts(p)) for p in params if p["name"] == "lesion"],
        summed=_summed(score), reported=reported_scores(store, report_id),
        jobs=[str(_parts(p)["status"]) for p in params if p["name"] == "regeneration"])


def observations_of(store: Store, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The Observations in the report's ``result``, in its order (NotFound if one is gone)."""
    found = []
    for ref in report.get("result", []):
        kind, _, obs_id = str(ref.get("reference", "")).partition("/")
        if kind == "Observation":
            found.append(store.read("Observation", obs_id))
    return found


def reported_scores(store: Store, report_id: str) -> Scores:
    """Total, per-artery Agatston and CAC-DRS as the report's Observations say them."""
    report = store.read("DiagnosticReport", report_id)
    total: float | None = None
    arteries: dict[str, float | None] = {}
    drs: str | None = None
    for obs in observations_of(store, report):
        code, site = _measure(obs), _vessel(obs)
        value = obs.get("valueQuantity", {}).get("value")
        if code == "agatston-score" and site:
            arteries[site] = value
        elif code == "agatston-score":
            total = value
        elif code == "cac-drs":
            drs = obs.get("valueCodeableConcept", {}).get("text")
    return Scores(total, arteries, drs)


def _measure(obs: dict[str, Any]) -> str | None:
    return next((c.get("code") for c in obs.get("code", {}).get("coding", [])
                 if str(c.get("system", "")).endswith("/CodeSystem/measure")), None)


def _vessel(obs: dict[str, Any]) -> str | None:
    return next((c.get("code") for c in obs.get("bodySite", {}).get("coding", [])
                 if str(c.get("system", "")).endswith("/CodeSystem/coronary-vessel")), None)


def _parts(parameter: dict[str, Any]) -> dict[str, Any]:
    """A parameter's parts by name: each part's value, or its own parts."""
    return {p["name"]: next((v for k, v in p.items() if k.startswith("value")), p.get("part"))
            for p in parameter.get("part", [])}


def _lesion_row(parts: dict[str, Any]) -> LesionRow:
    reviewer = parts.get("reviewed-by")
    return LesionRow(
        id=parts["id"], label=parts["label"], counted=parts["counted"],
        first_slice=parts["first-slice"], last_slice=parts["last-slice"],
        centre_mm=(parts["centre-x-mm"], parts["centre-y-mm"], parts["centre-z-mm"]),
        area_mm2=parts["area-mm2"], peak_hu=parts["peak-hu"], agatston=parts["agatston"],
        reviewed_by=reviewer.get("reference") if isinstance(reviewer, dict) else None)


def _summed(score: dict[str, Any]) -> Scores:
    parts = _parts(score)
    arteries: dict[str, float | None] = {}
    for item in score["part"]:
        if item["name"] == "artery":
            artery = _parts(item)
            arteries[artery["code"]] = artery["agatston"]
    return Scores(parts["agatston"], arteries, parts["cac-drs"])


# --- changing ----------------------------------------------------------------------------

def change_lesion(store: Store, report_id: str, lesion_id: str, action: str,
                  label: str | None, practitioner: str, client_id: str) -> None:
    """One reviewer's decision on one lesion, through ``$review``; audited.

    Raises BadRequest (400) for an action not in ``review.ACTIONS`` or a relabel
    to anything but an artery; ``$review``'s own errors otherwise (404, 409, 422).
    """
    if action not in review.ACTIONS:
        raise BadRequest(f"The action must be one of {', '.join(review.ACTIONS)}")
    if action == "relabel" and label not in ARTERIES:
        raise BadRequest(f"Relabel to one of the arteries {', '.join(ARTERIES)}")
    part = [{"name": "lesion", "valueString": lesion_id}, {"name": "action", "valueCode": action}]
    if action == "relabel":
        part.append({"name": "label", "valueCode": str(label)})
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "reviewer", "valueReference": {"reference": practitioner}},
        {"name": "change", "part": part}]}
    call = Invocation(store, report_id, body, client_id)
    review.review_operation(call)
    record(store, "operation", f"DiagnosticReport/{report_id}", client_id, practitioner)
    log.info("lesion reviewed in the staff app",
             extra={"diagnostic_report_id": report_id, "lesion": lesion_id, "action": action})


def sign_off(store: Store, report_id: str, conclusion: str, version: str,
             practitioner: str, client_id: str, next_step: str = "") -> dict[str, Any]:
    """Sign the report off (status ``final``) as a FHIR PUT would; the new version.

    ``next_step`` (optional) is the patient's next step, kept as the ``NEXT_STEP``
    extension; empty leaves none. Raises BadRequest (400) for an empty or overlong
    conclusion; Conflict (409) while a review's re-scoring is not done, or when the
    report changed since ``version`` was read; the sign-off hook's errors.
    """
    _refuse_while_rescoring(store, report_id)
    report = store.read("DiagnosticReport", report_id)
    return _put(store, report_id, version, practitioner, client_id,
                status="final", conclusion=_text(conclusion, "conclusion"),
                extension=_with_next_step(store, report.get("extension", []), next_step))


def amend(store: Store, report_id: str, conclusion: str, reason: str, version: str,
          practitioner: str, client_id: str, next_step: str = "") -> dict[str, Any]:
    """Amend a signed-off report with its reason, as a FHIR PUT would; the new version.

    ``next_step`` replaces the patient's next step (empty: none).

    Raises BadRequest (400) without a conclusion or a reason; Conflict (409) for
    a report never signed off; the amendment hook's errors (422: same reason).
    """
    conclusion, reason = _text(conclusion, "conclusion"), _text(reason, "reason for the amendment")
    report = store.read("DiagnosticReport", report_id)
    if report.get("status") not in SIGNED_OFF:
        raise Conflict("Only a signed-off report is amended: sign it off first")
    url = f"{store.settings.canonical_base}{REASON}"
    extensions = _with_next_step(store, [e for e in report.get("extension", [])
                                         if e.get("url") != url], next_step)
    return _put(store, report_id, version, practitioner, client_id, status="amended",
                conclusion=conclusion, extension=[*extensions, {"url": url, "valueString": reason}])


def _with_next_step(store: Store, extensions: list[dict[str, Any]],
                    next_step: str) -> list[dict[str, Any]]:
    """``extensions`` with the patient's next step set to ``next_step`` (none if empty)."""
    url = f"{store.settings.canonical_base}{NEXT_STEP}"
    text = next_step.strip()
    if len(text) > MAX_TEXT:
        raise BadRequest(f"The next step for the patient is longer than {MAX_TEXT} characters")
    kept = [e for e in extensions if e.get("url") != url]
    return [*kept, {"url": url, "valueString": text}] if text else kept


def _text(value: str, name: str) -> str:
    text = value.strip()
    if not text:
        raise BadRequest(f"The {name} is empty: write it")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"The {name} is longer than {MAX_TEXT} characters")
    return text


def _refuse_while_rescoring(store: Store, report_id: str) -> None:
    try:
        state = review_state(store, report_id)
    except NotFound:
        return  # no candidates (not scored): nothing is being re-scored
    if state.rescoring or state.failed:
        raise Conflict("The report is being re-scored after a lesion review (or the "
                       "re-scoring failed): sign off once the new report is ready")


def _put(store: Store, report_id: str, version: str, practitioner: str, client_id: str,
         **changes: Any) -> dict[str, Any]:
    if not version.isdigit():
        raise BadRequest("The form names no report version: open the report again")
    report = store.read("DiagnosticReport", report_id)
    body = {k: v for k, v in report.items() if k != "meta"}
    body.update(changes, resultsInterpreter=[{"reference": practitioner}])
    try:
        written = store.update("DiagnosticReport", report_id, body, if_match=f'W/"{version}"')
    except PreconditionFailed as error:
        raise Conflict("The report has changed since you opened it (a new version was "
                       "written): open it again, check it, then sign or amend") from error
    versioned = f"DiagnosticReport/{report_id}/_history/{written.resource['meta']['versionId']}"
    record(store, "update", versioned, client_id, practitioner)
    return written.resource
