"""The Modality Worklist on the DICOM port (issue 11 item 2; PS3.4 Annex K).

Orders are placed and moved through FHIR as a GP system and a RIS would
(tests/referral/moves.py); the worklist is asked by dcmtk's ``findscu -W``
(a real peer) and by pynetdicom as an SCU.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from flask.testing import FlaskClient
from pydicom.dataset import Dataset
from pynetdicom import AE

from core.settings import Settings
from tests import factories
from tests.imaging_core.conftest import accession_of
from tests.referral.moves import GP, WHEN, patch, place, put, reach, refused, task_of

Headers = Callable[..., dict[str, str]]
FINDSCU = shutil.which("findscu")
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
STATION_AE = "https://scanpath.example/fhir/CodeSystem/worklist"  # default canonical base
NHS = "https://fhir.nhs.uk/Id/nhs-number"
CT_CAC = {"coding": [{"system": "https://scanpath.example/fhir/CodeSystem/procedure",
                      "code": "CT-CAC"}]}


def station(ae: str) -> dict[str, Any]:
    """The JSON Patch operation a RIS sends to set the scheduled station's AE title."""
    return {"op": "add", "path": "/input", "value": [{
        "type": {"coding": [{"system": STATION_AE, "code": "station-ae"}]},
        "valueString": ae}]}


def scheduled(client: FlaskClient, auth_headers: Headers, settings: Settings,
              ae: str = "CT01", start: str = WHEN) -> dict[str, Any]:
    """A coronary calcium CT order the RIS vetted, accepted and scheduled at ``start``
    on station ``ae``."""
    order = place(client, auth_headers, code=CT_CAC)
    for step in ("vetting", "accepted"):
        task = task_of(client, auth_headers, order["id"])
        assert put(client, auth_headers, task, step).status_code == 200
    booked = patch(client, auth_headers, task, "scheduled", station(ae),
                   {"op": "add", "path": "/restriction", "value": {"period": {"start": start}}})
    assert booked.status_code == 200, booked.get_json()
    return order


def query(port: int, **keys: Any) -> tuple[list[Dataset], int]:
    """A pynetdicom C-FIND: the matches and the final status."""
    identifier = Dataset()
    identifier.AccessionNumber = ""
    step = Dataset()
    for keyword, value in keys.items():
        if keyword in ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
                       "ScheduledProcedureStepStartTime"):
            setattr(step, keyword, value)
        else:
            setattr(identifier, keyword, value)
    if "ScheduledProcedureStepSequence" not in keys:
        identifier.ScheduledProcedureStepSequence = [step]
    return find(port, identifier)


def find(port: int, identifier: Dataset) -> tuple[list[Dataset], int]:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(WORKLIST_FIND)
    assoc = ae.associate("127.0.0.1", port, ae_title="SCANPATH")
    assert assoc.is_established
    matches, final = [], -1
    try:
        for status, found in assoc.send_c_find(identifier, WORKLIST_FIND):
            if status.Status == 0xFF00:
                matches.append(found)
            else:
                final = int(status.Status)
    finally:
        assoc.release()
    return matches, final


def accessions(matches: list[Dataset]) -> set[str]:
    return {str(m.AccessionNumber) for m in matches}


# --- a real modality: dcmtk's findscu ------------------------------------------------------

def findscu(port: int, out: Path, *keys: str) -> list[Dataset]:
    """``findscu -W`` with ``keys`` (``-k`` values); the responses it extracted."""
    assert FINDSCU is not None
    out.mkdir(exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    args = [arg for key in keys for arg in ("-k", key)]
    done = subprocess.run([FINDSCU, "-W", "-aet", "MODALITY", "-aec", "SCANPATH", "-X",
                           "-od", str(out), *args, "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


@pytest.mark.skipif(FINDSCU is None, reason="dcmtk (findscu) not installed")
def test_findscu_finds_scheduled_orders_only(client: FlaskClient, auth_headers: Headers,
                                             settings: Settings, scp: int,
                                             tmp_path: Path) -> None:
    booked = accession_of(scheduled(client, auth_headers, settings))
    closed = {target: accession_of(reach(client, auth_headers, settings, target)[0])
              for target in ("accepted", "rejected", "cancelled", "in-progress", "completed")}

    by_accession = findscu(scp, tmp_path, f"AccessionNumber={booked}", "PatientName",
                           "ScheduledProcedureStepSequence[0].Modality")
    assert [str(m.AccessionNumber) for m in by_accession] == [booked]
    assert str(by_accession[0].PatientName) == "Smith^Alex"

    # 09:30 on 1 December 2026 (WHEN), on a CT: the day's range and the modality find it.
    by_day = findscu(scp, tmp_path, "AccessionNumber",
                     "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate="
                     "20261201-20261201",
                     "ScheduledProcedureStepSequence[0].Modality=CT")
    assert accessions(by_day) == {booked}
    assert findscu(scp, tmp_path, "AccessionNumber",
                   "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate="
                   "20261202-") == []
    assert findscu(scp, tmp_path, "AccessionNumber",
                   "ScheduledProcedureStepSequence[0].Modality=MR") == []

    everything = accessions(findscu(scp, tmp_path, "AccessionNumber"))
    assert booked in everything
    assert not everything & set(closed.values()), closed
    for accession in closed.values():
        assert findscu(scp, tmp_path, f"AccessionNumber={accession}") == []


# --- what an item holds ------------------------------------------------------------------

def test_an_item_carries_the_patient_procedure_and_step(
        client: FlaskClient, auth_headers: Headers, settings: Settings, scp: int) -> None:
    order = scheduled(client, auth_headers, settings, ae="CT01")
    step = Dataset()
    for keyword in ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
                    "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID",
                    "ScheduledProcedureStepDescription"):
        setattr(step, keyword, "")
    identifier = Dataset()
    identifier.AccessionNumber = accession_of(order)
    for keyword in ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
                    "PatientSex", "StudyInstanceUID", "RequestedProcedureID",
                    "RequestedProcedureDescription"):
        setattr(identifier, keyword, "")
    identifier.RequestedProcedureCodeSequence = []
    identifier.ScheduledProcedureStepSequence = [step]
    [item], status = find(scp, identifier)
    assert status == 0x0000
    # factories.patient(): NHS number, Smith Alex, female, born 2 April 1968.
    assert (str(item.PatientName), item.PatientID, item.IssuerOfPatientID,
            item.PatientBirthDate, item.PatientSex) == (
        "Smith^Alex", factories.VALID_NHS_NUMBER, NHS, "19680402", "F")
    assert item.RequestedProcedureID == accession_of(order)
    [code] = item.RequestedProcedureCodeSequence
    assert code.CodeValue and code.CodingSchemeDesignator in ("SCT", "99SCANPATH")
    assert item.RequestedProcedureDescription == code.CodeMeaning
    [sps] = item.ScheduledProcedureStepSequence
    assert (sps.Modality, sps.ScheduledStationAETitle, sps.ScheduledProcedureStepStartDate,
            sps.ScheduledProcedureStepStartTime) == ("CT", "CT01", "20261201", "093000")
    assert sps.ScheduledProcedureStepID == accession_of(order)
    # The Study Instance UID is made once: asked again after the RIS moved the booking,
    # the modality gets the same one.
    task = task_of(client, auth_headers, order["id"])
    assert patch(client, auth_headers, task, "scheduled", station("CT02")).status_code == 200
    [again], _ = find(scp, identifier)
    assert again.StudyInstanceUID == item.StudyInstanceUID
    assert again.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT02"


def test_only_the_keys_asked_for_come_back(client: FlaskClient, auth_headers: Headers,
                                          settings: Settings, scp: int) -> None:
    order = scheduled(client, auth_headers, settings)
    [item], _ = query(scp, AccessionNumber=accession_of(order), PatientName="",
                      Modality="")
    assert {e.keyword for e in item} == {"AccessionNumber", "PatientName",
                                         "ScheduledProcedureStepSequence"}
    assert [e.keyword for e in item.ScheduledProcedureStepSequence[0]] == ["Modality"]
    # A key ScanPath keeps no value for comes back empty, not left out (K.6.1.2.2).
    [item], _ = query(scp, AccessionNumber=accession_of(order), AdmissionID="")
    assert "AdmissionID" in item and item.AdmissionID in ("", None)


def test_the_keys_modalities_match_on(client: FlaskClient, auth_headers: Headers,
                                      settings: Settings, scp: int) -> None:
    mine = accession_of(scheduled(client, auth_headers, settings, ae="CT01",
                                  start="2026-12-03T14:05:00Z"))
    other = accession_of(scheduled(client, auth_headers, settings, ae="CT02",
                                   start="2026-12-04T08:00:00Z"))
    both = {mine, other}
    assert accessions(query(scp, AccessionNumber="")[0]) >= both  # universal matching
    assert accessions(query(scp, ScheduledStationAETitle="CT01")[0]) == {mine}
    assert accessions(query(scp, ScheduledProcedureStepStartDate="20261203")[0]) == {mine}
    assert accessions(query(scp, ScheduledProcedureStepStartDate="-20261203")[0]) & both \
        == {mine}
    assert accessions(query(scp, ScheduledProcedureStepStartDate="20261204-")[0]) & both \
        == {other}
    assert accessions(query(scp, ScheduledProcedureStepStartTime="1400-1500")[0]) & both \
        == {mine}
    assert accessions(query(scp, AccessionNumber=mine)[0]) == {mine}
    nhs = query(scp, PatientID=factories.VALID_NHS_NUMBER)[0]
    assert accessions(nhs) >= both
    # PatientName wildcards (PS3.4 C.2.2.2.4), case-insensitive for PN.
    assert accessions(query(scp, PatientName="smi*")[0]) >= both
    assert accessions(query(scp, PatientName="Sm?th^Alex")[0]) >= both
    assert accessions(query(scp, PatientName="Jones*")[0]) == set()


def test_a_patient_update_reaches_the_worklist(client: FlaskClient, auth_headers: Headers,
                                               settings: Settings, scp: int) -> None:
    order = scheduled(client, auth_headers, settings)
    patient_id = order["subject"]["reference"].removeprefix("Patient/")
    current = client.get(f"/fhir/Patient/{patient_id}", headers=auth_headers(GP)).get_json()
    renamed = {**current, "name": [{"use": "official", "family": "Jones",
                                    "given": ["Alex", "Sam"], "prefix": ["Dr"]}]}
    assert client.put(f"/fhir/Patient/{patient_id}", json=renamed,
                      headers=auth_headers(GP)).status_code == 200
    [item], _ = query(scp, AccessionNumber=accession_of(order), PatientName="")
    assert str(item.PatientName) == "Jones^Alex^Sam^Dr"


# --- refusals ----------------------------------------------------------------------------

@pytest.mark.parametrize("keys", [
    {"ScheduledProcedureStepStartDate": "2026-12-01"},  # ISO, not DA
    {"ScheduledProcedureStepStartDate": "20261301-x"},
    {"ScheduledProcedureStepStartTime": "25h"},
    {"AccessionNumber": ["SP1", "SP2"]},  # one value only outside UID lists
])
def test_an_unusable_query_gets_a_failure_status(scp: int, keys: dict[str, Any]) -> None:
    matches, status = query(scp, **keys)
    assert matches == []
    assert status == 0xA900


def test_two_step_items_are_refused(scp: int) -> None:
    identifier = Dataset()
    identifier.AccessionNumber = ""
    # Two sequence items where sequence matching takes one (PS3.4 C.2.2.2.6).
    identifier.ScheduledProcedureStepSequence = [Dataset(), Dataset()]
    matches, status = find(scp, identifier)
    assert (matches, status) == ([], 0xA900)


def test_the_ris_sets_the_station_ae_and_a_bad_one_is_refused(
        client: FlaskClient, auth_headers: Headers, settings: Settings) -> None:
    _, task = reach(client, auth_headers, settings, "accepted")
    when = {"op": "add", "path": "/restriction", "value": {"period": {"start": WHEN}}}
    answer = patch(client, auth_headers, task, "scheduled", when, station("A\\B"))
    assert "station AE" in refused(answer, 422)
    too_long = patch(client, auth_headers, task, "scheduled", when, station("X" * 17))
    assert "station AE" in refused(too_long, 422)


def test_a_query_leaves_no_patient_data_in_the_logs(scp: int,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    query(scp, PatientName="Zebedee*", PatientID="9434765919")
    assert "Zebedee" not in caplog.text and "9434765919" not in caplog.text
    assert any("worklist C-FIND answered" in r.getMessage() for r in caplog.records)
