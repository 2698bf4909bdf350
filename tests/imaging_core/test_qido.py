"""QIDO-RS (PS3.18 §10.6) with dicomweb-client, the DICOMweb client viewers and scripts use.

Two studies are stored through STOW-RS by dicomweb-client itself; every search
below is one that client makes, against a live server.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset

from tests.conftest import serving
from tests.imaging_core.conftest import study


def _value(result: dict[str, Any], tag: str) -> Any:
    values = result.get(tag, {}).get("Value", [])
    return values[0] if values else None


def _patient(series: list[Dataset], patient_id: str, name: str, date: str) -> list[Dataset]:
    for ds in series:
        ds.PatientID, ds.PatientName, ds.StudyDate = patient_id, name, date
    return series


@pytest.fixture
def dicomweb(app: Any, token: Any) -> Iterator[tuple[DICOMwebClient, list[Dataset]]]:
    with serving(app) as base:
        client = DICOMwebClient(url=f"{base}/dicomweb",
                                headers={"Authorization": f"Bearer {token('demo-radiology')}"})
        first = _patient(study("ACC-QIDO-1", n_slices=2), "NHS-111", "Ó'Brien^Zoë",
                         "20260105")
        second = _patient(study("ACC-QIDO-2", n_slices=1), "NHS-222", "Smith^Alex",
                          "20260220")
        client.store_instances(first + second)
        yield client, first + second


def test_search_for_studies_by_patient_accession_and_date(dicomweb):
    client, stored = dicomweb
    studies = client.search_for_studies(search_filters={"PatientID": "NHS-111"})
    assert [_value(s, "0020000D") for s in studies] == [stored[0].StudyInstanceUID]
    assert _value(studies[0], "00201208") == 2  # NumberOfStudyRelatedInstances
    assert _value(studies[0], "00080061") == "CT"  # ModalitiesInStudy
    by_accession = client.search_for_studies(search_filters={"AccessionNumber": "ACC-QIDO-2"})
    assert [_value(s, "00080050") for s in by_accession] == ["ACC-QIDO-2"]
    in_january = client.search_for_studies(search_filters={"StudyDate": "20260101-20260131"})
    assert {_value(s, "0020000D") for s in in_january} == {stored[0].StudyInstanceUID}
    open_end = client.search_for_studies(search_filters={"StudyDate": "20260201-"})
    assert {_value(s, "0020000D") for s in open_end} == {stored[2].StudyInstanceUID}
    assert len(client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})) == 2
    assert client.search_for_studies(search_filters={"ModalitiesInStudy": "MR"}) == []


def test_uid_lists_wildcards_fuzzy_names_limit_offset(dicomweb):
    client, stored = dicomweb
    uids = f"{stored[0].StudyInstanceUID},{stored[2].StudyInstanceUID}"
    assert len(client.search_for_studies(search_filters={"StudyInstanceUID": uids})) == 2
    assert len(client.search_for_studies(search_filters={"PatientID": "NHS-*"})) == 2
    fuzzy = client.search_for_studies(search_filters={"PatientName": "zo"}, fuzzymatching=True)
    assert [_value(s, "00100020") for s in fuzzy] == ["NHS-111"]
    for typed in ("zoe", "o'brien", "O'BRIEN^ZOE", "Ó'Br", "obrien"):  # accents fold
        found = client.search_for_studies(search_filters={"PatientName": typed},
                                          fuzzymatching=True)
        assert [_value(s, "00100020") for s in found] == ([] if typed == "obrien"
                                                           else ["NHS-111"]), typed
    assert client.search_for_studies(search_filters={"PatientName": "brien"},
                                     fuzzymatching=True) == []  # component starts only
    everything = [_value(s, "0020000D") for s in client.search_for_studies()]
    page = client.search_for_studies(limit=1, offset=1)
    assert [_value(s, "0020000D") for s in page] == everything[1:2]  # the second, not first


def test_series_and_instances_within_a_study(dicomweb):
    client, stored = dicomweb
    series = client.search_for_series(study_instance_uid=stored[0].StudyInstanceUID)
    assert [_value(s, "0020000E") for s in series] == [stored[0].SeriesInstanceUID]
    assert _value(series[0], "00201209") == 2  # NumberOfSeriesRelatedInstances
    instances = client.search_for_instances(study_instance_uid=stored[0].StudyInstanceUID,
                                            series_instance_uid=stored[0].SeriesInstanceUID)
    assert {_value(i, "00080018") for i in instances} == \
        {ds.SOPInstanceUID for ds in stored[:2]}
    everywhere = client.search_for_instances(search_filters={"PatientID": "NHS-222"})
    assert [_value(i, "00080018") for i in everywhere] == [stored[2].SOPInstanceUID]
    assert _value(everywhere[0], "00081190").startswith(client.base_url + "/studies/")


def test_includefield_and_bad_keys(dicomweb, client, auth_headers):
    dw, stored = dicomweb
    studies = dw.search_for_studies(search_filters={"PatientID": "NHS-222"},
                                    fields=["StudyDescription"])
    assert "00100010" in studies[0]  # PatientName is a default study attribute
    headers = {"Authorization": auth_headers("demo-radiology")["Authorization"]}
    assert client.get("/dicomweb/studies?Colour=blue", headers=headers).status_code == 400
    for bad in ("x", "99999999999999999999", "2147483648"):  # IS is 32-bit (PS3.5 §6.2)
        assert client.get(f"/dicomweb/studies?SeriesNumber={bad}",
                          headers=headers).status_code == 400, bad
    for bad in ("StudyDate=garbage", "StudyDate=2026-11-01", "StudyDate=20260101-2026",
                "StudyTime=noon", "StudyDate=2026*", "StudyDate=20261301", "StudyDate=20260231",
                "StudyDate=00000000", "StudyTime=2460"):  # PS3.5 6.2 DA is YYYYMMDD
        assert client.get(f"/dicomweb/studies?{bad}", headers=headers).status_code == 400, bad
    assert client.get("/dicomweb/studies?StudyTime=0930-", headers=headers).status_code == 200
    assert client.get("/dicomweb/studies").status_code == 401


def test_rendered_frames_and_bulk_data(dicomweb):
    """PS3.18 §10.4: a viewer displays a study from ScanPath alone. The phantom's
    background is 40 HU; with window 40,400 (linear, PS3.3 C.11.2.1.2.1) 40 HU sits at
    the centre: ((40 - 39.5) / 399 + 0.5) * 255 = 127.8, so grey 128."""
    import io

    import numpy as np
    from PIL import Image

    client, stored = dicomweb
    ds = stored[0]
    uids = dict(study_instance_uid=ds.StudyInstanceUID,
                series_instance_uid=ds.SeriesInstanceUID, sop_instance_uid=ds.SOPInstanceUID)
    png = client.retrieve_instance_rendered(**uids, media_types=("image/png",),
                                            params={"window": "40,400,linear"})
    image = np.asarray(Image.open(io.BytesIO(png)))
    assert image.shape == (ds.Rows, ds.Columns)
    assert abs(int(np.median(image)) - 128) <= 1
    small = client.retrieve_instance_rendered(**uids, media_types=("image/jpeg",),
                                              params={"viewport": "32,32"})
    assert Image.open(io.BytesIO(small)).size == (32, 32)
    [frame] = client.retrieve_instance_frames(**uids, frame_numbers=[1])
    stored_values = np.frombuffer(frame, dtype="<i2").reshape(ds.Rows, ds.Columns)
    assert (stored_values == ds.pixel_array).all()
    metadata = client.retrieve_instance_metadata(**uids)
    uri = metadata["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"/instances/{ds.SOPInstanceUID}/frames/1")
    [bulk] = client.retrieve_bulkdata(uri)
    assert bulk == frame


def test_rendered_refuses_bad_parameters(dicomweb, client, auth_headers):
    dw, stored = dicomweb
    ds = stored[0]
    url = (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
           f"{ds.SOPInstanceUID}")
    headers = {"Authorization": auth_headers("demo-radiology")["Authorization"]}
    assert client.get(f"{url}/rendered?window=abc", headers=headers).status_code == 400
    assert client.get(f"{url}/frames/2", headers=headers).status_code == 400
    assert client.get(f"{url}/rendered", headers={**headers, "Accept": "image/gif"}) \
        .status_code == 406


def test_nul_in_a_stored_attribute_is_kept_visible_not_a_500(dicomweb):
    """PostgreSQL text cannot hold NUL. Trailing NUL is padding (PS3.5 §6.2) and goes; one
    inside a value is kept as U+FFFD, so ``NHS-\\0333`` never passes for ``NHS-333``."""
    client, _ = dicomweb
    client.store_instances(_patient(study("ACC-QIDO-3\x00", n_slices=1), "NHS-\x00333",
                                    "Null^Nora\x00", "20260301"))
    found = client.search_for_studies(search_filters={"AccessionNumber": "ACC-QIDO-3"})
    assert [_value(s, "00100020") for s in found] == ["NHS-\ufffd333"]
    assert client.search_for_studies(search_filters={"PatientID": "NHS-333"}) == []


@pytest.mark.parametrize("query", [
    "limit=%D9%A3", "offset=%D9%A3", "limit=-1", "limit=1e3",  # Arabic-Indic 3, sign, float
    "StudyDate=%D9%A2%D9%A0%D9%A2%D9%A6%D9%A0%D9%A1%D9%A0%D9%A5",  # 20260105, Arabic-Indic
    "SeriesNumber=%D9%A1", "StudyTime=%D9%A1%D9%A2",
    "includefield=zzzz", "includefield=PatientID,FFFFFFFF", "fuzzymatching=maybe"])
def test_numbers_and_dates_in_other_scripts_digits_are_400(dicomweb, client, auth_headers,
                                                           query):
    """PS3.5 §6.2: DA, TM and IS are ASCII digits (``int()`` would read ``٣`` as 3);
    includefield names attributes the dictionary knows; fuzzymatching is true or false."""
    headers = {"Authorization": auth_headers("demo-radiology")["Authorization"]}
    level = "series" if "Series" in query else "studies"
    answer = client.get(f"/dicomweb/{level}?{query}", headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:200]
    assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_a_limit_of_five_thousand_digits_is_capped_not_a_500(dicomweb):
    client, stored = dicomweb
    found = client.search_for_studies(limit=None, search_filters={"limit": "9" * 5000})
    assert len(found) == len({ds.StudyInstanceUID for ds in stored})


@pytest.mark.parametrize("tail", ["frames/1,%D9%A1", "frames/0", "frames/" + "9" * 5000,
                                  "rendered?viewport=%D9%A3%D9%A2,32",
                                  "rendered?viewport=99999,99999", "rendered?viewport=0,32",
                                  "rendered?window=%D9%A4%D9%A0,400,linear",
                                  "rendered?window=" + "9" * 5000 + ",400",
                                  "rendered?window=nan,nan,linear", "rendered?window=40,inf",
                                  "rendered?window=40,400,linear,extra",
                                  "rendered?quality=%D9%A9", "rendered?quality=0",
                                  "frames/1,1", "frames/1," + ",".join(["1"] * 3900)])
def test_frame_numbers_and_viewports_are_bounded_ascii_numbers(dicomweb, client, auth_headers,
                                                               tail):
    """Numbers in WADO-RS paths and rendered parameters (PS3.18 §8.3.5.1, §9.5.1.2.1) are
    ASCII, finite and bounded: a list of 3,900 frames of a one-frame image is no answer."""
    _dw, stored = dicomweb
    ds = stored[0]
    url = (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
           f"{ds.SOPInstanceUID}/{tail}")
    headers = {"Authorization": auth_headers("demo-radiology")["Authorization"]}
    answer = client.get(url, headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:200]


def test_rendered_takes_a_jpeg_quality(dicomweb, client, auth_headers):
    _dw, stored = dicomweb
    ds = stored[0]
    url = (f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
           f"{ds.SOPInstanceUID}/rendered")
    headers = {"Authorization": auth_headers("demo-radiology")["Authorization"],
               "Accept": "image/jpeg"}
    low, high = (client.get(f"{url}?quality={q}", headers=headers) for q in (5, 95))
    assert low.status_code == high.status_code == 200
    # Lossier JPEG quantises more coarsely: larger quantisation table steps (ITU T.81 B.2.4.1).
    steps = [sum(Image.open(io.BytesIO(a.data)).quantization[0]) for a in (low, high)]
    assert steps[0] > steps[1]
