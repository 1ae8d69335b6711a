"""Schema upgrades with Alembic, run automatically (and safely under concurrency) by ``open_store``.

The migration scripts ship inside the package (``callsense/store/migrations``); no alembic.ini is
needed. ``callsense db upgrade`` runs the same code explicitly; ``current_revision`` /
``head_revision`` tell where a database stands.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from callsense.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

    from callsense.store.db import Store

MIGRATION_LOCK_KEY = 0x63616C6C  # "call": the PostgreSQL advisory lock taken while upgrading

log = logging.getLogger("callsense")

SCRIPT_LOCATION = "callsense.store:migrations"


SEARCH_INDEX_NAMES = ("segments_fts", "segments_chars", "ix_segments_text_trgm")
"""Objects made by raw SQL in the migrations (FTS5 tables and the view behind one, the pg_trgm index),
not in models.py."""


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic autogenerate filter: leave the search index objects alone."""
    return not (name or "").startswith(SEARCH_INDEX_NAMES)


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(store: Store) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(store: Store, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision the database was at before."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    before = current_revision(store)
    if revision == "head" and before == head_revision():
        return before  # the common case: no lock, no work
    script = ScriptDirectory.from_config(alembic_config())
    if before is not None and before not in {s.revision for s in script.walk_revisions()}:
        raise StoreError(
            f"the database schema (revision {before}) is newer than this callsense knows",
            hint="upgrade callsense (pip install -U callsense) or point CALLSENSE_DATABASE_URL elsewhere",
        )
    cfg = alembic_config(store.url)
    if not log.isEnabledFor(logging.DEBUG):  # alembic logs every step at INFO; one line of ours is enough
        logging.getLogger("alembic").setLevel(logging.WARNING)
    with store.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE serialises concurrent upgrades
        if store.dialect == "postgresql":
            from sqlalchemy import text

            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        now = MigrationContext.configure(conn).get_current_revision()
        if now != before:
            log.debug("schema upgraded concurrently from %s to %s", before, now)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("database schema upgraded from %s to %s (%s)", before or "empty", revision, store.dialect)
    return before
