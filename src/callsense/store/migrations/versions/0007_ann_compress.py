"""Similarity index log and compressed results (issue 21, items 4 and 5).

* ``embedding_log``: an append-only log, one row per call stored, re-stored or deleted (triggers on
  ``calls``, so every deletion path counts). The in-process nearest-neighbour index
  (callsense.store.ann) applies the rows after its position to stay in step with the store.
* ``calls.result_z``: the result JSON compressed (a codec marker byte + zlib); new rows leave
  ``result_json`` empty. Rows stored before keep their plain ``result_json`` and are still read.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-11
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table('embedding_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sqlite_autoincrement=True,  # never reuse a seq: readers keep their position in this log
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('result_z', sa.LargeBinary(), nullable=True))
    if dialect == "sqlite":
        for name, when, ref in (("ai", "INSERT", "new"), ("ad", "DELETE", "old"), ("au", "UPDATE OF stored_at", "new")):
            op.execute(f"CREATE TRIGGER calls_embedding_log_{name} AFTER {when} ON calls BEGIN "
                       f"INSERT INTO embedding_log (call_id) VALUES ({ref}.call_id); END")
    else:
        op.execute("""
CREATE FUNCTION callsense_embedding_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO embedding_log (call_id) VALUES (OLD.call_id);
  ELSE
    INSERT INTO embedding_log (call_id) VALUES (NEW.call_id);
  END IF;
  RETURN NULL;
END $$""")
        op.execute("CREATE TRIGGER calls_embedding_log AFTER INSERT OR DELETE OR UPDATE OF stored_at ON calls "
                   "FOR EACH ROW EXECUTE FUNCTION callsense_embedding_log()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS calls_embedding_log_{name}")
    else:
        op.execute("DROP TRIGGER IF EXISTS calls_embedding_log ON calls")
        op.execute("DROP FUNCTION IF EXISTS callsense_embedding_log()")
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('result_z')
    op.drop_table('embedding_log')
