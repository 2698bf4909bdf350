"""Sign-off and amendment of an analysis report (issues 11, 14; CONTRACT §6 "Sign-off").

One path for every analyser (calcium scoring, CTCA): nothing here depends on the kind.

A radiologist signs the order's DiagnosticReport off by updating it to
``final`` (PUT or PATCH, by a client with ``update`` on DiagnosticReport: the
RIS, the staff app), naming themselves in ``resultsInterpreter`` (one
reference to an existing Practitioner; R4: "the practitioner ... responsible
for the diagnostic report's conclusions and interpretations"). In the same
transaction this hook:

- drops the "preliminary result" sentence from ``conclusion`` and sets ``issued``;
- moves every Observation in ``result`` to ``final``;
- writes a Provenance (target the report version and its Observations,
  activity ``VRF`` verifier from v3-ParticipationType, agent ``verifier`` the
  Practitioner, ``onBehalfOf`` the radiology Organization);
- moves the order through the order workflow (``referral.orders.move``) to
  ``reported`` and then ``completed`` (the Task and the ServiceRequest follow);
- queues an analysis job (``reissue``) that issues the PDF, SR and SEG again
  without PRELIMINARY: the SR FINAL and VERIFIED, with VerifyingObserverSequence
  naming the radiologist (``reports.Signature``).

After sign-off a report never returns to ``preliminary`` (or ``registered``,
``partial``): 409. Any later change is an amendment: the new version's status
becomes ``amended`` (``corrected`` if the client says so), it must carry its
reason in the extension ``{SCANPATH_CANONICAL_BASE}/StructureDefinition/
amendment-reason`` (valueString; 422 without one, or with the previous
version's reason), and gets its own Provenance (activity ``UPDATE`` from
v3-DataOperation, ``reason`` the text) and re-issued outputs. Earlier
versions stay readable through ``_history``. ``entered-in-error`` stays open
(R4's way to retract a report).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from core.errors import Conflict, NotFound, Unprocessable
from core.settings import Settings
from fhir.dates import instant, now_utc
from fhir.store import Store, register_write_hook
from imaging_core import jobs, reports
from imaging_core.models import AnalysisJob
from imaging_core.review import SIGNED_OFF
from referral import orders
from referral.states import Actor

log = logging.getLogger(__name__)

NOT_YET_SIGNED = ("registered", "partial", "preliminary")
RETRACTED = "entered-in-error"
REISSUE = "reissue"  # the idempotency-key suffix of a job that issues the outputs again
REASON = "/StructureDefinition/amendment-reason"  # after the canonical base
# The next step the radiologist agreed for the patient, in words the patient reads on the
# report link's page (issue 13): an extension (valueString) on the signed version.
NEXT_STEP = "/StructureDefinition/patient-next-step"  # after the canonical base
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
VERIFIER = {"system": PARTICIPANT, "code": "verifier", "display": "Verifier"}
SIGN_OFF = {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "VRF", "display": "verifier"}
AMEND = {"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
         "code": "UPDATE", "display": "revise"}


def register() -> None:
    """Check every client write of a DiagnosticReport against sign-off and amendment."""
    register_write_hook("DiagnosticReport", on_report_write)


def on_report_write(store: Store, report: dict[str, Any],
                    previous: dict[str, Any] | None) -> None:
    """The write hook (module docstring); changes ``report`` in place.

    Raises
    ------
    Conflict (409)
        A signed-off report sent back to a status before sign-off, or an
        ``amended``/``corrected`` status on a report never signed off.
    Unprocessable (422)
        No single existing Practitioner in ``resultsInterpreter``; an amendment
        without a new reason.
    """
    if previous is None or orders.is_workflow_write(store, f"DiagnosticReport/{report['id']}"):
        return
    before, after = previous.get("status"), report.get("status")
    if before in SIGNED_OFF:
        _after_sign_off(store, report, previous)
    elif after == "final":
        _sign_off(store, report, previous)
    elif after in SIGNED_OFF:
        raise Conflict(f"DiagnosticReport/{report['id']} was never signed off: sign it off "
                       "first (status final)", ["DiagnosticReport.status"])


def _sign_off(store: Store, report: dict[str, Any], previous: dict[str, Any]) -> None:
    signer = _signer(store, report)
    if isinstance(report.get("conclusion"), str):
        report["conclusion"] = reports.final_conclusion(report["conclusion"])
    report["issued"] = instant(now_utc())
    version = _next_version(previous)
    results = _observations_follow(store, report)
    _provenance(store, report, version, results, signer, SIGN_OFF, None)
    order = _order(store, report)
    if order is not None:
        orders.move(store, order, "reported", Actor.RADIOLOGY)
        orders.move(store, order, "completed", Actor.RADIOLOGY)
    _reissue_outputs(store, report, version)
    log.info("report signed off", extra={"diagnostic_report_id": report["id"],
                                         "practitioner": signer})


def _after_sign_off(store: Store, report: dict[str, Any], previous: dict[str, Any]) -> None:
    before, after = previous.get("status"), report.get("status")
    if after == RETRACTED:
        return
    if after not in SIGNED_OFF:
        raise Conflict(f"DiagnosticReport/{report['id']} is {before}: a signed-off report "
                       f"never returns to {after}; change it by an amendment (status "
                       "amended, with its reason)", ["DiagnosticReport.status"])
    if _content(report) == _content(previous) and after in (before, "final"):
        return  # the same report sent again
    reason = _reason(store, report)
    if not reason or reason == _reason(store, previous):
        raise Unprocessable("A change after sign-off is an amendment and says why: give "
                            f"the extension {store.settings.canonical_base}{REASON} "
                            "(valueString) with this amendment's reason",
                            ["DiagnosticReport.extension"])
    if after == "final":
        report["status"] = "amended"
    signer = _signer(store, report)
    report["issued"] = instant(now_utc())
    version = _next_version(previous)
    _provenance(store, report, version, list(report.get("result", [])), signer, AMEND, reason)
    _reissue_outputs(store, report, version)
    log.info("signed-off report amended", extra={"diagnostic_report_id": report["id"],
                                                 "status": report["status"]})


def _content(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("meta", "status", "issued")}


def _reason(store: Store, report: dict[str, Any]) -> str | None:
    url = f"{store.settings.canonical_base}{REASON}"
    texts = [e.get("valueString") for e in report.get("extension", [])
             if isinstance(e, dict) and e.get("url") == url]
    return str(texts[-1]).strip() if texts and texts[-1] else None


def next_step(base: str, report: dict[str, Any]) -> str | None:
    """The patient's next step the signed ``report`` states (:data:`NEXT_STEP`), or None."""
    texts = [e.get("valueString") for e in report.get("extension", [])
             if isinstance(e, dict) and e.get("url") == f"{base}{NEXT_STEP}"]
    text = str(texts[-1] or "").strip() if texts else ""
    return text or None


def _signer(store: Store, report: dict[str, Any]) -> str:
    """``Practitioner/{id}`` of the one resultsInterpreter; 422 unless it exists."""
    refs = [str((r or {}).get("reference", "")) for r in report.get("resultsInterpreter", [])]
    if len(refs) != 1 or not refs[0].startswith("Practitioner/"):
        raise Unprocessable("Sign-off names the radiologist: resultsInterpreter holds one "
                            "reference to a Practitioner", ["DiagnosticReport.resultsInterpreter"])
    if not store.exists("Practitioner", refs[0].removeprefix("Practitioner/")):
        raise Unprocessable(f"{refs[0]} does not exist here",
                            ["DiagnosticReport.resultsInterpreter"])
    return refs[0]


def _next_version(previous: dict[str, Any]) -> str:
    return str(int(previous.get("meta", {}).get("versionId", "0")) + 1)


def _observations_follow(store: Store, report: dict[str, Any]) -> list[dict[str, str]]:
    """Every Observation of the report moved to ``final``; their references."""
    refs = [r for r in report.get("result", []) if isinstance(r, dict)
            and str(r.get("reference", "")).startswith("Observation/")]
    for ref in refs:
        observation_id = ref["reference"].removeprefix("Observation/")
        observation = store.read("Observation", observation_id)
        if observation.get("status") != "final":
            observation.pop("meta", None)
            store.update("Observation", observation_id, {**observation, "status": "final"})
    return refs


def _provenance(store: Store, report: dict[str, Any], version: str,
                results: list[dict[str, str]], signer: str, activity: dict[str, str],
                reason: str | None) -> None:
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "target": [{"reference": f"DiagnosticReport/{report['id']}/_history/{version}"},
                   *results],
        "recorded": instant(now_utc()), "activity": {"coding": [activity]},
        "agent": [{"type": {"coding": [VERIFIER]}, "who": {"reference": signer},
                   "onBehalfOf": {"reference":
                                  f"Organization/{orders.RADIOLOGY_ORGANIZATION}"}}]}
    if reason:
        provenance["reason"] = [{"text": reason}]
    store.create("Provenance", provenance, trusted=True)


def _order(store: Store, report: dict[str, Any]) -> dict[str, Any] | None:
    refs = [str(r.get("reference", "")) for r in report.get("basedOn", [])
            if str(r.get("reference", "")).startswith("ServiceRequest/")]
    try:
        return store.read("ServiceRequest", refs[0].removeprefix("ServiceRequest/")) \
            if refs else None
    except NotFound:
        return None


def _reissue_outputs(store: Store, report: dict[str, Any], version: str) -> None:
    """Queue the job that issues PDF, SR and SEG again as the signed version says."""
    made_by = store.session.exec(select(AnalysisJob).where(
        col(AnalysisJob.diagnostic_report_id) == report["id"],
        col(AnalysisJob.status) == "done").order_by(col(AnalysisJob.id).desc())).first()
    if made_by is None:
        log.warning("signed report has no analysis to issue again",
                    extra={"diagnostic_report_id": report["id"]})
        return
    jobs.requeue(store.session, made_by, f"{REISSUE}-{report['id']}-v{version}",
                 report_id=str(report["id"]))


def is_reissue(job: AnalysisJob) -> bool:
    """Whether ``job`` issues a signed report's outputs again (no new result)."""
    return f"|{REISSUE}-" in job.idempotency_key


def signature_for(session: Session, settings: Settings,
                  job: AnalysisJob) -> reports.Signature | None:
    """What a reissue job's outputs say (the report's current signed version); None for
    any other job, or when the report is no longer signed off (retracted)."""
    if not is_reissue(job) or not job.diagnostic_report_id:
        return None
    store = Store(session, settings)
    report = store.read("DiagnosticReport", job.diagnostic_report_id)
    if report.get("status") not in SIGNED_OFF:
        return None
    signer = store.read("Practitioner", _signer(store, report).removeprefix("Practitioner/"))
    return reports.Signature(
        status=str(report["status"]), verifier=_person_name(signer),
        organization=_organization_name(store), conclusion=str(report.get("conclusion", "")),
        signed_at=datetime.fromisoformat(str(report["issued"]).replace("Z", "+00:00")),
        reason=_reason(store, report) if report["status"] != "final" else None)


def _person_name(practitioner: dict[str, Any]) -> str:
    """The Practitioner's first name as DICOM PN ``Family^Given``; its id if it has none."""
    for name in practitioner.get("name", []):
        family, given = name.get("family"), " ".join(name.get("given", []))
        if family or given:
            return f"{family or ''}^{given}".rstrip("^")
    return f"Practitioner {practitioner['id']}"


def _organization_name(store: Store) -> str:
    try:
        organization = store.read("Organization", orders.RADIOLOGY_ORGANIZATION)
    except NotFound:
        return "Radiology department"
    return str(organization.get("name") or "Radiology department")
