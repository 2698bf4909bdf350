"""Publishing local CodeSystems as FHIR resources in the store."""

from __future__ import annotations

from typing import Any

from core import fhirjson
from core.errors import NotFound
from fhir.store import Store


def code_system(base: str, name: str, title: str, concepts: list[dict[str, Any]],
                properties: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A complete CodeSystem ``{base}/CodeSystem/{name}`` whose id is ``name``."""
    system: dict[str, Any] = {
        "resourceType": "CodeSystem", "id": name, "url": f"{base}/CodeSystem/{name}",
        "name": "".join(p.title() for p in name.split("-")), "title": title,
        "status": "active", "content": "complete", "caseSensitive": True,
        "publisher": "ScanPath", "count": len(concepts), "concept": concepts}
    if properties:
        system["property"] = properties
    return system


def put_if_changed(store: Store, resource: dict[str, Any]) -> None:
    """Write ``resource`` at its id unless the stored version already says the same."""
    try:
        current: dict[str, Any] | None = store.read(resource["resourceType"], resource["id"])
    except NotFound:
        current = None
    if current is None or _content(current) != _content(resource):
        store.update(resource["resourceType"], resource["id"], resource)


def _content(resource: dict[str, Any]) -> str:
    return fhirjson.dumps({k: v for k, v in resource.items() if k != "meta"}, sort_keys=True)
