"""Task priority search index (the staff worklist's urgency filter)

R4 defines the ``priority`` search parameter on Task
(https://hl7.org/fhir/R4/task.html#search); this release indexes it. A data
migration: the ``priority`` token rows of every current Task are written, so
orders received before it are filtered like new ones.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 00:05:00
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from fhir.indexing import index_rows
    from fhir.models import TokenIndex
    from fhir.registry import REGISTRY

    bind = op.get_bind()
    meta = sa.MetaData()
    tokens = sa.Table("search_token", meta, autoload_with=bind)
    resources = sa.Table("resource", meta, autoload_with=bind)
    bind.execute(tokens.delete().where(tokens.c.resource_type == "Task",
                                       tokens.c.param == "priority"))
    params = {"priority": REGISTRY["Task"].params["priority"]}
    rows = bind.execute(sa.select(resources.c.id, resources.c.content)
                        .where(resources.c.resource_type == "Task"))
    for resource_id, content in rows.fetchall():
        found = index_rows("Task", resource_id, params, json.loads(content)).get(TokenIndex)
        if found:
            bind.execute(tokens.insert(), found)


def downgrade() -> None:
    op.execute("DELETE FROM search_token WHERE resource_type = 'Task' AND param = 'priority'")
