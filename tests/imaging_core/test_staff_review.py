"""Staff pages: calcium lesion review and report sign-off (issue 12 items 5-6).

The labelled three-cylinder phantom of ``test_review`` (LAD cylinder A, RCA
cylinder B, bone C, each expected score from its geometry alone, never the
scorer's output) is analysed; a radiologist then works through the pages with
the Flask client, as a browser would post the forms (CSRF token included),
and what a user would notice is checked: the scores on the page, the report's
Observations, its status, its Provenance and who it names, the refusals
(403 for a radiographer, 400 without a CSRF token or a reason). One Playwright
test drives Chromium through the same steps and runs axe-core on both pages.
"""

# ruff: noqa: F811  (the fixtures imported from test_review are these tests' parameters)
from __future__ import annotations

import io
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from pydicom.uid import generate_uid

from core.settings import Settings
from tests.conftest import serving
from tests.imaging_core.test_completion import analyse, placed, quick, reports, send  # noqa: F401
from tests.imaging_core.test_review import (
    PHANTOM,
    A,
    B,
    C,
    alone,
    current,
    labelled,  # noqa: F401
    report,  # noqa: F401
    run_queued,
    scores,
)
from tests.imaging_core.thorax import build, scan_changed, thorax_42
from tests.imaging_core.thorax import datasets as thorax_datasets
from tests.staff.conftest import (
    axe_violations,
    browser,  # noqa: F401  (fixture)
    create_staff_user,
    log_in,
)

Headers = Callable[..., dict[str, str]]
STAFF_SYSTEM = "https://scanpath.example/fhir/NamingSystem/staff-username"
REASON = "https://scanpath.example/fhir/StructureDefinition/amendment-reason"


# --- a browser's view, without the browser --------------------------------------------

class Marked(HTMLParser):
    """The text of every element carrying ``data-{name}``, as (attribute value, text)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.found, self._open = f"data-{name}", [], []  # type: ignore[var-annotated]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        value = dict(attrs).get(self.name)
        self._open.append((tag, value, []) if value is not None else (tag, None, None))

    def handle_data(self, data: str) -> None:
        for _, _, texts in self._open:
            if texts is not None:
                texts.append(data)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            opened, value, texts = self._open.pop()
            if texts is not None:
                self.found.append((value, " ".join("".join(texts).split())))
            if opened == tag:
                break


def marked(html: str, name: str) -> list[tuple[str, str]]:
    parser = Marked(name)
    parser.feed(html)
    return list(parser.found)


def page_scores(html: str) -> dict[str, list[str]]:
    """Each score row's cells, left to right: {"total": [reported, summed], ...}."""
    out: dict[str, list[str]] = {}
    for key, text in marked(html, "score"):
        out.setdefault(key, []).append(text)
    return out


def lesion_ids(html: str) -> dict[str, str]:
    """Lesion id by its label, as the review page lists them."""
    ids = [v for v, _ in marked(html, "lesion")]
    labels = [t for k, t in marked(html, "field") if k == "label"]
    return dict(zip(labels, ids, strict=True))


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def login(client: FlaskClient, settings: Settings, role: str) -> str:
    """Create a staff user of ``role`` and log the client in through the form; its name."""
    username, password = create_staff_user(settings, role)
    assert log_in(client, username, password).status_code == 303
    return username


def post_form(client: FlaskClient, page: str, target: str, **fields: str) -> Any:
    """Post a form of ``page`` to ``target`` with the page's CSRF token, as a browser would."""
    token = csrf(client.get(page).get_data(as_text=True))
    return client.post(target, data={"csrf_token": token, **fields})


def practitioner_of(client: FlaskClient, auth_headers: Headers, username: str) -> str:
    found = client.get(f"/fhir/Practitioner?identifier={STAFF_SYSTEM}|{username}",
                       headers=auth_headers("demo-admin")).get_json()
    [entry] = found["entry"]
    return f"Practitioner/{entry['resource']['id']}"


def provenance_agents(client: FlaskClient, auth_headers: Headers,
                      report_id: str) -> list[list[str]]:
    found = client.get(f"/fhir/Provenance?target=DiagnosticReport/{report_id}",
                       headers=auth_headers("demo-radiology")).get_json()
    return [[a["who"].get("reference") for a in e["resource"]["agent"]]
            for e in found.get("entry", [])]


def number(text: str) -> float:
    return float(text)


# --- lesion review ----------------------------------------------------------------------

def test_rejecting_a_counted_lesion_drops_the_total_by_its_geometric_score(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any]) -> None:
    username = login(client, labelled, "radiologist")
    page = f"/staff/reports/{report['id']}/lesions"
    before = client.get(page)
    assert before.status_code == 200
    html = before.get_data(as_text=True)
    ids = lesion_ids(html)
    assert set(ids) == {"LAD", "RCA", "bone"}
    total = [number(t) for t in page_scores(html)["total"]]
    assert total == [pytest.approx(alone(A) + alone(B), abs=0.051)] * 2

    done = post_form(client, page, f"{page}/{ids['RCA']}", action="reject")
    assert done.status_code == 303
    html = client.get(page).get_data(as_text=True)
    assert marked(html, "state")[0][0] == "rescoring"  # "Re-scoring" until the job is done
    reported, summed = (number(t) for t in page_scores(html)["total"])
    assert reported == pytest.approx(alone(A) + alone(B), abs=0.051)  # the report as it was
    assert summed == pytest.approx(alone(A), abs=0.051)  # RCA's cylinder no longer counts

    run_queued(labelled)
    html = client.get(page).get_data(as_text=True)
    assert marked(html, "state")[0][0] == "ready"
    got = page_scores(html)
    assert [number(t) for t in got["total"]] == [pytest.approx(alone(A), abs=0.051)] * 2
    assert got["cac-drs"] == ["CAC-DRS A2/N1"] * 2  # Hecht 2018: 147 -> A2, LAD only
    assert scores(client, auth_headers, current(client, auth_headers, report["id"]))[
        "total"] == pytest.approx(alone(A), abs=0.01)
    reviewer = practitioner_of(client, auth_headers, username)
    assert reviewer in provenance_agents(client, auth_headers, report["id"])[-1]
    events = client.get(f"/fhir/AuditEvent?entity=DiagnosticReport/{report['id']}"
                        f"&agent={reviewer}", headers=auth_headers("demo-admin")).get_json()
    assert [e["resource"]["agent"][0]["altId"] for e in events["entry"]] == [
        f"staff:{username}"]  # the one review, by this user acting as that Practitioner


def test_relabelling_moves_the_lesion_score_to_the_artery(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any]) -> None:
    login(client, labelled, "radiologist")
    page = f"/staff/reports/{report['id']}/lesions"
    ids = lesion_ids(client.get(page).get_data(as_text=True))
    done = post_form(client, page, f"{page}/{ids['bone']}", action="relabel", label="LCX")
    assert done.status_code == 303
    run_queued(labelled)
    got = page_scores(client.get(page).get_data(as_text=True))
    assert [number(t) for t in got["LCX"]] == [pytest.approx(alone(C), abs=0.051)] * 2
    assert [number(t) for t in got["LAD"]] == [pytest.approx(alone(A), abs=0.051)] * 2
    assert got["cac-drs"] == ["CAC-DRS A3/N3"] * 2  # 147 + 58 + 98 = 303: A3, 3 arteries


def lesion_centres(html: str) -> dict[str, tuple[float, ...]]:
    """Each lesion's centre in patient mm, by id, as the review page shows it."""
    ids = [v for v, _ in marked(html, "lesion")]
    centres = [tuple(float(n) for n in re.findall(r"-?\d+\.\d+", t))
               for k, t in marked(html, "field") if k == "centre"]
    return dict(zip(ids, centres, strict=True))


def test_on_the_thorax_rejecting_a_plaque_drops_its_artery_by_its_geometric_score(
        quick: Settings, client: FlaskClient, auth_headers: Headers) -> None:
    order_id, accession = placed(client, auth_headers)
    thorax = build(scan_changed(thorax_42(), accession=accession, study_uid=generate_uid()))
    send(quick, thorax_datasets(thorax))
    assert len(analyse(quick)) == 1
    [found] = reports(client, auth_headers, order_id)
    login(client, quick, "radiologist")
    page = f"/staff/reports/{found['id']}/lesions"
    centres = lesion_centres(client.get(page).get_data(as_text=True))
    plaque = max((t for t in thorax.plaque_truths if t.lesion_count == 1),
                 key=lambda t: t.agatston)
    lesion = min(centres, key=lambda i: float(np.linalg.norm(
        np.subtract(centres[i], plaque.centre_mm))))
    assert np.linalg.norm(np.subtract(centres[lesion], plaque.centre_mm)) < 3.0  # mm

    assert post_form(client, page, f"{page}/{lesion}", action="reject").status_code == 303
    run_queued(quick)
    got = page_scores(client.get(page).get_data(as_text=True))
    artery, total = plaque.plaque.artery, thorax.truth().agatston
    tolerance = 0.02 * total  # the scorer's agreement with the phantom (test_completion)
    assert number(got["total"][0]) == pytest.approx(total - plaque.agatston, abs=tolerance)
    assert number(got[artery][0]) == pytest.approx(
        thorax.truth(artery).agatston - plaque.agatston, abs=tolerance)


def test_the_lesion_is_outlined_where_the_cylinder_is(
        labelled: Settings, client: FlaskClient, report: dict[str, Any]) -> None:
    login(client, labelled, "radiologist")
    page = f"/staff/reports/{report['id']}/lesions"
    ids = lesion_ids(client.get(page).get_data(as_text=True))
    found = client.get(f"{page}/{ids['LAD']}/image")
    assert found.status_code == 200 and found.mimetype == "image/png"
    rgb = np.asarray(Image.open(io.BytesIO(found.data)).convert("RGB")).astype(int)
    scale = rgb.shape[1] / PHANTOM.cols
    rows, cols = np.nonzero((rgb[..., 0] == 0) & (rgb[..., 1] == 255) & (rgb[..., 2] == 255))
    dy, dx = PHANTOM.pixel_spacing
    centre = ((A.v / dy + 0.5) * scale, (A.u / dx + 0.5) * scale)
    assert (rows.min() + rows.max()) / 2 == pytest.approx(centre[0], abs=scale)
    assert (cols.min() + cols.max()) / 2 == pytest.approx(centre[1], abs=scale)
    diameter = 2 * A.radius / dx * scale
    assert cols.max() - cols.min() == pytest.approx(diameter, abs=2 * scale)


def test_bad_review_input_gets_a_clear_400_page(
        labelled: Settings, client: FlaskClient, report: dict[str, Any]) -> None:
    login(client, labelled, "radiologist")
    page = f"/staff/reports/{report['id']}/lesions"
    ids = lesion_ids(client.get(page).get_data(as_text=True))
    for fields in ({"action": "delete"}, {"action": "relabel", "label": "aorta"},
                   {"action": "relabel"}):
        refused = post_form(client, page, f"{page}/{ids['LAD']}", **fields)
        assert refused.status_code == 400, fields
        assert refused.mimetype == "text/html"
    unknown = post_form(client, page, f"{page}/L999-999-999", action="reject")
    assert unknown.status_code == 422 and unknown.mimetype == "text/html"


# --- sign-off ---------------------------------------------------------------------------

def test_sign_off_makes_the_report_final_naming_the_radiologist(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any]) -> None:
    username = login(client, labelled, "radiologist")
    page = f"/staff/reports/{report['id']}"
    html = client.get(page).get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', html)
    assert version
    conclusion = "Coronary calcium in the LAD and RCA. Reviewed by the radiologist."
    done = post_form(client, page, f"{page}/sign-off", conclusion=conclusion,
                     version=version.group(1))
    assert done.status_code == 303
    signed = current(client, auth_headers, report["id"])
    assert signed["status"] == "final" and signed["conclusion"] == conclusion
    reviewer = practitioner_of(client, auth_headers, username)
    assert signed["resultsInterpreter"] == [{"reference": reviewer}]
    assert [reviewer] in provenance_agents(client, auth_headers, report["id"])
    shown = client.get(page).get_data(as_text=True)
    assert marked(shown, "status")[0] == ("final", "Final")

    # final -> preliminary is impossible; an amendment needs its reason.
    html = client.get(page).get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', html)
    assert version and "/sign-off" not in html
    refused = post_form(client, page, f"{page}/amend", conclusion="Changed.",
                        version=version.group(1))
    assert refused.status_code == 400 and refused.mimetype == "text/html"
    assert "reason" in refused.get_data(as_text=True)
    amended = post_form(client, page, f"{page}/amend", conclusion="Changed.",
                        reason="LCX calcium missed", version=version.group(1))
    assert amended.status_code == 303
    after = current(client, auth_headers, report["id"])
    assert after["status"] == "amended" and after["conclusion"] == "Changed."
    assert {"url": REASON, "valueString": "LCX calcium missed"} in after["extension"]
    assert ("reason", "LCX calcium missed") in marked(
        client.get(page).get_data(as_text=True), "field")


def test_sign_off_waits_for_re_scoring_and_for_the_version_seen(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any]) -> None:
    login(client, labelled, "radiologist")
    page = f"/staff/reports/{report['id']}"
    seen = report["meta"]["versionId"]
    ids = lesion_ids(client.get(f"{page}/lesions").get_data(as_text=True))
    post_form(client, f"{page}/lesions", f"{page}/lesions/{ids['RCA']}", action="reject")
    waiting = post_form(client, page, f"{page}/sign-off", conclusion="Done.", version=seen)
    assert waiting.status_code == 409 and "re-scored" in waiting.get_data(as_text=True)
    run_queued(labelled)  # a new version of the report: the one seen is out of date
    stale = post_form(client, page, f"{page}/sign-off", conclusion="Done.", version=seen)
    assert stale.status_code == 409 and "changed since you opened it" in stale.get_data(
        as_text=True)
    assert current(client, auth_headers, report["id"])["status"] == "preliminary"


def test_the_report_page_shows_its_key_images_and_links_the_viewer(
        labelled: Settings, client: FlaskClient, report: dict[str, Any]) -> None:
    login(client, labelled, "radiographer")
    page = f"/staff/reports/{report['id']}"
    html = client.get(page).get_data(as_text=True)
    images = re.findall(rf'src="({page}/key-images/\d+)"', html)
    assert len(images) == len(report["media"]) >= 2  # key slices and the MIP
    for image in images:
        found = client.get(image)
        assert found.status_code == 200 and found.data.startswith(b"\x89PNG")
    assert f'href="/staff/studies/{PHANTOM.study_uid}"' in html
    assert client.get(f"{page}/key-images/99").status_code == 404


def test_the_order_page_links_its_images_and_its_report(
        labelled: Settings, client: FlaskClient, report: dict[str, Any]) -> None:
    login(client, labelled, "radiographer")
    order = report["basedOn"][0]["reference"].removeprefix("ServiceRequest/")
    html = client.get(f"/staff/orders/{order}").get_data(as_text=True)
    assert f'href="/staff/studies/{PHANTOM.study_uid}"' in html
    assert 'href="/staff/reports/' + report["id"] + '"' in html


def test_a_radiographer_sees_the_report_but_cannot_sign_off_or_review(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any]) -> None:
    login(client, labelled, "radiographer")
    page = f"/staff/reports/{report['id']}"
    seen = client.get(page)
    assert seen.status_code == 200
    html = seen.get_data(as_text=True)
    assert "/sign-off" not in html and "Only a radiologist" in html
    refused = post_form(client, page, f"{page}/sign-off", conclusion="x", version="1")
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert client.get(f"{page}/lesions").status_code == 403
    assert current(client, auth_headers, report["id"])["status"] == "preliminary"


def test_a_form_without_its_csrf_token_is_refused(
        labelled: Settings, client: FlaskClient, auth_headers: Headers,
        report: dict[str, Any]) -> None:
    login(client, labelled, "radiologist")
    page = f"/staff/reports/{report['id']}"
    ids = lesion_ids(client.get(f"{page}/lesions").get_data(as_text=True))
    for action, fields in ((f"{page}/sign-off", {"conclusion": "x", "version": "1"}),
                           (f"{page}/lesions/{ids['LAD']}", {"action": "reject"})):
        refused = client.post(action, data=fields)
        assert refused.status_code == 400, action
    assert current(client, auth_headers, report["id"])["status"] == "preliminary"
    summed = page_scores(client.get(f"{page}/lesions").get_data(as_text=True))["total"][1]
    assert number(summed) == pytest.approx(alone(A) + alone(B), abs=0.051)


# --- in Chromium --------------------------------------------------------------------------

def browser_login(chromium: Any, base: str, settings: Settings, role: str) -> Any:
    """A page of a new browser context, logged in through the form as a new ``role`` user."""
    username, password = create_staff_user(settings, role)
    page = chromium.new_context(base_url=base, viewport={"width": 1280, "height": 900}).new_page()
    page.goto("/staff/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/staff")
    return page


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_in_chromium_a_radiologist_rejects_and_signs_off_a_radiographer_cannot(
        labelled: Settings, app: Flask, browser: Any, report: dict[str, Any]) -> None:
    with serving(app) as base:
        page = browser_login(browser, base, labelled, "radiologist")
        page.goto(f"{base}/staff/reports/{report['id']}/lesions")
        assert axe_violations(page) == []
        total = page.locator("#scores [data-score=total]")
        assert float(total.nth(1).inner_text()) == pytest.approx(alone(A) + alone(B), abs=0.051)
        rca = page.locator("[data-lesion]", has=page.locator("[data-field=label]",
                                                              has_text="RCA"))
        rca.get_by_role("button", name=re.compile("^Reject")).click()
        assert page.locator("[data-state=rescoring]").is_visible()
        assert float(total.nth(1).inner_text()) == pytest.approx(alone(A), abs=0.051)
        run_queued(labelled)
        page.get_by_role("link", name="Check again").click()
        assert float(total.nth(0).inner_text()) == pytest.approx(alone(A), abs=0.051)

        page.goto(f"{base}/staff/reports/{report['id']}")
        assert axe_violations(page) == []
        page.get_by_role("button", name="Sign off as final").click()
        assert page.locator("[data-status]").inner_text() == "Final"
        assert page.get_by_label("Reason for the amendment").is_visible()
        assert axe_violations(page) == []  # the amendment form

        other = browser_login(browser, base, labelled, "radiographer")
        other.goto(f"{base}/staff/reports/{report['id']}")
        assert other.get_by_role("button", name="Amend the report").count() == 0
        assert axe_violations(other) == []
        token = other.locator("input[name=csrf_token]").first.get_attribute("value")
        refused = other.request.post(f"{base}/staff/reports/{report['id']}/sign-off",
                                     form={"csrf_token": token, "conclusion": "x",
                                           "version": "1"})
        assert refused.status == 403
