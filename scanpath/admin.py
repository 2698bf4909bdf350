"""The staff app's admin page (``/staff/admin``, admin only; CONTRACT §8).

What needs a person: held studies (the reconcile Tasks of ``referral.orders``:
link to an order or reject, by the same Task update a RIS makes, so the imaging
core's hold resolver runs), dead notifications (``referral.notify``; retry one),
failed analysis jobs (``imaging_core`` jobs) and the registered API clients
(``auth.clients``). It lives in ``scanpath``, the one package that may import
all the others.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Flask, Response, redirect, render_template, request
from sqlmodel import col, select
from werkzeug.wrappers import Response as BaseResponse

from auth.clients import all_clients
from auth.staff import audit_staff, current_staff, staff_required
from core.errors import BadRequest, Conflict, NotFound, Unprocessable
from core.web import app_settings, db
from fhir.search import run_search
from fhir.store import Store, spec_for
from imaging_core.models import AnalysisJob
from referral import notify
from referral.orders import LINKED_ORDER

log = logging.getLogger(__name__)

blueprint = Blueprint("staff_admin", __name__, url_prefix="/staff/admin")
MAX_LISTED = 200  # each list shows the newest this many
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR id (R4 datatypes, id)


def init_app(app: Flask) -> None:
    """Register the admin page."""
    app.register_blueprint(blueprint)


def _store() -> Store:
    return Store(db(), app_settings())


def _page(status: int = 200, error: str | None = None) -> Response:
    store = _store()
    return Response(render_template(
        "staff/admin.html", holds=held(store), error=error,
        dead=notify.listed(db(), "dead")[-MAX_LISTED:], jobs=failed_jobs(store),
        clients=all_clients(db()), user=current_staff()),
        status=status, content_type="text/html; charset=utf-8")


def held(store: Store) -> list[dict[str, Any]]:
    """Open reconcile Tasks (held studies and results), newest first."""
    system = f"{store.settings.canonical_base}/CodeSystem/order-state"
    found = run_search(store.session, spec_for("Task"), [
        ("business-status", f"{system}|reconcile"), ("status", "requested"),
        ("_sort", "-authored-on")], count=MAX_LISTED, with_total=False)
    return found.matches


def failed_jobs(store: Store) -> list[AnalysisJob]:
    """Analysis jobs that failed for good, newest first."""
    query = select(AnalysisJob).where(col(AnalysisJob.status) == "failed") \
        .order_by(col(AnalysisJob.updated_at).desc()).limit(MAX_LISTED)
    return list(store.session.exec(query).all())


@blueprint.get("")
@staff_required("admin")
def admin() -> Response:
    """Held studies, dead notifications, failed jobs and clients."""
    return _page()


@blueprint.post("/holds/<task_id>")
@staff_required("admin")
def decide_hold(task_id: str) -> BaseResponse:
    """Link a held study to an order (its ServiceRequest id), or reject it."""
    decision = request.form.get("decision", "")
    order_id = request.form.get("order_id", "").strip()
    try:
        resolve_hold(_store(), task_id, decision, order_id)
    except (Conflict, Unprocessable, NotFound) as refused:
        db().rollback()
        audit_staff("reconcile", f"Task/{task_id}", "minor", str(refused))
        return _page(refused.status, str(refused))
    db().commit()
    audit_staff("reconcile", f"Task/{task_id}", detail=f"{decision} {order_id}".strip())
    return redirect("/staff/admin", 303)


def resolve_hold(store: Store, task_id: str, decision: str, order_id: str) -> dict[str, Any]:
    """Decide a hold Task as the RIS does (README, RIS section): ``completed`` with a
    ``linked-order`` output, or ``rejected``; the Task. The caller commits."""
    if decision not in ("link", "reject"):
        raise BadRequest("Choose to link the held study to an order or to reject it",
                         ["decision"])
    if not _ID.fullmatch(task_id):
        raise NotFound(f"Task/{task_id} is not known")
    task = store.read("Task", task_id)
    if decision == "reject":
        return store.update("Task", task_id, {**task, "status": "rejected"}).resource
    if not _ID.fullmatch(order_id):
        raise Unprocessable("Give the id of the order (ServiceRequest) to link it to",
                            ["order_id"])
    output = [*task.get("output", []), {"type": {"text": LINKED_ORDER},
                                        "valueReference": {
                                            "reference": f"ServiceRequest/{order_id}"}}]
    return store.update("Task", task_id, {**task, "status": "completed",
                                          "output": output}).resource


@blueprint.post("/notifications/<int:notification_id>/retry")
@staff_required("admin")
def retry_notification(notification_id: int) -> BaseResponse:
    """Queue a dead notification for one more attempt."""
    try:
        notify.retry(db(), notification_id)
    except (Conflict, NotFound) as refused:
        db().rollback()
        return _page(refused.status, str(refused))
    db().commit()
    audit_staff("retry-notification", detail=f"notification {notification_id}")
    return redirect("/staff/admin", 303)
