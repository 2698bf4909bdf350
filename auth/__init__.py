"""SMART Backend Services authorisation: registered clients, the token endpoint, access checks.

ScanPath is its own authorisation server for system-to-system clients
(https://hl7.org/fhir/smart-app-launch/backend-services.html). A client
proves who it is with a ``private_key_jwt`` assertion signed by a key from
its registered JWKS and receives a short-lived bearer token carrying SMART v2
``system/`` scopes.

- ``models``: the ``auth_client`` registry and the ``auth_used_jti`` replay guard.
- ``scopes``: parsing SMART v1/v2 ``system/`` scopes and deciding what they allow (pure).
- ``assertions``: verifying a client assertion against the registry (no Flask).
- ``tokens``: minting and reading ScanPath access tokens (no Flask).
- ``clients``: the demo clients, their keys, and helpers for the CLI, tests and benchmarks.
- ``views``: ``/.well-known/smart-configuration`` and ``POST /auth/token``.
- ``guard``: ``current_principal()`` and ``require(type, interaction)`` for other blueprints.
- ``staff``: staff accounts (radiographer, radiologist, admin), server-side sessions,
  lockout, and ``staff_required`` / ``current_staff`` / ``audit_staff`` for the
  staff web app's blueprints (CONTRACT §8).
- ``staff_views``: ``/staff`` login, logout and landing page; CSRF on /staff POSTs.

May import only ``core``. ``fhir``, ``rules``, ``referral`` and ``imaging_core``
call ``auth.guard.require`` for each interaction they serve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Register the discovery document, the token endpoint and the staff login on ``app``."""
    # Imported here so that the pure modules (``auth.scopes``, ``auth.tokens``)
    # can be used without pulling in the Flask views.
    from auth import staff_views
    from auth.views import blueprint

    app.register_blueprint(blueprint)
    staff_views.init_app(app)
