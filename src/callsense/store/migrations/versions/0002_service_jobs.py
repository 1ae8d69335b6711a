"""The web service's job queue: ``service_jobs``.

Before this revision the service created the table itself (``metadata.create_all``) the first time
it started, so a database used by ``callsense serve`` may already hold it, with exactly these
columns and index: then the table (or its index) is left as it is, and this revision only records
that the schema now owns it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TABLE = 'service_jobs'
STATUS_INDEX = 'ix_service_jobs_status'


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(TABLE):
        op.create_table(TABLE,
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.String(length=40), nullable=False),
        sa.Column('started_at', sa.String(length=40), nullable=True),
        sa.Column('finished_at', sa.String(length=40), nullable=True),
        sa.Column('filename', sa.Text(), nullable=True),
        sa.Column('upload_path', sa.Text(), nullable=False),
        sa.Column('options_json', sa.Text(), nullable=False),
        sa.Column('metadata_json', sa.Text(), nullable=False),
        sa.Column('call_id', sa.String(length=64), nullable=True),
        sa.Column('error_json', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint('id')
        )
    elif STATUS_INDEX in {ix['name'] for ix in inspector.get_indexes(TABLE)}:
        return  # made by the service's create_all: same table, same index
    op.create_index(STATUS_INDEX, TABLE, ['status'], unique=False)


def downgrade() -> None:
    op.drop_index(STATUS_INDEX, table_name=TABLE)
    op.drop_table(TABLE)
