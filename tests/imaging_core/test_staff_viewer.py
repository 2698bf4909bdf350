"""The staff image viewer (issue 12 item 4): DICOMweb with a staff session, the page
without JavaScript, the Cornerstone3D viewer in Chromium, and its accessibility.

The series is an analytic phantom (``tests.imaging_core.phantoms``): a 40 HU
background with one 1000 HU rod through the middle slices, so what a slice and a
window show is known without asking the code under test. Window values are
Radiopaedia's ("Windowing (CT)"), not read from ScanPath.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any

import highdicom as hd
import numpy as np
import pytest
import requests
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from sqlmodel import Session

from core.db import engine_for
from core.settings import Settings
from fhir.search import run_search
from fhir.store import (
    Store,
    spec_for,  # noqa: I001
)
from imaging_core.mesh import mask_mesh, to_glb
from imaging_core.models import ReceivedStudy
from imaging_core.storage import receive
from imaging_core.volume import load_volume
from tests.imaging_core.phantoms import Insert, Phantom, covered_slices, datasets, disc_mask
from tests.staff.conftest import (  # noqa: F401  (fixtures of the staff app's tests)
    axe_violations_fixture,
    browser,
    create_staff_user,
    logged_in_page,
    model_in_its_box,
    staff_live,
)

SLICES = 5
# A 1000 HU rod of 6 mm radius in slices 3-5 only (w from 6 mm; 3 mm apart).
ROD = Insert(u=16.0, v=16.0, radius=6.0, w0=5.0, w1=100.0, hu=1000.0)
PHANTOM = Phantom(rows=64, cols=64, n_slices=SLICES, inserts=(ROD,), name="viewer")
LUNG = "-600,1500"
GLB = "model/gltf-binary"  # Radiopaedia: lung window W1500 L-600


ROD_SLICES = covered_slices(PHANTOM, ROD)  # 0-based: slices 3, 4 and 5
ROD_PIXELS = int(disc_mask(PHANTOM, ROD).sum())


def rod_seg(sources: list[Dataset]) -> Dataset:
    """A BINARY SEG (highdicom) of the rod, as the analysis writes one of calcium."""
    mask = np.zeros((SLICES, PHANTOM.rows, PHANTOM.cols), dtype=bool)
    mask[ROD_SLICES] = disc_mask(PHANTOM, ROD)
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="Calcium",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=hd.sr.CodedConcept("18115005", "SCT",
                                                   "Pathologic calcification"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=hd.UID(), series_number=901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="test",
        manufacturer_model_name="test", software_versions="1", device_serial_number="1")


def attach_rod_model(settings: Settings, sources: list[Dataset]) -> None:
    """A report with the rod's 3D model (GLB) as a Binary, as the analysis attaches one,
    on an order the study is linked to."""
    mask = np.zeros((SLICES, PHANTOM.rows, PHANTOM.cols), dtype=bool)
    mask[ROD_SLICES] = disc_mask(PHANTOM, ROD)
    glb = to_glb([mask_mesh(load_volume(sources), mask, "rod", (1.0, 0.2, 0.2, 1.0))])
    with Session(engine_for(settings.database_url)) as session:
        store = Store(session, settings)
        binary = store.create("Binary", {"resourceType": "Binary", "contentType": GLB,
                                         "data": base64.b64encode(glb).decode()}).resource
        store.create("DiagnosticReport", {
            "resourceType": "DiagnosticReport", "status": "preliminary",
            "code": {"text": "Calcium score"}, "basedOn": [{"reference": "ServiceRequest/sr-rod"}],
            "presentedForm": [{"contentType": GLB, "url": f"Binary/{binary['id']}"}]},
            trusted=True)  # no order of its own: the viewer reads only the link
        received = session.get(ReceivedStudy, PHANTOM.study_uid)
        assert received is not None
        received.service_request_id = "sr-rod"
        session.add(received)
        session.commit()


@pytest.fixture(scope="module")
def study(staff_live: tuple[str, Settings]) -> str:  # noqa: F811
    """The phantom series, stored as STOW-RS would store it, a SEG of its rod, and a
    report carrying the rod's 3D model."""
    _, settings = staff_live
    sources = datasets(PHANTOM)
    for ds in sources:
        receive(settings, ds, "stow")
    receive(settings, rod_seg(sources), "derived")
    attach_rod_model(settings, sources)
    return PHANTOM.study_uid


def test_dicomweb_reads_take_a_staff_session_and_refuse_no_credential(
        staff_live: tuple[str, Settings], study: str,  # noqa: F811
        logged_in_page: Callable[[str], Any]) -> None:  # noqa: F811
    base, settings = staff_live
    http = logged_in_page("radiographer").request  # the browser's cookies, no token
    found = http.get(f"/dicomweb/studies/{study}/series",
                     headers={"Accept": "application/dicom+json"})
    assert found.status == 200
    ct = [s for s in found.json() if s["00080060"]["Value"] == ["CT"]]  # Modality
    assert ct[0]["00201209"]["Value"] == [SLICES]  # NumberOfSeriesRelatedInstances
    series = ct[0]["0020000E"]["Value"][0]
    metadata = http.get(f"/dicomweb/studies/{study}/series/{series}/metadata")
    assert metadata.status == 200 and len(metadata.json()) == SLICES
    sop = metadata.json()[0]["00080018"]["Value"][0]
    frame = http.get(f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1")
    assert frame.status == 200
    assert len(frame.body()) > 64 * 64 * 2  # one 64 x 64 16-bit frame, in a multipart body
    # Audited as the bearer-token reads are: one AuditEvent, the staff user as agent.
    path = f"/dicomweb/studies/{study}/series/{series}/metadata"
    assert any(agent.startswith("staff:test-radiographer-") for agent in _audited(settings, path))

    anonymous = requests.get(f"{base}/dicomweb/studies/{study}/series/{series}/metadata")
    assert anonymous.status_code == 401
    assert anonymous.json()["resourceType"] == "OperationOutcome"
    logged_out = requests.get(f"{base}/dicomweb/studies?StudyInstanceUID={study}")
    assert logged_out.status_code == 401
    # A STOW-RS store still needs a token: the session is for reading only.
    assert http.post("/dicomweb/studies", data=b"x", headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b'}
    ).status == 401


def test_viewer_page_needs_a_session_and_refuses_bad_input(
        staff_live: tuple[str, Settings], study: str,  # noqa: F811
        logged_in_page: Callable[[str], Any]) -> None:  # noqa: F811
    base, _ = staff_live
    anonymous = requests.get(f"{base}/staff/studies/{study}", allow_redirects=False)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/staff/login?next=")
    http = logged_in_page("radiologist").request
    for query in ("slice=0", f"slice={SLICES + 1}", "slice=x", "window=purple", "view=3d"):
        answer = http.get(f"/staff/studies/{study}?{query}")
        assert answer.status == 400, query
        assert "text/html" in answer.headers["content-type"]
    assert http.get("/staff/studies/1.2.3.4").status == 404
    model = http.get(f"/staff/studies/{study}/model.glb")
    assert model.status == 200 and model.headers["content-type"] == GLB
    assert model.body()[:4] == b"glTF"  # the GLB header's magic (glTF 2.0 §4.4.3.1)
    overlay = http.get(f"/staff/studies/{study}/overlay.json").json()
    assert overlay["segments"] == [{"number": 1, "label": "Calcium"}]
    assert sorted(len(pixels) for pixels in overlay["slices"].values()) == [ROD_PIXELS] * 3


def _audited(settings: Settings, path: str) -> list[str]:
    """The agent names of the AuditEvents whose query is ``path``."""
    with Session(engine_for(settings.database_url)) as session:
        events = run_search(session, spec_for("AuditEvent"), [], count=1000).matches
    return [event["agent"][0]["name"] for event in events
            if any(base64.b64decode(entity.get("query", "")).decode() == path
                   for entity in event.get("entity", []))]


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)


def _shown(page: Any) -> np.ndarray:
    """The slice image as the browser received it."""
    src = page.locator("img.sp-slices__image").get_attribute("src")
    return _pixels(page.request.get(src).body())


@pytest.fixture
def no_js_page(browser: Any, staff_live: tuple[str, Settings]) -> Iterator[Any]:  # noqa: F811
    """A radiologist's page in a Chromium context with JavaScript disabled."""
    base, settings = staff_live
    username, password = create_staff_user(settings, "radiologist")
    context = browser.new_context(base_url=base, java_script_enabled=False)
    page = context.new_page()
    page.goto("/staff/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    yield page
    context.close()


def test_without_javascript_the_page_shows_rendered_slices(no_js_page: Any, study: str) -> None:
    page = no_js_page
    page.goto(f"/staff/studies/{study}")
    assert page.get_by_role("heading", name="Slice 1 of 5").is_visible()
    first = _shown(page)
    assert first.shape == (64, 64)
    assert first.std() < 1  # slice 1: background only, one grey level

    page.get_by_role("link", name="Next slice").click()
    assert page.get_by_role("heading", name="Slice 2 of 5").is_visible()
    page.get_by_role("link", name="Next slice").click()
    third = _shown(page)
    assert third.max() == 255 and third.min() < 255  # the rod appears, white in soft tissue

    page.get_by_role("link", name="Lung window").click()
    assert page.get_by_role("heading", name="Slice 3 of 5, lung window").is_visible()
    lung = _shown(page)
    # 40 HU in a lung window (W1500 L-600): (40 - (-600 - 750)) / 1500 of the grey scale.
    background = lung[0, 0]
    assert abs(background - 255 * (40 + 600 + 750) / 1500) <= 2
    assert background != third[0, 0]
    assert page.get_by_role("link", name="Previous slice").is_visible()


def test_javascript_viewer_renders_and_scrolls(
        logged_in_page: Callable[[str], Any], study: str,  # noqa: F811
        axe_violations: Callable[[Any], list[dict[str, Any]]]) -> None:
    page = logged_in_page("radiographer")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"/staff/studies/{study}")
    page.wait_for_selector("#viewer[data-first-image='rendered'] canvas", timeout=60_000)
    index = page.locator("#slice-index")
    assert index.inner_text() == "Slice 1 of 5"
    page.wait_for_selector("#viewer[data-overlay-pixels='0']")  # no calcium on slice 1

    viewport = page.locator("#viewport")
    viewport.focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_selector("#slice-index[data-index='2']")
    page.keyboard.press("End")
    page.wait_for_selector("#slice-index[data-index='5']")
    page.wait_for_selector(f"#viewer[data-overlay-pixels='{ROD_PIXELS}']")  # the rod's SEG
    page.get_by_label("Show the calcium overlay").uncheck()
    page.wait_for_selector("#viewer[data-overlay-pixels='0']")
    box = viewport.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -120)
    page.wait_for_selector("#slice-index[data-index='4']")

    page.get_by_role("button", name="Lung").click()
    page.wait_for_selector(f"#viewer[data-window='{LUNG}']")
    # The 3D model: <model-viewer> (bundled) loads the GLB and says so.
    page.locator("model-viewer").scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('model-viewer').loaded === true",
                           timeout=30_000)
    assert model_in_its_box(page)  # its own stylesheet is allowed by the staff CSP
    assert not errors, errors
    assert axe_violations(page) == []
