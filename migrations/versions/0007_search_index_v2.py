"""search index v2: accent-insensitive strings, bounded long values, _tag/_profile/_security

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 11:20:00

A data migration: every current resource's index rows are rebuilt with the
indexing rules of this release (``fhir.indexing``), so that existing data is
found the same way as new data.
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

INDEX_TABLES = ("search_token", "search_reference", "search_date", "search_string")


def upgrade() -> None:
    from fhir.indexing import index_rows
    from fhir.registry import REGISTRY

    bind = op.get_bind()
    meta = sa.MetaData()
    tables = {name: sa.Table(name, meta, autoload_with=bind) for name in INDEX_TABLES}
    resources = sa.Table("resource", meta, autoload_with=bind)
    for table in tables.values():
        bind.execute(table.delete())
    rows = bind.execute(sa.select(resources.c.resource_type, resources.c.id,
                                  resources.c.content))
    for resource_type, resource_id, content in rows.fetchall():
        spec = REGISTRY.get(resource_type)
        if spec is None:
            continue
        for model, found in index_rows(resource_type, resource_id, spec.params,
                                       json.loads(content)).items():
            bind.execute(tables[model.__tablename__].insert(), found)


def downgrade() -> None:
    pass  # the v1 rows are a subset of v2; nothing to undo
