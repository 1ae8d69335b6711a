"""Pipeline hooks: small callables told about each step, so that progress bars, timing and artifact
dumps live outside the pipeline (the pattern of pyannote's ``hook(step, artifact, total=, completed=)``).

A hook is called as ``hook(step, artifact, total=None, completed=None)``; ``artifact`` is ``None`` when a
step starts and the step's product when it ends; ``total``/``completed`` report progress inside a step.
Steps: ``decode``, ``vad``, ``asr``, ``emotion``, ``qa``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol


class Hook(Protocol):
    def __call__(self, step: str, artifact: Any = None, *, total: int | None = None,
                 completed: int | None = None) -> None: ...


class StageTimer:
    """Records wall time per step (ms). The analyzer always installs one for the processing log."""

    def __init__(self) -> None:
        self.timings_ms: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def __call__(self, step: str, artifact: Any = None, *, total: int | None = None,
                 completed: int | None = None) -> None:
        if total is not None or completed is not None:
            return
        now = time.perf_counter()
        if step not in self._started:
            self._started[step] = now
        else:
            self.timings_ms[step] = round((now - self._started.pop(step)) * 1000, 1)


class Hooks:
    """Fan-out to several hooks, with helpers to mark a step's start and end."""

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        self.hooks = list(hooks)

    def __call__(self, step: str, artifact: Any = None, **kw: Any) -> None:
        for h in self.hooks:
            h(step, artifact, **kw)

    def start(self, step: str) -> None:
        self(step, None)

    def end(self, step: str, artifact: Any) -> None:
        self(step, artifact)

    def progress(self, step: str, completed: int, total: int) -> None:
        self(step, None, completed=completed, total=total)
