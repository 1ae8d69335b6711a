"""Finals first: how the server's live calls share the CPU between finals and partials.

A final (an utterance the VAD closed) decides the transcript, the emotion and the alerts; a partial is a
preview made by re-decoding the open utterance, which costs more and more as the utterance grows
(SenseVoice is not a streaming model). With several calls on a few cores, partials queued in front of
finals would delay every alert. So a partial is decoded only while **no final is being decoded** on the
server and one of ``partial_slots`` is free; otherwise it is skipped, and the call tries again at its
next frame. Under load the partials thin out; the finals never wait for them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class DecodeGate:
    """Shared by every live call of one server (``callsense.live.manager.LiveCalls``)."""

    def __init__(self, partial_slots: int = 1):
        self._lock = threading.Lock()
        self._finals = 0
        self._slots = threading.BoundedSemaphore(partial_slots) if partial_slots > 0 else None

    @contextmanager
    def final(self) -> Iterator[None]:
        """Around the decoding of a final: partials give way meanwhile."""
        with self._lock:
            self._finals += 1
        try:
            yield
        finally:
            with self._lock:
                self._finals -= 1

    def try_partial(self) -> bool:
        """Whether a partial may be decoded now; if True, call :meth:`partial_done` afterwards."""
        with self._lock:
            if self._finals:
                return False
        return self._slots is None or self._slots.acquire(blocking=False)

    def partial_done(self) -> None:
        if self._slots is not None:
            self._slots.release()
