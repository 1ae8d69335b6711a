"""OpenAI-compatible transcription responses (json, text, verbose_json, srt, vtt) from a CallAnalysis.

``verbose_json`` follows OpenAI's shape (task, language, duration, text, segments, words) and adds
callsense's SenseVoice tags per segment: ``emotion``, ``events``, ``role``, ``channel``, ``language``.
"""

from __future__ import annotations

from typing import Any

FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
MEDIA_TYPES = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain; charset=utf-8",
               "srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}


def _spoken(result: Any) -> list[Any]:
    return [s for s in result.segments if (s.text or "").strip()]


def full_text(result: Any) -> str:
    parts = [s.text.strip() for s in _spoken(result)]
    joined = ""
    for p in parts:  # no space between CJK pieces, one space otherwise
        if joined and not (_cjk(joined[-1]) and _cjk(p[0])):
            joined += " "
        joined += p
    return joined


def _cjk(ch: str) -> bool:
    return "\u3000" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uff00" <= ch <= "\uffef"


def _language(result: Any) -> str:
    langs: dict[str, int] = {}
    for s in _spoken(result):
        if s.language:
            langs[s.language] = langs.get(s.language, 0) + (s.end_ms - s.start_ms)
    return max(langs, key=langs.__getitem__) if langs else "unknown"


def verbose(result: Any, *, words: bool = False) -> dict[str, Any]:
    segments = []
    for i, s in enumerate(_spoken(result)):
        segments.append({
            "id": i, "seek": 0, "start": s.start_ms / 1000, "end": s.end_ms / 1000, "text": s.text,
            "tokens": [], "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0,
            # callsense extras
            "segment_id": s.id, "role": s.role, "channel": s.channel, "language": s.language,
            "emotion": s.asr_emotion, "events": list(s.asr_events), "raw_tags": s.raw_tags,
        })
    out: dict[str, Any] = {"task": "transcribe", "language": _language(result), "duration": result.duration_ms / 1000,
                           "text": full_text(result), "segments": segments}
    if words:
        out["words"] = _words(result)
    return out


def _words(result: Any) -> list[dict[str, Any]]:
    words = []
    for s in _spoken(result):
        toks = list(s.tokens)
        for j, t in enumerate(toks):
            end = toks[j + 1].start_ms if j + 1 < len(toks) else s.end_ms
            word = t.token.replace("▁", " ").strip()
            if word:
                words.append({"word": word, "start": t.start_ms / 1000, "end": max(end, t.start_ms) / 1000})
    return words


def _stamp(ms: int, sep: str) -> str:
    h, rem = divmod(max(0, int(ms)), 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{milli:03d}"


def srt(result: Any) -> str:
    blocks = []
    for i, s in enumerate(_spoken(result), start=1):
        blocks.append(f"{i}\n{_stamp(s.start_ms, ',')} --> {_stamp(s.end_ms, ',')}\n{s.text.strip()}\n")
    return "\n".join(blocks)


def vtt(result: Any) -> str:
    blocks = ["WEBVTT\n"]
    for s in _spoken(result):
        blocks.append(f"{_stamp(s.start_ms, '.')} --> {_stamp(s.end_ms, '.')}\n<v {s.role}>{s.text.strip()}\n")
    return "\n".join(blocks)


def render(result: Any, response_format: str, *, words: bool = False) -> str | dict[str, Any]:
    if response_format == "json":
        return {"text": full_text(result)}
    if response_format == "verbose_json":
        return verbose(result, words=words)
    if response_format == "text":
        return full_text(result) + "\n"
    if response_format == "srt":
        return srt(result)
    if response_format == "vtt":
        return vtt(result)
    from callsense.errors import UsageError

    raise UsageError(f"response_format must be one of {', '.join(FORMATS)}, not {response_format!r}")
