"""A patient opens their real report link in Debian's Chromium (Playwright), issue 13.

The report is patient A's of ``signed_pair`` (analysed from the thorax phantom, signed
off in the staff app, its PDF issued again as FINAL), served by the whole app on
loopback (``tests.conftest.serving``) with its own headers and PATIENT_CSP. The link is
found as a GP system finds it (CONTRACT §7): ``GET /fhir/DocumentReference`` with the
demo-gp token, ``content[0].attachment.url``. In the browser: the date-of-birth form, a
wrong date (the form again, saying only that the details did not match), the right one
typed into the day/month/year boxes, then the report: the score heading, a key image,
the 3D model (model-viewer's ``load`` event), the PDF download (FINAL); phone (360x800)
and desktop (1280x900) screenshots under tmp_path with the key elements in view and
nothing scrolling sideways; axe-core finds no WCAG 2.2 AA violation on any page. Without
JavaScript the form still works and the model's still picture shows. The browser asks
no host but the test server.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import serving
from tests.imaging_core.test_reports import PDFTOTEXT, _pdf_text
from tests.patient.conftest import GP, Pair, _headers
from tests.patient.test_access import tampered
from tests.staff.conftest import axe_violations_fixture, browser, model_in_its_box  # noqa: F401

# Patient A was created by tests.factories.patient with its default birth date.
BORN = {"Day": "2", "Month": "4", "Year": "1968"}
WRONG = {**BORN, "Day": "3"}
PHONE, DESKTOP = (360, 800), (1280, 900)
SCORE, PDF_LINK = "Your calcium score", "Download your full report (PDF)"

Axe = Callable[[Any], list[Any]]


@dataclass(frozen=True)
class Live:
    """The served app and patient A's link as the GP system read it."""

    base: str
    link: str


@pytest.fixture(scope="module")
def live(signed_pair: Pair) -> Iterator[Live]:
    from scanpath.app import create_app

    with serving(create_app(signed_pair.settings)) as base:
        yield Live(base, _link_url(base, signed_pair))


def _link_url(base: str, pair: Pair) -> str:
    """``content[0].attachment.url`` of patient A's current DocumentReference, over HTTP."""
    request = urllib.request.Request(
        f"{base}/fhir/DocumentReference?subject=Patient/{pair.a.patient_id}&status=current",
        headers=_headers(pair.settings, GP))
    with urllib.request.urlopen(request, timeout=30) as response:
        bundle = json.load(response)
    [entry] = bundle["entry"]
    url = str(entry["resource"]["content"][0]["attachment"]["url"])
    assert url.startswith(f"{base}/r/"), url  # the link names where ScanPath is served
    return url


@dataclass
class Tab:
    """A browser page and what it did: the origins it asked, its console errors."""

    page: Any
    origins: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def only_asked(self, base: str) -> None:
        """Every request went to the test server (data: and blob: stay in the page)."""
        assert self.origins <= {base, "data:", "blob:"}, self.origins


@pytest.fixture
def tab(browser: Any) -> Iterator[Callable[..., Tab]]:  # noqa: F811
    contexts: list[Any] = []

    def make(javascript: bool = True) -> Tab:
        context = browser.new_context(viewport={"width": DESKTOP[0], "height": DESKTOP[1]},
                                      java_script_enabled=javascript, accept_downloads=True)
        contexts.append(context)
        tab = Tab(context.new_page())
        tab.page.on("request", lambda r: tab.origins.add(_origin(r.url)))
        tab.page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error"
                    else None)
        tab.page.on("pageerror", lambda e: tab.errors.append(str(e)))
        return tab

    yield make
    for context in contexts:
        context.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}:" if parts.scheme in ("data", "blob") else \
        f"{parts.scheme}://{parts.netloc}"


def _answer(page: Any, date: dict[str, str]) -> None:
    """Type the date of birth into the form, as a patient would, and send it."""
    for label, value in date.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()


def _model_loaded(page: Any) -> bool:
    """model-viewer has fetched and parsed the GLB (its ``loaded``, set with its ``load``
    event); it shows the model once in view, so it is scrolled there first."""
    viewer = page.locator("model-viewer")
    viewer.scroll_into_view_if_needed()
    # A bound on a hang, not a timed assertion: the software renderer is slow on a busy box.
    page.wait_for_function("() => document.querySelector('model-viewer').loaded",
                           timeout=300_000)
    return bool(viewer.evaluate("v => v.loaded"))


def _shown(page: Any, element: Any) -> bool:
    """``element`` is visible, has loaded if it is an image, and fits the page's width."""
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    width = page.viewport_size["width"]
    loaded = page.evaluate("e => e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0)",
                           element.element_handle())
    return bool(element.is_visible() and loaded and box and box["x"] >= 0
                and box["x"] + box["width"] <= width)


def _key_elements(page: Any) -> list[Any]:
    return [page.get_by_role("heading", name=SCORE), page.locator("figure img").first,
            page.locator("model-viewer"), page.get_by_role("link", name=PDF_LINK)]


def _screenshot(page: Any, size: tuple[int, int], folder: Path) -> Path:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    for element in _key_elements(page):
        assert _shown(page, element), element
    assert page.evaluate("document.documentElement.scrollWidth") <= size[0]  # no sideways
    assert model_in_its_box(page)
    path = folder / f"patient-{size[0]}x{size[1]}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a page was drawn, not an empty frame
    return path


def _download_pdf(page: Any, folder: Path) -> bytes:
    with page.expect_download() as download:
        page.get_by_role("link", name=PDF_LINK).click()
    saved = folder / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "scan-report.pdf"
    return saved.read_bytes()


def test_a_patient_opens_the_link_and_reads_the_report(
        tab: Callable[..., Tab], live: Live, axe_violations: Axe, tmp_path: Path) -> None:
    own = tab()
    page = own.page
    page.goto(live.link)
    assert page.get_by_role("heading", name="Confirm your date of birth").is_visible()
    assert axe_violations(page) == []

    _answer(page, WRONG)
    alert = page.get_by_role("alert")
    assert "do not match" in alert.inner_text() and "contact your GP surgery" in \
        alert.inner_text()
    assert not page.get_by_role("heading", name=SCORE).count()
    assert axe_violations(page) == []

    _answer(page, BORN)
    assert page.url == live.link  # the report at the link itself, after the 303
    assert page.get_by_role("heading", name=SCORE).is_visible()
    assert _model_loaded(page)  # model-viewer fetched and parsed the GLB under PATIENT_CSP
    pdf = _download_pdf(page, tmp_path)
    assert pdf.startswith(b"%PDF")
    if PDFTOTEXT is not None:
        text = _pdf_text(pdf, tmp_path)[0]
        assert "FINAL" in text and "PRELIMINARY" not in text
    for size in (PHONE, DESKTOP):
        _screenshot(page, size, tmp_path)
        assert axe_violations(page) == []

    own.only_asked(live.base)
    assert own.errors == []  # nothing refused by the CSP (model-viewer's own style neither)


def test_without_javascript_the_form_works_and_the_still_shows(
        tab: Callable[..., Tab], live: Live, tmp_path: Path) -> None:
    plain = tab(javascript=False)
    page = plain.page
    page.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
    page.goto(live.link)
    _answer(page, BORN)
    assert page.get_by_role("heading", name=SCORE).is_visible()
    assert _shown(page, page.locator("img.sp-model__still"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    page.screenshot(path=str(tmp_path / "patient-no-js.png"), full_page=True)
    # No axe here: axe.run's promise never settles with scripts off; the same markup is
    # checked with scripts on above.
    plain.only_asked(live.base)
    assert plain.errors == []


def test_a_changed_link_shows_the_not_available_page(
        tab: Callable[..., Tab], live: Live, axe_violations: Axe) -> None:
    stranger = tab()
    page = stranger.page
    response = page.goto(tampered(live.link))
    assert response is not None and response.status == 404
    assert page.get_by_role("heading", name="This page is not available").is_visible()
    assert axe_violations(page) == []
    stranger.only_asked(live.base)
    assert [e for e in stranger.errors if "404" not in e] == []  # the page's own status
