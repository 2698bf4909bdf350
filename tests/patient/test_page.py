"""The patient's page of a real calcium report: analysed by the imaging core from the thorax
phantom, signed off in the staff app (with a next step) or by the RIS (without one).

Expected scores come from the phantom's geometry (tests/imaging_core/thorax.py), CAC-DRS
categories from Hecht 2018 (A1: Agatston 1-99, "mildly increased"; A0: 0, "very low").
"""

from __future__ import annotations

import pytest
from flask import render_template
from sqlmodel import Session

from core.db import engine_for
from fhir.store import Store
from patient import page
from patient.page import PatientReport, report_page
from tests.patient.conftest import NEXT_STEP, REASON_A, REASON_B, Pair, Signed


def _page(pair: Pair, signed: Signed) -> tuple[PatientReport, str]:
    with Session(engine_for(pair.settings.database_url)) as session:
        built = report_page(Store(session, pair.settings), signed.report_id, signed.version)
    with pair.app.test_request_context("/r/token-a"):
        html = render_template("patient/report.html", report=built, link_base="/r/token-a")
    return built, html


def test_the_score_matches_the_phantoms_truth(signed_pair: Pair) -> None:
    built, html = _page(signed_pair, signed_pair.a)
    truth = signed_pair.a.truth_agatston
    assert 1 <= truth < 100  # the phantom's plaque is A1 by geometry
    assert built.calcium is not None and built.calcium.scored
    assert abs(int(built.calcium.score) - truth) <= max(1.0, 0.1 * truth)
    assert built.calcium.category is not None and built.calcium.category.code == "A1"
    assert "mildly increased" in html
    assert "Calcium was found in 1 of the 4 main artery" in html


def test_the_page_says_why_what_next_and_who_signed(signed_pair: Pair) -> None:
    built, html = _page(signed_pair, signed_pair.a)
    assert REASON_A in html
    assert NEXT_STEP in html and built.next_step_from_radiologist
    assert "radiologist" in built.signed_by and "Test Radiologist" in built.signed_by
    assert built.signed_on != "Not available"
    assert "Radiology department" in html  # the performing organisation
    assert built.has_pdf and built.has_model and built.images
    for url in ("/r/token-a/images/1.png", "/r/token-a/model.glb", "/r/token-a/model.png",
                "/r/token-a/report.pdf", 'action="/r/token-a/close"'):
        assert url in html


def test_without_a_stated_next_step_the_gp_has_the_report(signed_pair: Pair) -> None:
    built, html = _page(signed_pair, signed_pair.b)
    assert not built.next_step_from_radiologist
    assert "has not written a next step" in html
    assert built.calcium is not None and built.calcium.score == "0"
    assert "very low" in html and "Ngozi Okafor, radiologist" in html
    assert REASON_B in html


def test_no_internal_identifier_and_nothing_of_the_other_patient(signed_pair: Pair) -> None:
    a, b = signed_pair.a, signed_pair.b
    for mine, other in ((a, b), (b, a)):
        _, html = _page(signed_pair, mine)
        spaced = " ".join([mine.nhs_number[:3], mine.nhs_number[3:6], mine.nhs_number[6:]])
        for identifier in [*mine.identifiers, spaced]:
            assert identifier not in html, identifier
        for leaked in [*other.identifiers, other.family, REASON_A if other is a else REASON_B]:
            assert leaked not in html, leaked
        assert mine.family not in html  # the page names nobody: the link is the patient's


def test_the_page_prints_the_score_as_the_signed_report_does(signed_pair: Pair) -> None:
    built, _ = _page(signed_pair, signed_pair.a)
    assert built.calcium is not None
    assert f"(Agatston) {built.calcium.score}:" in built.conclusion  # one number, not two


@pytest.mark.parametrize(("value", "shown"), [
    (308.7, "309"),   # whole points, rounded half up as a reader rounds
    (42.5, "43"),
    (99.6, "99.6"),   # 100 would read as CAC-DRS A2 (Hecht 2018: A1 is 1-99)
    (0.4, "0.4"),     # calcium present (A1), never "0"
    (0, "0"),
])
def test_the_score_is_rounded_without_crossing_a_category(value: float, shown: str) -> None:
    assert page._score({"valueQuantity": {"value": value}}) == shown


def test_a_coded_reason_without_words_is_shown_in_words() -> None:
    # SNOMED CT 29857009 |Chest pain| (shared/CODES.md, confirmed), sent without a display
    order = {"reasonCode": [{"coding": [{"system": "http://snomed.info/sct",
                                         "code": "29857009"}]}]}
    assert page._reason(order) == "Chest pain"
    unknown = {"reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}]}
    assert page._reason(unknown) == "Not available"
