"""Patient report links: does a refusal take the time an open link takes? (issue 13 item 2)

Issue 13 asks that expired, revoked, locked, tampered and unknown links show the
same neutral page "with the same status and similar timing", so that timing does
not tell whether a report exists. This measures, in process (Flask's test client:
no socket, so the times are the server's), on one SQLite database:

- ``open``: GET of a live link (the date-of-birth form, 200), the baseline;
- ``unknown``: GET of a random 43-character token (404);
- ``tampered``: the live token with one character changed (404);
- ``revoked``: a link its GP system revoked (PATCH to entered-in-error; 404);
- ``healthz``: GET /healthz, the cheapest answer the app gives, for scale.

Each request comes from its own client address, so the per-address limit of
unknown links never turns the cases into "blocked". The cases are interleaved
round by round so that drift of a shared machine hits them alike.

    .venv/bin/python bench/patient_links.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine, revision, settings_for
from sqlmodel import Session

from core.db import engine_for

SECRET = "bench-secret-key-0123456789abcdef-not-a-placeholder"
BORN = "1968-04-02"


def signed_link(client: Any, bearer: Callable[[str], dict[str, str]]) -> tuple[str, str]:
    """A signed-off report's link: (its DocumentReference id, its path /r/{token})."""
    def made(who: str, resource: dict[str, Any]) -> dict[str, Any]:
        answer = client.post(f"/fhir/{resource['resourceType']}", json=resource,
                             headers=bearer(who))
        assert answer.status_code == 201, answer.get_json()
        return dict(answer.get_json())

    patient = made("demo-gp", {"resourceType": "Patient", "birthDate": BORN,
                               "name": [{"family": "Example", "given": ["Pat"]}]})
    doctor = made("demo-admin", {"resourceType": "Practitioner", "name": [{"family": "Reader"}]})
    report = made("demo-radiology", {
        "resourceType": "DiagnosticReport", "status": "preliminary",
        "code": {"text": "CT coronary calcium score"},
        "subject": {"reference": f"Patient/{patient['id']}"},
        "conclusion": "Coronary artery calcium score 0."})
    signed = {k: v for k, v in report.items() if k != "meta"} | {
        "status": "final", "resultsInterpreter": [{"reference": f"Practitioner/{doctor['id']}"}]}
    done = client.put(f"/fhir/DiagnosticReport/{report['id']}", json=signed,
                      headers=bearer("demo-radiology"))
    assert done.status_code == 200, done.get_json()
    found = client.get(f"/fhir/DocumentReference?subject=Patient/{patient['id']}",
                       headers=bearer("demo-gp")).get_json()
    document = found["entry"][0]["resource"]
    url = document["content"][0]["attachment"]["url"]
    return document["id"], url[url.index("/r/"):]


def revoke(client: Any, bearer: Callable[[str], dict[str, str]], document_id: str) -> None:
    patch = [{"op": "replace", "path": "/status", "value": "entered-in-error"}]
    done = client.patch(f"/fhir/DocumentReference/{document_id}", json=patch, headers={
        **bearer("demo-gp"), "Content-Type": "application/json-patch+json"})
    assert done.status_code == 200, done.get_json()


def prepared(settings: Any) -> tuple[Any, dict[str, tuple[str, int]]]:
    """The app's test client and each case's (path, expected status)."""
    from _common import _seed

    from auth.clients import issue_token_for
    from scanpath.app import create_app
    from scanpath.migrate import upgrade

    upgrade(settings)
    app = create_app(settings)
    with Session(engine_for(settings.database_url)) as session:
        _seed(session, settings)
        tokens = {who: issue_token_for(session, settings, who)
                  for who in ("demo-gp", "demo-radiology", "demo-admin")}
        session.commit()
    client = app.test_client()

    def bearer(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[who]}", "Accept": "application/fhir+json"}

    _, live = signed_link(client, bearer)
    revoked_id, revoked = signed_link(client, bearer)
    revoke(client, bearer, revoked_id)
    changed = live[:-1] + ("A" if live[-1] != "A" else "B")
    return client, {"open": (live, 200), "unknown": (f"/r/{secrets.token_urlsafe(32)}", 404),
                    "tampered": (changed, 404), "revoked": (revoked, 404),
                    "healthz": ("/healthz", 200)}


def timed(client: Any, cases: dict[str, tuple[str, int]], repeat: int) -> dict[str, list[float]]:
    """Milliseconds per case, ``repeat`` rounds after three warm-up rounds, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(repeat + 3):
        for name, (path, status) in cases.items():
            address = f"198.51.{round_ % 250}.{1 + list(cases).index(name)}"
            start = time.perf_counter()
            answer = client.get(path, environ_base={"REMOTE_ADDR": address})
            elapsed = (time.perf_counter() - start) * 1000
            assert answer.status_code == status, (name, answer.status_code)
            if round_ >= 3:
                times[name].append(elapsed)
    return times


def report(times: dict[str, list[float]]) -> None:
    base = statistics.median(times["open"])
    print(f"{'case':<10}{'p50 ms':>9}{'p95 ms':>9}{'p50 / open':>12}")
    for name, values in times.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"{name:<10}{statistics.median(values):>9.2f}{p95:>9.2f}"
              f"{statistics.median(values) / base:>12.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    print(machine())
    print(revision())
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(f"sqlite:///{Path(tmp) / 'bench.db'}", Path(tmp), SECRET)
        client, cases = prepared(settings)
        report(timed(client, cases, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
