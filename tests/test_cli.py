"""The ``scanpath`` console script from a fresh folder: migrate, seed, token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jwt

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
