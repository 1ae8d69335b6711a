"""The service's housekeeping thread: retention (``--retention 90d``) and the sweep of orphaned files.

Every period it purges calls stored longer ago than the retention age — records, folders, audio,
finished jobs, exactly as ``callsense purge --what all`` does — and sweeps files that no call or live
job accounts for (see :meth:`callsense.service.calls.CallRepository.sweep`).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

log = logging.getLogger("callsense")


def period_s(retention_s: float | None) -> float:
    """How often to run: a tenth of the retention age, between 1 s and one hour."""
    if retention_s is None:
        return 3600.0
    return min(3600.0, max(1.0, retention_s / 10))


class Housekeeper:
    def __init__(self, service: Any):
        self.service = service
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        s = self.service.settings
        if s.retention_s is not None:
            from callsense.store.privacy import purge

            purge(self.service.store, timedelta(seconds=s.retention_s), what="all")
        self.service.calls.sweep(s.sweep_min_age_s)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="callsense-housekeeping", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        every = period_s(self.service.settings.retention_s)
        while True:
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the store may be briefly away: try again next period
                log.exception("housekeeping failed")
            if self._stop.wait(every):
                return
