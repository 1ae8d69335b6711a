"""Review clips: a stretch of a call's processed audio (``audio_16k.wav``) cut on demand as a WAV.

Used by ``GET /v1/calls/{id}/clip``, ``callsense clip`` and the HTML report's players. Nothing is
stored: a clip is cut from the processed audio each time, so deleting the audio (docs/privacy.md)
removes every clip with it. A call stored by ``callsense batch`` has no processed audio: its recording
(the ``--copy-audio`` copy, else the source file) is decoded instead, provided its SHA-256 is still the
analysed one (:func:`decode_recording`).
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


def decode_recording(call_id: str, recordings: list[Path], sha256: str, dest: Path, *,
                     channel_map: tuple | None = None) -> Path:
    """The first of ``recordings`` whose content is still ``sha256``, decoded to 16 kHz (one channel per
    track, as the analysis saw it) into ``dest``: the processed audio of a call stored without a folder.
    :class:`AudioNotFoundError` when every recording is gone or changed."""
    import os

    from callsense.audio.decode import load_audio
    from callsense.audio.types import AudioOptions
    from callsense.pipeline.outputs import write_wav

    found = [r for r in recordings if r.is_file()]
    if not found:
        raise AudioNotFoundError(f"call {call_id} has no processed audio and its recording is gone",
                                 source=str(recordings[-1]) if recordings else None,
                                 hint="a batch keeps no audio: keep the recordings (or use --copy-audio DIR)")
    for path in found:
        audio = load_audio(path, AudioOptions(channel_map=channel_map, max_duration_s=24 * 3600.0,
                                              max_file_mb=1 << 20))
        if audio.source.sha256 == sha256:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
            write_wav(tmp, [t.samples for t in audio.tracks])
            tmp.replace(dest)  # readers never see half a file
            return dest
    raise AudioNotFoundError(f"call {call_id}: the recording changed since it was analysed",
                             source=str(found[0]), hint="its SHA-256 is not the stored call's; analyse it again")


def data_uri(clip: bytes) -> str:
    """A ``data:`` URI for an ``<audio>`` element: the report stays one self-contained file."""
    return "data:audio/wav;base64," + base64.b64encode(clip).decode("ascii")
