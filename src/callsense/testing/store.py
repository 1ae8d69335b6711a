"""Test helpers for the store and the batch runner: a fake analyzer, fake recordings, a PostgreSQL
database per test.

``FakeAnalyzer`` stands in for :class:`callsense.pipeline.Analyzer` where the tests are about storage and
batch behaviour rather than models: a "recording" is a small JSON file (``write_fake_call``) that says
what the analysis should find; anything else fails like an undecodable file. Its behaviour is steered by
environment variables so that it works the same in worker processes and CLI subprocesses:

* ``CALLSENSE_FAKE_FINGERPRINT`` — the pipeline fingerprint (default ``fake-1``)
* ``CALLSENSE_FAKE_DELAY_S`` — seconds each analysis takes (for kill / concurrency tests)
* ``CALLSENSE_FAKE_LOG`` — a file to which each analysed path is appended (one line per analysis)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from callsense.errors import AudioDecodeError, AudioNotFoundError

EMBEDDING_DIM = 16
PG_ADMIN_URL_ENV = "CALLSENSE_TEST_POSTGRES_URL"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def write_fake_call(path: str | Path, segments: list[tuple[str, int, int, str, str]], *, duration_ms: int | None = None,
                    fail: str | None = None) -> Path:
    """Write a fake recording: ``segments`` as (role, start_ms, end_ms, text, emotion label).
    ``fail="enospc"`` makes the analysis fail with "no space left on device"; ``"crash"`` kills the process."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"fake_call": 1, "segments": segments, "duration_ms": duration_ms, "fail": fail},
                            ensure_ascii=False), encoding="utf-8")
    return p


@dataclass(frozen=True)
class FakeRun:
    result: Any
    embeddings: np.ndarray | None
    audio: Any = None


class FakeAnalyzer:
    """Analyzer-shaped: ``fingerprint`` and ``run(path, metadata=...)`` (see the module docstring)."""

    def __init__(self) -> None:
        self.fingerprint = os.environ.get("CALLSENSE_FAKE_FINGERPRINT", "fake-1")
        self.loads = 1  # "models" loaded once per instance

    def run(self, source: Any, *, metadata: dict[str, Any] | None = None, **_: Any) -> FakeRun:
        import errno

        from callsense.testing.results import make_result, seg

        path = Path(source)
        if not path.is_file():
            raise AudioNotFoundError("file not found", source=path)
        data = path.read_bytes()
        try:
            spec = json.loads(data.decode("utf-8"))
            assert isinstance(spec, dict) and spec.get("fake_call") == 1
        except Exception:  # noqa: BLE001
            raise AudioDecodeError("not an audio file (fake decoder)", source=path) from None
        delay = float(os.environ.get("CALLSENSE_FAKE_DELAY_S", "0") or 0)
        if delay:
            time.sleep(delay)
        if spec.get("fail") == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        if spec.get("fail") == "crash":
            os._exit(99)
        log = os.environ.get("CALLSENSE_FAKE_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{path}\n")
        sha = hashlib.sha256(data).hexdigest()
        specs = [seg(role, a, b, text, emotion_=emo) for role, a, b, text, emo in spec["segments"]]
        result = make_result(specs, duration_ms=spec.get("duration_ms"), metadata=metadata or {},
                             call_id=f"call_{sha[:12]}")
        segments = tuple(replace(s, emotion=replace(s.emotion, embedding_index=i)) if s.emotion else s
                         for i, s in enumerate(result.segments))
        result = replace(result, segments=segments,
                         source=replace(result.source, name=path.name, path=str(path.resolve()), sha256=sha,
                                        size_bytes=len(data)))
        emb = fake_embeddings(result)
        return FakeRun(result=result, embeddings=emb)


def fake_embeddings(result: Any) -> np.ndarray | None:
    """Deterministic embeddings: each segment's emotion distribution, padded, plus a little text hash noise."""
    rows = []
    for s in result.segments:
        if s.emotion is None:
            continue
        v = np.zeros(EMBEDDING_DIM, dtype=np.float32)
        v[: len(s.emotion.scores)] = s.emotion.scores
        v[-1] = (int(hashlib.md5(s.text.encode()).hexdigest()[:4], 16) % 100) / 1000
        rows.append(v)
    return np.stack(rows) if rows else None


@contextmanager
def fresh_postgres_database(admin_url: str | None = None) -> Iterator[str]:
    """Create an empty PostgreSQL database with a unique name; yield its URL; drop it afterwards.

    Raises (never skips) when the server cannot be reached: the store suite must run on PostgreSQL.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url or os.environ.get(PG_ADMIN_URL_ENV) or PG_ADMIN_URL)
    name = f"callsense_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            engine.dispose()
