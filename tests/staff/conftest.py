"""Fixtures for the staff web app (``/staff``), shared by every part's tests.

- ``staff_user(role, settings=None)``: a new staff account (in the ``settings``
  fixture's database unless given one); returns ``(username, password)``.
- ``staff_client(role)``: a Flask test client on ``app``, logged in as a new user of
  ``role``; ``csrf_token(client, path)`` reads a page's form token for POSTs.
- ``staff_live``: the whole app on a loopback socket (``live_sqlite``, module-scoped).
- ``browser``: one headless Debian Chromium per module (Playwright, never
  ``playwright install``).
- ``logged_in_page(role)``: a Playwright page on ``staff_live``, logged in through the
  form as a new user of ``role``.
- ``axe_violations(page)``: axe-core's WCAG 2.2 AA violations on the page (npm axe-core).
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from auth.staff import add_user
from core.db import engine_for
from core.settings import PROJECT_ROOT, Settings

CHROMIUM = "/usr/bin/chromium"
AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PASSWORD = "correct horse battery staple"  # noqa: S105  (test accounts only)
_serial = itertools.count(1)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def create_staff_user(settings: Settings, role: str, username: str | None = None,
                      password: str = PASSWORD) -> tuple[str, str]:
    """Add a staff account to ``settings``' database; ``(username, password)``."""
    username = username or f"test-{role}-{next(_serial)}"
    with Session(engine_for(settings.database_url)) as session:
        add_user(session, username, role, password, f"Test {role.title()} {username}")
        session.commit()
    return username, password


@pytest.fixture
def staff_user(request: pytest.FixtureRequest) -> Callable[..., tuple[str, str]]:
    """``staff_user(role, settings=None)``: a new account; ``(username, password)``."""

    def make(role: str, settings: Settings | None = None, **kwargs: Any) -> tuple[str, str]:
        return create_staff_user(settings or request.getfixturevalue("settings"), role, **kwargs)

    return make


def csrf_token(client: FlaskClient, path: str = "/staff/login") -> str:
    """The CSRF token of the form on ``path`` (GET), as a browser would read it."""
    page = client.get(path)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no csrf_token in the form on {path} ({page.status_code})"
    return match[1]


def log_in(client: FlaskClient, username: str, password: str) -> Any:
    """POST the login form as a browser does; the response (303 when it worked)."""
    return client.post("/staff/login", data={"username": username, "password": password,
                                             "csrf_token": csrf_token(client)})


@pytest.fixture
def staff_client(app: Flask, settings: Settings) -> Callable[[str], FlaskClient]:
    """``staff_client(role)``: a test client logged in as a new user of ``role``."""

    def make(role: str) -> FlaskClient:
        client = app.test_client()
        username, password = create_staff_user(settings, role)
        assert log_in(client, username, password).status_code == 303
        return client

    return make


@pytest.fixture(scope="module")
def staff_live(live_sqlite: tuple[str, Settings]) -> tuple[str, Settings]:
    """``(base_url, settings)`` of the app served on loopback (nhsuk static files built)."""
    if not (PROJECT_ROOT / "static" / "nhsuk" / "nhsuk-frontend.min.css").is_file():
        pytest.fail("static/nhsuk is missing: run `make static`")
    return live_sqlite


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright: one per test module."""
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def logged_in_page(browser: Any, staff_live: tuple[str, Settings]) -> Iterator[Callable[..., Any]]:
    """``logged_in_page(role)``: a page logged in through the form, at /staff."""
    contexts: list[Any] = []
    base, settings = staff_live

    def make(role: str) -> Any:
        username, password = create_staff_user(settings, role)
        context = browser.new_context(base_url=base)
        contexts.append(context)
        page = context.new_page()
        page.goto("/staff/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/staff")
        return page

    yield make
    for context in contexts:
        context.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations of WCAG 2.0-2.2 A and AA on ``page``, each with its nodes.

    axe is evaluated through the DevTools protocol, which the page's CSP (no inline
    script) does not govern, so the page is checked under its real policy.
    """
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_22_AA)
    assert result["passes"], "axe checked nothing on the page"
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["html"] for n in v["nodes"]]} for v in result["violations"]]


@pytest.fixture(name="axe_violations")
def axe_violations_fixture() -> Callable[[Any], list[dict[str, Any]]]:
    """``axe_violations(page)``: see :func:`axe_violations`."""
    return axe_violations


def model_in_its_box(page: Any) -> bool:
    """The model's canvas lies inside the <model-viewer> box (with its own stylesheet
    refused, the canvas draws over the text below). model-viewer resizes its canvas on a
    later animation frame after the viewport changes, so the check waits for it (a bound on
    a hang on a busy machine, not a timed assertion)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("""() => {
            const viewer = document.querySelector('model-viewer');
            const outer = viewer.getBoundingClientRect();
            const drawn = [...viewer.shadowRoot.querySelectorAll('canvas')]
                .map(c => c.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0);
            return drawn.length > 0 && drawn.every(r => r.left >= outer.left - 1
                && r.top >= outer.top - 1 && r.right <= outer.right + 1
                && r.bottom <= outer.bottom + 1);
        }""", timeout=60_000)
    except PlaywrightTimeout:  # the canvas never fitted its box
        return False
    return True
