"""The scan-selection decision engine, its guideline rule packs, and CDS Hooks.

- ``schema``/``packs``: the catalogue, rule packs and safety thresholds as
  validated YAML data under ``data/``, versioned by content hash.
- ``context``: the patient context built from FHIR resources.
- ``engine``/``safety``: the decision and the safety checks (pure).
- ``guidance``/``cards``/``terminology``: a decision as FHIR and as CDS cards.
- ``service``: context sources, decisions and their persistence.
- ``api``: CDS Hooks endpoints and ``GuidanceResponse/$replay``;
  ``ordering``: the ServiceRequest write hook.

Decision code (``context``, ``engine``, ``safety``, ``schema``, ``packs``)
knows nothing of Flask or the database. ``rules`` may import ``core``,
``auth`` and ``fhir``; nothing below imports it.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the CDS Hooks endpoints, ``$replay`` and the ordering hook."""
    from rules import api, ordering

    api.init_app(app)
    ordering.register()
