"""Admission control: at most ``workers`` analyses run, at most ``max_queue`` wait; the rest get 429.

Bounding both running and waiting work is what keeps memory bounded under a burst of requests:
each admitted request holds at most one upload on disk and one decoded recording in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from callsense.service.errors import BusyError, UnavailableError


class Limiter:
    def __init__(self, workers: int, max_queue: int, *, retry_after: int = 5):
        self.workers = workers
        self.max_queue = max_queue
        self.retry_after = retry_after
        self._slots = threading.Semaphore(workers)
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0

    @property
    def depth(self) -> int:
        return self.running + self.waiting

    @contextmanager
    def slot(self, timeout: float | None = None, *, admit: bool = True) -> Iterator[None]:
        """Hold a worker slot. ``admit=False`` (background jobs) waits without the queue bound."""
        with self._lock:
            if admit and self.running + self.waiting >= self.workers + self.max_queue:
                raise BusyError(f"all {self.workers} workers are busy and {self.waiting} requests wait",
                                hint=f"retry after {self.retry_after} s, or send long recordings as jobs "
                                     "(mode=async)", retry_after=self.retry_after)
            self.waiting += 1
        try:
            acquired = self._slots.acquire(timeout=timeout)
        finally:
            with self._lock:
                self.waiting -= 1
        if not acquired:
            raise UnavailableError(f"no worker became free within {timeout:.0f} s",
                                   hint="retry later or send the recording as a job (mode=async)",
                                   retry_after=self.retry_after)
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()
