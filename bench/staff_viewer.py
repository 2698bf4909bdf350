"""Staff viewer: time to first image and to scroll 300 slices, in Chromium on loopback.

A 512 x 512 x 300 uncompressed CT phantom (``_imaging_phantom.cardiac_phantom``) is
stored as STOW-RS stores it; the whole app is served on 127.0.0.1 (werkzeug,
threaded, in this process; SQLite); Debian's Chromium (Playwright, headless) logs in
as a radiologist and opens ``/staff/studies/{study}``. Measured, each run in a new
browser context (cold HTTP cache, the 4.5 MB viewer bundle fetched again):

- *time to first image*: navigation start to the viewer's first drawn slice (the
  ``scanpath-first-image`` performance mark that viewer.js sets), against the
  baseline of ``fetch()``-ing, in the same page, the three requests any DICOMweb
  viewer needs before it can draw (QIDO-RS series, WADO-RS metadata, frame 1);
- *scroll through 300 slices*: Arrow Down 299 times, each press waiting until the
  page shows the next slice number (the image drawn), against the baseline of
  ``fetch()``-ing the same 300 frames, six at a time (Chromium's connections per
  host), with the same session cookie and Accept header;
- *page without JavaScript*: navigation start to the load event of the rendered-slice
  page (``view=slices``: one server-rendered PNG).

Run: ``python bench/staff_viewer.py`` (needs ``make static`` and /usr/bin/chromium).
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import machine, revision, settings_for
from _imaging_phantom import cardiac_phantom
from sqlmodel import Session
from werkzeug.serving import make_server

from auth.staff import add_user
from core.db import engine_for
from imaging_core.storage import receive
from tests.imaging_core.phantoms import datasets

SLICES = 300
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
PASSWORD = "bench-password-not-secret"  # noqa: S105
CHROMIUM = "/usr/bin/chromium"

FIRST_IMAGE_BASELINE = """async ([study, series, sop]) => {
  const t0 = performance.now();
  const base = `/dicomweb/studies/${study}`;
  await (await fetch(`${base}/series`, {headers: {Accept: 'application/dicom+json'}})).json();
  await (await fetch(`${base}/series/${series}/metadata`)).json();
  const frame = `${base}/series/${series}/instances/${sop}/frames/1`;
  const accept = 'multipart/related; type=application/octet-stream; transfer-syntax=*';
  await (await fetch(frame, {headers: {Accept: accept}})).arrayBuffer();
  return performance.now() - t0;
}"""

FRAMES_BASELINE = """async (urls) => {
  const t0 = performance.now();
  let next = 0;
  async function worker() {
    while (next < urls.length) {
      const url = urls[next++];
      const answer = await fetch(url, {headers:
        {Accept: 'multipart/related; type=application/octet-stream; transfer-syntax=*'}});
      if (!answer.ok) throw new Error(`${url}: ${answer.status}`);
      await answer.arrayBuffer();
    }
  }
  await Promise.all([1, 2, 3, 4, 5, 6].map(worker));
  return performance.now() - t0;
}"""

SCROLL = """async ([from, to]) => {
  const viewport = document.getElementById('viewport');
  const label = document.getElementById('slice-index');
  const step = to > from ? 1 : -1;
  const t0 = performance.now();
  for (let i = from + step; i !== to + step; i += step) {
    const key = step > 0 ? 'ArrowDown' : 'ArrowUp';
    viewport.dispatchEvent(new KeyboardEvent('keydown', {key, bubbles: true}));
    await new Promise((shown) => {
      const check = () => (
        label.dataset.index === String(i) ? shown() : requestAnimationFrame(check));
      check();
    });
  }
  return performance.now() - t0;
}"""

FIRST_IMAGE_MARK = ("() => performance.getEntriesByName('scanpath-first-image')[0].startTime")
LOAD_EVENT = "() => performance.getEntriesByType('navigation')[0].loadEventEnd"


def store_study(settings: Any) -> tuple[str, str, list[str]]:
    """Store the phantom; its study and series UIDs and SOP instance UIDs in order."""
    phantom = cardiac_phantom(SLICES)
    sops = []
    for ds in datasets(phantom):
        receive(settings, ds, "stow")
        sops.append(str(ds.SOPInstanceUID))
    return phantom.study_uid, phantom.series_uid, sops


@contextmanager
def served(settings: Any) -> Iterator[str]:
    from scanpath.app import create_app

    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.config["SCANPATH"] = settings.model_copy(update={
        "public_base_url": f"http://127.0.0.1:{server.server_port}"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def logged_in(browser: Any, base: str) -> Any:
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto("/staff/login")
    page.get_by_label("Username").fill("bench-radiologist")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/staff")
    return page


def one_run(browser: Any, base: str, study: str, series: str, sops: list[str]) -> dict[str, float]:
    page = logged_in(browser, base)
    page.goto(f"/staff/studies/{study}")
    page.wait_for_selector("#viewer[data-first-image='rendered']", timeout=120_000)
    first = page.evaluate(FIRST_IMAGE_MARK)
    renderer = page.get_attribute("#viewer", "data-renderer")
    scroll = page.evaluate(SCROLL, [1, SLICES])
    cached = page.evaluate(SCROLL, [SLICES, 1])  # back up: every slice is in memory now
    baseline_page = page.context.new_page()  # same cookies, its own HTTP cache
    baseline_page.goto("/staff")
    first_baseline = baseline_page.evaluate(FIRST_IMAGE_BASELINE, [study, series, sops[0]])
    urls = [f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/1" for sop in sops]
    frames_baseline = baseline_page.evaluate(FRAMES_BASELINE, urls)
    page.goto(f"/staff/studies/{study}?view=slices")
    no_js = page.evaluate(LOAD_EVENT)
    page.context.close()
    print(f"  run: first image {first:.0f} ms ({renderer}), baseline {first_baseline:.0f} ms; "
          f"scroll {scroll:.0f} ms, back {cached:.0f} ms, "
          f"300 frames fetched {frames_baseline:.0f} ms; "
          f"no-JS page {no_js:.0f} ms", flush=True)
    return {"first": first, "first_baseline": first_baseline, "scroll": scroll,
            "frames_baseline": frames_baseline, "cached": cached, "no_js": no_js}


def main() -> int:
    if not Path(CHROMIUM).is_file():
        print(f"skipped: {CHROMIUM} is not installed (make system-deps)")
        return 0
    from playwright.sync_api import sync_playwright

    from scanpath.migrate import upgrade

    print(f"machine: {machine()}")
    print(f"code: {revision()}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(f"sqlite:///{tmp}/bench.db", Path(tmp), secrets.token_hex(32))
        upgrade(settings)
        with Session(engine_for(settings.database_url)) as session:
            add_user(session, "bench-radiologist", "radiologist", PASSWORD, "Bench Radiologist")
            session.commit()
        study, series, sops = store_study(settings)
        print(f"study: {SLICES} slices of 512 x 512, 16-bit, uncompressed; {RUNS} runs")
        with served(settings) as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox"])
            runs = [one_run(browser, base, study, series, sops) for _ in range(RUNS)]
            browser.close()
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"time to first image: {median['first']:.0f} ms (median); baseline (QIDO + metadata "
          f"+ frame 1 by fetch) {median['first_baseline']:.0f} ms; ratio "
          f"{median['first'] / median['first_baseline']:.1f}")
    print(f"scroll through {SLICES} slices: {median['scroll']:.0f} ms "
          f"({median['scroll'] / (SLICES - 1):.1f} ms a slice); baseline (the {SLICES} frames "
          f"by fetch, 6 at a time) {median['frames_baseline']:.0f} ms; ratio "
          f"{median['scroll'] / median['frames_baseline']:.2f}")
    print(f"scroll back through the {SLICES} slices, all in memory: {median['cached']:.0f} ms "
          f"({median['cached'] / (SLICES - 1):.1f} ms a slice)")
    print(f"page without JavaScript (one rendered slice): {median['no_js']:.0f} ms to load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
