"""SQLite's trigram index reads the segment texts where they are (issue 21, item 5: no second copy).

Until now ``segments_fts`` was an FTS5 table holding its own copy of every segment text
(``segments_fts_content``: 1.5 KB a call, and one more copy a redaction or deletion had to reach).
It becomes an *external-content* table over ``segments`` (``content='segments'``): the index alone is
stored, the texts are read from ``segments`` by rowid; ``columnsize=0`` drops the per-row token counts
(used only for bm25 ranking, which search does not do). The triggers pass the old text to FTS5's
``delete`` command, as external content requires. The index is rebuilt from ``segments`` once (about a
minute per million segments); every call stays. PostgreSQL: nothing changes (pg_trgm indexes the column).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_TRIGGERS = ("segments_fts_ai", "segments_fts_ad", "segments_fts_au")


def _drop() -> None:
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS segments_fts")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop()
    op.execute("CREATE VIRTUAL TABLE segments_fts USING fts5(text, content='segments', content_rowid='id', "
               "columnsize=0, tokenize='trigram')")
    op.execute("INSERT INTO segments_fts(segments_fts) VALUES ('rebuild')")
    op.execute("CREATE TRIGGER segments_fts_ai AFTER INSERT ON segments BEGIN "
               "INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text); END")
    op.execute("CREATE TRIGGER segments_fts_ad AFTER DELETE ON segments BEGIN "
               "INSERT INTO segments_fts(segments_fts, rowid, text) VALUES ('delete', old.id, old.text); END")
    op.execute("CREATE TRIGGER segments_fts_au AFTER UPDATE OF text ON segments BEGIN "
               "INSERT INTO segments_fts(segments_fts, rowid, text) VALUES ('delete', old.id, old.text); "
               "INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text); END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop()
    op.execute("CREATE VIRTUAL TABLE segments_fts USING fts5(text, tokenize='trigram')")
    op.execute("INSERT INTO segments_fts(rowid, text) SELECT id, text FROM segments")
    op.execute("CREATE TRIGGER segments_fts_ai AFTER INSERT ON segments BEGIN "
               "INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text); END")
    op.execute("CREATE TRIGGER segments_fts_ad AFTER DELETE ON segments BEGIN "
               "DELETE FROM segments_fts WHERE rowid = old.id; END")
    op.execute("CREATE TRIGGER segments_fts_au AFTER UPDATE OF text ON segments BEGIN "
               "UPDATE segments_fts SET text = new.text WHERE rowid = old.id; END")
