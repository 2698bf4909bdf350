"""Patient report links (issue 13; CONTRACT §7)

- ``patient_link``: one row per link (a DocumentReference tied to a DiagnosticReport
  version): the per-link salt and the SHA-256 of the token, never the token; expiry,
  wrong answers and lock, revocation.
- ``patient_link_session``: sessions after the right date of birth (SHA-256 of the
  cookie's id), bound to one link.
- ``patient_link_failure``: wrong answers per client address, for the address limit.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 02:45:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'patient_link',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('document_reference_id', _text(length=64), nullable=False),
        sa.Column('diagnostic_report_id', _text(length=64), nullable=False),
        sa.Column('report_version', _text(length=16), nullable=False),
        sa.Column('patient_id', _text(length=64), nullable=False),
        sa.Column('salt', _text(length=64), nullable=False),
        sa.Column('token_hash', _text(length=64), nullable=False),
        sa.Column('status', _text(length=16), nullable=False),
        sa.Column('created_at', _time(), nullable=False),
        sa.Column('expires_at', _time(), nullable=False),
        sa.Column('wrong_answers', sa.Integer(), nullable=False),
        sa.Column('locked_at', _time(), nullable=True),
        sa.Column('revoked_at', _time(), nullable=True),
        sa.Column('revoked_by', _text(length=128), nullable=True),
        sa.Column('revoked_reason', _text(length=500), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('patient_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_link_document_reference_id'),
                              ['document_reference_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_patient_link_diagnostic_report_id'),
                              ['diagnostic_report_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_link_token_hash'), ['token_hash'],
                              unique=True)
    op.create_table(
        'patient_link_session',
        sa.Column('token_hash', _text(length=64), nullable=False),
        sa.Column('link_id', sa.Integer(), nullable=False),
        sa.Column('created_at', _time(), nullable=False),
        sa.Column('expires_at', _time(), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['patient_link.id']),
        sa.PrimaryKeyConstraint('token_hash'),
    )
    with op.batch_alter_table('patient_link_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_link_session_link_id'), ['link_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_patient_link_session_expires_at'), ['expires_at'],
                              unique=False)
    op.create_table(
        'patient_link_failure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('address', _text(length=64), nullable=False),
        sa.Column('link_id', sa.Integer(), nullable=True),
        sa.Column('at', _time(), nullable=False),
        sa.ForeignKeyConstraint(['link_id'], ['patient_link.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('patient_link_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_link_failure_address'), ['address'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_patient_link_failure_at'), ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('patient_link_failure')
    op.drop_table('patient_link_session')
    op.drop_table('patient_link')
