"""auth_client.revision: replacing or disabling a client ends the tokens it holds

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 12:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('auth_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False,
                                      server_default='1'))


def downgrade() -> None:
    with op.batch_alter_table('auth_client', schema=None) as batch_op:
        batch_op.drop_column('revision')
