"""A radiologist's path through the worklist in Debian's Chromium (Playwright): log in,
filter the worklist, open an order, accept it, schedule it; axe-core finds no WCAG 2.2
AA violation on the worklist and order pages. One browser for the module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from sqlmodel import Session

from auth.clients import issue_token_for
from core.db import engine_for
from core.settings import Settings
from tests import factories
from tests.staff.conftest import (  # noqa: F401  (fixtures used by this module)
    axe_violations_fixture,
    browser,
    logged_in_page,
    staff_live,
)

XR_CHEST = {"system": "http://snomed.info/sct", "code": "399208008",
            "display": "Plain X-ray of chest"}


def _place_order(base: str, settings: Settings) -> str:
    """A Patient and an urgent chest X-ray order, as the GP's system sends them; its id."""
    with Session(engine_for(settings.database_url)) as session:
        token = issue_token_for(session, settings, "demo-gp")
        session.commit()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    patient = requests.post(f"{base}/fhir/Patient", json=factories.patient(family="Browne"),
                            headers=headers, timeout=30)
    assert patient.status_code == 201, patient.text
    order = {**factories.service_request(f"Patient/{patient.json()['id']}"),
             "code": {"coding": [XR_CHEST]}, "priority": "urgent"}
    made = requests.post(f"{base}/fhir/ServiceRequest", json=order, headers=headers, timeout=30)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_a_radiologist_vets_and_schedules_from_the_worklist(
        staff_live: tuple[str, Settings],  # noqa: F811  (the fixture imported above)
        logged_in_page: Callable[[str], Any],  # noqa: F811
        axe_violations: Callable[[Any], list[dict[str, Any]]]) -> None:
    base, settings = staff_live
    order_id = _place_order(base, settings)
    page = logged_in_page("radiologist")
    page.get_by_role("link", name="Worklist").first.click()
    page.get_by_label("Urgency").select_option("urgent")
    page.get_by_label("Modality").select_option("DX")
    page.get_by_role("button", name="Show orders").click()
    assert "priority=urgent" in page.url
    assert axe_violations(page) == []
    page.locator(f"a[href='/staff/orders/{order_id}']").click()
    assert page.get_by_role("heading", name="How the decision was reached").is_visible()
    assert axe_violations(page) == []
    page.get_by_label("Accept: the examination is justified").check()
    page.get_by_role("button", name="Record the vetting decision").click()
    assert page.locator("#order-state").inner_text() == "Accepted"
    page.get_by_label("Date").fill("2026-12-03")
    page.get_by_label("Time (UK)").fill("10:15")
    page.get_by_label("Modality").select_option("DX")
    page.get_by_label("Station AE title").fill("XR_ROOM_1")
    page.get_by_role("button", name="Schedule the examination").click()
    assert page.locator("#order-state").inner_text() == "Scheduled"
    assert "2026-12-03T10:15:00" in page.content()


def test_the_worklist_and_order_pages_fit_a_desktop_and_a_tablet(
        staff_live: tuple[str, Settings],  # noqa: F811  (the fixture imported above)
        logged_in_page: Callable[[str], Any]) -> None:  # noqa: F811
    """Issue 12 item 7: readable at 1280 px and on a tablet (768 x 1024, portrait): the page
    never needs a horizontal scroll (WCAG 2.2 SC 1.4.10 Reflow asks this down to 320 px;
    a wide table may scroll inside its own container)."""
    base, settings = staff_live
    order_id = _place_order(base, settings)
    page = logged_in_page("radiographer")
    for width, height in ((1280, 800), (768, 1024)):
        page.set_viewport_size({"width": width, "height": height})
        for path in ("/staff/worklist", f"/staff/orders/{order_id}"):
            page.goto(path)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} at {width} px scrolls sideways by {overflow} px"
