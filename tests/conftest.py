"""Fixtures: ``settings`` (SQLite and PostgreSQL), ``app``, ``client``, ``db`` and tokens.

Store and API tests take ``settings`` and so run once per backend. PostgreSQL
is the machine's (``SCANPATH_TEST_POSTGRES_URL``, default the local ``test``
database) in a schema of its own; it is skipped with a reason when absent,
except under ``CI=true`` where its absence fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlmodel import Session, SQLModel
from werkzeug.serving import make_server

import core  # noqa: F401
from core.db import engine_for
from core.settings import DicomDestination, Settings
from scanpath.migrate import upgrade
from tests.fhir_validator import R4Validator, r4_validator  # noqa: F401

# One schema per test process, so concurrent runs on one machine do not collide.
PG_SCHEMA = f"scanpath_test_{os.getpid()}"
DEMO_CLIENTS = ("demo-gp", "demo-radiology", "demo-admin")


def _postgres_base_url() -> str:
    return os.environ.get("SCANPATH_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> Path:
    """A migrated, seeded SQLite database copied for each test."""
    path = tmp_path_factory.mktemp("template") / "scanpath.db"
    settings = _settings(f"sqlite:///{path}", keys_dir)
    upgrade(settings)
    _seed(settings)
    engine_for(settings.database_url).dispose()
    return path


def _admin(sql: str) -> None:
    admin = create_engine(_postgres_base_url().replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.execute(text(sql))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(keys_dir: Path) -> Iterator[str]:
    """A migrated, seeded PostgreSQL schema, or a skip (a failure under CI)."""
    base = _postgres_base_url()
    try:
        _admin(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE; CREATE SCHEMA {PG_SCHEMA}")
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {base}: {exc}")
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3D{PG_SCHEMA}"
    settings = _settings(url, keys_dir)
    upgrade(settings)
    _seed(settings)
    yield url
    engine_for(url).dispose()
    _admin(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")


def _settings(url: str, var_dir: Path) -> Settings:
    # The Flask test client reaches the app as http://localhost.
    return Settings(database_url=url, var_dir=var_dir, env="test", log_level="WARNING",
                    public_base_url="http://localhost")


def _seed(settings: Settings) -> None:
    from scanpath.seed import seed_all

    with Session(engine_for(settings.database_url)) as session:
        seed_all(session, settings, demo_clients=True)  # env "test" would leave them out
        session.commit()


def _truncate_postgres(url: str) -> None:
    engine = engine_for(url)
    keep = {"alembic_version", "auth_client", "rule_pack_version"}
    tables = [t.name for t in SQLModel.metadata.sorted_tables if t.name not in keep]
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path,
             keys_dir: Path) -> Iterator[Settings]:
    """Settings for a fresh, migrated, seeded database of each backend.

    Each SQLite test database's engine is disposed afterwards: kept open, its three
    files per test (db, -wal, -shm) pushed the process's descriptors past 1024, where
    pynetdicom's ``select()`` fails and every DICOM association is aborted."""
    if request.param == "sqlite":
        path = tmp_path / "scanpath.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        settings = _settings(f"sqlite:///{path}", keys_dir)
        yield settings
        engine_for(settings.database_url).dispose()
        return
    url = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    settings = _settings(url, keys_dir)
    _seed(settings)  # the published CodeSystems live in the truncated resource table
    yield settings


class ValidatingClient(FlaskClient):
    """A test client that checks every FHIR body it receives with an independent validator."""

    validator: R4Validator | None = None

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        if self.validator is not None and "fhir+json" in response.content_type \
                and response.data:
            body = response.get_json()
            problems = self.validator.validate_all(body)
            assert not problems, f"invalid FHIR R4 from {args[0]}: {problems}"
        return response


@pytest.fixture
def app(settings: Settings, r4_validator: R4Validator) -> Iterator[Flask]:  # noqa: F811
    from scanpath.app import create_app

    application = create_app(settings)
    application.test_client_class = ValidatingClient
    ValidatingClient.validator = r4_validator
    yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def db(settings: Settings) -> Iterator[Session]:
    with Session(engine_for(settings.database_url)) as session:
        yield session


@pytest.fixture
def token(settings: Settings) -> Callable[[str], str]:
    """``token(client_id)``: a bearer token for a seeded demo client."""
    from auth.clients import issue_token_for

    def issue(client_id: str) -> str:
        with Session(engine_for(settings.database_url)) as session:
            return issue_token_for(session, settings, client_id)

    return issue


@pytest.fixture
def auth_headers(token: Callable[[str], str]) -> Callable[..., dict[str, str]]:
    """``auth_headers(client_id="demo-gp")``: request headers with a token and FHIR JSON."""

    def headers(client_id: str = "demo-gp", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(client_id)}",
                "Content-Type": "application/fhir+json", "Accept": "application/fhir+json",
                **{k.replace("_", "-"): v for k, v in extra.items()}}

    return headers


@pytest.fixture(scope="module")
def live_sqlite(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path,
                keys_dir: Path) -> Iterator[tuple[str, Settings]]:
    """The whole app on a real loopback HTTP socket over a fresh SQLite database."""
    from scanpath.app import create_app

    path = tmp_path_factory.mktemp("live") / "scanpath.db"
    shutil.copy(sqlite_template, path)
    settings = _settings(f"sqlite:///{path}", keys_dir)
    with serving(create_app(settings)) as base:
        yield base, settings


class serving:
    """Serve a WSGI app on 127.0.0.1 in a thread, as a context manager yielding its URL."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.app, self.settings = app, app.config["SCANPATH"]
        app.config["SCANPATH"] = self.settings.model_copy(update={  # links name where it is
            "public_base_url": f"http://127.0.0.1:{self.server.server_port}"})

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_port}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.app.config["SCANPATH"] = self.settings


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def free_port() -> int:
    """A loopback TCP port free at the moment of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- a real PACS: Orthanc (Debian's package, ``make system-deps``) ---------------------------

ORTHANC = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
ORTHANC_AE = "ORTHANC"


class Orthanc:
    """One Orthanc on loopback ports of its own, configured and stored under ``folder``."""

    def __init__(self, folder: Path, calling_ae: str) -> None:
        self.folder, self.http, self.dicom = folder, free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        storage = str(folder / "storage")
        (folder / "orthanc.json").write_text(json.dumps({
            "Name": "ScanPath test PACS", "StorageDirectory": storage,
            "IndexDirectory": storage, "Plugins": [], "HttpPort": self.http,
            "DicomPort": self.dicom, "DicomAet": ORTHANC_AE, "DicomCheckCalledAet": True,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            # Only ScanPath's AE may store here.
            "DicomAlwaysAllowStore": False, "DicomCheckModalityHost": False,
            "DicomModalities": {"scanpath": [calling_ae, "127.0.0.1", 104]},
            "ConcurrentJobs": 1}))

    @property
    def destination(self) -> DicomDestination:
        return DicomDestination(ORTHANC_AE, "127.0.0.1", self.dicom)

    def start(self) -> None:
        """Run Orthanc and wait until its REST API answers."""
        assert ORTHANC is not None
        log = (self.folder / "orthanc.log").open("ab")
        self.process = subprocess.Popen([ORTHANC, str(self.folder / "orthanc.json")],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("Orthanc exited: "
                                     + (self.folder / "orthanc.log").read_text()[-2000:])
            try:
                self.get("/system")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError("Orthanc's REST API did not answer")

    def stop(self) -> None:
        """Stop Orthanc and any children it started."""
        if self.process is None or self.process.poll() is not None:
            return
        for pid in children(self.process.pid):
            os.kill(pid, signal.SIGTERM)
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as answer:
            return json.loads(answer.read()) if "json" in answer.headers["Content-Type"] \
                else answer.read()

    def tags(self) -> list[dict[str, Any]]:
        """The simplified tags of every instance stored here, with Orthanc's id."""
        return [{**self.get(f"/instances/{instance_id}/tags?simplify"),
                 "orthanc_id": instance_id} for instance_id in self.get("/instances")]

    def instances(self) -> dict[str, dict[str, Any]]:
        """SOP Class UID -> the tags of the one instance of that class stored here."""
        found = {tags["SOPClassUID"]: tags for tags in self.tags()}
        assert len(found) == len(self.get("/instances")), "two instances of one class"
        return found


@pytest.fixture
def orthanc(tmp_path: Path, settings: Settings) -> Iterator[Orthanc]:
    """A real Orthanc PACS of the test's own (needs ``ORTHANC``); stopped afterwards."""
    server = Orthanc(tmp_path / "orthanc", settings.dicom_ae_title)
    server.start()
    try:
        yield server
    finally:
        server.stop()
