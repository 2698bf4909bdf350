"""Staff accounts, sessions and access checks for the staff web app (``/staff``, CONTRACT §8).

The interface the staff blueprints code against:

- ``staff_required(*roles)``: decorator for a view; no session: 302 to the login page,
  a role not in ``roles``: 403 (an HTML page under ``/staff``). No roles: any staff user.
- ``current_staff()``: the logged-in :class:`StaffUser` inside such a view.
- ``staff_session_user()``: the logged-in user or None, never raising (DICOMweb GETs
  from the same-origin viewer accept it in place of a bearer token).
- ``audit_staff(action, entity, outcome, detail)``: an AuditEvent for a staff action
  (page views are audited by ``init_app`` itself).
- ``allow_wasm_eval()``: lets a page run WebAssembly (the viewer) under its CSP.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
recommended parameter set). Sessions live on the server, in ``staff_session``,
holding only the SHA-256 of the cookie's random token: a maintained library was
considered first, but Flask-Session's database backend needs Flask-SQLAlchemy (a
second engine beside the project's SQLModel one), stores session ids in clear and
cannot end every session of one user when the password changes; its other
backends need an extra service (Redis, Memcached, MongoDB). The table works the
same on SQLite and PostgreSQL.

``auth`` may import only ``core``: AuditEvents are sent as the ``staff_audit``
signal, which ``scanpath.auditing`` records.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Response, current_app, g, redirect, request
from sqlmodel import Session, col, delete, func, select
from werkzeug.wrappers import Response as BaseResponse

from auth.models import StaffAccount, StaffLoginFailure, StaffSession
from auth.signals import staff_audit
from core.errors import Forbidden, Unauthorized
from core.web import allow_wasm_eval, app_settings, db, is_staff_request

__all__ = ["ROLES", "StaffUser", "allow_wasm_eval", "audit_staff", "current_staff",
           "staff_required", "staff_session_user"]

log = logging.getLogger(__name__)

ROLES = ("radiographer", "radiologist", "admin")
MIN_PASSWORD_LENGTH = 12
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# Moving the idle expiry is a write; at most once a minute per session.
TOUCH_INTERVAL = timedelta(minutes=1)
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
COOKIE_NAME = "scanpath_staff"
# The cookie goes to "/" rather than only "/staff": the same-origin viewer reads
# /dicomweb with it (staff_session_user). It is HttpOnly and SameSite=Lax, and only
# the read-only DICOMweb GETs besides /staff ever look at it.
COOKIE_PATH = "/"
DEMO_PASSWORD = "demo-password-change-me"  # noqa: S105  (CONTRACT §8, development only)
DEMO_USERS = (("demo-radiologist", "radiologist", "Demo Radiologist"),
              ("demo-radiographer", "radiographer", "Demo Radiographer"),
              ("demo-admin", "admin", "Demo Admin"))

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

P = ParamSpec("P")
R = TypeVar("R")


class StaffError(ValueError):
    """A staff account request that cannot be done (bad role, short password, ...)."""


class LoginRefused(Exception):  # noqa: N818  (a refusal, not a fault)
    """A login refused; ``locked`` when the username is locked out for now."""

    def __init__(self, locked: bool) -> None:
        super().__init__("locked" if locked else "bad credentials")
        self.locked = locked


@dataclass(frozen=True)
class StaffUser:
    """Who is logged in: what views and templates may know of a staff account."""

    username: str
    role: str
    display_name: str


def utcnow() -> datetime:
    """Now, in UTC (timezone-aware)."""
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _user(account: StaffAccount) -> StaffUser:
    return StaffUser(account.username, account.role, account.display_name)


# --- accounts ----------------------------------------------------------------------

def check_password(password: str) -> None:
    """Raise StaffError unless ``password`` meets the policy (NCSC: length over rules)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")


def add_user(session: Session, username: str, role: str, password: str,
             display_name: str | None = None, *, replace: bool = False) -> StaffUser:
    """Create (or with ``replace``, reset) a staff account; the caller commits."""
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise StaffError("the username must be 1-64 printable characters without spaces")
    check_password(password)
    account = session.get(StaffAccount, username)
    if account is not None and not replace:
        raise StaffError(f"staff user {username} exists; --replace resets it")
    account = account or StaffAccount(username=username, display_name="", role=role,
                                      password_hash="")
    account.role, account.display_name, account.active = role, display_name or username, True
    _set_hash(session, account, password)
    return _user(account)


def set_password(session: Session, username: str, password: str) -> None:
    """Change a user's password; every session of theirs ends at once."""
    check_password(password)
    account = session.get(StaffAccount, username)
    if account is None:
        raise StaffError(f"no staff user {username}")
    _set_hash(session, account, password)


def _set_hash(session: Session, account: StaffAccount, password: str) -> None:
    account.password_hash = _hasher.hash(password)
    account.password_changed_at = utcnow()
    session.add(account)
    session.flush()
    session.execute(delete(StaffSession).where(col(StaffSession.username) == account.username))


def all_users(session: Session) -> list[StaffAccount]:
    """Every staff account, by username."""
    return list(session.exec(select(StaffAccount).order_by(col(StaffAccount.username))))


def seed_demo_users(session: Session) -> list[str]:
    """The development demo users (CONTRACT §8), created when missing; their names."""
    for username, role, name in DEMO_USERS:
        if session.get(StaffAccount, username) is None:
            add_user(session, username, role, DEMO_PASSWORD, name)
    return [username for username, _, _ in DEMO_USERS]


def disable_demo_users(session: Session) -> list[str]:
    """Outside development: disable demo users a development seed left; their names."""
    disabled = []
    for username, _, _ in DEMO_USERS:
        account = session.get(StaffAccount, username)
        if account is not None and account.active:
            account.active = False
            session.add(account)
            session.execute(delete(StaffSession).where(col(StaffSession.username) == username))
            disabled.append(username)
    return disabled


# --- login and lockout -------------------------------------------------------------

def login(session: Session, username: str, password: str,
          now: datetime | None = None) -> StaffUser:
    """The user ``username`` if ``password`` is theirs and they are not locked out.

    Raises LoginRefused alike for an unknown user and a wrong password; after
    LOCKOUT_FAILURES failures within LOCKOUT_WINDOW the username (known or not) is
    refused as locked until the oldest of them leaves the window. The caller commits.
    """
    now = now or utcnow()
    _forget_expired(session, now)
    if _recent_failures(session, username, now) >= LOCKOUT_FAILURES:
        raise LoginRefused(locked=True)
    account = session.get(StaffAccount, username)
    # An unknown user's password is checked against a dummy hash: both take as long.
    matches = _verify(account.password_hash if account else _DUMMY_HASH, password)
    if account is None or not account.active or not matches:
        session.add(StaffLoginFailure(username=username[:64], at=now))
        raise LoginRefused(locked=False)
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
        session.add(account)
    session.execute(delete(StaffLoginFailure).where(col(StaffLoginFailure.username) == username))
    return _user(account)


def _forget_expired(session: Session, now: datetime) -> None:
    """Drop failures older than the lockout window and sessions past their expiry, so
    neither table grows with time (done at each login, where both are read)."""
    session.execute(delete(StaffLoginFailure).where(
        col(StaffLoginFailure.at) <= now - LOCKOUT_WINDOW))
    session.execute(delete(StaffSession).where(col(StaffSession.expires_at) <= now))


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _recent_failures(session: Session, username: str, now: datetime) -> int:
    query = select(func.count()).select_from(StaffLoginFailure).where(
        col(StaffLoginFailure.username) == username[:64],
        col(StaffLoginFailure.at) > now - LOCKOUT_WINDOW)
    return int(session.exec(query).one())


# --- sessions ----------------------------------------------------------------------

def token_hash(token: str) -> str:
    """What ``staff_session`` keeps of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, username: str, now: datetime | None = None) -> str:
    """A new session for ``username``; returns the token for the cookie (not stored)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(StaffSession(token_hash=token_hash(token), username=username, created_at=now,
                             expires_at=now + IDLE_TIMEOUT,
                             absolute_expires_at=now + ABSOLUTE_TIMEOUT))
    return token


def session_user(session: Session, token: str, now: datetime | None = None) -> StaffUser | None:
    """The active user of the live session ``token``, moving its idle expiry; else None."""
    now = now or utcnow()
    row = session.get(StaffSession, token_hash(token))
    if row is None:
        return None
    expires, absolute = _aware(row.expires_at), _aware(row.absolute_expires_at)
    account = session.get(StaffAccount, row.username)
    if now >= expires or now >= absolute or account is None or not account.active:
        session.delete(row)
        session.commit()
        return None
    if now + IDLE_TIMEOUT - expires >= TOUCH_INTERVAL:
        row.expires_at = min(now + IDLE_TIMEOUT, absolute)
        session.add(row)
        session.commit()
    return _user(account)


def end_session(session: Session, token: str) -> None:
    """End the session ``token`` (logout); the caller commits."""
    session.execute(delete(StaffSession).where(col(StaffSession.token_hash) == token_hash(token)))


# --- the request side --------------------------------------------------------------

def staff_session_user() -> StaffUser | None:
    """The staff user of this request's session cookie, or None; never raises."""
    if "staff_user" not in g:
        g.staff_user = None
        token = request.cookies.get(COOKIE_NAME)
        if token:
            try:
                g.staff_user = session_user(db(), token)
            except Exception:  # a broken database must not turn a 401 into a 500 here
                log.exception("staff session lookup failed")
                db().rollback()
    user: StaffUser | None = g.staff_user
    return user


def current_staff() -> StaffUser:
    """The logged-in staff user (inside a ``staff_required`` view); 401 when none."""
    user = staff_session_user()
    if user is None:
        raise Unauthorized("You are not logged in")
    return user


def login_url(next_path: str | None = None) -> str:
    """The login page, returning to ``next_path`` (a /staff path) afterwards."""
    return "/staff/login" + (f"?{urlencode({'next': next_path})}" if next_path else "")


def safe_next(next_path: str | None) -> str:
    """``next_path`` if it is a path of the staff app, else the landing page."""
    if next_path and next_path.startswith("/staff") and "\\" not in next_path \
            and not next_path.startswith("//") and "://" not in next_path:
        return next_path
    return "/staff"


def staff_required(*roles: str) -> Callable[[Callable[P, R]], Callable[P, R | BaseResponse]]:
    """Decorate a view: logged-in staff (with one of ``roles``, if any given) only."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown staff roles {sorted(unknown)}")

    def decorate(view: Callable[P, R]) -> Callable[P, R | BaseResponse]:
        @wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R | BaseResponse:
            user = staff_session_user()
            if user is None:
                path = request.full_path.rstrip("?") if request.method == "GET" else None
                return redirect(login_url(path), 302)
            if roles and user.role not in roles:
                mark_audited()
                audit_staff("access-denied", outcome="minor",
                            detail=f"{request.method} {request.path} needs {' or '.join(roles)}")
                raise Forbidden(f"This page is for the {' or '.join(roles)} role; "
                                f"you are logged in as {user.role}")
            return view(*args, **kwargs)

        return guarded

    return decorate


def audit_staff(action: str, entity: str | None = None, outcome: str = "success",
                detail: str | None = None) -> None:
    """Record an AuditEvent for a staff action by the logged-in user (or, before
    login, the username claimed). ``outcome``: success, minor or serious failure;
    ``entity``: what it acted on, a reference such as ``ServiceRequest/123``."""
    user = staff_session_user()
    staff_audit.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                     username=user.username if user else g.get("staff_claimed", "anonymous"),
                     role=user.role if user else None, action=action, entity=entity,
                     outcome=outcome, detail=detail)


def _audit_page_view(response: Response) -> Response:
    """After a GET under /staff by a logged-in user: its page-view AuditEvent."""
    if request.method == "GET" and is_staff_request() and g.get("staff_user") \
            and not g.get("staff_audited"):
        outcome = "success" if response.status_code < 400 else "minor"
        audit_staff("page-view", outcome=outcome,
                    detail=f"GET {request.full_path.rstrip('?')} {response.status_code}")
    return response


def mark_audited() -> None:
    """Say this request's AuditEvent is written already (no page-view event too)."""
    g.staff_audited = True


def set_session_cookie(response: BaseResponse, token: str) -> None:
    """Put the session ``token`` on ``response`` as the staff session cookie."""
    response.set_cookie(COOKIE_NAME, token, httponly=True, samesite="Lax", path=COOKIE_PATH,
                        secure=app_settings().env != "development",
                        max_age=int(ABSOLUTE_TIMEOUT.total_seconds()))


def clear_session_cookie(response: BaseResponse) -> None:
    """Remove the staff session cookie from the browser."""
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="Lax",
                           secure=app_settings().env != "development")


def template_context() -> dict[str, Any]:
    """What every template may use: ``staff_user`` (None before login)."""
    return {"staff_user": staff_session_user() if is_staff_request() else None}
