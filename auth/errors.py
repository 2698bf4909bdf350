"""Token endpoint errors, rendered as RFC 6749 §5.2 JSON by the auth blueprint.

These are not FHIR errors: OAuth clients expect ``{"error", "error_description"}``
rather than an OperationOutcome, so they have their own small hierarchy.
"""

from __future__ import annotations


class OAuthError(Exception):
    """Base of the RFC 6749 §5.2 error responses."""

    status = 400
    error = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(OAuthError):
    status, error = 400, "invalid_request"


class InvalidClient(OAuthError):
    # RFC 6749 §5.2 allows 401 for a failed client authentication.
    status, error = 401, "invalid_client"


class InvalidScope(OAuthError):
    status, error = 400, "invalid_scope"


class UnsupportedGrantType(OAuthError):
    status, error = 400, "unsupported_grant_type"
