"""Online speech segmentation of one channel: per-window speech probabilities in, utterances out.

The offline chain in :mod:`callsense.audio.vad` (``hysteresis`` → ``merge_gaps`` → ``drop_short`` →
``pad_spans``) decided with only the past: a run of speech opens at ``p >= threshold`` and closes at
the first ``p < neg_threshold``; runs closer than ``min_silence_ms`` join; an utterance is *closed*
once ``min_silence_ms`` of audio after its last speech window has passed without a new run, because
only then can no later run join it. Closed utterances shorter than ``min_speech_ms`` are dropped and
the rest padded by ``speech_pad_ms`` as offline. Only ``split_long`` differs: a live utterance that
reaches ``max_segment_ms`` is cut there (offline cuts at the quietest point), so the two agree except
on utterances longer than that.

Pure: no model, no I/O; times in integer ms on the call's time line (window i covers [32 i, 32 i + 32)).
"""

from __future__ import annotations

from dataclasses import dataclass

from callsense.audio.types import VadOptions
from callsense.audio.vad import NEG_THRESHOLD_GAP, WINDOW_MS


@dataclass(frozen=True)
class Utterance:
    start_ms: int  # padded, as the offline VAD gives it
    end_ms: int


class Segmenter:
    """Feed probabilities with :meth:`push`; it returns the utterances they closed."""

    def __init__(self, options: VadOptions | None = None):
        o = self.options = options or VadOptions()
        self.threshold = o.threshold
        self.neg = o.neg_threshold if o.neg_threshold is not None else max(0.01, o.threshold - NEG_THRESHOLD_GAP)
        self.windows = 0  # probabilities seen
        self._run_start: int | None = None  # window index where the open run began
        self._last_above: int | None = None  # last window >= threshold in the open run
        self._pending: tuple[int, int] | None = None  # (start_ms, end_ms) of runs joined so far, unpadded
        self._prev_end: int | None = None  # unpadded end of the last utterance given out

    @property
    def speaking(self) -> bool:
        """True while an utterance is open (speech now, or within min_silence of it)."""
        return self._run_start is not None or self._pending is not None

    @property
    def open_start_ms(self) -> int | None:
        """Where the open utterance began (unpadded), for partial transcripts."""
        if self._pending is not None:
            return self._pending[0]
        return None if self._run_start is None else self._run_start * WINDOW_MS

    def push(self, probs) -> list[Utterance]:
        out: list[Utterance] = []
        o = self.options
        for p in probs:
            i = self.windows
            self.windows += 1
            if self._run_start is None:
                if p >= self.threshold:
                    self._run_start, self._last_above = i, i
                    if self._pending is not None and i * WINDOW_MS - self._pending[1] >= o.min_silence_ms:
                        out += self._close()
            else:
                if p >= self.threshold:
                    self._last_above = i
                elif p < self.neg:
                    self._end_run()
            if self._run_start is None and self._pending is not None:
                if self.windows * WINDOW_MS - self._pending[1] >= o.min_silence_ms:
                    out += self._close()
            elif self._run_start is not None:
                start = self._pending[0] if self._pending else self._run_start * WINDOW_MS
                if (self._last_above + 1) * WINDOW_MS - start >= o.max_segment_ms:  # type: ignore[operator]
                    self._end_run()
                    out += self._close()
        return out

    def flush(self) -> list[Utterance]:
        """End of audio: close whatever is open."""
        if self._run_start is not None:
            self._end_run()
        return self._close() if self._pending is not None else []

    def _end_run(self) -> None:
        a, b = self._run_start * WINDOW_MS, (self._last_above + 1) * WINDOW_MS  # type: ignore[operator]
        self._run_start = self._last_above = None
        if self._pending is not None and a - self._pending[1] < self.options.min_silence_ms:
            self._pending = (self._pending[0], max(self._pending[1], b))
        else:  # a run far from the pending one closed it when it opened (see push)
            self._pending = (a, b)

    def _close(self) -> list[Utterance]:
        start, end = self._pending  # type: ignore[misc]
        self._pending = None
        o = self.options
        if end - start < o.min_speech_ms:
            return []
        left = max(0, start - o.speech_pad_ms)
        if self._prev_end is not None:
            left = max(left, self._prev_end + (start - self._prev_end + 1) // 2)
        self._prev_end = end
        # the right pad may reach past what has been heard; the caller clips it to the audio it has
        return [Utterance(left, end + o.speech_pad_ms)]
