"""Walk simple FHIRPath-like dotted paths through resource JSON.

Paths are dotted element names; a list is entered element by element and a
``[x]`` suffix matches any choice type (``effective[x]`` finds
``effectiveDateTime`` or ``effectivePeriod``). Each value comes with its
FHIRPath expression, for OperationOutcome ``issue.expression``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk(node: Any, path: str, prefix: str) -> Iterator[tuple[Any, str]]:
    """Yield ``(value, expression)`` for each value found at ``path`` under ``node``."""
    if not path:
        yield from _spread(node, prefix)
        return
    head, _, rest = path.partition(".")
    for item, where in _spread(node, prefix):
        if not isinstance(item, dict):
            continue
        for key in _matching_keys(item, head):
            yield from walk(item[key], rest, f"{where}.{key}")


def _spread(node: Any, where: str) -> Iterator[tuple[Any, str]]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield item, f"{where}[{index}]"
    elif node is not None:
        yield node, where


def _matching_keys(item: dict[str, Any], name: str) -> list[str]:
    if not name.endswith("[x]"):
        return [name] if name in item else []
    stem = name[:-3]
    return [k for k in item if k.startswith(stem) and k[len(stem):len(stem) + 1].isupper()]
