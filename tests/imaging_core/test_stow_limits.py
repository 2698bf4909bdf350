"""STOW-RS answers failures in its body, bounded (issue 9 item 10), on SQLite and PostgreSQL.

PS3.18 §10.5.3: each failed instance is an item of FailedSOPSequence with
its FailureReason; one summary ``Warning`` header at most, one log line per
request, and a body of more parts than ``SCANPATH_DICOMWEB_MAX_PARTS``
is refused whole with 413 and an OperationOutcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.settings import Settings
from imaging_core.models import DicomInstance
from tests.imaging_core.conftest import rows, stored_files, study
from tests.imaging_core.test_dicomweb import (
    FAILED,
    FAILURE_REASON,
    REFERENCED,
    encoded,
    multipart,
    stow_headers,
)

Headers = Callable[..., dict[str, str]]


def test_a_thousand_empty_parts_get_one_warning_and_one_log_line(
        settings: Settings, client: FlaskClient, auth_headers: Headers,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="imaging_core.dicomweb")
    response = client.post("/dicomweb/studies", data=multipart(*[b""] * 1000),
                           headers=stow_headers(auth_headers))
    assert response.status_code == 409  # none stored (PS3.18 Table 10.5.3-1)
    assert len(response.headers.getlist("Warning")) == 1
    assert response.headers["Warning"].startswith('299 ScanPath "1000 of 1000 instances')
    failed = response.get_json()[FAILED]["Value"]
    assert len(failed) == 1000
    assert {item[FAILURE_REASON]["Value"][0] for item in failed} == {0xC000}
    stow_lines = [r for r in caplog.records if r.name == "imaging_core.dicomweb"]
    assert len(stow_lines) == 1


def test_good_parts_get_no_warning(settings: Settings, client: FlaskClient,
                                   auth_headers: Headers) -> None:
    response = client.post("/dicomweb/studies",
                           data=multipart(*map(encoded, study("ACC-CLEAN", n_slices=2))),
                           headers=stow_headers(auth_headers))
    assert response.status_code == 200 and "Warning" not in response.headers
    assert len(response.get_json()[REFERENCED]["Value"]) == 2


def test_more_parts_than_the_limit_are_refused_whole(settings: Settings, app: Flask,
                                                      client: FlaskClient,
                                                      auth_headers: Headers) -> None:
    app.config["SCANPATH"] = settings.model_copy(update={"dicomweb_max_parts": 3})
    good = [encoded(ds) for ds in study("ACC-MANY", n_slices=4)]
    response = client.post("/dicomweb/studies", data=multipart(*good),
                           headers=stow_headers(auth_headers))
    assert response.status_code == 413
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "more than 3 parts" in outcome["issue"][0]["diagnostics"]
    assert rows(settings, DicomInstance) == [] and stored_files(settings) == []
    within = client.post("/dicomweb/studies", data=multipart(*good[:3]),
                         headers=stow_headers(auth_headers))
    assert within.status_code == 200
