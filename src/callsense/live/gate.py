"""Finals first: how the server's live calls share the CPU between finals and partials.

A final (an utterance the VAD closed) decides the transcript, the emotion and the alerts; a partial is a
preview made by re-decoding the open utterance, which costs more and more as the utterance grows
(SenseVoice is not a streaming model). With several calls on a few cores, partials queued in front of
finals would delay every alert. So a partial is decoded only while **no final is being decoded** on the
server, one of ``partial_slots`` is free, and the partials' share of the time stays under ``duty``
(after a partial that took *d* seconds, the next one waits *d*·(1/duty − 1)); otherwise it is skipped,
and the call tries again at its next frame. Under load the partials thin out; the finals never wait for
them. Finals may also be decoded one at a time (``final_slots``; the server's default is 1): concurrent runs
on one shared onnxruntime session fight over its thread pool, and each takes longer than in a queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DecodeGate:
    """Shared by every live call of one server (``callsense.live.manager.LiveCalls``)."""

    def __init__(self, partial_slots: int = 1, duty: float = 1.0, clock=time.monotonic, final_slots: int = 0):
        self._lock = threading.Lock()
        # finals decoded at once (0: no limit); one at a time gives each the engines' full thread pool
        self._final_slots = threading.BoundedSemaphore(final_slots) if final_slots > 0 else None
        self._finals = 0
        self._slots = threading.BoundedSemaphore(partial_slots) if partial_slots > 0 else None
        self._duty = min(1.0, max(0.01, float(duty)))
        self._clock = clock
        self._next_at = 0.0  # no partial before this (the duty cycle)
        self._started: dict[int, float] = {}

    @contextmanager
    def final(self) -> Iterator[None]:
        """Around the decoding of a final: partials give way meanwhile."""
        with self._lock:
            self._finals += 1
        try:
            if self._final_slots is None:
                yield
            else:
                with self._final_slots:
                    yield
        finally:
            with self._lock:
                self._finals -= 1

    def try_partial(self) -> bool:
        """Whether a partial may be decoded now; if True, call :meth:`partial_done` afterwards."""
        with self._lock:
            if self._finals or self._clock() < self._next_at:
                return False
        if self._slots is not None and not self._slots.acquire(blocking=False):
            return False
        with self._lock:
            self._started[threading.get_ident()] = self._clock()
        return True

    def partial_done(self) -> None:
        with self._lock:
            began = self._started.pop(threading.get_ident(), None)
            if began is not None and self._duty < 1.0:
                now = self._clock()
                self._next_at = max(self._next_at, now + (now - began) * (1.0 / self._duty - 1.0))
        if self._slots is not None:
            self._slots.release()
