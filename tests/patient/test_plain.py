"""The patient's words for a calcium score, checked against CAC-DRS (Hecht HS et al.,
J Cardiovasc Comput Tomogr 2018;12:185-191, Table 2) and built into a page from
hand-made reports: every category, a not-scorable scan, a missing Observation, and a
scan that is not calcium scoring (the conclusion as written)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, render_template
from sqlmodel import Session

from core.db import engine_for
from core.errors import NotFound
from core.settings import Settings
from fhir.store import Store
from patient import plain
from patient.page import report_page

# Hecht 2018, Table 2, as the paper states it: Agatston range and risk of a
# cardiovascular event; treatment: A0 statin not recommended, A1 moderate-intensity
# statin, A2 moderate- to high-intensity statin plus aspirin, A3 high-intensity statin
# plus aspirin.
HECHT: dict[str, tuple[str, str, bool, bool]] = {  # range, risk, statin, aspirin
    "A0": ("0", "very low", False, False),
    "A1": ("1 to 99", "mildly increased", True, False),
    "A2": ("100 to 299", "moderately increased", True, True),
    "A3": ("300 or more", "moderately to severely increased", True, True),
}


@pytest.mark.parametrize("code", sorted(HECHT))
def test_each_category_says_what_hecht_2018_says(code: str) -> None:
    scores, risk, statin, aspirin = HECHT[code]
    category = plain.CATEGORIES[code]
    assert category.scores == scores
    assert f"risk of heart disease, such as a heart attack, is {risk}." in category.meaning
    assert "Hecht" in category.source and "2018" in category.source
    suggests_statin = "suggests" in category.treatment and "statin" in category.treatment
    assert suggests_statin is statin
    assert ("aspirin" in category.treatment) is aspirin
    if aspirin:  # never an instruction to take it: the GP decides
        assert "Do not start taking aspirin without talking to your GP" in category.treatment


def test_sentences_are_short() -> None:
    """NHS content style: short sentences (25 words at most here)."""
    texts = [t for c in plain.CATEGORIES.values() for t in (c.meaning, c.treatment)]
    texts += [plain.WHAT_CALCIUM_SCORING_IS.text, plain.WHAT_THE_SCORE_IS.text,
              plain.NEXT_STEP_NOT_STATED.text, plain.unscorable_text("metal streaks")]
    longest = max(len(s.split()) for t in texts for s in t.split(". "))
    assert longest <= 25


@pytest.mark.parametrize(("count", "expected"), [
    (None, "could not tell"), (0, "None of the 4"), (1, "in 1 of the 4 main artery"),
    (3, "in 3 of the 4 main arteries")])
def test_arteries_in_words(count: int | None, expected: str) -> None:
    assert expected in plain.arteries_text(count)


@pytest.mark.parametrize(("reason", "words"), [
    ("contrast: a bright region of 120 mL at median 310 HU", "contrast dye"),
    ("metal streaks cross the heart: 12.0 % of the heart", "Metal in your chest"),
    ("the field of view cuts the heart: it reaches the top", "whole of your heart"),
    ("slice thickness 1 mm outside the accepted 2.5-3 mm", "standard way"),
    ("something new", "could not be measured reliably")])
def test_not_scorable_says_why_in_plain_words(reason: str, words: str) -> None:
    text = plain.unscorable_text(reason)
    assert text.startswith("We could not measure your calcium score.")
    assert words in text
    assert "does not mean your arteries are clear" in text
    assert "report below says what happens next" in text
    assert "HU" not in text and "mm" not in text  # no jargon of the reason leaks


# --- built into a page from hand-made reports ---------------------------------------------

BASE = "https://scanpath.example/fhir"


def _observation(subject: dict[str, str], code: str, **value: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "subject": subject,
            "code": {"coding": [{"system": f"{BASE}/CodeSystem/measure", "code": code}]},
            **value}


def _drs(subject: dict[str, str], category: str, vessels: int) -> dict[str, Any]:
    return _observation(subject, "cac-drs", valueCodeableConcept={"coding": [
        {"system": f"{BASE}/CodeSystem/cac-drs", "code": category}]}, component=[{
            "code": {"coding": [{"system": f"{BASE}/CodeSystem/measure",
                                 "code": "cac-vessels"}]}, "valueInteger": vessels}])


@pytest.fixture
def page_of(settings: Settings, app: Flask) -> Callable[..., tuple[Any, str]]:
    """``page_of(observations, code=..., conclusion=...)``: a signed report written
    straight to the store; its PatientReport and rendered page."""

    def make(observations: Callable[[dict[str, str]], list[dict[str, Any]]],
             code: dict[str, Any] | None = None, conclusion: str = "As written.",
             status: str = "final") -> tuple[Any, str]:
        with Session(engine_for(settings.database_url)) as session:
            store = Store(session, settings)
            patient = store.create("Patient", {"resourceType": "Patient"}).resource
            subject = {"reference": f"Patient/{patient['id']}"}
            refs = [{"reference": f"Observation/{store.create('Observation', o).resource['id']}"}
                    for o in observations(subject)]
            report = store.create("DiagnosticReport", {
                "resourceType": "DiagnosticReport", "status": status, "subject": subject,
                "code": code or {"coding": [{"system": f"{BASE}/CodeSystem/procedure",
                                             "code": "CT-CAC"}]},
                "issued": "2026-12-03T10:00:00Z", "result": refs,
                "conclusion": conclusion}).resource
            session.commit()
            built = report_page(store, report["id"], report["meta"]["versionId"])
        with app.test_request_context("/r/test"):
            html = render_template("patient/report.html", report=built, link_base="/r/test")
        return built, html

    return make


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("score", "category", "vessels"), [
    (0, "A0", 0), (42.3, "A1", 1), (150, "A2", 2), (412, "A3", 4)])
def test_each_category_on_the_page(page_of: Callable[..., tuple[Any, str]], score: float,
                                   category: str, vessels: int) -> None:
    built, html = page_of(lambda s: [
        _observation(s, "agatston-score", valueQuantity={"value": score}),
        _drs(s, category, vessels)])
    assert built.calcium.score == f"{score:.0f}"
    assert HECHT[category][1] in html
    assert built.calcium.arteries == plain.arteries_text(vessels)
    assert f"CAC-DRS {category}" in html


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_not_scorable_on_the_page(page_of: Callable[..., tuple[Any, str]]) -> None:
    absent = {"dataAbsentReason": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
        "code": "not-performed"}], "text": "Not scorable: contrast: a bright region"}}
    built, html = page_of(lambda s: [_observation(s, "agatston-score", **absent),
                                     _drs(s, "A0", 0) | absent],
                          conclusion="The scan could not be scored. Repeat without contrast.")
    assert not built.calcium.scored and built.calcium.category is None
    assert "contrast dye" in html and "Repeat without contrast." in html
    assert "very low" not in html and "No calcium was found" not in html


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_missing_observation_is_not_available_never_normal(
        page_of: Callable[..., tuple[Any, str]]) -> None:
    built, html = page_of(lambda s: [])  # a calcium report whose Observations are missing
    assert built.calcium.score == "Not available"
    assert "Not available" in html
    for normal in ("very low", "No calcium was found", "None of the 4", "normal"):
        assert normal not in html.lower().replace("Not available".lower(), "")


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_another_procedure_shows_the_conclusion_as_written(
        page_of: Callable[..., tuple[Any, str]]) -> None:
    ctca = {"coding": [{"system": f"{BASE}/CodeSystem/procedure", "code": "CTCA"}],
            "text": "CT coronary angiography"}
    written = "Mild non-obstructive plaque in the proximal LAD (CAD-RADS 2)."
    built, html = page_of(lambda s: [], code=ctca, conclusion=written)
    assert built.calcium is None
    assert written in html and "CT coronary angiography" in html
    assert "calcium score" not in html.lower()


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_preliminary_version_is_never_a_page(
        page_of: Callable[..., tuple[Any, str]]) -> None:
    with pytest.raises(NotFound):
        page_of(lambda s: [], status="preliminary")


# --- coronary CT angiography (CTCA) and a kind the page does not know ---------------------

# CAD-RADS 2.0 (Cury RC et al., J Cardiovasc Comput Tomogr 2022;16:536-557, Table 2), the
# range each category stands for, as a patient reads it here.
CURY: dict[str, str] = {"0": "No plaque and no narrowing", "1": "less than 25 %",
                        "2": "25 to 49 %", "3": "50 to 69 %", "4A": "70 to 99 %",
                        "4B": "left main artery", "5": "completely blocked",
                        "N": "not clear enough"}
CTCA_KEY = {"coding": [{"system": f"{BASE}/CodeSystem/procedure", "code": "CTCA"}]}
CALCIUM_WORDS = ("calcium", "agatston", "cac-drs")


def _cad_rads(subject: dict[str, str], **value: Any) -> dict[str, Any]:
    return _observation(subject, "cad-rads", **value)


def _ffr(subject: dict[str, str], vessel: str, **value: Any) -> dict[str, Any]:
    site = {"coding": [{"system": f"{BASE}/CodeSystem/coronary-vessel", "code": vessel}]}
    return _observation(subject, "ffr-ct", bodySite=site, **value)


def _absent(code: str, text: str) -> dict[str, Any]:
    return {"dataAbsentReason": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": code}],
        "text": text}}


def test_every_cad_rads_category_has_plain_words_of_its_range() -> None:
    assert set(plain.CAD_RADS) == set(CURY)
    for code, words in CURY.items():
        assert words in plain.CAD_RADS[code], code
    longest = max(len(s.split()) for t in plain.CAD_RADS.values() for s in t.split(". "))
    assert longest <= 25  # NHS content style: short sentences


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_ctca_page_gives_the_group_and_what_was_not_checked(
        page_of: Callable[..., tuple[Any, str]]) -> None:
    built, html = page_of(lambda s: [
        _cad_rads(s, valueCodeableConcept={"coding": [
            {"system": f"{BASE}/CodeSystem/cad-rads", "code": "4A"}]}),
        *[_ffr(s, v, valueQuantity={"value": 0.9}) for v in ("LM", "LAD", "LCX")],
        _ffr(s, "RCA", **_absent("not-performed", "RCA was not found: not assessed"))],
        code=CTCA_KEY, conclusion="Severe LAD stenosis.")
    assert built.calcium is None and built.ctca is not None
    assert "CAD-RADS 4A" in html and CURY["4A"] in html
    assert "the right coronary artery" in html and "does not mean it is clear" in html
    assert "Severe LAD stenosis." in html
    assert not any(word in html.lower() for word in CALCIUM_WORDS)


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_ctca_that_could_not_be_analysed_is_never_clear(
        page_of: Callable[..., tuple[Any, str]]) -> None:
    why = "Not analysable: no contrast in the aortic root (45 HU)"
    built, html = page_of(lambda s: [
        _cad_rads(s, **_absent("not-performed", why)),
        *[_ffr(s, v, **_absent("not-performed", why)) for v in ("LM", "LAD", "LCX", "RCA")]],
        code=CTCA_KEY)
    assert built.ctca is not None and built.ctca.category is None
    assert "could not check the arteries" in html and "does not mean your arteries are clear" \
        in html
    assert "CAD-RADS 0" not in html and "No plaque" not in html
    assert not any(word in html.lower() for word in CALCIUM_WORDS)


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_kind_the_page_does_not_know_is_left_to_the_gp(
        page_of: Callable[..., tuple[Any, str]]) -> None:
    written = "Small pleural effusion on the left."
    built, html = page_of(lambda s: [], code={"text": "CT chest"}, conclusion=written)
    assert built.calcium is None and built.ctca is None
    assert plain.RESULT_FROM_GP.text in html and written in html
    assert not any(word in html.lower() for word in CALCIUM_WORDS)
    assert "CAD-RADS" not in html
