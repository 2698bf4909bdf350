"""Every GP vignette, shared and ours, through the real HTTP CDS Hooks endpoint."""

from __future__ import annotations

import pytest
import requests

from rules.context import today_utc
from tests.rules.vignettes import check, load, vignette_files


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
    base, http = cds
    vignette = load(path, today_utc())
    request = vignette["request"]
    service = "imaging-order-sign" if request["hook"] == "order-sign" else "imaging-order-select"
    response = http.post(f"{base}/cds-services/{service}", json=request, timeout=30)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    problems = check(vignette["expect"], cards)
    assert not problems, f"{vignette['id']} ({vignette['source']}): {problems}\n" + \
        "\n".join(f"[{c['indicator']}] {c['summary']}" for c in cards)
