"""Review clips: a stretch of a call's processed audio (``audio_16k.wav``) cut on demand as a WAV.

Used by ``GET /v1/calls/{id}/clip``, ``callsense clip`` and the HTML report's players. Nothing is
stored: a clip is cut from the processed audio each time, so deleting the audio (docs/privacy.md)
removes every clip with it.
"""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path

from callsense.errors import AudioNotFoundError, ClipRangeError

MAX_CLIP_MS = 120_000  # a clip is for review, not a download of the call: GET /audio serves the whole file


def check_range(start_ms: int, end_ms: int, duration_ms: int | None = None, *, source: str | None = None) -> None:
    """:class:`ClipRangeError` unless ``0 <= start < end``, ``end - start <= MAX_CLIP_MS`` and, when the call's
    duration is known, ``start < duration``."""
    hint = f"give 0 <= start_ms < end_ms with at most {MAX_CLIP_MS // 1000} s between them"
    if start_ms < 0 or end_ms <= start_ms:
        raise ClipRangeError(f"bad clip range {start_ms}-{end_ms} ms", hint=hint, source=source)
    if end_ms - start_ms > MAX_CLIP_MS:
        raise ClipRangeError(f"clip of {(end_ms - start_ms) / 1000:g} s is longer than {MAX_CLIP_MS // 1000} s",
                             hint=hint, source=source)
    if duration_ms is not None and start_ms >= duration_ms:
        raise ClipRangeError(f"clip starts at {start_ms} ms, after the end of the call ({duration_ms} ms)",
                             hint=hint, source=source)


def cut_clip(wav: str | Path, start_ms: int, end_ms: int) -> bytes:
    """The WAV bytes of ``[start_ms, end_ms)`` of ``wav`` (all channels, same format; cut at the end of the file)."""
    path = Path(wav)
    if not path.is_file():
        raise AudioNotFoundError("no processed audio for this call", source=path,
                                 hint="the audio was not kept or was deleted (analyse again with the audio kept)")
    with wave.open(str(path), "rb") as r:
        rate, n = r.getframerate(), r.getnframes()
        check_range(start_ms, end_ms, n * 1000 // rate, source=str(path))
        a = start_ms * rate // 1000
        b = min(end_ms * rate // 1000, n)
        r.setpos(a)
        frames = r.readframes(b - a)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(r.getnchannels())
            w.setsampwidth(r.getsampwidth())
            w.setframerate(rate)
            w.writeframes(frames)
    return buf.getvalue()


def data_uri(clip: bytes) -> str:
    """A ``data:`` URI for an ``<audio>`` element: the report stays one self-contained file."""
    return "data:audio/wav;base64," + base64.b64encode(clip).decode("ascii")
