"""Placeholder until branch patient-page merges: the report page's content.

Only what ``patient.views`` calls, so that its tests run; the real plain-language
page (``patient-page``) keeps this interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir.store import Store


@dataclass(frozen=True)
class PatientReport:
    """Placeholder: the report's conclusion as written."""

    conclusion: str


def report_page(store: Store, report_id: str, version: str) -> PatientReport:
    """Placeholder: version ``version`` of DiagnosticReport ``report_id``."""
    report = Store(store.session, store.settings).vread("DiagnosticReport", report_id, version)
    return PatientReport(conclusion=str(report.get("conclusion", "")))
