"""Radiologist review of candidate calcium lesions (issue 10 item 5)

- ``lesion_decision``: every reviewer's change, in order, never rewritten;
- ``calcium_candidates``: the candidate lesions of each report's latest analysis.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 16:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        'lesion_decision',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('service_request_id', _text(length=64), nullable=False),
        sa.Column('diagnostic_report_id', _text(length=64), nullable=False),
        sa.Column('study_uid', _text(length=64), nullable=False),
        sa.Column('lesion_id', _text(length=64), nullable=False),
        sa.Column('action', _text(length=16), nullable=False),
        sa.Column('label', _text(length=32), nullable=True),
        sa.Column('reviewer', _text(length=128), nullable=False),
        sa.Column('client_id', _text(length=128), nullable=False),
        sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('lesion_decision', schema=None) as batch_op:
        for column in ('service_request_id', 'diagnostic_report_id', 'job_id'):
            batch_op.create_index(batch_op.f(f'ix_lesion_decision_{column}'), [column],
                                  unique=False)
    op.create_table(
        'calcium_candidates',
        sa.Column('diagnostic_report_id', _text(length=64), nullable=False),
        sa.Column('service_request_id', _text(length=64), nullable=False),
        sa.Column('study_uid', _text(length=64), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('applied_through', sa.Integer(), nullable=False),
        sa.Column('lesions', sa.Text(), nullable=False),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('diagnostic_report_id'),
    )
    with op.batch_alter_table('calcium_candidates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calcium_candidates_service_request_id'),
                              ['service_request_id'], unique=False)


def downgrade() -> None:
    op.drop_table('calcium_candidates')
    op.drop_table('lesion_decision')
