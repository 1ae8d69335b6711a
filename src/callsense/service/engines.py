"""Models loaded once per process and shared by every request (the service's warm analyzers).

A request may change what an analysis does (language, channel map, granularity, embeddings, rules)
but not which weights run; so per-request analyzers are derived from one warm base analyzer per
emotion model and share its loaded engines.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from callsense.errors import CallsenseError
from callsense.pipeline import AnalyzeOptions, Analyzer

log = logging.getLogger("callsense")


class EnginePool:
    def __init__(self, base: AnalyzeOptions):
        self.base_options = base
        self._bases: dict[str, Analyzer] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.state = "idle"  # idle -> loading -> ready | failed
        self.error: CallsenseError | None = None
        self.load_seconds: float | None = None
        self.loaded: dict[str, bool] = {}

    def base(self, emotion_model: str | None = None) -> Analyzer:
        name = emotion_model or self.base_options.emotion_model
        with self._lock:
            if name not in self._bases:
                self._bases[name] = Analyzer(self.base_options.replace(emotion_model=name))
            return self._bases[name]

    def warm(self) -> None:
        """Load the default models now; readiness reports the outcome."""
        self.state = "loading"
        t0 = time.perf_counter()
        try:
            with self._load_lock:
                analyzer = self.base().load()
        except CallsenseError as e:
            self.state, self.error = "failed", e
            log.error("models failed to load: %s", e)
            return
        self.loaded = {
            self.base_options.asr_model: self.base_options.run_asr,
            self.base_options.emotion_model: analyzer.emotion_engine() is not None,
        }
        self.load_seconds = round(time.perf_counter() - t0, 2)
        self.state = "ready"
        log.info("models ready in %.1f s: %s", self.load_seconds, self.loaded)

    def analyzer(self, **changes: Any) -> Analyzer:
        """An analyzer with per-request options that shares the warm engines of its base."""
        base = self.base(changes.get("emotion_model"))
        options = base.options.replace(**changes)
        with self._load_lock:  # two first requests must not load the same weights twice
            return base.derive(options)
