"""Modality Worklist C-FIND latency with 10,000 scheduled orders (issue 11 item 2).

Target: p95 under 100 ms per C-FIND. ``scanpath serve`` runs on a prepared
database (SQLite, and PostgreSQL when reachable) holding 10,000 scheduled
worklist entries and 5,000 that are no longer scheduled (in progress,
cancelled...), spread over 250 working days, 8 stations and 4 modalities;
pynetdicom, as a modality would, asks on one association:

- ``accession``: one order by AccessionNumber (1 match);
- ``station-day``: the day's list for one station (date, Modality, AE; ~5);
- ``modality-day``: one modality's day across stations (~10);
- ``name``: a PatientName wildcard (``NAME0012*``, 10 matches);

each with the keys a modality asks for (patient, procedure, step). The
baseline is a C-ECHO on the same association in the same run: the ratio
says what the worklist adds to a DICOM round trip. The SCU sets TCP_NODELAY
as the SCP does (dcmtk does with ``TCP_NODELAY=1``); the last column is the
same query from an SCU that leaves Nagle's algorithm on, as Debian's dcmtk
does by default, which costs the SCU a delayed ACK (~40 ms) on each request
with an identifier.

The entries are written straight into ``worklist_step`` (what
``referral.worklist.follow`` writes when an order is scheduled): the C-FIND
reads that table alone, so 10,000 orders through FHIR intake would only
slow the preparation. ``tests/imaging_core/test_worklist.py`` covers the path
from the Task PATCH to the table.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from _common import DEFAULT_PG, drop_postgres, fresh_postgres, machine, prepare, revision, tail
from dicom_ingest import AE_TITLE, scanpath_serve
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from sqlmodel import Session

from core.db import engine_for

WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
VERIFICATION = "1.2.840.10008.1.1"
TARGET_P95_MS = 100.0
MODALITIES = ("CT", "MR", "US", "DX")
STATIONS = tuple(f"{m}{n}" for m in MODALITIES for n in (1, 2))  # two per modality
DAYS = 250


def day(index: int) -> str:
    """The ``index``-th working day from Monday 4 January 2027, as DA."""
    from datetime import date, timedelta

    weeks, weekday = divmod(index, 5)
    return (date(2027, 1, 4) + timedelta(weeks=weeks, days=weekday)).strftime("%Y%m%d")


def fill(url: str, scheduled: int, other: int) -> None:
    """``scheduled`` entries on the worklist and ``other`` that left it."""
    from pydicom.uid import generate_uid

    from referral.models import WorklistStep

    with Session(engine_for(url)) as session:
        for n in range(scheduled + other):
            station = STATIONS[n % len(STATIONS)]
            session.add(WorklistStep(
                service_request_id=f"order-{n}", task_id=f"task-{n}",
                patient_resource_id=f"patient-{n}", scheduled=n < scheduled,
                accession_number=f"SP{n:08d}", patient_id=f"{9000000000 + n}",
                issuer_of_patient_id="https://fhir.nhs.uk/Id/nhs-number",
                patient_name=f"NAME{n:05d}^Alex", patient_birth_date="19680402",
                patient_sex="F", start_date=day((n // len(STATIONS)) % DAYS),
                start_time=f"{8 + n % 9:02d}{(n * 7) % 60:02d}00", modality=station[:2],
                station_ae=station, procedure_code="426005005", procedure_scheme="SCT",
                procedure_meaning="CT coronary calcium score", study_uid=generate_uid(None)))
            if n % 2000 == 1999:
                session.commit()
        session.commit()


def modality_keys(**match: str) -> Dataset:
    """The identifier a modality sends: its matching values and the keys it wants back."""
    step = Dataset()
    for keyword in ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
                    "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID",
                    "ScheduledProcedureStepDescription", "ScheduledPerformingPhysicianName"):
        setattr(step, keyword, match.get(keyword, ""))
    identifier = Dataset()
    for keyword in ("AccessionNumber", "PatientName", "PatientID", "IssuerOfPatientID",
                    "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "RequestedProcedureID", "RequestedProcedureDescription"):
        setattr(identifier, keyword, match.get(keyword, ""))
    identifier.RequestedProcedureCodeSequence = []
    identifier.ScheduledProcedureStepSequence = [step]
    return identifier


QUERIES = {
    "accession": modality_keys(AccessionNumber="SP00004321"),
    "station-day": modality_keys(ScheduledProcedureStepStartDate=day(100), Modality="CT",
                                 ScheduledStationAETitle="CT1"),
    "modality-day": modality_keys(ScheduledProcedureStepStartDate=day(100), Modality="MR"),
    "name": modality_keys(PatientName="NAME0012*"),
}


def c_find(assoc: Association, identifier: Dataset) -> int:
    """One C-FIND; the number of matches (raises unless it ends in Success)."""
    matches = 0
    for status, _found in assoc.send_c_find(identifier, WORKLIST_FIND):
        if "Status" not in status:
            raise RuntimeError("no C-FIND response (association aborted or DIMSE timeout)")
        if status.Status in (0xFF00, 0xFF01):
            matches += 1
        elif status.Status != 0x0000:
            raise RuntimeError(f"C-FIND status {status.Status:04X}")
    return matches


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` calls, after 5 unmeasured ones."""
    for _ in range(5):
        action()
    spent = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        spent.append((time.perf_counter() - start) * 1000)
    return spent


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def associate(port: int, nodelay: bool) -> Association:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(WORKLIST_FIND)
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE)
    assert assoc.is_established
    raw = assoc.dul.socket.socket if assoc.dul.socket else None
    if nodelay and raw is not None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return assoc


def run(name: str, url: str, tmp: Path, args: argparse.Namespace) -> bool:
    backend = prepare(name, url, tmp / "var", "b" * 40, patients=1)
    fill(url, args.scheduled, args.scheduled // 2)
    with scanpath_serve(backend, tmp / "var", "b" * 40, tmp / f"{name}.log") as server:
        fast, nagle = associate(server.dicom_port, True), associate(server.dicom_port, False)
        try:
            echo = timed(lambda: fast.send_c_echo(), args.repeats)
            print(f"\n{name}: {args.scheduled} scheduled + {args.scheduled // 2} other entries;"
                  f" {args.repeats} requests each")
            print("| request | matches | p50 ms | p95 ms | p95 / C-ECHO p95 | p95 ms, SCU "
                  "with Nagle |")
            print("|---|---|---|---|---|---|")
            print(f"| C-ECHO (baseline) | - | {statistics.median(echo):.2f} | "
                  f"{p95(echo):.2f} | 1.0 | - |")
            ok = True
            for label, identifier in QUERIES.items():
                matches = c_find(fast, identifier)
                spent = timed(partial(c_find, fast, identifier), args.repeats)
                slow = timed(partial(c_find, nagle, identifier), args.repeats // 4)
                ok &= p95(spent) < TARGET_P95_MS
                print(f"| {label} | {matches} | {statistics.median(spent):.2f} | "
                      f"{p95(spent):.2f} | {p95(spent) / p95(echo):.1f} | {p95(slow):.1f} |")
        except Exception:
            print(f"the run failed; the server's log ends:\n{tail(tmp / f'{name}.log')}")
            raise
        finally:
            fast.release()
            nagle.release()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduled", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--postgres", default=DEFAULT_PG,
                        help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args(argv)
    print(f"Worklist C-FIND: {revision()}\n{machine()}\ntarget: p95 < {TARGET_P95_MS:.0f} ms")
    ok = True
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        (tmp / "sqlite").mkdir()
        ok &= run("sqlite", f"sqlite:///{tmp / 'sqlite' / 'bench.db'}", tmp / "sqlite", args)
        if args.postgres:
            try:
                url = fresh_postgres(args.postgres)
            except Exception as error:  # no server: say so, measure SQLite only
                print(f"\npostgres: skipped ({type(error).__name__})")
            else:
                (tmp / "pg").mkdir()
                try:
                    ok &= run("postgres", url, tmp / "pg", args)
                finally:
                    drop_postgres(args.postgres)
    print(f"\n{'PASS' if ok else 'FAIL'}: every p95 under {TARGET_P95_MS:.0f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
