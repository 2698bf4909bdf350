"""Fixtures for the auth tests: an app with the auth blueprint, seeded demo clients, tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, SQLModel
from werkzeug.test import TestResponse

import auth
from auth.clients import client_assertion, key_path, seed_demo_clients
from auth.guard import require
from core.db import engine_for
from core.settings import Settings
from scanpath.app import create_app

TOKEN_URL = "http://localhost/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/t.db", var_dir=tmp_path, env="test",
                    secret_key="test-secret-key-of-at-least-32-bytes!",
                    public_base_url="http://localhost")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    if "auth" not in app.blueprints:
        auth.init_app(app)

    @app.get("/_probe/<resource_type>/<interaction>")
    def probe(resource_type: str, interaction: str) -> dict[str, str]:
        principal = require(resource_type, interaction)
        return {"client_id": principal.client_id}

    engine = engine_for(settings.database_url)
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        seed_demo_clients(session, settings)
        session.commit()
    yield app
    engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def db(settings: Settings, app: Flask) -> Iterator[Session]:
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        yield session


@pytest.fixture
def private_key(settings: Settings, app: Flask) -> Callable[[str], bytes]:
    """The PEM private key of a seeded demo client."""
    return lambda client_id: key_path(settings, client_id).read_bytes()


@pytest.fixture
def post_token(client: FlaskClient) -> Callable[..., TestResponse]:
    """POST a client_credentials token request; keyword arguments override form fields."""

    def post(assertion: str, scope: str, **fields: str) -> TestResponse:
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion, "scope": scope, **fields}
        return client.post("/auth/token", data=form)

    return post


@pytest.fixture
def access_token(post_token, private_key) -> Callable[[str, str], str]:
    """An access token for a demo client, obtained through the token endpoint."""

    def fetch(client_id: str, scope: str) -> str:
        assertion = client_assertion(client_id, private_key(client_id), TOKEN_URL)
        response = post_token(assertion, scope)
        assert response.status_code == 200, response.get_json()
        token: str = response.get_json()["access_token"]
        return token

    return fetch
