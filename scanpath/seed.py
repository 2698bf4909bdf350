"""Seeding, in the order the services need it: clients, then rule packs and code systems."""

from __future__ import annotations

from sqlmodel import Session

from auth.clients import disable_demo_clients, seed_demo_clients
from auth.staff import disable_demo_users, seed_demo_users
from core.settings import Settings
from fhir.store import Store
from fhir.terminology import put_if_changed
from imaging_core.terminology import code_systems
from referral import orders
from rules import service as rules_service


def seed_all(session: Session, settings: Settings, *,
             demo_clients: bool | None = None) -> list[str]:
    """Idempotently install the rule pack versions, local CodeSystems, the radiology
    Organization and, in development only, the demo clients (CONTRACT §1; their keys
    sit unprotected under ``var/``).
    Outside development, demo clients a development seed left active are disabled; their
    ids are returned. The demo staff users (CONTRACT §8) follow the environment alone:
    created in development, disabled elsewhere (listed among the returned ids).

    ``demo_clients`` overrides the environment's choice (the test suite's fixtures).
    """
    disabled: list[str] = []
    if settings.env == "development" if demo_clients is None else demo_clients:
        seed_demo_clients(session, settings)
    else:
        disabled = disable_demo_clients(session)
    if settings.env == "development":
        seed_demo_users(session)
    else:
        disabled += [f"staff:{name}" for name in disable_demo_users(session)]
    store = Store(session, settings)
    rules_service.seed(store)
    for system in code_systems(settings.canonical_base):
        put_if_changed(store, system)
    orders.seed(store)
    return disabled
