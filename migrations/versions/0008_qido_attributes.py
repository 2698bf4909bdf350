"""QIDO-RS attributes on dicom_instance, filled from the stored files

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 11:35:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TEXT = {"patient_id": 64, "patient_name": 324, "patient_birth_date": 8, "patient_sex": 16,
        "study_date": 8, "study_time": 16, "study_id": 16, "study_description": 64,
        "series_description": 64, "referring_physician_name": 324}


def upgrade() -> None:
    with op.batch_alter_table('dicom_instance', schema=None) as batch_op:
        for name, length in TEXT.items():
            batch_op.add_column(sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length),
                                          nullable=True))
        batch_op.add_column(sa.Column('number_of_frames', sa.Integer(), nullable=True))
        batch_op.create_index('ix_dicom_instance_patient_id', ['patient_id'], unique=False)
        batch_op.create_index('ix_dicom_instance_study_date', ['study_date'], unique=False)
    _backfill()


def _backfill() -> None:
    """Read each stored file's header once (files that are gone are left blank)."""
    from pydicom import dcmread

    from core.settings import get_settings
    from imaging_core.models import DicomInstance
    from imaging_core.storage import query_attributes

    var_dir = get_settings().var_dir
    bind = op.get_bind()
    table = sa.table('dicom_instance', sa.column('sop_instance_uid'), sa.column('path'),
                     *(sa.column(name) for name in [*TEXT, 'number_of_frames']))
    for uid, path in bind.execute(sa.select(table.c.sop_instance_uid, table.c.path)).all():
        file = var_dir / path
        if not file.is_file():
            continue
        row = DicomInstance.model_construct()
        query_attributes(row, dcmread(file, stop_before_pixels=True))
        values = {name: getattr(row, name) for name in [*TEXT, 'number_of_frames']}
        bind.execute(table.update().where(table.c.sop_instance_uid == uid).values(**values))


def downgrade() -> None:
    with op.batch_alter_table('dicom_instance', schema=None) as batch_op:
        batch_op.drop_index('ix_dicom_instance_study_date')
        batch_op.drop_index('ix_dicom_instance_patient_id')
        for name in [*TEXT, 'number_of_frames']:
            batch_op.drop_column(name)
