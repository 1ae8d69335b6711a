"""How the Analyzer loads its engines: once, side by side, in the background on a cold start."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from callsense.engines import registry
from callsense.errors import ModelNotFoundError
from callsense.pipeline.analyzer import Analyzer
from callsense.pipeline.options import AnalyzeOptions

CALL = Path(__file__).resolve().parents[1] / "examples" / "call_stereo.wav"
LOAD_S = 0.4


@pytest.fixture
def slow_loads(monkeypatch):
    """registry.create made slow (as full-size models are), recording when and on which thread each ran."""
    real = registry.create
    calls: list[dict] = []
    lock = threading.Lock()

    def create(task, runtime, path, **kw):
        start = time.perf_counter()
        time.sleep(LOAD_S * (2 if task == "asr" else 1))  # SenseVoice takes longer to load, as in real life
        engine = real(task, runtime, path, **kw)
        with lock:
            calls.append({"task": task, "start": start, "end": time.perf_counter(),
                          "thread": threading.current_thread().name})
        return engine

    monkeypatch.setattr(registry, "create", create)
    return calls


def test_a_cold_run_loads_both_models_side_by_side_while_decoding(with_models, slow_loads):
    decode_started: list[float] = []

    def clock(step, artifact=None, **_):
        if step == "decode" and artifact is None and not decode_started:
            decode_started.append(time.perf_counter())

    analyzer = Analyzer(AnalyzeOptions(num_threads=1, run_qa=False))
    result = analyzer.run(CALL, hooks=[clock]).result
    assert result.segments and all(s.emotion is not None for s in result.segments)
    by_task = {c["task"]: c for c in slow_loads}
    assert set(by_task) == {"asr", "emotion"}
    assert all(c["thread"] == "callsense-load" for c in slow_loads)
    asr, emo = by_task["asr"], by_task["emotion"]
    assert asr["start"] < emo["end"] and emo["start"] < asr["end"]  # the two loads overlapped
    assert decode_started and decode_started[0] < min(asr["end"], emo["end"])  # decoding did not wait for them


def test_the_engine_ready_first_runs_first_and_the_result_does_not_depend_on_it(with_models, slow_loads):
    steps: list[str] = []

    def order(step, artifact=None, **_):
        if artifact is None and not _ and step not in steps:
            steps.append(step)

    analyzer = Analyzer(AnalyzeOptions(num_threads=1, run_qa=False))
    cold = analyzer.run(CALL, hooks=[order]).result
    assert steps == ["decode", "vad", "emotion", "asr"]  # emotion2vec was loaded first: it scored first
    steps.clear()
    warm = analyzer.run(CALL, hooks=[order]).result
    assert steps == ["decode", "vad", "asr", "emotion"]
    assert cold.segments == warm.segments
    assert [m.task for m in cold.processing.models] == [m.task for m in warm.processing.models]


def test_a_warm_analyzer_never_loads_again(with_models, slow_loads):
    analyzer = Analyzer(AnalyzeOptions(num_threads=1, run_qa=False)).load()
    assert sorted(c["task"] for c in slow_loads) == ["asr", "emotion"]
    analyzer.run(CALL)
    analyzer.derive(AnalyzeOptions(num_threads=1, run_qa=False, run_emotion=False)).run(CALL)
    assert len(slow_loads) == 2


def test_load_builds_the_sensevoice_recognizer_up_front(with_models):
    engine = Analyzer(AnalyzeOptions(num_threads=1)).load().asr_engine()
    assert len(engine._recognizers) == 1  # built by prepare(), not left for the first segment


def test_a_missing_model_still_fails_at_its_stage_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(tmp_path))  # empty: no model anywhere
    analyzer = Analyzer(AnalyzeOptions(num_threads=1))
    for _ in range(2):  # the background loader's error reaches the caller, and is not swallowed next time
        with pytest.raises(ModelNotFoundError, match="sensevoice-small"):
            analyzer.run(CALL)
