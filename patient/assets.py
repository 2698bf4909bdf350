"""Placeholder until branch patient-page merges: the report's files for the patient.

Each returns None (the neutral page) here; the real ones (``patient-page``) keep
these signatures.
"""

from __future__ import annotations

from fhir.store import Store


def key_image(store: Store, report_id: str, version: str, n: int) -> bytes | None:
    """Placeholder: the ``n``-th key image, PNG."""
    return None


def model_glb(store: Store, report_id: str, version: str) -> bytes | None:
    """Placeholder: the 3D model, GLB."""
    return None


def model_still(store: Store, report_id: str, version: str) -> bytes | None:
    """Placeholder: a still of the 3D model, PNG."""
    return None


def report_pdf(store: Store, report_id: str, version: str) -> bytes | None:
    """Placeholder: the report, PDF."""
    return b"%PDF-1.4 placeholder" if report_id else None
