"""Ingest integrity: every kept version of an instance, the sender's image count, held studies

- ``dicom_instance_version``: every file kept for a SOP instance, the current
  one without ``superseded_at``; existing instances become their version 1.
- ``dicom_instance.images_in_acquisition`` and ``acquisition_number``
  (0020,1002) and (0020,0012), to judge whether a study is complete.
- ``received_study.hold_reason``: stored, not analysed, until a person decides.
- ``analysis_job.instance_count``: what a job was queued for.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 13:40:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dicom_instance_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sop_instance_uid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column('calling_ae', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column('superseded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('dicom_instance_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dicom_instance_version_sop_instance_uid'),
                              ['sop_instance_uid'], unique=False)
    op.execute(
        "INSERT INTO dicom_instance_version (sop_instance_uid, version, content_hash, path, "
        "size, received_at, source, calling_ae) SELECT sop_instance_uid, 1, content_hash, "
        "path, size, received_at, source, calling_ae FROM dicom_instance")
    with op.batch_alter_table('dicom_instance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('images_in_acquisition', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('acquisition_number', sa.Integer(), nullable=True))
    with op.batch_alter_table('received_study', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold_reason', sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_received_study_hold_reason'), ['hold_reason'],
                              unique=False)
    with op.batch_alter_table('analysis_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instance_count', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('analysis_job', schema=None) as batch_op:
        batch_op.drop_column('instance_count')
    with op.batch_alter_table('received_study', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_received_study_hold_reason'))
        batch_op.drop_column('hold_reason')
    with op.batch_alter_table('dicom_instance', schema=None) as batch_op:
        batch_op.drop_column('acquisition_number')
        batch_op.drop_column('images_in_acquisition')
    with op.batch_alter_table('dicom_instance_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dicom_instance_version_sop_instance_uid'))
    op.drop_table('dicom_instance_version')
