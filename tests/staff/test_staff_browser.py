"""The staff app in Debian's Chromium (Playwright): log in through the form, and axe-core
finds no WCAG 2.2 AA violation on the login and landing pages (issue 12 tests)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_login_in_chromium_and_no_wcag_22_aa_violations(browser, staff_live, staff_user,
                                                        axe_violations):
    base, settings = staff_live
    username, password = staff_user("radiologist", settings)
    context = browser.new_context(base_url=base)
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy"
            in m.text else None)
    try:
        page.goto("/staff")  # no session: the login page
        assert page.url.startswith(f"{base}/staff/login")
        assert page.get_by_role("heading", level=1).inner_text() == \
            "Log in to ScanPath radiology"
        assert axe_violations(page) == []
        page.get_by_label("Password").fill("not the password!")
        page.get_by_label("Username").fill(username)
        page.get_by_role("button", name="Log in").click()
        assert "not right" in page.get_by_role("alert").inner_text()
        assert axe_violations(page) == []
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/staff")
        assert "You are logged in as" in page.get_by_role("main").inner_text()
        # The NHS.UK stylesheet is served from /static and applied (its blue header).
        colour = page.locator("header").evaluate("h => getComputedStyle(h).backgroundColor")
        assert colour == "rgb(0, 94, 184)"  # NHS Blue, #005eb8 (NHS identity guidelines)
        assert axe_violations(page) == []
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{base}/staff/login")
        page.goto("/staff")
        assert page.url.startswith(f"{base}/staff/login")
        assert blocked == []  # nothing the page needs is refused by its own CSP
    finally:
        context.close()


def test_logged_in_page_fixture(logged_in_page):
    page = logged_in_page("radiographer")
    assert "radiographer" in page.get_by_role("banner").inner_text()
