"""Local references must resolve (https://hl7.org/fhir/R4/references.html#literal).

A relative literal reference (``Patient/123``, ``Patient/123/_history/2``) in a
resource written here names a resource on this server: it must exist, or be
written by the same transaction. Contained (``#id``), ``urn:`` (rewritten by
the transaction first), conditional (transactions only) and absolute
references to other servers are not checked here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from core.errors import Unprocessable
from fhir.validation import valid_id

# The shape of a relative literal reference; the id is checked apart, so that one
# that is no FHIR id (too long, other characters) is refused rather than ignored.
_RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([^/?#]+)(/_history/[^/]+)?")


def local_references(resource: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(FHIRPath of the element, "Type/id")`` for each relative literal reference."""
    root = str(resource.get("resourceType", "Resource"))
    stack: list[tuple[str, Any]] = [(root, resource)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, list):
            stack += [(f"{path}[{i}]", item) for i, item in enumerate(node)]
        elif isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and (match := _RELATIVE.fullmatch(ref)):
                yield path, f"{match[1]}/{match[2]}"
            stack += [(f"{path}.{key}", value) for key, value in node.items()
                      if key not in ("contained", "reference")]


def check_references(resource: dict[str, Any], exists: Callable[[str, str], bool],
                     pending: frozenset[str] = frozenset()) -> None:
    """Raise 422 naming the first element whose local reference resolves to nothing.

    ``exists(type, id)`` asks the store; ``pending`` holds the ``Type/id`` of
    resources the same transaction writes (the resource itself included).
    """
    for path, target in local_references(resource):
        if target in pending:
            continue
        resource_type, resource_id = target.split("/", 1)
        if not valid_id(resource_id) or len(resource_type) > 64:
            raise Unprocessable(f"{path} refers to {target[:80]}, but a FHIR id is 1 to 64 "
                                "of A-Z a-z 0-9 - . (datatypes.html#id)", [path])
        if not exists(resource_type, resource_id):
            raise Unprocessable(f"{path} refers to {target}, which does not exist here; "
                                "write it first, or in the same transaction", [path])
