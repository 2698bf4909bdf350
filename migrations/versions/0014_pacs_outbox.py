"""Results to PACS (issue 11 item 5)

- ``result_object``: each report's SR, SEG and Encapsulated PDF files;
- ``pacs_delivery``: the outbox of C-STOREs owed to each DICOM destination.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 17:10:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'result_object',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('diagnostic_report_id', _text(length=64), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('kind', _text(length=8), nullable=False),
        sa.Column('sop_class_uid', _text(length=64), nullable=False),
        sa.Column('sop_instance_uid', _text(length=64), nullable=False),
        sa.Column('path', _text(length=255), nullable=False),
        sa.Column('created_at', _time(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('result_object', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_object_diagnostic_report_id'),
                              ['diagnostic_report_id'], unique=False)
    op.create_table(
        'pacs_delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('result_object_id', sa.Integer(), nullable=False),
        sa.Column('diagnostic_report_id', _text(length=64), nullable=False),
        sa.Column('destination', _text(length=300), nullable=False),
        sa.Column('status', _text(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', _time(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_status', sa.Integer(), nullable=True),
        sa.Column('created_at', _time(), nullable=False),
        sa.Column('updated_at', _time(), nullable=False),
        sa.Column('sent_at', _time(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('pacs_delivery', schema=None) as batch_op:
        for column in ('result_object_id', 'diagnostic_report_id', 'status',
                       'next_attempt_at'):
            batch_op.create_index(batch_op.f(f'ix_pacs_delivery_{column}'), [column],
                                  unique=False)


def downgrade() -> None:
    op.drop_table('pacs_delivery')
    op.drop_table('result_object')
