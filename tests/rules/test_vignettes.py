"""Every GP vignette, shared and ours, through the real HTTP CDS Hooks endpoint."""

from __future__ import annotations

import pytest
import requests

from rules.context import today_utc
from tests.rules.vignettes import check, involves_safety, load, uk_twin, vignette_files


@pytest.fixture(scope="module")
def cds(live_sqlite):
    from sqlmodel import Session

    from auth.clients import issue_token_for
    from core.db import engine_for

    base, settings = live_sqlite
    with Session(engine_for(settings.database_url)) as session:
        token = issue_token_for(session, settings, "demo-gp")
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    return base, http


@pytest.mark.parametrize("path", vignette_files(), ids=lambda p: p.stem)
def test_vignette(path, cds):
    _check(load(path, today_utc()), cds)


SAFETY_CASES = [p for p in vignette_files() if involves_safety(load(p, today_utc()))]


@pytest.mark.parametrize("path", SAFETY_CASES, ids=lambda p: f"{p.stem}-uk")
def test_uk_coded_twin(path, cds):
    """The same case coded the way GP systems in England send it gets the same answer."""
    _check(uk_twin(load(path, today_utc())), cds)


def _check(vignette, cds):
    base, http = cds
    request = vignette["request"]
    service = "imaging-order-sign" if request["hook"] == "order-sign" else "imaging-order-select"
    response = http.post(f"{base}/cds-services/{service}", json=request, timeout=30)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    problems = check(vignette["expect"], cards)
    assert not problems, f"{vignette['id']} ({vignette['source']}): {problems}\n" + \
        "\n".join(f"[{c['indicator']}] {c['summary']}" for c in cards)
