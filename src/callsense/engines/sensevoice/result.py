"""Building :class:`Transcription` values from a parsed SenseVoice string (shared by both runtimes)."""

from __future__ import annotations

from collections.abc import Sequence

from callsense.engines.base import Transcription
from callsense.engines.sensevoice.tags import parse_rich
from callsense.result.model import TokenTime


def too_short(itn: bool) -> Transcription:
    """A segment under the model's minimum length: empty, marked, never decoded."""
    return Transcription(text="", language=None, emotion=None, events=(), raw_tags="", itn=itn,
                         status="too_short")


def to_transcription(raw: str, words: Sequence[tuple[str, int]], itn: bool,
                     raw_no_itn: str | None = None) -> Transcription:
    """``raw``: the decoded string with its tags; ``words``: (word, start ms on the call time line)."""
    rich = parse_rich(raw)
    text_no_itn = parse_rich(raw_no_itn).text if raw_no_itn is not None else None
    return Transcription(
        text=rich.text,
        language=rich.language,
        emotion=rich.emotion,
        events=rich.events,
        raw_tags=rich.raw_tags,
        tokens=tuple(TokenTime(token=w, start_ms=int(s)) for w, s in words),
        text_no_itn=text_no_itn,
        itn=itn,
        status="ok" if rich.text else "empty",
    )
