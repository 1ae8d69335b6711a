"""Admission: what a request must pass before it costs an analysis — ready models, a recording within
the duration limit (counted, not decoded), and a worker slot (:class:`~callsense.service.limits.Limiter`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from callsense.errors import AudioLimitError
from callsense.service.engines import EnginePool
from callsense.service.errors import UnavailableError
from callsense.service.limits import Limiter
from callsense.service.settings import ServiceSettings
from callsense.service.uploads import Upload


class Admission:
    def __init__(self, settings: ServiceSettings, engines: EnginePool):
        self.settings = settings
        self.engines = engines
        self.limiter = Limiter(settings.workers, settings.max_queue, retry_after=settings.retry_after_s)

    @property
    def ready(self) -> bool:
        return self.engines.state == "ready"

    def require_ready(self) -> None:
        """Raise the load error (model missing: 503) or "still loading" (503 with Retry-After)."""
        if self.engines.state == "failed" and self.engines.error is not None:
            raise self.engines.error
        if not self.ready:
            raise UnavailableError("models are still loading", hint="retry shortly; GET /readyz says when ready",
                                   retry_after=self.settings.retry_after_s)

    def wait_until_ready(self) -> None:
        """Background jobs wait for the models instead of failing."""
        while self.engines.state in ("idle", "loading"):
            time.sleep(0.2)
        if self.engines.state == "failed" and self.engines.error is not None:
            raise self.engines.error

    def duration(self, upload: Upload) -> float | None:
        """The upload's length in seconds (packets counted, never decoded), refusing it (413) when it is
        over the limit; None when it cannot be told here (decoding will say why)."""
        from callsense.audio.decode import probe_duration

        limit = self.settings.max_duration_s
        seconds = probe_duration(upload.path, stop_after_s=limit)
        if seconds is not None and seconds > limit:
            raise AudioLimitError(f"recording is longer than the {limit:.0f} s limit", source=upload.filename,
                                  hint="send a shorter recording or raise --max-duration-s")
        return seconds

    @contextmanager
    def slot(self, *, inline: bool = True) -> Iterator[None]:
        """A worker slot: inline requests wait at most ``sync_wait_s`` in a bounded line; jobs just wait."""
        if inline:
            with self.limiter.slot(timeout=self.settings.sync_wait_s):
                yield
        else:
            with self.limiter.slot(admit=False):
                yield
