"""The staff app's worklist, order detail, vetting and scheduling pages (``/staff``).

Views only: the queries are ``referral.orderlist``, the moves ``referral.vetting``
(through ``referral.orders.move``, as the RIS's moves). Roles (common brief):
vetting is for a radiologist (IR(ME)R 2017 reg. 11 practitioner), scheduling for
a radiographer or a radiologist, reading for any staff user. A move the state
table refuses (409) or a form value that cannot be used (422) shows the order
again with the reason; bad filters are a 400 page through the one error path.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from auth.staff import audit_staff, current_staff, staff_required
from core.errors import Conflict, Unprocessable
from core.web import app_settings, db
from fhir.store import Store
from referral import orderlist, vetting
from referral.states import STATES, Actor, next_states

log = logging.getLogger(__name__)

blueprint = Blueprint("staff_orders", __name__, url_prefix="/staff")
VETTERS = ("radiologist",)
SCHEDULERS = ("radiographer", "radiologist")


def init_app(app: Flask) -> None:
    """Register the worklist and order pages."""
    app.register_blueprint(blueprint)


def _store() -> Store:
    return Store(db(), app_settings())


def _page(template: str, status: int = 200, **context: object) -> Response:
    return Response(render_template(template, **context), status=status,
                    content_type="text/html; charset=utf-8")


@blueprint.get("/worklist")
@staff_required()
def worklist() -> Response:
    """Orders filtered by state, urgency, modality and date received; sorted; paged."""
    store = _store()
    modalities = orderlist.modalities(store)
    args = {key: request.args.get(key, "") for key in
            ("state", "priority", "modality", "from", "to", "sort", "page")}
    filters = orderlist.parse_filters(args, list(modalities))
    page = orderlist.worklist(store, filters)
    links = {key: value for key, value in args.items() if value and key != "page"}
    return _page("staff/worklist.html", page=page, filters=filters, args=args, links=links,
                 states=STATES, priorities=orderlist.PRIORITIES, modalities=modalities,
                 sorts=orderlist.SORTS)


@blueprint.get("/orders/<order_id>")
@staff_required()
def order(order_id: str) -> Response:
    """One order: its patient, the decision with its trace and citations, its Task history."""
    return _detail(order_id)


def _detail(order_id: str, status: int = 200, error: str | None = None,
            form: dict[str, str] | None = None) -> Response:
    store = _store()
    detail = orderlist.order_detail(store, order_id)
    user = current_staff()
    can_vet = user.role in VETTERS and detail.state in ("received", "vetting",
                                                        "more-info-requested")
    can_schedule = user.role in SCHEDULERS and "scheduled" in next_states(
        detail.state, Actor.RADIOLOGY)
    return _page("staff/order.html", status, detail=detail, states=STATES, error=error,
                 form=form or {}, can_vet=can_vet, can_schedule=can_schedule,
                 modalities=list(orderlist.modalities(store)),
                 patient_name=orderlist.patient_name(detail.patient),
                 nhs_number=orderlist.nhs_number(detail.patient),
                 procedure=orderlist.procedure_text(detail.order))


@blueprint.post("/orders/<order_id>/vet")
@staff_required(*VETTERS)
def vet(order_id: str) -> BaseResponse:
    """Accept, reject (with a reason) or ask the GP for more information."""
    decision = request.form.get("decision", "")
    reason = request.form.get("reason", "")
    user = current_staff()
    try:
        vetting.vet(_store(), order_id, decision, reason, user.username)
    except (Conflict, Unprocessable) as refused:
        db().rollback()
        audit_staff("vet", f"ServiceRequest/{order_id}", "minor", str(refused))
        return _detail(order_id, _status(refused), str(refused), dict(request.form))
    db().commit()
    audit_staff("vet", f"ServiceRequest/{order_id}", detail=f"{decision}: {reason}".strip())
    return redirect(f"/staff/orders/{order_id}", 303)


@blueprint.post("/orders/<order_id>/schedule")
@staff_required(*SCHEDULERS)
def schedule(order_id: str) -> BaseResponse:
    """Book the order: date, time, modality, station AE title and a protocol note."""
    store = _store()
    user = current_staff()
    form = {key: str(value) for key, value in request.form.items()}
    try:
        booking = vetting.parse_booking(form, list(orderlist.modalities(store)))
        vetting.schedule(store, order_id, booking, user.username)
    except (Conflict, Unprocessable) as refused:
        db().rollback()
        audit_staff("schedule", f"ServiceRequest/{order_id}", "minor", str(refused))
        return _detail(order_id, _status(refused), str(refused), form)
    db().commit()
    audit_staff("schedule", f"ServiceRequest/{order_id}",
                detail=f"{booking.day} {booking.at} {booking.station_ae}")
    return redirect(f"/staff/orders/{order_id}", 303)


def _status(error: Exception) -> int:
    return 409 if isinstance(error, Conflict) else 422
