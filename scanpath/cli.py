"""The ``scanpath`` command: serve, token, db upgrade, seed."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import core  # noqa: F401  (first: makes the project's ``fhir`` package resolvable)
from core.db import get_engine, session_scope
from core.settings import PROJECT_ROOT, Settings, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scanpath", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the web, FHIR and DICOM endpoints")
    token = commands.add_parser("token", help="print an access token for a seeded client")
    token.add_argument("client_id")
    db = commands.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade"])
    commands.add_parser("seed", help="register the demo clients")
    args = parser.parse_args(argv)
    settings = get_settings()
    handlers = {"serve": _serve, "token": _token, "db": _upgrade, "seed": _seed}
    return handlers[args.command](settings, args)


def _upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from scanpath.migrate import upgrade

    upgrade(settings)
    print("database migrated to head")
    return 0


def _seed(settings: Settings, _args: argparse.Namespace) -> int:
    from scanpath.seed import seed_all

    with session_scope(get_engine()) as session:
        seed_all(session, settings)
    print("seeded: demo clients demo-gp, demo-radiology, demo-admin; rule packs; code systems")
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from auth.clients import issue_token_for

    with session_scope(get_engine()) as session:
        print(issue_token_for(session, settings, args.client_id))
    return 0


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    metrics_dir = settings.var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    print(f"ScanPath web:   {settings.base_url}/", flush=True)
    print(f"FHIR API:       {settings.base_url}/fhir (metadata: /fhir/metadata)", flush=True)
    print(f"SMART config:   {settings.base_url}/.well-known/smart-configuration", flush=True)
    workers = os.environ.get("SCANPATH_WORKERS", "2")
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "wsgi:app",
                              "--chdir", str(PROJECT_ROOT), "--workers", workers,
                              "--bind", f"{settings.host}:{settings.port}",
                              "--access-logfile", "-"])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
