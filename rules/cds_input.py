"""The shapes of CDS Hooks input (https://cds-hooks.hl7.org/2.0/), checked before use.

Only JSON types are checked: the envelope and the fields the service reads.
Anything malformed is a 400 with an OperationOutcome naming the field, never a
500. Resources in ``prefetch`` are not FHIR-validated (a GP system's minor
deviations must not block advice); ``rules.context`` reads them type-safely.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import BadRequest
from rules.context import MalformedResource

# Deeper JSON is refused before any code walks it recursively (a FHIR
# resource in a Bundle nests a few dozen levels at most).
MAX_JSON_DEPTH = 100


class _Lenient(BaseModel):
    """Unknown fields are allowed (CDS Hooks is extensible); known ones are typed."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class FhirAuthorization(_Lenient):
    access_token: str
    token_type: str | None = None
    scope: str | None = None
    subject: str | None = None


class OrderContext(_Lenient):
    """``context`` of the order-select and order-sign hooks."""

    patient_id: str | None = Field(default=None, alias="patientId")
    selections: list[str] | None = None
    draft_orders: dict[str, Any] = Field(alias="draftOrders")


class CdsRequest(_Lenient):
    hook: str
    hook_instance: str | None = Field(default=None, alias="hookInstance")
    context: OrderContext
    prefetch: dict[str, Any] | None = None
    fhir_server: str | None = Field(default=None, alias="fhirServer")
    fhir_authorization: FhirAuthorization | None = Field(default=None,
                                                         alias="fhirAuthorization")


class Coding(_Lenient):
    system: str | None = None
    code: str | None = Field(default=None, max_length=128)
    display: str | None = None


class OverrideReason(_Lenient):
    reason: Coding | None = None
    user_comment: str | None = Field(default=None, alias="userComment")


class FeedbackItem(_Lenient):
    card: str = Field(min_length=1, max_length=64)
    outcome: Literal["accepted", "overridden"]
    outcome_timestamp: str = Field(alias="outcomeTimestamp")
    override_reason: OverrideReason | None = Field(default=None, alias="overrideReason")
    accepted_suggestions: list[dict[str, Any]] = Field(default=[], alias="acceptedSuggestions")


def _problem(exc: ValidationError, prefix: str) -> tuple[str, str]:
    """The first error as (location, message), e.g. ``context.selections``."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    return where, err["msg"]


def cds_request(body: dict[str, Any], service_id: str, hook: str) -> CdsRequest:
    """The checked CDS Hooks request for ``service_id``, which answers ``hook``."""
    try:
        parsed = CdsRequest.model_validate(body)
    except ValidationError as exc:
        where, msg = _problem(exc, "")
        raise BadRequest(f"Invalid CDS Hooks request: {where}: {msg}", [where]) from exc
    if parsed.hook != hook:
        raise BadRequest(f"{service_id} answers the {hook} hook, not {parsed.hook}", ["hook"])
    return parsed


def feedback_item(item: Any, index: int) -> FeedbackItem:
    """One checked CDS Hooks feedback item."""
    try:
        return FeedbackItem.model_validate(item)
    except ValidationError as exc:
        where, msg = _problem(exc, f"feedback[{index}]")
        raise BadRequest("Each feedback item needs a card uuid, an outcome of accepted or "
                         f"overridden and an outcomeTimestamp: {where}: {msg}", [where]) from exc


@contextmanager
def malformed_as_400(where: str = "") -> Iterator[None]:
    """Turn a :class:`MalformedResource` into a 400 naming the resource or field."""
    try:
        yield
    except MalformedResource as exc:
        located = exc.at(where) if where else exc
        raise BadRequest(f"Malformed input: {located}", [located.where]) from exc


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON ``value`` nests deeper than ``limit`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack += [(child, depth + 1) for child in children if isinstance(child, dict | list)]
    return False
