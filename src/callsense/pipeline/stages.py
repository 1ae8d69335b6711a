"""The pipeline's stages as small functions that work on one segment, one channel or one file.

The file pipeline (:class:`~callsense.pipeline.Analyzer`) is composed from these, so a live stream
(segments arriving one by one), a diarized mono call (segments from a diarizer instead of VAD) and
a batch share one code path::

    spans = speech_segments(track, vad_options, first_id=1)   # one channel: VAD -> SegmentAudio
    texts = transcribe_segments(asr_engine, spans, asr_options)  # any list of segments, even one
    emos = score_emotions(emotion_engine, spans, emotion_options)
    segment, points = build_segment(spans[0], texts[0], emos[0])  # one utterance -> result types

Everything here is pure apart from the engines it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from callsense.analysis.emotion import role_emotions, segment_emotion, sensevoice_emotion, timeline_points
from callsense.audio.types import DecodedAudio, Track, VadOptions
from callsense.engines.base import AsrOptions, EmotionOptions, EmotionOutput, SegmentAudio, Transcription
from callsense.labels import EMOTION_NAMES, SAMPLE_RATE
from callsense.result.emotion import CallEmotion, TimelinePoint
from callsense.result.model import AudioEvent, Segment, TokenTime

NON_EVENT_TAGS = frozenset({"Speech", "Event_UNK", "GBG"})


# ------------------------------------------------------------------------------- VAD and cutting
def speech_spans(track: Track, options: VadOptions) -> list[tuple[int, int]]:
    """``(start_ms, end_ms)`` of the speech on one channel."""
    from callsense.audio.vad import detect_speech  # onnxruntime: loaded on first use

    return [(s.start_ms, s.end_ms) for s in detect_speech(track.samples, options)]


def cut_segment(track: Track, start_ms: int, end_ms: int, segment_id: str) -> SegmentAudio:
    """One stretch of a channel as an engine input, placed on the call's time line."""
    return SegmentAudio(id=segment_id, samples=_cut(track.samples, start_ms, end_ms), start_ms=start_ms,
                        channel=track.channel, role=track.role)


def speech_segments(audio: DecodedAudio, options: VadOptions) -> tuple[list[SegmentAudio], dict[int, int]]:
    """VAD on every channel; the segments in call order (ids ``s0001``...) and speech ms per channel."""
    pieces: list[tuple[int, int, int]] = []  # (start_ms, channel index, end_ms)
    speech_ms: dict[int, int] = {}
    for i, track in enumerate(audio.tracks):
        spans = speech_spans(track, options)
        speech_ms[track.channel] = sum(b - a for a, b in spans)
        pieces += [(a, i, b) for a, b in spans]
    pieces.sort(key=lambda p: (p[0], audio.tracks[p[1]].channel))
    return [cut_segment(audio.tracks[i], a, b, f"s{n + 1:04d}") for n, (a, i, b) in enumerate(pieces)], speech_ms


# ----------------------------------------------------------------------------------- engines
def transcribe_segments(engine: Any, segments: Sequence[SegmentAudio], options: AsrOptions,
                        ) -> list[Transcription | None]:
    """ASR on any list of segments (one utterance of a live call, or a whole file's)."""
    return list(engine.transcribe(list(segments), options)) if segments else []


def score_emotions(engine: Any, segments: Sequence[SegmentAudio], options: EmotionOptions,
                   ) -> list[EmotionOutput | None]:
    """emotion2vec on any list of segments."""
    return list(engine.score(list(segments), options)) if segments else []


# ------------------------------------------------------------------------------ result types
def _cut(samples: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    a = start_ms * SAMPLE_RATE // 1000
    b = end_ms * SAMPLE_RATE // 1000
    return samples[a:b]


_CHUNK = 1 << 20  # samples per block in whole-track arithmetic: a float64 copy of a 10-min track is 77 MB


def dbfs(samples: np.ndarray) -> float | None:
    if samples.size == 0:
        return None
    x = samples.reshape(-1)
    # block by block: the level of a whole track must not cost a float64 copy of it at the memory peak
    energy = sum(float(np.dot(b, b)) for b in (x[i:i + _CHUNK].astype(np.float64) for i in range(0, x.size, _CHUNK)))
    rms = (energy / x.size) ** 0.5
    return round(20 * np.log10(max(rms, 1e-10)), 2)


def peak_dbfs(samples: np.ndarray) -> float | None:
    if samples.size == 0:
        return None
    return round(20 * np.log10(max(float(np.max(np.abs(samples))), 1e-10)), 2)


def build_segments(seg_audio: Sequence[SegmentAudio], transcripts: Sequence[Transcription | None],
                   emotions: Sequence[EmotionOutput | None],
                   ) -> tuple[tuple[Segment, ...], np.ndarray | None, tuple[TimelinePoint, ...]]:
    """Result segments from the engines' outputs, one per speech segment (``None``: that stage did not
    run), with the utterance embeddings (row i: ``emotion.embedding_index == i``) and the timeline."""
    segments = []
    rows: list[np.ndarray] = []
    timeline: list[TimelinePoint] = []
    for sa, tr, em in zip(seg_audio, transcripts, emotions):
        index = None
        if em is not None and em.embedding is not None:
            index = len(rows)
            rows.append(np.asarray(em.embedding, dtype=np.float32))
        segment, points = build_segment(sa, tr, em, embedding_index=index)
        segments.append(segment)
        timeline += points
    embeddings = np.stack(rows) if rows else None
    return tuple(segments), embeddings, tuple(timeline)


def build_segment(sa: SegmentAudio, tr: Transcription | None, em: EmotionOutput | None, *,
                  embedding_index: int | None = None) -> tuple[Segment, tuple[TimelinePoint, ...]]:
    """One speech segment's result entry and its timeline points, from whatever stages ran on it."""
    fields: dict[str, Any] = {}
    if tr is not None:
        fields = dict(
            text=tr.text, text_no_itn=tr.text_no_itn, itn=tr.itn, language=tr.language,
            asr_emotion=tr.emotion, asr_events=tuple(e for e in tr.events if e not in NON_EVENT_TAGS),
            raw_tags=tr.raw_tags, tokens=tuple(TokenTime(t.token, t.start_ms) for t in tr.tokens),
            asr_status=tr.status,
        )
    emotion = None
    points: tuple[TimelinePoint, ...] = ()
    if em is not None:
        emotion = segment_emotion(em, embedding_index)
        points = timeline_points(em, segment_id=sa.id, role=sa.role, channel=sa.channel)
    elif tr is not None:
        emotion = sensevoice_emotion(tr.emotion)
    segment = Segment(
        id=sa.id, channel=sa.channel, role=sa.role, start_ms=sa.start_ms,
        end_ms=sa.start_ms + int(round(len(sa.samples) * 1000 / SAMPLE_RATE)),
        emotion=emotion, level_dbfs=dbfs(sa.samples), peak_dbfs=peak_dbfs(sa.samples), **fields,
    )
    return segment, points


def audio_events(segments: Sequence[Segment]) -> tuple[AudioEvent, ...]:
    """SenseVoice's event tags of each segment as audio events on the call's time line."""
    return tuple(AudioEvent(type=ev, start_ms=s.start_ms, end_ms=s.end_ms, channel=s.channel, role=s.role,
                            segment_id=s.id) for s in segments for ev in s.asr_events)


def tone_events(tracks: Sequence[Track]) -> tuple[AudioEvent, ...]:
    """Ringback, busy, dial and DTMF tones of each track (``callsense.analysis.tones``) as audio events:
    tones are not speech, so VAD never hands them to SenseVoice."""
    from callsense.analysis.tones import detect_tones

    return tuple(AudioEvent(type=t.type, start_ms=t.start_ms, end_ms=t.end_ms, channel=tr.channel, role=tr.role)
                 for tr in tracks for t in detect_tones(tr.samples, SAMPLE_RATE))


def call_emotion(segments: Sequence[Segment], timeline: Sequence[TimelinePoint], model: str | None,
                 options: EmotionOptions, duration_ms: int, *, head: str | None = None) -> CallEmotion | None:
    """The call's emotion part (timeline and per-role aggregates), or None when no segment has emotion."""
    if not any(s.emotion for s in segments):
        return None
    roles = tuple(role_emotions(segments, duration_ms=duration_ms, timeline=timeline))
    return CallEmotion(model=model, labels=EMOTION_NAMES, window_ms=options.window_ms, hop_ms=options.hop_ms,
                       timeline=tuple(timeline), roles=roles, masked=tuple(options.masked),
                       weights=dict(options.weights), head=head)
