"""auth_client.jwks_uri: clients whose keys are fetched from their own JWKS URL

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 11:45:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('auth_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('jwks_uri', sqlmodel.sql.sqltypes.AutoString(length=2048),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('auth_client', schema=None) as batch_op:
        batch_op.drop_column('jwks_uri')
