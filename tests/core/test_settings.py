"""The signing secret: never the published placeholder, generated and kept when unset.
DICOM destinations: ``AE@host:port``, or a clear start-up error."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import PLACEHOLDER_SECRET, DicomDestination, Settings

ENVS = ("development", "test", "production")


@pytest.mark.parametrize("env", ENVS)
def test_the_placeholder_secret_is_refused_in_every_environment(env: str, tmp_path: Path):
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(env=env, var_dir=tmp_path, secret_key=PLACEHOLDER_SECRET)


@pytest.mark.parametrize("env", ENVS)
def test_a_short_secret_is_refused_in_every_environment(env: str, tmp_path: Path):
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(env=env, var_dir=tmp_path, secret_key="short-and-guessable")


@pytest.mark.parametrize("env", ENVS)
def test_an_unset_secret_is_made_once_private_and_kept(env: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SCANPATH_SECRET_KEY", raising=False)
    first = Settings(env=env, var_dir=tmp_path / "var")
    again = Settings(env=env, var_dir=tmp_path / "var")
    elsewhere = Settings(env=env, var_dir=tmp_path / "other")

    kept = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first.secret_key == again.secret_key == kept.read_text().strip()
    assert len(first.secret_key) >= 32 and first.secret_key != PLACEHOLDER_SECRET
    assert elsewhere.secret_key != first.secret_key  # random, not a built-in value


def test_a_set_secret_is_used_and_nothing_is_written(tmp_path: Path):
    settings = Settings(var_dir=tmp_path, secret_key="x" * 40)

    assert settings.secret_key == "x" * 40
    assert not (tmp_path / "secret_key").exists()


def test_dicom_destinations_are_read_from_a_comma_separated_list(tmp_path: Path):
    settings = Settings(var_dir=tmp_path, dicom_destinations=(  # type: ignore[arg-type]
        "ORTHANC@127.0.0.1:4242, MAIN PACS@pacs.example:104,ARCHIVE@[::1]:11112"))

    assert settings.dicom_destinations == [
        DicomDestination("ORTHANC", "127.0.0.1", 4242),
        DicomDestination("MAIN PACS", "pacs.example", 104),
        DicomDestination("ARCHIVE", "::1", 11112)]
    assert [str(d) for d in settings.dicom_destinations] == [
        "ORTHANC@127.0.0.1:4242", "MAIN PACS@pacs.example:104", "ARCHIVE@[::1]:11112"]


@pytest.mark.parametrize(("value", "says"), [
    ("pacs.example:104", "is not AE@host:port"),  # no AE title
    ("ORTHANC@pacs.example", "is not AE@host:port"),  # no port
    ("ORTHANC@:104", "is not AE@host:port"),  # no host
    ("ORTHANC@pacs.example:0", "is not 1-65535"),
    ("ORTHANC@pacs.example:70000", "is not 1-65535"),
    ("SEVENTEEN-LETTERS@pacs.example:104", "is not an AE title"),  # PS3.5 6.2: 16 at most
    ("BACK\\SLASH@pacs.example:104", "is not an AE title"),
    ("   @pacs.example:104", "is not an AE title"),
])
def test_a_bad_dicom_destination_is_a_start_up_error(value: str, says: str, tmp_path: Path):
    with pytest.raises(ValidationError, match=says):
        Settings(var_dir=tmp_path, dicom_destinations=value)  # type: ignore[arg-type]
