"""The patient's pages at ``/r/{token}`` and the staff "Revoke patient link" form.

- ``GET /r/{token}``: the date-of-birth form, or the report page when this
  browser's session belongs to this link.
- ``POST /r/{token}``: the answer: ``birthDate`` (YYYY-MM-DD, CONTRACT §7) or
  ``birthDate-day``, ``-month``, ``-year`` (the nhsuk date input). Right: a
  session cookie (HttpOnly, SameSite=Strict, Path=/r/, Secure over https) and a
  303 back to the page. Wrong: the form again, saying only that the details did
  not match and, if it keeps happening, to contact the GP surgery; it never says
  how many tries are left (that would confirm the lock coming).
- ``GET /r/{token}/images/{n}.png``, ``/model.glb``, ``/model.png``,
  ``/report.pdf``: the report's files, for this link's session only.
- ``POST /r/{token}/close``: ends the session.
- ``POST /staff/reports/{id}/patient-link/revoke`` (radiologist or admin, with a
  ``reason``): revokes the report's current link.

A link that is unknown, tampered, expired, superseded, revoked or locked, an
address past its limit, and a file that does not exist all get the same
neutral page: 404, the same bytes, no cookie. Every POST carries its CSRF token
(Flask-WTF, its secret in a cookie of its own under /r/).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, redirect, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response as BaseResponse

from auth.staff import audit_staff, current_staff, staff_required
from auth.staff_views import csrf
from core.errors import BadRequest, NotFound
from core.web import allow_model_viewer, app_settings, db, is_patient_request
from fhir import audit
from fhir.store import Store
from fhir.validation import valid_id
from patient import access, assets, links, page
from patient.forms import BirthDateAnswer, read_birth_date
from patient.models import PatientLink

bp = Blueprint("patient", __name__, url_prefix="/r")
staff_bp = Blueprint("patient_staff", __name__, url_prefix="/staff/reports")
COOKIE = "scanpath_patient"
CSRF_COOKIE = "scanpath_patient_csrf"
COOKIE_PATH = "/r/"
NO_MATCH = "The details you entered do not match our records. Check the date of birth " \
    "and try again."
Asset = Callable[[Store, str, str], "bytes | None"]


class _AreaSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie (it holds only the CSRF secret), under /r/ a cookie of its
    own (Path=/r/, SameSite=Strict) so that the staff one (Path=/staff) is untouched."""

    def get_cookie_name(self, app: Flask) -> str:
        return CSRF_COOKIE if is_patient_request() else super().get_cookie_name(app)

    def get_cookie_path(self, app: Flask) -> str:
        return COOKIE_PATH if is_patient_request() else super().get_cookie_path(app)

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return "Strict" if is_patient_request() else super().get_cookie_samesite(app)


def init_app(app: Flask) -> None:
    """The /r/ pages, CSRF on their POSTs, and the staff revoke form."""
    app.session_interface = _AreaSessionInterface()
    app.before_request(_check_csrf)
    app.context_processor(lambda: {"patient_link_of": _link_of_report})
    app.register_blueprint(bp)
    app.register_blueprint(staff_bp)


def _check_csrf() -> None:
    if request.method == "POST" and is_patient_request():
        csrf.protect()  # CSRFError: a 400 page (core.web.error_response)


def _store() -> Store:
    return Store(db(), app_settings())


def _address() -> str:
    return request.remote_addr or "unknown"


def _html(text: str, status: int = 200) -> Response:
    return Response(text, status=status, content_type="text/html; charset=utf-8")


def neutral() -> Response:
    """The one "not available" page: 404, the same bytes for every cause."""
    return _html(render_template("patient/not_available.html"), 404)


def _secure() -> bool:
    return request.is_secure or app_settings().public_url.startswith("https://")


def _opened(token: str) -> PatientLink | None:
    """The link ``token`` opens for this address; None (audited) when the neutral
    page is the answer."""
    store, address = _store(), _address()
    if access.address_blocked(store.session, address):
        access.record_attempt(store, address, None, audit.OUTCOME_MINOR,
                              "patient link refused: the address is past its limit of "
                              "wrong answers", bounded=True)
        store.session.commit()
        return None
    link = access.find(store.session, token)
    if access.available(store, link):
        return link
    if link is None:
        access.count_failure(store.session, address, None)
    access.record_attempt(store, address, link, audit.OUTCOME_MINOR,
                          f"patient link not available: {_why(link)}")
    store.session.commit()
    return None


def _why(link: PatientLink | None) -> str:
    if link is None:
        return "no such link"
    if link.status != links.CURRENT:
        return f"the link is {link.status}"
    if link.locked_at is not None:
        return "the link is locked after too many wrong answers"
    return "the link has expired" if not links.is_live(link) else \
        "its DocumentReference is no longer current"


@bp.route("/<token>", methods=["GET", "POST"])
def link_page(token: str) -> BaseResponse:
    """The date-of-birth form, the answer to it, or the report page."""
    link = _opened(token)
    if link is None:
        return neutral()
    if request.method == "POST":
        return _answer(token, link, read_birth_date(request.form))
    if access.session_opens(db(), request.cookies.get(COOKIE), link):
        return _report(token, link)
    db().commit()
    return _form(BirthDateAnswer.blank())


def _form(answer: BirthDateAnswer, error: str | None = None, status: int = 200) -> Response:
    return _html(render_template("patient/birth_date.html", answer=answer, error=error),
                 status)


def _answer(token: str, link: PatientLink, answer: BirthDateAnswer) -> BaseResponse:
    store, address = _store(), _address()
    if answer.value is None:
        access.record_attempt(store, address, link, audit.OUTCOME_MINOR,
                              "date of birth not given as a date")
        store.session.commit()
        return _form(answer, answer.error, 400)
    expected = links.birth_date(store, link.patient_id)
    if expected is None or not access.answer_matches(expected, answer.value):
        return _wrong(store, link, address, checked=expected is not None)
    cookie = access.start_session(store.session, link)
    link.wrong_answers = 0
    store.session.add(link)
    access.record_attempt(store, address, link, audit.OUTCOME_SUCCESS,
                          "right date of birth: patient session started")
    store.session.commit()
    response = redirect(f"/r/{token}", 303)
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="Strict", path=COOKIE_PATH,
                        secure=_secure())
    return response


def _wrong(store: Store, link: PatientLink, address: str, *, checked: bool) -> Response:
    """A wrong answer counted (or, with no full birth date on record, one that could
    not be checked: audited as such, not counted), and the form again."""
    if checked:
        access.wrong_answer(store.session, link, address)
        locked = "; the link is now locked" if link.locked_at else ""
        what = f"wrong date of birth ({link.wrong_answers} of " \
            f"{access.LINK_WRONG_LIMIT}){locked}"
    else:
        what = "the patient's birth date on record is not a full date: the answer " \
            "could not be checked"
    access.record_attempt(store, address, link, audit.OUTCOME_MINOR, what)
    store.session.commit()
    return _form(BirthDateAnswer.blank(), NO_MATCH)


def _report(token: str, link: PatientLink) -> Response:
    store = _store()
    report = page.report_page(store, link.diagnostic_report_id, link.report_version)
    if getattr(report, "has_model", False):
        allow_model_viewer()  # its decoders compile WebAssembly; its own stylesheet
    access.record_attempt(store, _address(), link, audit.OUTCOME_SUCCESS,
                          "patient report page viewed", viewed=True)
    store.session.commit()
    return _html(render_template("patient/report.html", report=report,
                                 link_base=f"/r/{token}"))


def _asset(token: str, make: Asset, mimetype: str) -> Response:
    """A file of the report, for a session of this link only; else the neutral page."""
    link = _opened(token)
    if link is None or not access.session_opens(db(), request.cookies.get(COOKIE), link):
        db().commit()
        return neutral()
    data = make(_store(), link.diagnostic_report_id, link.report_version)
    db().commit()
    return neutral() if data is None else Response(data, mimetype=mimetype)


@bp.get("/<token>/images/<int:number>.png")
def key_image(token: str, number: int) -> Response:
    """The report's ``number``-th key image (from 1), PNG."""
    return _asset(token, lambda store, report_id, version: assets.key_image(
        store, report_id, version, number), "image/png")


@bp.get("/<token>/model.glb")
def model_glb(token: str) -> Response:
    """The report's 3D model, binary glTF."""
    return _asset(token, assets.model_glb, "model/gltf-binary")


@bp.get("/<token>/model.png")
def model_still(token: str) -> Response:
    """A still picture of the 3D model, PNG (for pages without JavaScript)."""
    return _asset(token, assets.model_still, "image/png")


@bp.get("/<token>/report.pdf")
def report_pdf(token: str) -> Response:
    """The report as a PDF to download."""
    return _asset(token, assets.report_pdf, "application/pdf")


@bp.post("/<token>/close")
def close(token: str) -> BaseResponse:
    """End this browser's session; back to the link (its form, or the neutral page)."""
    access.end_session(db(), request.cookies.get(COOKIE))
    db().commit()
    response = redirect(f"/r/{token}", 303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=_secure(), httponly=True,
                           samesite="Strict")
    return response


# --- staff: revoke ----------------------------------------------------------------------

def _link_of_report(report_id: str) -> dict[str, Any] | None:
    """For the staff report page: the report's current link, if any."""
    link = links.current_link(db(), report_id) if valid_id(report_id) else None
    if link is None:
        return None
    return {"document_reference_id": link.document_reference_id,
            "expires": link.expires_at.strftime("%d %B %Y"), "locked": bool(link.locked_at)}


@staff_bp.post("/<report_id>/patient-link/revoke")
@staff_required("radiologist", "admin")
def revoke(report_id: str) -> BaseResponse:
    """Revoke the report's current patient link, with the reason given."""
    reason = request.form.get("reason", "").strip()
    if not reason:
        raise BadRequest("Give the reason for revoking the patient's link")
    link = links.current_link(db(), report_id) if valid_id(report_id) else None
    if link is None:
        raise NotFound("This report has no current patient link to revoke")
    user = current_staff()
    links.revoke(_store(), link, f"staff:{user.username}", reason)
    audit_staff("revoke-patient-link", f"DocumentReference/{link.document_reference_id}",
                detail=reason[:500])  # records and commits, with the revocation
    return redirect(f"/staff/reports/{report_id}", 303)

