"""Staff web app accounts, sessions and failed logins (issue 12 item 1)

- ``staff_account``: radiographers, radiologists and admins, argon2id password hashes.
- ``staff_session``: server-side sessions, holding only a hash of the cookie's token.
- ``staff_login_failure``: failed logins per username, for the lockout.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 23:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'staff_account',
        sa.Column('username', _text(length=64), nullable=False),
        sa.Column('display_name', _text(length=255), nullable=False),
        sa.Column('role', _text(length=32), nullable=False),
        sa.Column('password_hash', _text(length=255), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', _time(), nullable=False),
        sa.Column('password_changed_at', _time(), nullable=False),
        sa.PrimaryKeyConstraint('username'),
    )
    op.create_table(
        'staff_session',
        sa.Column('token_hash', _text(length=64), nullable=False),
        sa.Column('username', _text(length=64), nullable=False),
        sa.Column('created_at', _time(), nullable=False),
        sa.Column('expires_at', _time(), nullable=False),
        sa.Column('absolute_expires_at', _time(), nullable=False),
        sa.ForeignKeyConstraint(['username'], ['staff_account.username']),
        sa.PrimaryKeyConstraint('token_hash'),
    )
    with op.batch_alter_table('staff_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_session_username'), ['username'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_session_expires_at'), ['expires_at'],
                              unique=False)
    op.create_table(
        'staff_login_failure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', _text(length=64), nullable=False),
        sa.Column('at', _time(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('staff_login_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_login_failure_username'), ['username'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_staff_login_failure_at'), ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('staff_login_failure')
    op.drop_table('staff_session')
    op.drop_table('staff_account')
