"""Sign-off and amendment (issue 11 item 4; CONTRACT §6 "Sign-off").

The RIS (``demo-radiology``) signs the analysed report off with PUT or JSON
Patch, naming the radiologist in ``resultsInterpreter``; jobs run in process.
What a user would notice: the report, its Observations, PDF (pdftotext) and
SR no longer say PRELIMINARY; the SR is verified by the radiologist; the
order's Task and ServiceRequest are completed; later changes are ``amended``
versions with their reason; a signed report never goes back. SQLite and
PostgreSQL.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from core.db import engine_for
from core.settings import Settings, parse_destination
from imaging_core import pacs
from imaging_core.models import AnalysisJob, PacsDelivery
from imaging_core.reports import (
    PRELIMINARY_BANNER,
    Signature,
    build_encapsulated_pdf,
    build_seg,
    build_sr,
)
from tests.imaging_core.test_completion import (  # noqa: F401
    analyse,
    chest_series,
    placed,
    quick,
    reports,
    send,
)
from tests.imaging_core.test_reports import (  # noqa: F401
    PDFTOTEXT,
    Case,
    _dciodvfy_errors,
    _pdf_text,
    needs_dciodvfy,
    scored,
)
from tests.imaging_core.test_review import latest_sr, pdf_of, run_queued
from tests.referral.moves import GP, RIS, order_status, state, task_of

Headers = Callable[..., dict[str, str]]
JSON_PATCH = "application/json-patch+json"
REASON = "https://scanpath.example/fhir/StructureDefinition/amendment-reason"


@pytest.fixture
def analysed(quick: Settings, client: FlaskClient,  # noqa: F811
             auth_headers: Headers) -> dict[str, Any]:
    """The preliminary report of an analysed calcium-scoring order."""
    order_id, accession = placed(client, auth_headers)
    send(quick, chest_series(accession)[0])  # a thorax: scored, with Observations
    assert len(analyse(quick)) == 1
    [report] = reports(client, auth_headers, order_id)
    assert report["status"] == "preliminary"
    return report


def put(client: FlaskClient, auth_headers: Headers, report: dict[str, Any],
        client_id: str = RIS, **changes: Any) -> Any:
    body = {k: v for k, v in {**report, **changes}.items() if k != "meta"}
    return client.put(f"/fhir/DiagnosticReport/{report['id']}", json=body,
                      headers=auth_headers(client_id))


def signer(reference: str) -> list[dict[str, str]]:
    return [{"reference": reference}]


def pdf_text(client: FlaskClient, auth_headers: Headers, report: dict[str, Any],
             tmp_path: Path) -> str:
    binary = client.get(f"/fhir/{pdf_of(report)}", headers={
        **auth_headers(RIS), "Accept": "application/fhir+json"}).get_json()
    return _pdf_text(base64.b64decode(binary["data"]), tmp_path)[0]


def observation_statuses(client: FlaskClient, auth_headers: Headers,
                         report: dict[str, Any]) -> set[str]:
    return {client.get(f"/fhir/{ref['reference']}", headers=auth_headers(RIS))
            .get_json()["status"] for ref in report["result"]}


def test_the_signed_outputs_are_owed_to_the_pacs(
        quick: Settings, client: FlaskClient, auth_headers: Headers,  # noqa: F811
        analysed: dict[str, Any], practitioner: Callable[[str], str]) -> None:
    destination = parse_destination("PACS@127.0.0.1:11112")
    sending = quick.model_copy(update={"dicom_destinations": [destination]})
    signed = put(client, auth_headers, analysed, status="final",
                 resultsInterpreter=signer(practitioner("Jones")))
    assert signed.status_code == 200, signed.get_json()
    run_queued(sending)  # the reissue job
    with Session(engine_for(quick.database_url)) as session:
        newest = pacs.latest_objects(session, analysed["id"])
        owed = session.exec(select(PacsDelivery).where(
            col(PacsDelivery.result_object_id).in_([o.id for o in newest]))).all()
        reissue = session.get(AnalysisJob, newest[0].job_id)
    assert reissue is not None and "reissue" in reissue.idempotency_key
    assert {"pdf", "sr"} <= {o.kind for o in newest}  # and the SEG when calcium counted
    assert [(d.destination, d.status) for d in owed] == [(str(destination), "pending")] * \
        len(newest)


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) not installed")
def test_sign_off_by_put_makes_everything_final(
        quick: Settings, client: FlaskClient, auth_headers: Headers,  # noqa: F811
        analysed: dict[str, Any], practitioner: Callable[[str], str], tmp_path: Path) -> None:
    assert PRELIMINARY_BANNER in pdf_text(client, auth_headers, analysed, tmp_path)
    radiologist = practitioner("Jones")
    signed = put(client, auth_headers, analysed, status="final",
                 resultsInterpreter=signer(radiologist))
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["status"] == "final"
    assert "preliminary" not in signed.get_json()["conclusion"].lower()
    assert observation_statuses(client, auth_headers, analysed) == {"final"}
    order_id = analysed["basedOn"][0]["reference"].removeprefix("ServiceRequest/")
    assert state(task_of(client, auth_headers, order_id)) == "completed"
    assert order_status(client, auth_headers, order_id) == "completed"
    provenance = client.get(f"/fhir/Provenance?target=DiagnosticReport/{analysed['id']}",
                            headers=auth_headers(RIS)).get_json()
    assert any(agent["who"] == {"reference": radiologist}
               for entry in provenance["entry"] for agent in entry["resource"]["agent"])

    run_queued(quick)  # the PDF, SR and SEG issued again
    [report] = reports(client, auth_headers, order_id)
    assert report["status"] == "final" and pdf_of(report) != pdf_of(analysed)
    text = pdf_text(client, auth_headers, report, tmp_path)
    assert "PRELIMINARY" not in text.upper()
    assert "FINAL - verified by Jones, Sam" in text
    sr = latest_sr(quick)
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == \
        ("COMPLETE", "VERIFIED", "FINAL")
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "Jones^Sam"
    assert not any("preliminary" in t.lower() for t in sr_texts(sr))  # the signed wording
    assert "preliminary" not in latest_sr(quick, "SEG").SeriesDescription

    amended = put(client, auth_headers, report, conclusion="Calcium in the LAD.", extension=[
        {"url": REASON, "valueString": "Artery named"}])
    assert amended.status_code == 200, amended.get_json()
    run_queued(quick)  # issued again, as amended
    [report] = reports(client, auth_headers, order_id)
    text = pdf_text(client, auth_headers, report, tmp_path)
    assert "AMENDED - verified by Jones, Sam" in text and "Amended: Artery named" in text
    assert "Calcium in the LAD." in text and "PRELIMINARY" not in text.upper()
    assert latest_sr(quick).VerificationFlag == "VERIFIED"


def test_sign_off_by_json_patch(
        client: FlaskClient, auth_headers: Headers, analysed: dict[str, Any],
        practitioner: Callable[[str], str]) -> None:
    operations = [{"op": "replace", "path": "/status", "value": "final"},
                  {"op": "add", "path": "/resultsInterpreter",
                   "value": signer(practitioner("Patel"))}]
    signed = client.patch(f"/fhir/DiagnosticReport/{analysed['id']}", json=operations,
                          headers=auth_headers(RIS, Content_Type=JSON_PATCH))
    assert signed.status_code == 200, signed.get_json()
    assert signed.get_json()["status"] == "final"
    assert observation_statuses(client, auth_headers, analysed) == {"final"}


def test_sign_off_names_an_existing_radiologist(
        client: FlaskClient, auth_headers: Headers, analysed: dict[str, Any]) -> None:
    assert put(client, auth_headers, analysed, status="final").status_code == 422
    assert put(client, auth_headers, analysed, status="final",
               resultsInterpreter=signer("Practitioner/nobody")).status_code == 422
    assert observation_statuses(client, auth_headers, analysed) == {"preliminary"}


def test_a_gp_cannot_sign_off(client: FlaskClient, auth_headers: Headers,
                              analysed: dict[str, Any],
                              practitioner: Callable[[str], str]) -> None:
    refused = put(client, auth_headers, analysed, client_id=GP, status="final",
                  resultsInterpreter=signer(practitioner("Jones")))
    assert refused.status_code == 403
    assert refused.get_json()["resourceType"] == "OperationOutcome"


def test_final_never_returns_to_preliminary_and_changes_are_amendments(
        client: FlaskClient, auth_headers: Headers, analysed: dict[str, Any],
        practitioner: Callable[[str], str]) -> None:
    radiologist = signer(practitioner("Jones"))
    signed = put(client, auth_headers, analysed, status="final",
                 resultsInterpreter=radiologist).get_json()
    back = put(client, auth_headers, signed, status="preliminary")
    assert back.status_code == 409 and back.get_json()["resourceType"] == "OperationOutcome"
    patched = client.patch(f"/fhir/DiagnosticReport/{signed['id']}", json=[
        {"op": "replace", "path": "/status", "value": "preliminary"}],
        headers=auth_headers(RIS, Content_Type=JSON_PATCH))
    assert patched.status_code == 409

    wording = "Calcium in the LAD only; no other finding."
    silent = put(client, auth_headers, signed, conclusion=wording)
    assert silent.status_code == 422  # a change after sign-off says why
    amended = put(client, auth_headers, signed, conclusion=wording, extension=[
        {"url": REASON, "valueString": "Conclusion reworded after discussion"}])
    assert amended.status_code == 200, amended.get_json()
    body = amended.get_json()
    assert (body["status"], body["conclusion"]) == ("amended", wording)
    history = client.get(f"/fhir/DiagnosticReport/{signed['id']}/_history",
                         headers=auth_headers(RIS)).get_json()
    statuses = [e["resource"]["status"] for e in history["entry"]]
    assert statuses[0] == "amended" and "final" in statuses and "preliminary" in statuses
    provenance = client.get(f"/fhir/Provenance?target=DiagnosticReport/{signed['id']}",
                            headers=auth_headers(RIS)).get_json()
    reasons = [r.get("text") for e in provenance["entry"] for r in e["resource"].get("reason", [])]
    assert "Conclusion reworded after discussion" in reasons
    assert put(client, auth_headers, body, status="preliminary").status_code == 409


@needs_dciodvfy
def test_the_signed_sr_and_seg_are_valid_dicom(scored: Case, tmp_path: Path) -> None:  # noqa: F811
    """dicom3tools' dciodvfy finds no error in the verified SR (VerifyingObserverSequence,
    PS3.3 C.17.2), the final SEG or the verified Encapsulated PDF."""
    signature = Signature("final", "Jones^Sam", "Radiology department",
                          datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "Calcium score 205.")
    sr = build_sr(scored.sources, scored.volume, scored.result, signature=signature)
    observer = sr.VerifyingObserverSequence[0]
    assert (observer.VerifyingObserverName, observer.VerificationDateTime) == \
        ("Jones^Sam", "20261201093000")
    assert _dciodvfy_errors(sr, tmp_path / "sr.dcm") == []
    seg = build_seg(scored.sources, scored.volume, scored.result, signature=signature)
    assert seg is not None and seg.SeriesDescription == "Calcium segmentation (final)"
    assert _dciodvfy_errors(seg, tmp_path / "seg.dcm") == []
    document = build_encapsulated_pdf(scored.sources, b"%PDF-1.4 signed", signature=signature)
    assert (document.VerificationFlag, document.SeriesDescription) == \
        ("VERIFIED", "Calcium score report (final)")
    assert _dciodvfy_errors(document, tmp_path / "pdf.dcm") == []


def sr_texts(sr: Any) -> list[str]:
    """Every TEXT content item's value in the SR's content tree, depth first."""
    found = []
    for item in sr.get("ContentSequence", []):
        if item.get("ValueType") == "TEXT":
            found.append(str(item.TextValue))
        found += sr_texts(item)
    return found
