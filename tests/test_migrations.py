"""Data migrations on existing data, run with Alembic as `scanpath db upgrade` runs them."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import command

from core.settings import Settings
from scanpath.migrate import alembic_config


def test_0007_reindexes_existing_resources(tmp_path):
    """Rows written before 0007 are found by its rules: accent-insensitive strings, _tag."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'old.db'}", env="test")
    config = alembic_config(settings)
    command.upgrade(config, "0006")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Zoë"}],
               "meta": {"versionId": "1", "tag": [{"system": "https://t.example", "code": "x"}]}}
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO resource (resource_type, id, version_id, last_updated, content) "
            "VALUES ('Patient', 'p1', 1, '2026-01-01 00:00:00', :content)"),
            {"content": json.dumps(patient)})
    command.upgrade(config, "head")
    with engine.connect() as connection:
        strings = connection.execute(sa.text(
            "SELECT param, value FROM search_string WHERE resource_id = 'p1'")).all()
        tags = connection.execute(sa.text(
            "SELECT system, code FROM search_token WHERE param = '_tag'")).all()
    assert ("family", "zoe") in strings
    assert tags == [("https://t.example", "x")]


def test_0017_indexes_the_priority_of_existing_tasks(tmp_path):
    """An urgent order's Task written before 0017 is found by the worklist's urgency filter."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'old.db'}", env="test")
    config = alembic_config(settings)
    command.upgrade(config, "0016")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    task = {"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order",
            "priority": "urgent", "meta": {"versionId": "1"}}
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO resource (resource_type, id, version_id, last_updated, content) "
            "VALUES ('Task', 't1', 1, '2026-01-01 00:00:00', :content)"),
            {"content": json.dumps(task)})
    command.upgrade(config, "head")
    with engine.connect() as connection:
        found = connection.execute(sa.text(
            "SELECT resource_id, code FROM search_token WHERE param = 'priority'")).all()
    engine.dispose()
    assert found == [("t1", "urgent")]
