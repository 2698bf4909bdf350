"""The patient's page in Debian's Chromium (Playwright), on a real signed calcium report.

Until the links helper's routes land, a test-only blueprint serves the page and its files
under /r/<token> with the CSP this page needs (PAGE_CSP: the staff pages' policy plus
'wasm-unsafe-eval', which <model-viewer> needs to compile its decoders). Phone (360x800)
and desktop (1280x900) screenshots are saved under tmp_path and checked for the score
heading, a key image, the 3D model (model-viewer's ``load`` event) and the PDF link; the
PDF downloads; with JavaScript off the still image shows; axe-core finds no WCAG 2.2 AA
violation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Response, render_template
from sqlmodel import Session

from core.db import engine_for
from fhir.store import Store
from patient import assets
from patient.page import report_page
from tests.conftest import serving
from tests.patient.conftest import Pair
from tests.staff.conftest import axe_violations_fixture, browser  # noqa: F401

TOKEN = "test-token"
PAGE_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
            "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self' blob: data:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
TYPES = {"png": "image/png", "glb": "model/gltf-binary", "pdf": "application/pdf"}


def _blueprint(pair: Pair) -> Blueprint:
    """The test-only stand-in for the links helper's routes (patient A's report)."""
    bp = Blueprint("patient_test", __name__, url_prefix=f"/r/{TOKEN}")
    a = pair.a

    def answer(content: bytes | str | None, kind: str) -> Response:
        if content is None:
            return Response("Not available", 404)
        return Response(content, content_type=kind, headers={"Content-Security-Policy": PAGE_CSP})

    def with_store(work: Callable[[Store], Any]) -> Any:
        with Session(engine_for(pair.settings.database_url)) as session:
            return work(Store(session, pair.settings))

    @bp.get("")
    def page() -> Response:
        built = with_store(lambda s: report_page(s, a.report_id, a.version))
        return answer(render_template("patient/report.html", report=built,
                                      link_base=f"/r/{TOKEN}"), "text/html; charset=utf-8")

    @bp.get("/images/<int:n>.png")
    def image(n: int) -> Response:
        return answer(with_store(lambda s: assets.key_image(s, a.report_id, a.version, n)),
                      TYPES["png"])

    @bp.get("/model.glb")
    def glb() -> Response:
        return answer(with_store(lambda s: assets.model_glb(s, a.report_id, a.version)),
                      TYPES["glb"])

    @bp.get("/model.png")
    def still() -> Response:
        return answer(with_store(lambda s: assets.model_still(s, a.report_id, a.version)),
                      TYPES["png"])

    @bp.get("/report.pdf")
    def pdf() -> Response:
        return answer(with_store(lambda s: assets.report_pdf(s, a.report_id, a.version)),
                      TYPES["pdf"])

    return bp


@pytest.fixture(scope="module")
def live(signed_pair: Pair) -> Iterator[str]:
    from scanpath.app import create_app

    app = create_app(signed_pair.settings)
    app.register_blueprint(_blueprint(signed_pair))
    with serving(app) as base:
        yield f"{base}/r/{TOKEN}"


def _open(browser: Any, url: str, width: int, height: int,  # noqa: F811
          javascript: bool = True) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height},
                                  java_script_enabled=javascript, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(url)
    return context, page, problems


def _model_loaded(page: Any) -> bool:
    return bool(page.evaluate("""() => new Promise(resolve => {
        const viewer = document.querySelector('model-viewer');
        if (!viewer) return resolve(false);
        if (viewer.loaded) return resolve(true);
        viewer.addEventListener('load', () => resolve(true), {once: true});
        viewer.addEventListener('error', () => resolve(false), {once: true});
    })"""))


@pytest.mark.parametrize(("width", "height"), [(360, 800), (1280, 900)])
def test_the_page_on_a_phone_and_a_desktop(browser: Any, live: str, tmp_path: Path,  # noqa: F811
                                           axe_violations: Callable[[Any], list[Any]],
                                           width: int, height: int) -> None:
    context, page, problems = _open(browser, live, width, height)
    try:
        assert page.get_by_role("heading", name="Your calcium score").is_visible()
        image = page.locator("figure img").first
        image.scroll_into_view_if_needed()
        assert image.is_visible()
        assert page.evaluate("img => img.complete && img.naturalWidth > 0", image.element_handle())
        assert _model_loaded(page)  # model-viewer fetched and parsed the GLB
        assert page.get_by_role("link", name="Download your full report (PDF)").is_visible()
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width  # nothing scrolls sideways on the phone
        page.screenshot(path=str(tmp_path / f"patient-{width}.png"), full_page=True)
        assert (tmp_path / f"patient-{width}.png").stat().st_size > 10_000
        assert axe_violations(page) == []
        # model-viewer also tries one inline style, which style-src 'self' blocks; the
        # model loads and shows without it (above). No script or worker is ever refused.
        assert not [p for p in problems if "Content Security Policy" in p
                    and "style-src" not in p], problems
    finally:
        context.close()


def test_the_pdf_downloads(browser: Any, live: str, tmp_path: Path) -> None:  # noqa: F811
    context, page, _ = _open(browser, live, 1280, 900)
    try:
        with page.expect_download() as download:
            page.get_by_role("link", name="Download your full report (PDF)").click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name == "scan-report.pdf"
        assert saved.read_bytes().startswith(b"%PDF")
    finally:
        context.close()


def test_without_javascript_the_still_shows(browser: Any, live: str,  # noqa: F811
                                            tmp_path: Path) -> None:
    context, page, _ = _open(browser, live, 360, 800, javascript=False)
    try:
        still = page.locator("img.sp-model__still")
        still.scroll_into_view_if_needed()
        assert still.is_visible()
        assert page.evaluate("img => img.complete && img.naturalWidth > 0",
                             still.element_handle())
        assert page.get_by_role("heading", name="Your calcium score").is_visible()
        page.screenshot(path=str(tmp_path / "patient-no-js.png"), full_page=True)
    finally:
        context.close()
