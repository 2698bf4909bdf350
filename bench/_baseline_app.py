"""The baseline for ``bench/fhir_intake.py``: a bare Flask endpoint that stores one row.

``POST /baseline`` parses the JSON body and inserts it into ``bench_baseline``
in the database named by ``SCANPATH_DATABASE_URL``, through an engine built
by ``core.db`` exactly as ScanPath builds its own (same driver, pool and
SQLite pragmas), so the comparison isolates what ScanPath does per request.
Served by gunicorn with ``--chdir bench``: ``gunicorn _baseline_app:app``.
"""

from __future__ import annotations

import json
import os

from flask import Flask, Response, request
from sqlalchemy import Column, Integer, MetaData, Table, Text, insert
from sqlalchemy.engine import Engine

import core  # noqa: F401  (the project's own import order, see core/__init__.py)
from core.db import engine_for

METADATA = MetaData()
BASELINE = Table("bench_baseline", METADATA,
                 Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("body", Text, nullable=False))


def create_table(engine: Engine) -> None:
    """Create ``bench_baseline`` afresh (the bench calls this before serving)."""
    METADATA.drop_all(engine)
    METADATA.create_all(engine)


def create_app(database_url: str) -> Flask:
    """The baseline application over ``database_url``."""
    app = Flask(__name__)
    engine = engine_for(database_url)

    @app.post("/baseline")
    def store() -> Response:
        body = request.get_json(force=True)
        with engine.begin() as connection:
            row_id = connection.execute(
                insert(BASELINE).values(body=json.dumps(body, separators=(",", ":")))
            ).inserted_primary_key[0]
        text = json.dumps({**body, "id": str(row_id)}, separators=(",", ":"))
        return Response(text, status=201, content_type="application/json",
                        headers={"Location": f"/baseline/{row_id}"})

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status":"ok"}', content_type="application/json")

    return app


app = create_app(os.environ["SCANPATH_DATABASE_URL"]) \
    if "SCANPATH_DATABASE_URL" in os.environ else None
