"""Rollups kept as calls are stored: an inserted call no longer marks its day dirty.

``save_result`` adds a new call's counts and sums to its day's rollup rows in its own transaction
(:func:`callsense.store.rollups.add_call`), so a dashboard read after a batch stored calls recomputes
nothing (it recomputed the whole day: 13–26 s on PostgreSQL while a bulk load spread over 90 days). A
delete, a re-dating update and a replace still mark the day dirty, and :func:`~callsense.store.rollups.refresh`
recomputes such days from the rows, as before. Only the triggers change; every call and rollup stays.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_ROLLUP_COLUMNS = ("sort_at", "agent_id", "team", "queue", "category", "direction", "customer_id",
                   "score_normalized", "duration_ms")  # as revision 0005


def upgrade() -> None:
    cols = ", ".join(_ROLLUP_COLUMNS)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS calls_rollup_ai")
    else:
        op.execute("DROP TRIGGER IF EXISTS calls_rollup ON calls")
        op.execute(f"CREATE TRIGGER calls_rollup AFTER DELETE OR UPDATE OF {cols} ON calls "
                   "FOR EACH ROW EXECUTE FUNCTION callsense_rollup_dirty()")


def downgrade() -> None:
    # Revision 0011's code adds nothing on save: the insert trigger comes back (the rollups are exact as
    # they stand, so nothing needs recomputing).
    cols = ", ".join(_ROLLUP_COLUMNS)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER calls_rollup_ai AFTER INSERT ON calls BEGIN INSERT INTO rollup_dirty (day) "
                   "SELECT substr(new.sort_at, 1, 10) WHERE new.sort_at IS NOT NULL; END")
    else:
        op.execute("DROP TRIGGER IF EXISTS calls_rollup ON calls")
        op.execute(f"CREATE TRIGGER calls_rollup AFTER INSERT OR DELETE OR UPDATE OF {cols} ON calls "
                   "FOR EACH ROW EXECUTE FUNCTION callsense_rollup_dirty()")
