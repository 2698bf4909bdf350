"""Notification outbox for FHIR Subscriptions (issue 11 item 6)

- ``notification``: one rest-hook notification per matching change, written in
  the change's own transaction and delivered by the notification worker.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 17:05:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'notification',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('subscription_id', _text(length=64), nullable=False),
        sa.Column('resource_type', _text(length=64), nullable=False),
        sa.Column('resource_id', _text(length=64), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('endpoint', sa.Text(), nullable=False),
        sa.Column('method', _text(length=8), nullable=False),
        sa.Column('headers', sa.Text(), nullable=False),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('status', _text(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', _time(), nullable=False),
        sa.Column('leased_until', _time(), nullable=True),
        sa.Column('enqueued_at', _time(), nullable=True),
        sa.Column('worker', _text(length=128), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', _time(), nullable=False),
        sa.Column('updated_at', _time(), nullable=False),
        sa.Column('delivered_at', _time(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        for column in ('subscription_id', 'status', 'next_attempt_at'):
            batch_op.create_index(batch_op.f(f'ix_notification_{column}'), [column],
                                  unique=False)


def downgrade() -> None:
    op.drop_table('notification')
