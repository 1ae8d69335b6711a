"""The stages work one utterance at a time, and composed they give what Analyzer.run gives."""

from __future__ import annotations

from pathlib import Path

from callsense.audio.decode import load_audio
from callsense.pipeline import AnalyzeOptions, Analyzer, stages

CALL = Path(__file__).resolve().parent.parent / "examples" / "call_stereo.wav"


def test_segment_by_segment_equals_the_file_pipeline(with_models):
    analyzer = Analyzer(AnalyzeOptions(num_threads=1, run_qa=False))
    whole = analyzer.run(CALL).result
    o = analyzer.options
    audio = load_audio(CALL, o.audio)
    spans, speech_ms = stages.speech_segments(audio, o.vad)
    assert [s.id for s in spans] == [s.id for s in whole.segments]
    assert speech_ms == {t.channel: t.speech_ms for t in whole.tracks}

    # one utterance at a time, as a live call would feed them
    asr, emo = analyzer.asr_engine(), analyzer.emotion_engine()
    for span, expected in zip(spans, whole.segments):
        (text,) = stages.transcribe_segments(asr, [span], o.asr)
        (scores,) = stages.score_emotions(emo, [span], o.emotion)
        segment, points = stages.build_segment(span, text, scores, embedding_index=expected.emotion.embedding_index)
        assert segment == expected
        assert points == tuple(p for p in whole.emotion.timeline if p.segment_id == span.id)


def test_one_channel_on_its_own(with_models):
    o = AnalyzeOptions()
    audio = load_audio(CALL, o.audio)
    track = audio.tracks[1]
    spans = stages.speech_spans(track, o.vad)
    pieces = [stages.cut_segment(track, a, b, f"c{i}") for i, (a, b) in enumerate(spans)]
    assert pieces and all(p.channel == track.channel and p.role == track.role for p in pieces)
    assert [(p.start_ms, p.start_ms + len(p.samples) * 1000 // 16000) for p in pieces] == \
        spans
    assert stages.transcribe_segments(object(), [], o.asr) == []  # nothing to do: the engine is not called
