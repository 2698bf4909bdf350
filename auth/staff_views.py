"""The staff web app's own pages: login, logout and the landing page (``/staff``).

``init_app`` also sets up what every staff blueprint relies on: CSRF checks on
every POST under /staff (Flask-WTF; the bearer-token API needs none), the
page-view audit and ``staff_user`` in templates. Other parts register their own
blueprints under /staff and guard their views with ``auth.staff.staff_required``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta

from flask import Blueprint, Flask, Response, g, redirect, render_template, request, session
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response as BaseResponse

from auth import staff
from core.errors import BadRequest
from core.fhirjson import CONTROL
from core.web import db, is_staff_request

log = logging.getLogger(__name__)
blueprint = Blueprint("staff", __name__, url_prefix="/staff")
csrf = CSRFProtect()

USERNAME_MAX = 64  # staff_account.username
LOGIN_FAILED = "The username or password is not right."
LOCKED = (f"Too many failed attempts: logging in as this user is blocked for up to "
          f"{int(staff.LOCKOUT_WINDOW.total_seconds() // 60)} minutes.")


def init_app(app: Flask) -> None:
    """CSRF on /staff POSTs, the page-view audit, and the login and landing pages."""
    settings = app.config["SCANPATH"]
    # Flask's cookie signing gets a key of its own, derived from the token secret.
    app.secret_key = hmac.new(settings.secret_key.encode(), b"scanpath staff csrf cookie",
                              hashlib.sha256).hexdigest()
    app.config.update(
        # Checked under /staff only (_check_csrf): the API authenticates by bearer token.
        WTF_CSRF_CHECK_DEFAULT=False,
        # The token lives as long as a staff session may.
        WTF_CSRF_TIME_LIMIT=int(staff.ABSOLUTE_TIMEOUT.total_seconds()),
        # Flask-WTF's strict check needs a Referer over HTTPS, which Referrer-Policy
        # no-referrer withholds; the token and SameSite=Lax carry the protection.
        WTF_CSRF_SSL_STRICT=False,
        # Flask's signed cookie holds only the CSRF token's secret.
        SESSION_COOKIE_NAME="scanpath_csrf", SESSION_COOKIE_PATH="/staff",
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.env != "development",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12))
    csrf.init_app(app)
    app.before_request(_check_csrf)
    app.after_request(staff._audit_page_view)  # noqa: SLF001  (the foundation's own hook)
    app.context_processor(staff.template_context)
    app.register_blueprint(blueprint)


def _check_csrf() -> None:
    if request.method == "POST" and is_staff_request():
        csrf.protect()  # CSRFError: a 400 page through the one error path


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status=status,
                    content_type="text/html; charset=utf-8")


@blueprint.get("")
@staff.staff_required()
def landing() -> Response:
    """Where a user lands after login: links to the parts of the app for their role."""
    return _page("staff/landing.html", user=staff.current_staff())


@blueprint.get("/login")
def login_page() -> BaseResponse:
    """The login form (already logged in: straight to where ``next`` points)."""
    target = staff.safe_next(request.args.get("next"))
    if staff.staff_session_user() is not None:
        return redirect(target, 303)
    return _page("staff/login.html", next=target)


@blueprint.post("/login")
def login() -> BaseResponse:
    """Check the username and password; start a session, or show the form again (401)."""
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    target = staff.safe_next(request.form.get("next"))
    if CONTROL.search(username) or len(username) > USERNAME_MAX:
        raise BadRequest(f"A username is at most {USERNAME_MAX} characters, "
                         "with no control characters")
    g.staff_claimed = username[:64] or "anonymous"
    try:
        user = staff.login(db(), username, password)
    except staff.LoginRefused as refused:
        db().commit()  # the failure counts towards the lockout
        staff.audit_staff("login", outcome="minor",
                          detail="locked out" if refused.locked else "wrong username or password")
        return _page("staff/login.html", 401, next=target, username=username,
                     error=LOCKED if refused.locked else LOGIN_FAILED)
    token = staff.start_session(db(), user.username)
    db().commit()
    g.staff_user = user
    staff.audit_staff("login", detail=f"role {user.role}")
    session.clear()  # a fresh CSRF secret for the new session
    response = redirect(target, 303)
    staff.set_session_cookie(response, token)
    log.info("staff login", extra={"username": user.username})
    return response


@blueprint.post("/logout")
def logout() -> BaseResponse:
    """End the session on the server and in the browser; back to the login page."""
    token = request.cookies.get(staff.COOKIE_NAME)
    if staff.staff_session_user() is not None and token:
        staff.audit_staff("logout")
        staff.end_session(db(), token)
        db().commit()
    session.clear()
    response = redirect(staff.login_url(), 303)
    staff.clear_session_cookie(response)
    return response

