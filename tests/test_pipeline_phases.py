"""Analyzer.run is its four phases (prepare, transcribe, score, assemble): called one by one, across a
pickle as the Ray batch does, they give the same result."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

from callsense.pipeline import AnalyzeOptions, Analyzer
from callsense.pipeline.phases import Prepared, StageRun

CALL = Path(__file__).resolve().parents[1] / "examples" / "call_stereo.wav"


def _same(a, b):
    """Two results of the same call, but for the call id, start time and timings."""
    def norm(r):
        return replace(r, call_id="", processing=replace(r.processing, started_at="", timings_ms={}))
    return norm(a) == norm(b)


def test_the_phases_one_by_one_and_pickled_give_what_run_gives(with_models):
    analyzer = Analyzer(AnalyzeOptions(num_threads=1))
    whole = analyzer.run(CALL)
    prepared = pickle.loads(pickle.dumps(analyzer.prepare(CALL)))  # a decode task's output, as the driver gets it
    assert isinstance(prepared, Prepared) and prepared.pieces and set(prepared.timings_ms) >= {"decode", "vad"}
    segs = pickle.loads(pickle.dumps(prepared.segments()))  # what the model actors get
    runs = [pickle.loads(pickle.dumps(analyzer.transcribe(segs))), pickle.loads(pickle.dumps(analyzer.score(segs)))]
    assert [r.stage for r in runs] == ["asr", "emotion"] and all(r.ran and len(r.outputs) == len(segs) for r in runs)
    parts = analyzer.assemble(prepared, runs)
    assert _same(parts.result, whole.result)
    assert (parts.embeddings == whole.embeddings).all()
    assert list(parts.result.processing.timings_ms) == ["decode", "vad", "asr", "emotion", "qa"]


def test_emotion2vec_missing_is_a_skipped_run_the_result_lists(with_models, tmp_path, monkeypatch):
    only_asr = tmp_path / "models"
    only_asr.mkdir()
    (only_asr / "sensevoice-small").symlink_to(with_models / "sensevoice-small", target_is_directory=True)
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(only_asr))
    analyzer = Analyzer(AnalyzeOptions(num_threads=1, run_qa=False))
    prepared = analyzer.prepare(CALL)
    emo = analyzer.score(prepared.segments())
    assert emo == StageRun("emotion", None, skipped=emo.skipped) and not emo.ran and emo.skipped is not None
    result = analyzer.assemble(prepared, [analyzer.transcribe(prepared.segments()), emo]).result
    assert (result.emotion is None or result.emotion.model is None) and "emotion2vec" in {s.feature for s in result.processing.skipped}
    assert _same(result, analyzer.run(CALL).result)
