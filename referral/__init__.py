"""The order workflow: ServiceRequests, their accession numbers, and radiology's Tasks;
notifications of their changes to GP systems (``subscriptions``: R4 Subscriptions and
the outbox written with each change; ``notify``: the worker that delivers it).

- ``accession``: the accession number every accepted ServiceRequest carries;
- ``states``: the order's states and the one table of allowed moves;
- ``orders``: the order's Task from intake, moves by the RIS, the GP and the
  imaging core, and reconcile Tasks for held studies, decided by a person;
- ``identity``: whether a study's DICOM header names the order's Patient;
- ``orderlist``, ``vetting``, ``staff``: the staff app's worklist and order pages
  (queries, vetting and scheduling through ``orders.move``, and the views).

May import ``core``, ``fhir`` (it hooks into the resource store so every
accepted ServiceRequest gets its accession number and its Task in the same
transaction) and ``auth`` (the staff pages' access checks); must not import
``imaging_core``, ``rules`` or ``scanpath``: they call into it.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the order workflow's store hooks and the staff pages in the web process."""
    from referral import staff

    register_hooks()
    staff.init_app(app)


def register_hooks() -> None:
    """Register the order workflow's store hooks (the accession number first: the
    order's Task carries it). Every process that writes resources calls this: the web
    app, ``scanpath serve`` (the analysis worker) and the Celery worker."""
    from referral import accession, orders, subscriptions, worklist

    accession.register()
    orders.register()
    worklist.register()
    subscriptions.register()
