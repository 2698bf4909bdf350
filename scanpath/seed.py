"""Seeding, in the order the services need it: clients, then rule packs and code systems."""

from __future__ import annotations

from sqlmodel import Session

from auth.clients import seed_demo_clients
from core.settings import Settings
from fhir.store import Store
from fhir.terminology import put_if_changed
from imaging_core.terminology import measure_code_system
from rules import service as rules_service


def seed_all(session: Session, settings: Settings) -> None:
    """Idempotently install the demo clients, rule pack versions and local CodeSystems."""
    seed_demo_clients(session, settings)
    store = Store(session, settings)
    rules_service.seed(store)
    put_if_changed(store, measure_code_system(settings.canonical_base))
