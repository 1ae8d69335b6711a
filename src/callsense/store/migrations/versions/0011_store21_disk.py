"""A fraction of the disk (issue 21, item 5): terms of 1–2 characters from a character index, no
duplicated keys.

SQLite:

* ``segments_chars`` — an FTS5 index of every segment text with **one token per character**
  (``unicode61`` with every category but spaces as token characters, no diacritics removed), as
  *external content* over the view ``segments_chars_src`` (each text with a space after every
  character, computed in SQL: no copy of any text is stored, and every deletion path — a cascade, the
  API, a purge, raw SQL — removes the entries through the triggers, which need no Python function).
  A 1- or 2-character term is a phrase query on it. It replaces ``segment_grams`` on SQLite (about
  12.7 of 82 KB a call, table and its ``segment_pk`` index), which is emptied; the index is built
  from the stored texts once here (measured in docs/store.md).
* ``call_meta`` and ``metrics`` become ``WITHOUT ROWID`` tables: each was its primary key twice (the
  table and its automatic index).

Both dialects: ``ix_segments_call_id`` goes (``uq_segments_call_segment (call_id, segment_id)``
serves every lookup by call and the cascades); ``call_meta`` loses the rows of the fields that have a
column of their own on ``calls`` (agent_id, team, queue, category, direction, customer_id: search
filters those by the column, ``metadata_json`` keeps every field). PostgreSQL keeps
``segment_grams`` for short terms.

Stored vectors are not rewritten: rows of any earlier form stay readable (callsense.store.vectors);
new rows are rotated 9⅓-bit codes. The downgrade re-encodes those as 12-bit codes (what 0010's code
reads) and refills ``segment_grams``. Every call stays.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# Each character of the text followed by a space (so that the tokenizer makes one token of each),
# built by a recursive CTE: SQLite has no function that splits a string, and the triggers must work
# on any connection (the sqlite3 shell included), so no application function may be needed.
_SPLIT_VIEW = (
    "CREATE VIEW segments_chars_src(id, text) AS SELECT s.id, ("
    "WITH RECURSIVE p(i, out) AS (SELECT 1, '' UNION ALL "
    "SELECT i + 1, out || substr(s.text, i, 1) || ' ' FROM p WHERE i <= length(s.text)) "
    "SELECT out FROM p WHERE i = length(s.text) + 1) FROM segments s"
)
# Every Unicode category but the spaces (Zs) makes token characters, so punctuation, symbols and
# emoji are searchable like letters; spaces (the separators the view inserts and the text's own)
# are the only separators.
_TOKENIZER = "unicode61 remove_diacritics 0 categories 'L* M* N* P* S* C* Zl Zp'"
_TRIGGERS = ("segments_chars_ai", "segments_chars_bd", "segments_chars_bu", "segments_chars_au")


def _spaced(text: str) -> str:
    """What the view gives for ``text``: each character followed by a space (SQLite's length() and
    substr() stop at a NUL character, so the view does too)."""
    return "".join(ch + " " for ch in text.split("\x00", 1)[0])


def _create_chars_index(bind) -> None:
    op.execute(_SPLIT_VIEW)
    op.execute(f"CREATE VIRTUAL TABLE segments_chars USING fts5(text, content='segments_chars_src', "
               f"content_rowid='id', columnsize=0, tokenize=\"{_TOKENIZER}\")")
    # Filled with the view's text computed in Python (identical, ~7x faster than FTS5's 'rebuild'
    # reading the view: the recursive CTE costs ~40 us a segment); the triggers use the view.
    bind.connection.dbapi_connection.create_function("callsense_0011_spaced", 1, _spaced, deterministic=True)
    op.execute("INSERT INTO segments_chars(rowid, text) SELECT id, callsense_0011_spaced(text) FROM segments")
    # the row is read from the view while it exists: after an insert or update, before a delete
    op.execute("CREATE TRIGGER segments_chars_ai AFTER INSERT ON segments BEGIN "
               "INSERT INTO segments_chars(rowid, text) SELECT id, text FROM segments_chars_src WHERE id = new.id; END")
    op.execute("CREATE TRIGGER segments_chars_bd BEFORE DELETE ON segments BEGIN "
               "INSERT INTO segments_chars(segments_chars, rowid, text) "
               "SELECT 'delete', id, text FROM segments_chars_src WHERE id = old.id; END")
    op.execute("CREATE TRIGGER segments_chars_bu BEFORE UPDATE OF text ON segments BEGIN "
               "INSERT INTO segments_chars(segments_chars, rowid, text) "
               "SELECT 'delete', id, text FROM segments_chars_src WHERE id = old.id; END")
    op.execute("CREATE TRIGGER segments_chars_au AFTER UPDATE OF text ON segments BEGIN "
               "INSERT INTO segments_chars(rowid, text) SELECT id, text FROM segments_chars_src WHERE id = new.id; END")


def _drop_chars_index() -> None:
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS segments_chars")
    op.execute("DROP VIEW IF EXISTS segments_chars_src")


def _create_grams_table() -> None:
    op.create_table('segment_grams',
    sa.Column('gram', sa.String(length=8), nullable=False),
    sa.Column('segment_pk', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['segment_pk'], ['segments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('gram', 'segment_pk'),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('segment_grams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_grams_segment_pk'), ['segment_pk'], unique=False)


_KEYED = {  # table -> (columns DDL, primary key, indexes): revision 0001's definitions
    "call_meta": ("call_id VARCHAR(64) NOT NULL, key VARCHAR(128) NOT NULL, value TEXT",
                  "call_id, key", ["CREATE INDEX ix_call_meta_key_value ON call_meta (key, value)"]),
    "metrics": ("call_id VARCHAR(64) NOT NULL, name VARCHAR(128) NOT NULL, value FLOAT, value_json TEXT NOT NULL",
                "call_id, name", []),
}


def _rebuild_keyed(without_rowid: bool) -> None:
    """call_meta / metrics rebuilt (SQLite cannot change a table's rowid-ness in place)."""
    for table, (columns, key, indexes) in _KEYED.items():
        names = ", ".join(c.split()[0] for c in columns.split(", "))
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
        op.execute(f"CREATE TABLE {table} ({columns}, PRIMARY KEY ({key}), FOREIGN KEY(call_id) REFERENCES calls "
                   f"(call_id) ON DELETE CASCADE){' WITHOUT ROWID' if without_rowid else ''}")
        op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {table}_old")
        op.execute(f"DROP TABLE {table}_old")
        for ddl in indexes:
            op.execute(ddl)


_COLUMN_FIELDS = ("agent_id", "team", "queue", "category", "direction", "customer_id")


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_index('ix_segments_call_id')
    op.execute("DELETE FROM call_meta WHERE key IN (" + ", ".join(f"'{k}'" for k in _COLUMN_FIELDS) + ")")
    if bind.dialect.name != "sqlite":
        return
    op.drop_table('segment_grams')  # on SQLite the character index serves short terms
    _create_grams_table()
    _create_chars_index(bind)
    _rebuild_keyed(without_rowid=True)
    op.execute("ANALYZE")


def downgrade() -> None:
    bind = op.get_bind()
    _recode_vectors(bind)
    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.create_index('ix_segments_call_id', ['call_id'], unique=False)
    for key in _COLUMN_FIELDS:  # the column holds the normalised value, as call_meta did
        op.execute(f"INSERT INTO call_meta (call_id, key, value) SELECT call_id, '{key}', {key} FROM calls "
                   f"WHERE {key} IS NOT NULL")
    if bind.dialect.name != "sqlite":
        return
    _drop_chars_index()
    _rebuild_keyed(without_rowid=False)
    _fill_grams(bind)


def _fill_grams(bind) -> None:
    from callsense.store.grams import grams

    last = 0
    while True:
        rows = bind.execute(sa.text("SELECT id, text FROM segments WHERE id > :last ORDER BY id LIMIT 5000"),
                            {"last": last}).all()
        if not rows:
            return
        values = [{"g": g, "s": sid} for sid, text in rows for g in grams(text)]
        if values:
            bind.execute(sa.text("INSERT INTO segment_grams (gram, segment_pk) VALUES (:g, :s)"), values)
        last = rows[-1][0]


def _recode_vectors(bind) -> None:
    """Rotated codes (written since this revision) back to 12-bit codes, which revision 0010 reads."""
    from callsense.store import vectors

    for table in ("embeddings", "mood_entries"):
        last = 0
        while True:
            rows = bind.execute(sa.text(f"SELECT id, dim, vector FROM {table} WHERE id > :last ORDER BY id "
                                        "LIMIT 2000"), {"last": last}).all()
            if not rows:
                break
            todo = [r for r in rows if vectors.rotates(r.dim) and len(r.vector) == vectors.nbytes(r.dim)]
            for dim in {r.dim for r in todo}:
                same = [r for r in todo if r.dim == dim]
                coded = vectors.encode_q12(vectors.decode_block([bytes(r.vector) for r in same], dim))
                bind.execute(sa.text(f"UPDATE {table} SET vector = :v WHERE id = :id"),
                             [{"v": v, "id": r.id} for r, v in zip(same, coded)])
            last = rows[-1].id
