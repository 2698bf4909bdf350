"""The Flask application factory."""

from __future__ import annotations

import logging
import os

from flask import Flask

import auth
import imaging_core
import patient
import referral
import rules
from core import web
from core.logging import configure_logging
from core.settings import PROJECT_ROOT, Settings, get_settings, unknown_variables
from fhir import api as fhir_api
from scanpath import admin, auditing, ops

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the ScanPath web application for ``settings`` (the environment by default)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    for name, closest in unknown_variables(os.environ):
        log.warning("unknown setting ignored", extra={"variable": name, "did_you_mean": closest})
    # static/: nhsuk-frontend's CSS, JS and assets, built by `make static`.
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"),
                static_folder=str(PROJECT_ROOT / "static"))
    app.config["SCANPATH"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    web.init_app(app)
    ops.init_app(app)
    auth.init_app(app)
    auditing.init_app(app)
    fhir_api.init_app(app)
    referral.init_app(app)
    imaging_core.init_app(app)
    patient.init_app(app)  # after imaging_core: its links follow sign-off
    rules.init_app(app)
    admin.init_app(app)
    return app
