"""An independent FHIR R4 validator for the test suite.

ScanPath validates with ``fhir.resources``; checking its output with the same
library would prove little. This module drives ``tests/validator/validate.mjs``,
a long-lived Node process running Medplum's ``validateResource`` over the
official FHIR 4.0.1 StructureDefinitions (``make node_modules`` installs it).
It reads local files only: no network I/O.

Use the session fixture ``r4_validator``::

    def test_read_patient(client, r4_validator):
        body = client.get("/fhir/Patient/1").get_json()
        r4_validator.assert_valid(body)

What it checks: cardinality (required elements), JSON types, primitive
formats (date, instant, ...), unknown elements, empty values, one type per
choice element, FHIRPath invariants (``pat-1``, ``bdl-9``, ...) and resource
types, also inside ``Bundle.entry.resource`` and ``contained``. What it does
not: terminology bindings (``gender: "bogus"`` passes), the ``id`` regex, and
reference target types (a warning only, not returned by ``validate``).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

SCRIPT = Path(__file__).resolve().parent / "validator" / "validate.mjs"
REPO_ROOT = SCRIPT.parents[2]
START_TIMEOUT_SECONDS = 120.0
REPLY_TIMEOUT_SECONDS = 60.0


class ValidatorUnavailable(RuntimeError):
    """The Node validator could not be started or stopped answering."""


class R4Validator:
    """A client for one validator process, started on first use.

    Thread-safe: requests are serialised under a lock, so the replies on the
    process's stdout stay in step with the resources sent.
    """

    def __init__(self, node: str | None = None, script: Path = SCRIPT) -> None:
        self._node = node or os.environ.get("SCANPATH_TEST_NODE") or shutil.which("node")
        self._script = script
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str | None] = deque(maxlen=50)
        self.load_ms: int | None = None

    def validate(self, resource: dict[str, Any]) -> list[str]:
        """Return the error issues for one resource, as text; empty when valid."""
        line = json.dumps(resource, separators=(",", ":"))
        with self._lock:
            self._ensure_started()
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(line + "\n")
                self._proc.stdin.flush()
            except OSError as exc:
                raise self._unavailable(f"cannot write to the validator: {exc}") from exc
            reply = json.loads(self._next_line(REPLY_TIMEOUT_SECONDS))
        if reply.get("ok"):
            return []
        return [_format_issue(issue) for issue in reply.get("issues", [])]

    def validate_all(self, body: dict[str, Any]) -> list[str]:
        """Validate a resource and, for a Bundle, each ``entry[].resource`` on its own too."""
        problems = self.validate(body)
        if body.get("resourceType") == "Bundle":
            for index, entry in enumerate(body.get("entry") or []):
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict):
                    problems += [f"entry[{index}]: {p}" for p in self.validate(resource)]
        return problems

    def assert_valid(self, body: dict[str, Any]) -> None:
        """Fail the calling test with every issue when ``body`` is not valid R4."""
        problems = self.validate_all(body)
        if problems:
            kind = body.get("resourceType", "resource")
            raise AssertionError(f"invalid FHIR R4 {kind}:\n  " + "\n  ".join(problems))

    def close(self) -> None:
        """Stop the process; a later ``validate`` starts a new one."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._proc is not None:
            raise self._unavailable(f"the validator exited with code {self._proc.returncode}")
        if not self._node:
            raise ValidatorUnavailable("node is not on PATH; the FHIR validator needs Node.js")
        if not (REPO_ROOT / "node_modules" / "@medplum" / "core").is_dir():
            raise ValidatorUnavailable("@medplum/core is not installed: run `make node_modules`")
        self._replies = queue.Queue()
        self._proc = subprocess.Popen(
            [self._node, str(self._script)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        # Each pump is bound to this process and queue, so a stopped process's
        # last words never land in its successor's queue.
        for stream, sink in ((self._proc.stdout, self._replies.put),
                             (self._proc.stderr, self._stderr.append)):
            threading.Thread(target=_pump, args=(stream, sink), daemon=True).start()
        banner = json.loads(self._next_line(START_TIMEOUT_SECONDS))
        if not banner.get("ready"):
            raise self._unavailable(f"unexpected first line from the validator: {banner!r}")
        self.load_ms = banner.get("loadMs")

    def _next_line(self, timeout: float) -> str:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise self._unavailable(f"no answer from the validator within {timeout:.0f}s") from None
        if line is None:
            raise self._unavailable("the validator closed its output")
        return line

    def _unavailable(self, message: str) -> ValidatorUnavailable:
        tail = "\n".join(line for line in self._stderr if line)
        return ValidatorUnavailable(f"{message}\n{tail}" if tail else message)


def _pump(stream: IO[str] | None, sink: Callable[[str | None], None]) -> None:
    """Copy lines from ``stream`` to ``sink``, then ``None`` to mark the end."""
    if stream is not None:
        for line in stream:
            sink(line.rstrip("\n"))
    sink(None)


def _format_issue(issue: dict[str, Any]) -> str:
    where = issue.get("expression") or "(resource)"
    return f"{where}: {issue.get('message') or issue.get('code', 'invalid')}"


@pytest.fixture(scope="session")
def r4_validator() -> Iterator[R4Validator]:
    """One independent R4 validator for the whole session; its process starts on first use."""
    validator = R4Validator()
    yield validator
    validator.close()
