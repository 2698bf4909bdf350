"""MedplumClient (@medplum/core, under Node) as a real FHIR client of ScanPath."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

SCRIPT = Path(__file__).resolve().parent / "medplum_transaction.mjs"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if not found or not (ROOT / "node_modules" / "@medplum" / "core").is_dir():
        pytest.skip("node and @medplum/core are needed (make node_modules)")
    return found


def test_duplicate_conditional_creates_from_medplum_are_one_patient(live_sqlite, node):
    from sqlmodel import Session

    from auth.clients import issue_token_for
    from core.db import engine_for

    base, settings = live_sqlite
    with Session(engine_for(settings.database_url)) as session:
        token = issue_token_for(session, settings, "demo-gp")
    run = subprocess.run([node, str(SCRIPT), base, token], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    locations = [e["response"]["location"] for e in body["entry"]]
    patient = locations[0].split("/")[1]
    assert locations[1].split("/")[1] == patient
    condition = requests.get(f"{base}/fhir/{locations[2].rsplit('/_history', 1)[0]}",
                             headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    order = requests.get(f"{base}/fhir/{locations[3].rsplit('/_history', 1)[0]}",
                         headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert condition["subject"]["reference"] == order["subject"]["reference"] == \
        f"Patient/{patient}"
