"""Seeding, in the order the services need it: clients, then rule packs and code systems."""

from __future__ import annotations

from sqlmodel import Session

from auth.clients import seed_demo_clients
from core.settings import Settings
from fhir.store import Store
from rules import service as rules_service


def seed_all(session: Session, settings: Settings) -> None:
    """Idempotently install the demo clients, rule pack versions and local CodeSystems."""
    seed_demo_clients(session, settings)
    rules_service.seed(Store(session, settings))
