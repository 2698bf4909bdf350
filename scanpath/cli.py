"""The ``scanpath`` command: serve, token, db upgrade, seed."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

import core  # noqa: F401  (first: makes the project's ``fhir`` package resolvable)
from core.db import get_engine, session_scope
from core.logging import configure_logging
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
    """Web (gunicorn child), DICOM listener and analysis worker, in the foreground."""
    from imaging_core.jobs import Worker
    from imaging_core.results import register
    from imaging_core.scp import start_scp, stop_scp

    configure_logging(settings.log_level)
    register()
    scp = start_scp(settings)
    enqueue = _broker_enqueue(settings)
    worker = Worker(settings, enqueue)
    worker.start()
    _print_urls(settings, enqueue is not None)
    web = subprocess.Popen(_gunicorn_command(settings), env=_web_environment(settings))
    # SIGTERM (systemd, docker stop) stops gunicorn too, then the listener and worker.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: web.terminate())
    try:
        return web.wait()
    except KeyboardInterrupt:
        web.terminate()
        return web.wait()
    finally:
        worker.stop()
        stop_scp(scp)


def _broker_enqueue(settings: Settings) -> Callable[[int], None] | None:
    if not settings.broker_url:
        return None
    from imaging_core.tasks import enqueue

    return enqueue


def _print_urls(settings: Settings, celery: bool) -> None:
    base = settings.base_url
    lines = [f"ScanPath web:    {base}/",
             f"FHIR API:        {base}/fhir  (CapabilityStatement: {base}/fhir/metadata)",
             f"SMART config:    {base}/.well-known/smart-configuration",
             f"CDS Hooks:       {base}/cds-services",
             f"DICOMweb:        {base}/dicomweb/studies",
             f"DICOM listener:  {settings.host}:{settings.dicom_port} "
             f"(AE title {settings.dicom_ae_title})",
             "Analysis worker: " + ("Celery via " + str(settings.broker_url) if celery
                                    else "in this process")]
    print("\n".join(lines), flush=True)


def _gunicorn_command(settings: Settings) -> list[str]:
    workers = os.environ.get("SCANPATH_WORKERS", "2")
    return [sys.executable, "-m", "gunicorn", "wsgi:app", "--chdir", str(PROJECT_ROOT),
            "--workers", workers, "--bind", f"{settings.host}:{settings.port}",
            "--access-logfile", "-"]


def _web_environment(settings: Settings) -> dict[str, str]:
    metrics_dir = settings.var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}


if __name__ == "__main__":
    sys.exit(main())
