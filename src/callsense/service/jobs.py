"""Analysis jobs persisted in the database, so that they survive a restart.

A job is a row of ``service_jobs``: queued → running → done | failed. Worker threads claim queued
rows with a conditional UPDATE (one winner per row even with several processes on one database).
On start, rows left ``running`` by a process that died are queued again and picked up.

The table is part of the store's schema (:data:`callsense.store.models.service_jobs`), created by the
store's migrations like every other table: the engine given to :class:`JobQueue` is that of a store
opened with :func:`callsense.store.open_store`, which brings the schema up to date.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("callsense")

TERMINAL = ("done", "failed")


@dataclass(frozen=True)
class Job:
    id: str
    status: str  # queued, running, done, failed
    created_at: str
    started_at: str | None
    finished_at: str | None
    filename: str | None
    upload_path: str
    options: dict[str, Any]
    metadata: dict[str, Any]
    call_id: str | None
    error: dict[str, Any] | None
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "filename": self.filename, "call_id": self.call_id,
            "error": self.error, "attempts": self.attempts, "options": self.options, "metadata": self.metadata,
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JobQueue:
    """The job table and the worker threads that drain it.

    ``runner(job) -> call_id`` does the work; a :class:`~callsense.errors.CallsenseError` it raises is
    recorded on the job (a failed job, not a crashed worker).
    """

    def __init__(self, engine: Any, runner: Callable[[Job], str], *, workers: int = 1, max_attempts: int = 3):
        from callsense.store.models import service_jobs

        self.runner = runner
        self.workers = workers
        self.max_attempts = max_attempts
        self.engine = engine  # the store's engine: jobs live next to the calls they produce
        # Created by the store's migrations (revision 0002), not here: one schema, one version check.
        self.table = service_jobs
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- records -------------------------------------------------------------------------------
    def submit(self, upload_path: str, *, filename: str | None, options: dict[str, Any],
               metadata: dict[str, Any]) -> Job:
        job_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(self.table.insert().values(
                id=job_id, status="queued", created_at=_now(), filename=filename, upload_path=upload_path,
                options_json=json.dumps(options), metadata_json=json.dumps(metadata, ensure_ascii=False),
                attempts=0,
            ))
        self._notify()
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.table.select().where(self.table.c.id == job_id)).mappings().first()
        return _job(row) if row else None

    def list(self, status: str | None = None, limit: int = 50) -> list[Job]:
        q = self.table.select().order_by(self.table.c.created_at.desc()).limit(limit)
        if status:
            q = q.where(self.table.c.status == status)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(q).mappings()]

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        q = select(self.table.c.status, func.count()).group_by(self.table.c.status)
        with self.engine.connect() as conn:
            return {s: n for s, n in conn.execute(q)}

    def wait(self, job_id: str, timeout: float) -> Job | None:
        """The job once it is done or failed, or as it is after ``timeout`` seconds."""
        deadline = _monotonic() + max(0.0, timeout)
        while True:
            job = self.get(job_id)
            if job is None or job.status in TERMINAL:
                return job
            left = deadline - _monotonic()
            if left <= 0:
                return job
            with self._changed:
                self._changed.wait(min(left, 0.5))  # also polls: another process may run the job

    # ---- workers -------------------------------------------------------------------------------
    def start(self) -> None:
        """Requeue jobs a dead process left running, then start the worker threads."""
        with self.engine.begin() as conn:
            n = conn.execute(self.table.update().where(self.table.c.status == "running")
                             .values(status="queued", owner=None)).rowcount
        if n:
            log.info("requeued %d job(s) interrupted by a restart", n)
        self._stop.clear()
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"callsense-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._notify()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def _claim(self) -> Job | None:
        from sqlalchemy import and_

        with self.engine.connect() as conn:
            rows = conn.execute(self.table.select().where(self.table.c.status == "queued")
                                .order_by(self.table.c.created_at).limit(5)).mappings().all()
        for row in rows:
            with self.engine.begin() as conn:
                won = conn.execute(self.table.update().where(and_(self.table.c.id == row["id"],
                                                                  self.table.c.status == "queued"))
                                   .values(status="running", started_at=_now(), owner=self.owner,
                                           attempts=row["attempts"] + 1)).rowcount
            if won:
                return self.get(row["id"])
        return None

    def _work(self) -> None:
        from callsense.errors import CallsenseError

        while not self._stop.is_set():
            try:
                job = self._claim()
            except Exception:  # database briefly locked or gone: retry, never kill the worker
                log.exception("job queue: claiming failed")
                job = None
            if job is None:
                with self._changed:
                    self._changed.wait(1.0)
                continue
            log.info("job %s: started (attempt %d)", job.id, job.attempts)
            try:
                call_id = self.runner(job)
            except CallsenseError as e:
                self._finish(job.id, "failed", error={**e.to_dict(), "status": e.status})
                log.info("job %s: failed: %s", job.id, e)
            except Exception as e:  # a bug: record it; retry a few times (a restart may fix it)
                log.exception("job %s: crashed", job.id)
                status = "failed" if job.attempts >= self.max_attempts else "queued"
                self._finish(job.id, status, error={"code": "internal", "message": f"{type(e).__name__}: {e}"})
            else:
                self._finish(job.id, "done", call_id=call_id)
                log.info("job %s: done (call %s)", job.id, call_id)

    def _finish(self, job_id: str, status: str, *, call_id: str | None = None,
                error: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.id == job_id).values(
                status=status, finished_at=_now() if status in TERMINAL else None, call_id=call_id,
                error_json=json.dumps(error, ensure_ascii=False) if error else None))
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()


def _monotonic() -> float:
    import time

    return time.monotonic()


def _job(row: Any) -> Job:
    return Job(
        id=row["id"], status=row["status"], created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], filename=row["filename"], upload_path=row["upload_path"],
        options=json.loads(row["options_json"]), metadata=json.loads(row["metadata_json"]),
        call_id=row["call_id"], error=json.loads(row["error_json"]) if row["error_json"] else None,
        attempts=row["attempts"],
    )
