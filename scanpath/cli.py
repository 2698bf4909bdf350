"""The scanpath command: serve the service, migrate and seed the database, issue
tokens and register the clients (GP systems, the RIS) allowed to call it.

Settings come from SCANPATH_* environment variables (README, "Configuration").
A mistake gets one line on standard error and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

import core  # noqa: F401  (first: makes the project's ``fhir`` package resolvable)
from core.db import get_engine, session_scope
from core.logging import configure_logging
from core.settings import PROJECT_ROOT, Settings, get_settings, unknown_variables


class CliError(Exception):
    """A mistake the operator can mend; printed as one line, exit status 2."""


DATABASE = "reads SCANPATH_DATABASE_URL (and SCANPATH_VAR_DIR for SQLite and keys)"
COMMANDS = {
    "serve": ("serve the web, FHIR, CDS Hooks and DICOMweb API, the DICOM listener and "
              "the analysis worker in the foreground",
              "reads SCANPATH_HOST, SCANPATH_PORT, SCANPATH_DICOM_PORT, SCANPATH_WORKERS, "
              "SCANPATH_BROKER_URL and the rest of the README's Configuration table"),
    "token": ("print an access token (valid SCANPATH_TOKEN_LIFETIME_SECONDS) for a "
              "registered client, with all its scopes", DATABASE + ", SCANPATH_SECRET_KEY"),
    "db": ("migrate the database to the newest schema", DATABASE),
    "seed": ("install the rule packs and code systems, and in development (SCANPATH_ENV) "
             "the demo clients", DATABASE + ", SCANPATH_ENV"),
    "client": ("register, list, disable or enable the clients allowed to call ScanPath",
               DATABASE),
    "staff": ("add staff users of the web app (/staff; password from standard input), "
              "change a password, list them", DATABASE),
    "notifications": ("list Subscription notifications (--dead: those given up on after "
                      "SCANPATH_NOTIFY_GIVE_UP_HOURS), one a line", DATABASE),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        for name, closest in unknown_variables(os.environ):
            hint = f" (did you mean {closest}?)" if closest else ""
            print(f"scanpath: warning: {name} is not a ScanPath setting{hint}", file=sys.stderr)
        settings = get_settings()
        handlers: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
            "serve": _serve, "token": _token, "db": _upgrade, "seed": _seed,
            "client": _client, "staff": _staff, "notifications": _notifications}
        return handlers[args.command](settings, args)
    except CliError as error:
        print(f"scanpath: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:  # bad settings, named without their values (secrets)
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                             for e in error.errors(include_input=False, include_url=False))
        print(f"scanpath: invalid settings: {problems}"[:300], file=sys.stderr)
        return 2
    except (ValueError, SQLAlchemyError) as error:  # an unusable database, a bad value
        print(f"scanpath: {' '.join(str(error).split())[:300]}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scanpath", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub = {name: commands.add_parser(name, help=text, description=text[0].upper() + text[1:],
                                     epilog=f"Environment: {variables}.")
           for name, (text, variables) in COMMANDS.items()}
    sub["token"].add_argument("client_id", help="a registered, active client "
                              "(scanpath client list)")
    sub["db"].add_argument("action", choices=["upgrade"], help="upgrade: migrate to head")
    sub["notifications"].add_argument("--dead", action="store_true",
                                      help="only the dead ones (kept, never retried)")
    actions = sub["client"].add_subparsers(dest="action", required=True, metavar="ACTION")
    environment = f"Environment: {DATABASE}."
    add = actions.add_parser("add", help="register a client (--replace: replace its keys "
                             "and scopes)", epilog=environment)
    add.add_argument("client_id", help="the id the client puts in its assertions' iss and sub")
    add.add_argument("--name", required=True, help="who the client is, for people")
    add.add_argument("--scopes", "--scope", required=True,
                     help='space-separated SMART system scopes, e.g. "system/Patient.rs"')
    add.add_argument("--replace", action="store_true",
                     help="replace an existing client's name, keys and scopes; its tokens "
                     "stop working and it stays enabled or disabled as it was")
    keys = add.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks", type=Path, help="a JSON Web Key Set file of its public keys")
    keys.add_argument("--jwks-uri", help="the https URL where the client publishes its keys")
    actions.add_parser("list", help="every registered client, one a line", epilog=environment)
    _staff_parser(sub["staff"], environment)
    for action in ("disable", "enable"):
        one = actions.add_parser(action, help=f"{action} a client"
                                 + ("; its tokens stop working at once" if action == "disable"
                                    else ""), epilog=environment)
        one.add_argument("client_id")
    return parser


def _staff_parser(parser: argparse.ArgumentParser, environment: str) -> None:
    from auth.staff import MIN_PASSWORD_LENGTH, ROLES

    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    text = (f"add a staff user; the password (at least {MIN_PASSWORD_LENGTH} characters) "
            "is read from standard input")
    add = actions.add_parser("add", help=text, description=text, epilog=environment)
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--name", help="the name shown in the app (default: the username)")
    add.add_argument("--replace", action="store_true",
                     help="reset an existing user's role, name and password")
    password = actions.add_parser("password", help="change a staff user's password (from "
                                  "standard input); their sessions end at once",
                                  epilog=environment)
    password.add_argument("username")
    actions.add_parser("list", help="every staff user, one a line", epilog=environment)


def _ready_database(settings: Settings) -> None:
    """Refuse to work on a database that is missing or not migrated; never create one."""
    from sqlalchemy.engine import make_url

    from scanpath.migrate import at_head

    url = make_url(settings.database_url)
    if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:") \
            and not Path(str(url.database)).is_file():
        raise CliError(f"the database {url.database} does not exist; run `scanpath db upgrade`")
    try:
        migrated = at_head(get_engine(), settings)
    except Exception as error:  # any driver error: the database cannot be reached
        raise CliError(f"the database cannot be reached: {' '.join(str(error).split())[:200]}") \
            from error
    if not migrated:
        raise CliError("the database is not migrated to this version; run `scanpath db upgrade`")


def _upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from scanpath.migrate import upgrade

    upgrade(settings)
    print("database migrated to head")
    return 0


def _seed(settings: Settings, _args: argparse.Namespace) -> int:
    from scanpath.seed import seed_all

    _ready_database(settings)
    with session_scope(get_engine()) as session:
        disabled = seed_all(session, settings)
    staff_disabled = [name.removeprefix("staff:") for name in disabled
                      if name.startswith("staff:")]
    disabled = [name for name in disabled if not name.startswith("staff:")]
    demo = ("demo clients demo-gp, demo-radiology, demo-admin" if settings.env == "development"
            else f"no demo clients ({settings.env})")
    if disabled:
        demo += f"; disabled the demo clients left from development: {', '.join(disabled)}"
    print(f"seeded: {demo}; rule packs; code systems")
    print(_staff_seeded(settings, staff_disabled))
    return 0


def _staff_seeded(settings: Settings, disabled: list[str]) -> str:
    from auth.staff import DEMO_PASSWORD, DEMO_USERS

    if settings.env == "development":
        names = ", ".join(username for username, _, _ in DEMO_USERS)
        return f"staff web app demo users exist: {names}, each with the password " \
            f"{DEMO_PASSWORD} (development only; log in at {settings.public_url}/staff)"
    return f"no demo staff users ({settings.env})" + \
        (f"; disabled those left from development: {', '.join(disabled)}" if disabled else "")


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from auth.clients import issue_token_for
    from auth.errors import OAuthError

    _ready_database(settings)
    try:
        with session_scope(get_engine()) as session:
            print(issue_token_for(session, settings, args.client_id))
    except OAuthError as error:
        raise CliError(f"{error}; see `scanpath client list`") from error
    return 0


def _client(settings: Settings, args: argparse.Namespace) -> int:
    from auth.clients import (
        ClientRegistrationError,
        all_clients,
        register_client,
        set_active,
    )

    _ready_database(settings)
    try:
        with session_scope(get_engine()) as session:
            if args.action == "list":
                for c in all_clients(session):
                    keys = c.jwks_uri or f"{len(json.loads(c.jwks).get('keys', []))} key(s)"
                    state = "active" if c.active else "disabled"
                    print(f"{c.client_id}\t{state}\t{c.name}\t{keys}\t{c.scopes}")
                return 0
            if args.action in ("disable", "enable"):
                set_active(session, args.client_id, args.action == "enable")
                print(f"{args.client_id} {args.action}d")
                return 0
            register_client(session, args.client_id, args.name, args.scopes,
                            jwks=_jwks_file(args.jwks) if args.jwks else None,
                            jwks_uri=args.jwks_uri, replace=args.replace)
            print(f"{args.client_id} {'replaced' if args.replace else 'registered'}")
            return 0
    except ClientRegistrationError as error:
        raise CliError(str(error)) from error


def _staff(settings: Settings, args: argparse.Namespace) -> int:
    from auth.staff import StaffError, add_user, all_users, set_password

    _ready_database(settings)
    try:
        with session_scope(get_engine()) as session:
            if args.action == "list":
                for user in all_users(session):
                    state = "active" if user.active else "disabled"
                    print(f"{user.username}\t{user.role}\t{state}\t{user.display_name}")
                return 0
            password = _password_from_stdin()
            if args.action == "password":
                set_password(session, args.username, password)
                print(f"{args.username}: password changed; their sessions have ended")
                return 0
            add_user(session, args.username, args.role, password, args.name,
                     replace=args.replace)
            print(f"{args.username} {'reset' if args.replace else 'added'} ({args.role})")
            return 0
    except StaffError as error:
        raise CliError(str(error)) from error


def _password_from_stdin() -> str:
    """The first line of standard input, without its line ending."""
    line = sys.stdin.readline()
    if not line:
        raise CliError("give the password on standard input")
    return line.rstrip("\r\n")


def _notifications(settings: Settings, args: argparse.Namespace) -> int:
    """One line per notification: id, status, attempts, resource, endpoint, last error."""
    from referral.notify import listed

    _ready_database(settings)
    with session_scope(get_engine()) as session:
        for row in listed(session, "dead" if args.dead else None):
            print(f"{row.id}\t{row.status}\t{row.attempts}\tSubscription/{row.subscription_id}"
                  f"\t{row.resource_type}/{row.resource_id}/_history/{row.version_id}"
                  f"\t{row.created_at.isoformat()}\t{row.endpoint}\t{row.last_error or ''}")
    return 0


def _jwks_file(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise CliError(f"{path} is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a JSON Web Key Set object")
    return data


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    """Web (gunicorn child), DICOM listener and analysis worker, in the foreground."""
    from imaging_core.jobs import Worker, worker_name
    from imaging_core.results import register
    from imaging_core.scp import start_scp, stop_scp
    from referral import register_hooks
    from referral.notify import NotificationWorker
    from scanpath.process import die_with_parent

    _ready_database(settings)
    for port, name in ((settings.port, "SCANPATH_PORT"),
                       (settings.dicom_port, "SCANPATH_DICOM_PORT")):
        _check_free(settings.host, port, name)
    configure_logging(settings.log_level)
    register()
    register_hooks()  # reports and moves written by the analysis worker: notify, check
    scp = start_scp(settings)
    enqueue = _broker_enqueue(settings)
    worker = Worker(settings, enqueue)
    worker.start()
    notifier = NotificationWorker(settings, f"notify:{worker_name()}",
                                  _broker_enqueue(settings, notifications=True))
    notifier.start()
    _print_urls(settings, enqueue is not None)
    # The gunicorn master dies with this process, as its workers die with it.
    web = subprocess.Popen(_gunicorn_command(settings), env=_web_environment(settings),
                           preexec_fn=partial(die_with_parent, os.getpid()))  # noqa: PLW1509
    # SIGTERM (systemd, docker stop) stops gunicorn too, then the listener and worker.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: web.terminate())
    try:
        return _web_ended(web.wait())
    except KeyboardInterrupt:
        web.terminate()
        return web.wait()
    finally:
        worker.stop()
        notifier.stop()
        stop_scp(scp)


def _web_ended(status: int) -> int:
    """``serve``'s exit status once gunicorn ended; a failure is said in one line."""
    if status == 0:
        return 0
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    print(f"scanpath: the web server (gunicorn) {how}; the DICOM listener and the analysis "
          "worker are stopped too; see the log above", file=sys.stderr, flush=True)
    return 1


def _check_free(host: str, port: int, variable: str) -> None:
    """Refuse, in one line, a port something else listens on.

    SO_REUSEADDR as gunicorn and the DICOM listener bind: connections of a killed
    server left in TIME_WAIT do not stop a restart; a listening socket does.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = "it is already in use by another process" \
                if error.errno == errno.EADDRINUSE else error.strerror
            raise CliError(f"cannot listen on {host}:{port} ({variable}): {reason}; stop "
                           f"that process or choose another {variable}") from error


def _broker_enqueue(settings: Settings,
                    notifications: bool = False) -> Callable[[int], None] | None:
    if not settings.broker_url:
        return None
    from imaging_core.tasks import enqueue, enqueue_notification

    return enqueue_notification if notifications else enqueue


def _print_urls(settings: Settings, celery: bool) -> None:
    base = settings.public_url
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
            "--config", "python:scanpath.gunicorn_conf"]


def _web_environment(settings: Settings) -> dict[str, str]:
    metrics_dir = settings.var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}


if __name__ == "__main__":
    sys.exit(main())
