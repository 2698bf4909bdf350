"""Files that must be created once, whole and private (mode 0600)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def read_or_create_private(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes at ``path``; when missing, first written there as ``make()``, mode 0600.

    The file is written under a temporary name and linked into place, so a reader
    never sees it half-written and, when two processes start at once, the first
    link wins and both return its content. The folder is created mode 0700.
    """
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pending = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(make())
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(pending, path)  # fails when the file exists: the other writer's wins
    except FileExistsError:
        pass
    finally:
        pending.unlink()
    return path.read_bytes()
