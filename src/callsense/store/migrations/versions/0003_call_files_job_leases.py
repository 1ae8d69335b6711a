"""Where a call's files are, and job leases.

``calls.output_dir`` records the folder written for the call (the service's ``calls/outputs_<id>``), so
that deletion and retention (``callsense purge``) remove it with the record, from any process that can
reach the store. ``service_jobs.lease_until`` (epoch seconds) is the end of the running owner's lease,
renewed by its heartbeat: another server takes a running job over only once the lease has expired.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('output_dir', sa.Text(), nullable=True))
    with op.batch_alter_table('service_jobs') as batch:
        batch.add_column(sa.Column('lease_until', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('service_jobs') as batch:
        batch.drop_column('lease_until')
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('output_dir')
