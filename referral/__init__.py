"""The order workflow: ServiceRequests, their accession numbers, and radiology's Tasks.

- ``accession``: the accession number every accepted ServiceRequest carries;
- ``states``: the order's states and the one table of allowed moves;
- ``orders``: the order's Task from intake, moves by the RIS, the GP and the
  imaging core, and reconcile Tasks for held studies.

May import ``core`` and ``fhir`` (it hooks into the resource store so every
accepted ServiceRequest gets its accession number and its Task in the same
transaction); must not import ``imaging_core``, ``rules`` or ``scanpath``:
they call into it.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the order workflow's store hooks (the accession number first: the
    order's Task carries it)."""
    from referral import accession, orders, worklist

    accession.register()
    orders.register()
    worklist.register()
