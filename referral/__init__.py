"""The order workflow: ServiceRequests, their accession numbers, and radiology's Tasks.

May import ``core`` and ``fhir`` (it hooks into the resource store so every
accepted ServiceRequest gets its accession number in the same transaction);
must not import ``scanpath``.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the order workflow's store hooks."""
    from referral import accession

    accession.register()
