"""Batch bookkeeping in the store: claims (who analyses what right now), failures, processing runs.

Claims make batch processing safe when several workers, or several batch processes, share one store:
a recording is analysed only by whoever inserted its claim row. The claim is deleted in the same
transaction that stores the result (:func:`callsense.store.repo.save_result`), or released on
failure. A claim whose process is gone (same host, pid no longer alive — e.g. after ``kill -9``) or
that is older than ``stale_after_s`` is taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from callsense.errors import CallsenseError
from callsense.store.models import Call, Claim, Failure, ProcessingRun

if TYPE_CHECKING:
    from callsense.store.db import Store

log = logging.getLogger("callsense")

DEFAULT_STALE_AFTER_S = 6 * 3600.0
"""A claim older than this is considered abandoned even when its owner cannot be checked (other host)."""

ClaimState = Literal["claimed", "done", "busy", "failed_before"]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Owner:
    """This process, as the owner of claims."""

    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed worker whose parent died too can linger as a zombie nobody reaps: that is dead
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _is_stale(claim: Claim, stale_after_s: float) -> bool:
    if claim.host == socket.gethostname() and not _pid_alive(claim.pid):
        return True
    return claim.claimed_at < _now() - timedelta(seconds=stale_after_s)


def claim(store: Store, content_sha256: str, owner: Owner, *, fingerprint: str, source_key: str,
          force: bool = False, retry_failed: bool = False,
          stale_after_s: float = DEFAULT_STALE_AFTER_S) -> ClaimState:
    """Try to take the recording ``content_sha256`` for analysis.

    Returns ``"claimed"`` (go ahead), ``"done"`` (already stored with this ``fingerprint``),
    ``"failed_before"`` (failed with this fingerprint; pass ``retry_failed``) or ``"busy"`` (another
    live worker has it). The claim is inserted *before* checking for a stored result, in one
    transaction, so a worker that finishes concurrently is always seen.
    """
    from sqlalchemy import insert, or_, select, update
    from sqlalchemy.exc import IntegrityError

    try:
        with store.session() as s:
            existing = s.get(Claim, content_sha256)
            if existing is None:
                s.execute(insert(Claim).values(content_sha256=content_sha256, owner=owner.name, host=owner.host,
                                               pid=owner.pid, claimed_at=_now()))
            elif existing.owner != owner.name:
                if not _is_stale(existing, stale_after_s):
                    return "busy"
                taken = s.execute(update(Claim).where(Claim.content_sha256 == content_sha256,
                                                      Claim.owner == existing.owner)
                                  .values(owner=owner.name, host=owner.host, pid=owner.pid, claimed_at=_now()))
                if taken.rowcount != 1:
                    return "busy"
                log.info("took over the abandoned claim of %s on %s", existing.owner, content_sha256[:12])
            stored_fp = s.execute(select(Call.fingerprint).where(Call.content_sha256 == content_sha256)).scalar()
            state: ClaimState = "claimed"
            if stored_fp is not None and stored_fp == fingerprint and not force:
                state = "done"
            elif not retry_failed and not force:
                failed = s.execute(select(Failure.id).where(
                    or_(Failure.content_sha256 == content_sha256, Failure.source_key == source_key),
                    Failure.fingerprint == fingerprint, Failure.stage != "source")).first()
                if failed is not None:
                    state = "failed_before"
            if state != "claimed":
                s.delete(s.get(Claim, content_sha256))
            return state
    except IntegrityError:  # another process inserted the same claim first (PostgreSQL)
        return "busy"


def release(store: Store, content_sha256: str, owner: Owner) -> None:
    from sqlalchemy import delete

    with store.session() as s:
        s.execute(delete(Claim).where(Claim.content_sha256 == content_sha256, Claim.owner == owner.name))


def release_all(store: Store, owner: Owner) -> int:
    """Drop every claim of ``owner`` (a batch stopping cleanly)."""
    from sqlalchemy import delete

    with store.session() as s:
        return s.execute(delete(Claim).where(Claim.owner == owner.name)).rowcount or 0


# ---------------------------------------------------------------- failures


@dataclass(frozen=True)
class FailureRecord:
    source_key: str
    source_path: str | None
    content_sha256: str | None
    manifest: str | None
    row: int | None
    stage: str
    error_code: str
    message: str
    attempts: int
    failed_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


def record_failure(store: Store, *, source_key: str, error: BaseException, stage: str,
                   source_path: str | None = None, content_sha256: str | None = None, manifest: str | None = None,
                   row: int | None = None, metadata: dict[str, Any] | None = None, fingerprint: str | None = None,
                   run_id: int | None = None) -> None:
    """Record (or update, counting attempts) the failure of one file or manifest row."""
    from sqlalchemy import insert, select, update
    from sqlalchemy.exc import IntegrityError

    code = error.code if isinstance(error, CallsenseError) else "internal"
    message = error_reason(error)
    values = {"source_path": source_path, "content_sha256": content_sha256, "manifest": manifest, "row": row,
              "metadata_json": _plain(metadata or {}), "stage": stage, "error_code": code[:64],
              "message": message[:4000], "fingerprint": fingerprint, "run_id": run_id, "failed_at": _now()}
    for _ in range(2):
        try:
            with store.session() as s:
                attempts = s.execute(select(Failure.attempts).where(Failure.source_key == source_key)).scalar()
                if attempts is None:
                    s.execute(insert(Failure).values(source_key=source_key[:1024], attempts=1, **values))
                else:
                    s.execute(update(Failure).where(Failure.source_key == source_key)
                              .values(attempts=attempts + 1, **values))
            return
        except IntegrityError:  # recorded concurrently by another process: update it instead
            continue


def error_reason(error: BaseException) -> str:
    """The reason of a failure without the file name (the failure record names the file)."""
    if isinstance(error, CallsenseError):
        return error.message + (f" ({error.hint})" if error.hint else "")
    return f"{type(error).__name__}: {error}"


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    return {str(k): (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in meta.items()}


def list_failures(store: Store, *, limit: int = 1000) -> list[FailureRecord]:
    """Recorded failures, newest first."""
    from sqlalchemy import select

    with store.session() as s:
        rows = s.execute(select(Failure).order_by(Failure.failed_at.desc(), Failure.id.desc()).limit(limit)).scalars()
        return [FailureRecord(f.source_key, f.source_path, f.content_sha256, f.manifest, f.row, f.stage,
                              f.error_code, f.message, f.attempts, f.failed_at, dict(f.metadata_json or {}))
                for f in rows]


# ---------------------------------------------------------------- runs


def mark_interrupted_runs(store: Store) -> int:
    """Mark as ``interrupted`` the runs still recorded as ``running`` whose batch process is gone
    (same host, pid dead): a batch killed with ``kill -9`` or by a power cut cannot record its own end.
    Returns how many were marked. Runs of other hosts cannot be checked from here and are left as they are."""
    from sqlalchemy import select, update

    host = socket.gethostname()
    with store.session() as s:
        rows = s.execute(select(ProcessingRun.id, ProcessingRun.pid)
                         .where(ProcessingRun.status == "running", ProcessingRun.host == host)).all()
        dead = [run_id for run_id, pid in rows if pid != os.getpid() and not _pid_alive(pid)]
        if dead:
            s.execute(update(ProcessingRun).where(ProcessingRun.id.in_(dead), ProcessingRun.status == "running")
                      .values(status="interrupted", finished_at=_now()))
    if dead:
        log.info("marked %d earlier batch run(s) as interrupted (their process is gone): %s",
                 len(dead), ", ".join(map(str, dead)))
    return len(dead)


def start_run(store: Store, *, source: str, fingerprint: str, workers: int, owner: Owner) -> int:
    """Record a new run (status ``running``), after marking earlier runs whose process died as interrupted."""
    mark_interrupted_runs(store)
    with store.session() as s:
        run = ProcessingRun(source=source[:4000], fingerprint=fingerprint, host=owner.host, pid=owner.pid,
                            workers=workers, started_at=_now(), status="running", done=0, skipped=0, failed=0,
                            audio_ms=0, wall_s=0.0)
        s.add(run)
        s.flush()
        return int(run.id)


def finish_run(store: Store, run_id: int, *, status: str, done: int, skipped: int, failed: int, audio_ms: int,
               wall_s: float) -> None:
    from sqlalchemy import update

    with store.session() as s:
        s.execute(update(ProcessingRun).where(ProcessingRun.id == run_id).values(
            status=status, finished_at=_now(), done=done, skipped=skipped, failed=failed, audio_ms=audio_ms,
            wall_s=wall_s))
