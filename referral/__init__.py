"""The order workflow: ServiceRequests, their accession numbers, and radiology's Tasks;
notifications of their changes to GP systems (``subscriptions``: R4 Subscriptions and
the outbox written with each change; ``notify``: the worker that delivers it).

May import ``core`` and ``fhir`` (it hooks into the resource store so every
accepted ServiceRequest gets its accession number in the same transaction);
must not import ``scanpath``.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the order workflow's store hooks."""
    from referral import accession, subscriptions

    accession.register()
    subscriptions.register()
