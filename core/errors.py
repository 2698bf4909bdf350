"""Typed errors raised where a problem is found, and their OperationOutcome form.

A single handler in the web layer turns any :class:`FhirError` into an
OperationOutcome response; nothing else builds error bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Issue:
    """One OperationOutcome issue."""

    diagnostics: str
    code: str = "invalid"
    severity: str = "error"
    expression: list[str] = field(default_factory=list)

    def as_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = self.expression
        return issue


class FhirError(Exception):
    """Base of every error that becomes an HTTP status plus OperationOutcome."""

    status = 400
    code = "invalid"

    def __init__(self, diagnostics: str, expression: list[str] | None = None,
                 issues: list[Issue] | None = None) -> None:
        super().__init__(diagnostics)
        self.issues = issues or [Issue(diagnostics, self.code, "error", expression or [])]
        self.headers: dict[str, str] = {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class BadRequest(FhirError):
    status, code = 400, "invalid"


class MalformedJson(FhirError):
    status, code = 400, "structure"


class Unauthorized(FhirError):
    status, code = 401, "login"


class Forbidden(FhirError):
    status, code = 403, "forbidden"


class NotFound(FhirError):
    status, code = 404, "not-found"


class Gone(FhirError):
    status, code = 410, "deleted"


class MethodNotAllowed(FhirError):
    status, code = 405, "not-supported"


class NotAcceptable(FhirError):
    status, code = 406, "not-supported"


class Conflict(FhirError):
    status, code = 409, "conflict"


class PreconditionFailed(FhirError):
    status, code = 412, "conflict"


class UnsupportedMediaType(FhirError):
    status, code = 415, "not-supported"


class TooCostly(FhirError):
    """A request over a stated limit (search parameters, alternatives)."""

    status, code = 400, "too-costly"


class Unprocessable(FhirError):
    status, code = 422, "processing"


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource holding ``issues``."""
    return {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in issues]}


def information(text: str, severity: str = "information") -> dict[str, Any]:
    """An OperationOutcome that reports without failing: all is well
    (``Prefer: return=OperationOutcome``), or a warning (ignored parameters)."""
    return operation_outcome([Issue(text, "informational", severity)])
