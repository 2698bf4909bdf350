"""Modality Worklist entries of scheduled orders (issue 11 item 2)

- ``worklist_step``: one row per order once scheduled, kept as it moves, read
  alone by the worklist C-FIND (referral.worklist).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 17:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_LENGTHS = {'accession_number': 16, 'patient_id': 64, 'issuer_of_patient_id': 64,
            'patient_name': 324, 'patient_birth_date': 8, 'patient_sex': 16, 'start_date': 8,
            'start_time': 16, 'modality': 16, 'station_ae': 16, 'procedure_code': 64,
            'procedure_scheme': 64, 'procedure_meaning': 64}


def upgrade() -> None:
    op.create_table(
        'worklist_step',
        sa.Column('service_request_id', _text(length=64), nullable=False),
        sa.Column('task_id', _text(length=64), nullable=False),
        sa.Column('patient_resource_id', _text(length=64), nullable=False),
        sa.Column('scheduled', sa.Boolean(), nullable=False),
        *[sa.Column(name, _text(length=length), nullable=True)
          for name, length in _LENGTHS.items()],
        sa.Column('study_uid', _text(length=64), nullable=False),
        sa.PrimaryKeyConstraint('service_request_id'),
        sa.UniqueConstraint('study_uid'),
    )
    with op.batch_alter_table('worklist_step', schema=None) as batch_op:
        for column in ('patient_resource_id', 'accession_number', 'patient_id', 'modality',
                       'station_ae'):
            batch_op.create_index(batch_op.f(f'ix_worklist_step_{column}'), [column],
                                  unique=False)
        batch_op.create_index('ix_worklist_step_scheduled_date', ['scheduled', 'start_date'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('worklist_step')
