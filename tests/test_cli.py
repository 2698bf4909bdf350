"""The ``scanpath`` console script from a fresh folder: migrate, seed, token."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jwt

from tests.conftest import free_port

SCRIPT = Path(sys.executable).parent / "scanpath"


def _run(*args: str, env: dict[str, str]) -> str:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scanpath.cli"]
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_migrate_seed_and_token_on_a_fresh_sqlite_folder(tmp_path: Path):
    var = tmp_path / "not" / "there" / "yet"
    env = {**os.environ, "SCANPATH_VAR_DIR": str(var),
           "SCANPATH_DATABASE_URL": f"sqlite:///{var}/scanpath.db"}
    assert "migrated" in _run("db", "upgrade", env=env)
    _run("seed", env=env)
    _run("seed", env=env)  # seeding twice changes nothing
    token = _run("token", "demo-gp", env=env).strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "demo-gp" and "system/ServiceRequest.cruds" in claims["scope"]
    assert claims["exp"] - claims["iat"] == 3600  # CONTRACT §1: valid for one hour
    shutil.rmtree(var)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    var = tmp_path / "var"
    return {**os.environ, "SCANPATH_VAR_DIR": str(var),
            "SCANPATH_DATABASE_URL": f"sqlite:///{var}/scanpath.db", **extra}


def _fails(*args: str, env: dict[str, str]) -> str:
    """A mistake: exit status 2 and one line on stderr, never a traceback."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scanpath.cli"]
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if not line.startswith(
        "scanpath: warning:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_mistakes_are_one_line_and_exit_2(tmp_path: Path):
    env = _env(tmp_path)
    assert "does not exist; run `scanpath db upgrade`" in _fails("token", "demo-gp", env=env)
    assert not (tmp_path / "var" / "scanpath.db").exists()  # no empty database made
    for url in ("foo://", "postgresql://nobody@127.0.0.1:1/none"):  # no traceback
        _fails("db", "upgrade", env={**env, "SCANPATH_DATABASE_URL": url})
    for name, value in (("SCANPATH_PAGE_SIZE_MAX", "-1"), ("SCANPATH_LOG_LEVEL", "LOUD"),
                        ("SCANPATH_PORT", "70000"),
                        ("SCANPATH_DICOM_DESTINATIONS", "ORTHANC@pacs.example")):
        assert name.removeprefix("SCANPATH_").lower() in _fails(
            "db", "upgrade", env={**env, name: value})
    _run("db", "upgrade", env=env)
    assert "demo-gp" in _fails("token", "demo-gp", env=env)  # migrated, not seeded
    assert "no client is registered as 'ghost'" in _fails("client", "disable", "ghost", env=env)
    assert "cannot read" in _fails("client", "add", "gp-x", "--name", "X", "--scopes",
                                   "system/Patient.rs", "--jwks", str(tmp_path / "none.json"),
                                   env=env)


def test_client_add_list_disable(tmp_path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from auth.clients import load_private_key, public_jwk

    env = _env(tmp_path)
    _run("db", "upgrade", env=env)
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    jwks = tmp_path / "gp.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(load_private_key(pem))]}))
    _run("client", "add", "gp-system-1", "--name", "A GP system", "--scopes",
         "system/Patient.rs system/ServiceRequest.c", "--jwks", str(jwks), env=env)
    listed = _run("client", "list", env=env)
    assert "gp-system-1\tactive\tA GP system\t1 key(s)" in listed
    token = _run("token", "gp-system-1", env=env).strip()
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "gp-system-1"
    _run("client", "disable", "gp-system-1", env=env)
    assert "gp-system-1\tdisabled" in _run("client", "list", env=env)
    add_again = ("client", "add", "gp-system-1", "--name", "Renamed", "--scope",
                 "system/Patient.rs", "--jwks", str(jwks))
    assert "already registered as 'gp-system-1'; add --replace" in _fails(*add_again, env=env)
    _run(*add_again, "--replace", env=env)
    assert "gp-system-1\tdisabled\tRenamed" in _run("client", "list", env=env)  # still off
    assert "no active client is registered as 'gp-system-1'" in \
        _fails("token", "gp-system-1", env=env)
    private = dict(public_jwk(load_private_key(pem)), d="secret")
    jwks.write_text(json.dumps({"keys": [private]}))
    assert "public keys only" in _fails("client", "add", "gp-system-2", "--name", "B",
                                        "--scopes", "system/Patient.rs", "--jwks", str(jwks),
                                        env=env)


def test_unknown_variables_are_reported_with_the_closest_name(tmp_path: Path):
    env = _env(tmp_path, SCANPATH_DATA_DIR="/tmp/elsewhere")
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scanpath.cli"]
    done = subprocess.run([*command, "db", "upgrade"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0
    assert "SCANPATH_DATA_DIR is not a ScanPath setting (did you mean SCANPATH_VAR_DIR?)" \
        in done.stderr


def test_serve_names_a_port_in_use(tmp_path: Path):
    import socket

    env = _env(tmp_path)
    _run("db", "upgrade", env=env)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        line = _fails("serve", env={**env, "SCANPATH_PORT": str(port)})
    assert f"cannot listen on 127.0.0.1:{port} (SCANPATH_PORT)" in line and "in use" in line


def test_help_is_plain_text_and_documents_each_command():
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scanpath.cli"]
    top = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True)
    assert "``" not in top.stdout and "client" in top.stdout
    sub = subprocess.run([*command, "client", "add", "--help"], capture_output=True,
                         text=True, check=True)
    assert "--jwks-uri" in sub.stdout
    token = subprocess.run([*command, "token", "--help"], capture_output=True, text=True,
                           check=True)
    assert "SCANPATH_DATABASE_URL" in token.stdout




def test_serve_starts_answers_and_logs_json(tmp_path: Path):
    """``scanpath serve`` as an operator runs it: gunicorn with ScanPath's own config."""
    import signal
    import time
    import urllib.request

    port = free_port()
    env = _env(tmp_path, SCANPATH_PORT=str(port), SCANPATH_DICOM_PORT=str(free_port()),
               HOME=str(tmp_path))
    _run("db", "upgrade", env=env)
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "scanpath.cli"]
    server = subprocess.Popen([*command, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            assert server.poll() is None, server.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                    assert page.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("scanpath serve did not answer")
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    access = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(entry["logger"] == "gunicorn.access" and '"GET / HTTP/1.1" 200'
               in entry["message"] for entry in access), (out, err)
    assert "Traceback" not in err
    assert not (tmp_path / ".gunicorn").exists()  # no control socket left in $HOME


def test_seed_registers_no_demo_client_outside_development(tmp_path: Path):
    for env_name in ("production", "test"):
        env = _env(tmp_path / env_name, SCANPATH_ENV=env_name)
        _run("db", "upgrade", env=env)
        assert "no demo clients" in _run("seed", env=env)
        assert "no active client is registered" in _fails("token", "demo-admin", env=env)
        assert "demo-" not in _run("client", "list", env=env)
        assert not (tmp_path / env_name / "var" / "keys").exists()


def test_demo_clients_from_development_are_disabled_by_a_production_seed(tmp_path: Path):
    env = _env(tmp_path, SCANPATH_ENV="development")
    _run("db", "upgrade", env=env)
    _run("seed", env=env)
    assert _run("token", "demo-admin", env=env).strip()  # usable in development

    said = _run("seed", env={**env, "SCANPATH_ENV": "production"})
    assert "disabled the demo clients left from development: demo-gp" in said
    assert "no active client is registered" in _fails(
        "token", "demo-admin", env={**env, "SCANPATH_ENV": "production"})


def test_an_unset_secret_is_generated_once_and_signs_every_token(tmp_path: Path):
    env = {k: v for k, v in _env(tmp_path).items() if k != "SCANPATH_SECRET_KEY"}
    _run("db", "upgrade", env=env)
    _run("seed", env=env)
    first, second = (_run("token", "demo-gp", env=env).strip() for _ in range(2))

    secret = (tmp_path / "var" / "secret_key").read_text().strip()
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
    for token in (first, second):
        assert jwt.decode(token, secret, algorithms=["HS256"], issuer="scanpath")
    for placeholder in ("dev-only-placeholder-secret-change-me-now", "changeme"):
        assert "SECRET_KEY" in _fails("token", "demo-gp",
                                      env={**env, "SCANPATH_SECRET_KEY": placeholder})


def test_a_rejected_secret_is_named_but_never_printed(tmp_path: Path):
    secret = "MyRealProdSecretButTooShort-XYZ"
    line = _fails("token", "demo-gp", env=_env(tmp_path, SCANPATH_SECRET_KEY=secret))
    assert "SCANPATH_SECRET_KEY must be at least 32 characters" in line
    assert "XYZ" not in line and "pydantic" not in line
