"""Staff accounts outside the web: migration 0016, the ``scanpath staff`` CLI, demo users."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel

from auth.models import StaffAccount
from core.db import engine_for
from core.settings import Settings
from scanpath.migrate import alembic_config, upgrade

STAFF_TABLES = {"staff_account", "staff_session", "staff_login_failure"}
DEMO = {"demo-radiologist": "radiologist", "demo-radiographer": "radiographer",
        "demo-admin": "admin"}


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_0016_upgrades_downgrades_and_matches_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    settings = Settings(database_url=url, var_dir=tmp_path, env="test")
    upgrade(settings)
    assert _tables(url) >= STAFF_TABLES
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    staff_diff = [d for d in diff if any(t in repr(d) for t in STAFF_TABLES)]
    assert staff_diff == []
    command.downgrade(alembic_config(settings), "0015")
    assert not STAFF_TABLES & _tables(url)
    upgrade(settings)
    assert _tables(url) >= STAFF_TABLES


def _cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {"SCANPATH_DATABASE_URL": settings.database_url,
           "SCANPATH_VAR_DIR": str(settings.var_dir), "SCANPATH_ENV": settings.env,
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "scanpath.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_cli_adds_a_user_who_can_then_log_in(settings, client):
    from tests.staff.conftest import log_in

    added = _cli(settings, "staff", "add", "alice", "--role", "radiologist", "--name",
                 "Dr Alice", stdin="a long enough password\n")
    assert added.returncode == 0, added.stderr
    assert log_in(client, "alice", "a long enough password").status_code == 303
    listed = _cli(settings, "staff", "list")
    assert "alice\tradiologist\tactive\tDr Alice" in listed.stdout


def test_cli_refuses_short_passwords_bad_roles_and_duplicates(settings):
    short = _cli(settings, "staff", "add", "bob", "--role", "radiographer", stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    role = _cli(settings, "staff", "add", "bob", "--role", "surgeon",
                stdin="a long enough password\n")
    assert role.returncode == 2 and "invalid choice" in role.stderr
    assert _cli(settings, "staff", "add", "bob", "--role", "radiographer",
                stdin="a long enough password\n").returncode == 0
    again = _cli(settings, "staff", "add", "bob", "--role", "admin",
                 stdin="a long enough password\n")
    assert again.returncode == 2 and "exists" in again.stderr
    with Session(engine_for(settings.database_url)) as session:
        account = session.get(StaffAccount, "bob")
        assert account is not None and account.role == "radiographer"
        assert "a long enough password" not in account.password_hash
        assert account.password_hash.startswith("$argon2id$")


def test_cli_password_change(settings, client):
    from tests.staff.conftest import create_staff_user, log_in

    username, password = create_staff_user(settings, "admin")
    changed = _cli(settings, "staff", "password", username, stdin="a brand new password\n")
    assert changed.returncode == 0, changed.stderr
    assert log_in(client, username, password).status_code == 401
    assert log_in(client, username, "a brand new password").status_code == 303


def _seed(settings: Settings) -> None:
    from scanpath.seed import seed_all

    with Session(engine_for(settings.database_url)) as session:
        seed_all(session, settings)
        session.commit()


def test_demo_users_only_in_development(tmp_path, client):
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    development = Settings(database_url=url, var_dir=tmp_path, env="development")
    upgrade(development)
    seeded = _cli(development, "seed")
    assert seeded.returncode == 0, seeded.stderr
    assert "demo-radiologist, demo-radiographer, demo-admin" in seeded.stdout
    assert "demo-password-change-me" in seeded.stdout
    with Session(engine_for(url)) as session:
        for username, role in DEMO.items():
            account = session.get(StaffAccount, username)
            assert account is not None and account.role == role and account.active
    # The same database seeded for production: the demo users are disabled, not used.
    production = development.model_copy(update={"env": "production"})
    seeded = _cli(production, "seed")
    assert "no demo staff users (production)" in seeded.stdout
    with Session(engine_for(url)) as session:
        assert not any(session.get(StaffAccount, name).active for name in DEMO)  # type: ignore[union-attr]
    engine_for(url).dispose()


def test_no_demo_users_outside_development(settings):
    _seed(settings)  # env "test"
    with Session(engine_for(settings.database_url)) as session:
        assert all(session.get(StaffAccount, name) is None for name in DEMO)


def test_the_password_comes_from_stdin_not_the_command_line(capsys):
    from scanpath.cli import _parser

    with contextlib.suppress(SystemExit):
        _parser().parse_args(["staff", "add", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "read from standard input" in help_text
    assert "--password" not in help_text
