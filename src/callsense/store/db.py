"""Opening the store: the database URL, the engine, sessions, schema upgrades, disk-full detection.

The URL is ``CALLSENSE_DATABASE_URL`` when set, else a SQLite file ``callsense.db`` under the user
data directory (``platformdirs.user_data_dir("callsense")``). PostgreSQL URLs may be written
``postgresql://...``; the psycopg 3 driver is used either way.

:func:`open_store` checks that the database answers (one clear :class:`StoreError` when it does not)
and brings the schema to the current Alembic revision; concurrent starts are serialised (an
advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two batch processes starting at the
same moment upgrade the schema once.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from callsense.errors import DiskFullError, StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger("callsense")

ENV_URL = "CALLSENSE_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 60_000  # writers wait this long for each other (workers share one SQLite file)
SQLITE_PAGE_SIZE = 16_384
ENV_SQLITE_CACHE_MB = "CALLSENSE_SQLITE_CACHE_MB"
# Each SQLite connection's page cache (SQLite's default is 2 MB). Storing a call touches pages all
# over the indexes with random keys (p_angry, call ids, the FTS5 merges); with 2 MB they were re-read
# from the OS for every call, and save_result cost 48-52 ms of CPU a call at 7,000 calls instead of
# 13.5 ms with 128 MB (bench/RESULTS.md, "Store at scale"). It is a ceiling, filled only as pages are used.
SQLITE_CACHE_MB = 128


def sqlite_cache_mb() -> int:
    """The page cache per SQLite connection in MB: ``$CALLSENSE_SQLITE_CACHE_MB``, else 128."""
    raw = os.environ.get(ENV_SQLITE_CACHE_MB, "").strip()
    if not raw:
        return SQLITE_CACHE_MB
    try:
        mb = int(raw)
    except ValueError:
        raise StoreError(f"{ENV_SQLITE_CACHE_MB}={raw!r} is not a whole number of megabytes",
                         hint=f"unset {ENV_SQLITE_CACHE_MB} or set it to e.g. 128") from None
    if mb < 1:
        raise StoreError(f"{ENV_SQLITE_CACHE_MB}={mb} is below 1 MB", hint=f"set {ENV_SQLITE_CACHE_MB} to e.g. 128")
    return mb


def default_url() -> str:
    from platformdirs import user_data_dir

    return f"sqlite:///{Path(user_data_dir('callsense')) / 'callsense.db'}"


def database_url(url: str | None = None) -> str:
    """The URL to use: ``url``, else ``$CALLSENSE_DATABASE_URL``, else the default SQLite file."""
    url = url or os.environ.get(ENV_URL) or default_url()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@dataclass
class Store:
    """An open store: the engine and a session factory. Create with :func:`open_store`; use it as a
    context manager (``with open_store(url) as store: ...``) to have it closed at the end."""

    url: str
    engine: Engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name  # "sqlite" or "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        from sqlalchemy.orm import Session

        with Session(self.engine, expire_on_commit=False) as session:
            try:
                with session.begin():
                    yield session
            except Exception as e:
                wrapped = wrap_db_error(e, self.url)
                if wrapped is e:
                    raise
                raise wrapped from e

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings callsense relies on (see module docstring)."""
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            try:
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the folder for the database {path}: {e.strerror}",
                                 hint=f"set {ENV_URL} to a writable location") from e
        cache_kib = sqlite_cache_mb() * 1024
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            # Manage transactions ourselves (pysqlite's implicit BEGIN is deferred, and deferred
            # transactions that later write fail with "database is locked" instead of waiting).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # Takes effect only on a new, empty file (before WAL is on): a float16 1024-d embedding row
            # (~2.1 KB) fits once in a 4 KB page, seven times in 16 KB (issue 21: half the disk of
            # the embeddings table). Existing stores keep their page size (VACUUM changes it).
            cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: safe against process crashes
            cur.execute(f"PRAGMA cache_size=-{cache_kib}")  # negative: KiB, not pages (SQLITE_CACHE_MB)
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError as e:
            from callsense.errors import MissingExtraError

            raise MissingExtraError("PostgreSQL needs the psycopg driver",
                                    hint="pip install 'callsense[postgres]'") from e
        # prepare_threshold=None: never server-side prepare. A prepared statement gets a generic plan
        # after 5 runs, and the shared search query's best plan depends on the term (measured: an
        # absent term 195 -> 585 ms, a common one 16 -> 650 ms once prepared; issue 21).
        return create_engine(url, pool_pre_ping=True,
                             connect_args={"connect_timeout": 10, "prepare_threshold": None})
    return create_engine(url)


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open (and by default upgrade) the store at ``url`` (see :func:`database_url`).

    Raises :class:`StoreError` with one clear line when the database cannot be reached.
    """
    resolved = database_url(url)
    try:
        engine = make_engine(resolved)
    except StoreError:
        raise
    except Exception as e:  # bad URL syntax, unknown dialect
        raise StoreError(f"invalid database URL {redact_url(resolved)}: {e}",
                         hint=f"check {ENV_URL}, e.g. postgresql://user@host/db or sqlite:///path.db") from e
    store = Store(resolved, engine)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as e:
        engine.dispose()
        wrapped = wrap_db_error(e, resolved, connecting=True)
        if wrapped is e:
            raise
        raise wrapped from e
    if migrate:
        from callsense.store.migrate import upgrade

        upgrade(store)
    return store


def wrap_db_error(e: BaseException, url: str, *, connecting: bool = False) -> BaseException:
    """Turn a driver/SQLAlchemy error into a :class:`StoreError` (others are returned unchanged)."""
    if isinstance(e, StoreError):
        return e
    if is_disk_full(e):
        return DiskFullError(f"the disk holding the database is full ({redact_url(url)})",
                             hint="free some space and re-run the same command: it resumes where it stopped")
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(e, SQLAlchemyError):
        return e
    reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if connecting:
        return StoreError(f"cannot reach the database {redact_url(url)}: {reason}",
                          hint=f"check that the server is running and {ENV_URL} is right")
    from sqlalchemy.exc import OperationalError

    if isinstance(e, OperationalError):
        return StoreError(f"database error on {redact_url(url)}: {reason}",
                          hint=f"check that the database is reachable ({ENV_URL})")
    return e


def is_disk_full(e: BaseException | None) -> bool:
    """True for "no space left" from the OS, SQLite (SQLITE_FULL) or PostgreSQL (53100)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return True
        if getattr(e, "sqlstate", None) == "53100":  # psycopg DiskFull
            return True
        text = str(e).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        e = getattr(e, "orig", None) or e.__cause__ or e.__context__
    return False
