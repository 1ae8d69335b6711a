"""emotion2vec+ engine on the onnx runtime with tiny forged models (no torch needed)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from callsense.engines import registry
from callsense.engines.base import EmotionEngine, EmotionOptions, SegmentAudio
from callsense.engines.emotion2vec import ensure_onnx
from callsense.engines.emotion2vec.head import (
    FRAME_MS,
    Head,
    frame_count,
    level_dbfs,
    parse_token_line,
    read_tokens,
    window_spans,
)
from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx
from callsense.errors import ModelFormatError, ModelNotFoundError, UsageError
from callsense.labels import EMOTION_NAMES, EMOTIONS
from callsense.testing.forge_emotion2vec import TOKENS, forge_onnx

SR = 16000


@pytest.fixture(scope="session")
def angry_dir(tmp_path_factory) -> Path:
    return forge_onnx(tmp_path_factory.mktemp("e2v") / "onnx", "tiny", label="angry", int8=True)


@pytest.fixture(scope="session")
def plain_dir(tmp_path_factory) -> Path:
    return forge_onnx(tmp_path_factory.mktemp("e2v-plain") / "onnx", "tiny", seed=3)


@pytest.fixture
def engine(angry_dir) -> Emotion2vecOnnx:
    return Emotion2vecOnnx(angry_dir, int8=False, num_threads=1)


def noise(seconds: float, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SR)) * amp).astype(np.float32)


def seg(samples: np.ndarray, start_ms: int = 0, sid: str = "s1") -> SegmentAudio:
    return SegmentAudio(id=sid, samples=samples, start_ms=start_ms, role="customer", channel=1)


class CountingSession:
    """Wraps an onnxruntime session and counts forward passes (``run`` calls)."""

    def __init__(self, inner):
        self.inner, self.runs = inner, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.inner.run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


# ---- labels -------------------------------------------------------------------------------------------
def test_label_order_names_and_display():
    assert EMOTION_NAMES == ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised",
                             "unknown")
    assert [e.zh_model for e in EMOTIONS] == ["生气", "厌恶", "恐惧", "开心", "中立", "其他", "难过", "吃惊", "<unk>"]
    assert all(e.emoji and e.zh and e.en for e in EMOTIONS)
    assert [parse_token_line(ln) for ln in TOKENS.splitlines()] == list(EMOTION_NAMES)
    assert TOKENS.splitlines()[0] == "生气/angry" and TOKENS.splitlines()[-1] == "<unk>"


def test_forged_directory_reads_back_in_model_order(angry_dir):
    assert read_tokens(angry_dir / "tokens.txt") == EMOTION_NAMES
    head = Head.load(angry_dir / "head.npz", angry_dir / "tokens.txt")
    assert head.weight.shape == (9, head.dim) and head.bias.shape == (9,)


# ---- scores ------------------------------------------------------------------------------------------------
def test_scores_sum_to_one_and_the_steered_label_wins(engine):
    outs = engine.score([seg(noise(2.0, i), 1000 * i, f"s{i}") for i in range(3)], EmotionOptions())
    for out in outs:
        assert len(out.scores) == 9
        assert math.isclose(sum(out.scores), 1.0, abs_tol=1e-9)
        assert EMOTION_NAMES[int(np.argmax(out.scores))] == "angry"
        assert out.reason is None and out.embedding is not None
        for w in out.windows:
            assert math.isclose(sum(w.scores), 1.0, abs_tol=1e-9)


def test_another_steered_label(tmp_path):
    eng = Emotion2vecOnnx(forge_onnx(tmp_path / "sad", "tiny", label="sad"))
    out = eng.score([seg(noise(1.5))], EmotionOptions(granularity="utterance"))[0]
    assert EMOTION_NAMES[int(np.argmax(out.scores))] == "sad"


def test_masking_renormalises_the_rest(plain_dir):
    eng = Emotion2vecOnnx(plain_dir)
    s = [seg(noise(2.0, 7))]
    full = np.array(eng.score(s, EmotionOptions())[0].scores)
    masked_out = eng.score(s, EmotionOptions(masked=("angry", "unknown")))[0]
    masked = np.array(masked_out.scores)
    keep = [i for i, n in enumerate(EMOTION_NAMES) if n not in ("angry", "unknown")]
    assert masked[EMOTION_NAMES.index("angry")] == 0.0 and masked[EMOTION_NAMES.index("unknown")] == 0.0
    assert math.isclose(masked.sum(), 1.0, abs_tol=1e-9)
    np.testing.assert_allclose(masked[keep], full[keep] / full[keep].sum(), rtol=1e-9)
    for w in masked_out.windows:
        assert w.scores[0] == 0.0 and math.isclose(sum(w.scores), 1.0, abs_tol=1e-9)


def test_masking_rejects_unknown_names_and_everything(engine):
    with pytest.raises(UsageError, match="valid: angry"):
        engine.score([seg(noise(1.0))], EmotionOptions(masked=("furious",)))
    with pytest.raises(UsageError, match="at least one"):
        engine.score([seg(noise(1.0))], EmotionOptions(masked=EMOTION_NAMES))


# ---- timeline ----------------------------------------------------------------------------------------------
def test_timeline_length_and_alignment_on_the_call_time_line(engine):
    start, dur_ms = 12_340, 3_100
    out = engine.score([seg(noise(dur_ms / 1000), start)], EmotionOptions())[0]
    w = out.windows
    # full 1 s windows every 250 ms from the segment start, plus one aligned to the segment end
    assert len(w) == 1 + math.ceil((dur_ms - 1000) / 250)
    assert w[0].start_ms == start and w[-1].end_ms == start + dur_ms
    assert all(x.end_ms - x.start_ms == 1000 for x in w)
    assert [b.start_ms - a.start_ms for a, b in itertools.pairwise(w[:-1])] == [250] * (len(w) - 2)


def test_timeline_window_and_hop_are_configurable(engine):
    out = engine.score([seg(noise(2.0), 500)], EmotionOptions(window_ms=500, hop_ms=100))[0]
    assert len(out.windows) == 1 + (2000 - 500) // 100
    assert out.windows[1].start_ms - out.windows[0].start_ms == 100
    short = engine.score([seg(noise(0.8), 500)], EmotionOptions())[0]
    assert [(x.start_ms, x.end_ms) for x in short.windows] == [(500, 1300)]


def test_windows_pool_frames_and_utterance_is_the_mean_of_all_frames(engine):
    x = np.concatenate([noise(1.0, 1, amp=0.5), noise(1.0, 2, amp=0.01)])
    out = engine.score([seg(x)], EmotionOptions())[0]
    frames = engine.features([x])[0]
    assert frames.shape[0] == frame_count(len(x)) == 99  # 50 frames/s
    np.testing.assert_allclose(out.scores, engine.head.scores(frames.mean(0)), atol=1e-6)
    np.testing.assert_allclose(out.embedding, frames.mean(0), atol=1e-6)
    first = frames[: 1000 // FRAME_MS].mean(0)
    np.testing.assert_allclose(out.windows[0].scores, engine.head.scores(first), atol=1e-6)
    assert not np.allclose(out.windows[0].scores, out.windows[-1].scores)  # local, not the utterance copied


def test_one_forward_pass_feeds_scores_and_timeline(angry_dir):
    eng = Emotion2vecOnnx(angry_dir, max_batch=1)
    eng.session = CountingSession(eng.session)
    out = eng.score([seg(noise(3.0))], EmotionOptions(granularity="frame"))[0]
    assert eng.session.runs == 1 and len(out.windows) > 1 and out.embedding is not None
    eng.score([seg(noise(1.0, i), sid=f"s{i}") for i in range(4)] + [seg(noise(0.2), sid="short")], EmotionOptions())
    assert eng.session.runs == 1 + 4  # the too-short segment costs nothing


def test_granularity_utterance_and_no_embeddings(engine):
    out = engine.score([seg(noise(1.5))], EmotionOptions(granularity="utterance", embeddings=False))[0]
    assert out.windows == () and out.embedding is None


# ---- batching ----------------------------------------------------------------------------------------------
def test_batched_equals_one_by_one(angry_dir):
    segs = [seg(noise(s, i), 1000 * i, f"s{i}") for i, s in enumerate([1.0, 1.1, 2.3, 1.05, 2.5, 0.9])]
    one = Emotion2vecOnnx(angry_dir, int8=False, max_batch=1)
    many = Emotion2vecOnnx(angry_dir, int8=False, max_batch=8)
    a, b = one.score(segs, EmotionOptions()), many.score(segs, EmotionOptions())
    assert many.forward_calls < one.forward_calls == len(segs)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-4)
        np.testing.assert_allclose(x.embedding, y.embedding, atol=1e-4)
        assert [w.start_ms for w in x.windows] == [w.start_ms for w in y.windows]


def test_int8_never_batches(angry_dir):
    # dynamic int8 scales activations over the whole batch: batching would make results depend on neighbours
    eng = Emotion2vecOnnx(angry_dir, int8=True, max_batch=8)
    eng.score([seg(noise(1.0, i), sid=f"s{i}") for i in range(3)], EmotionOptions())
    assert eng.forward_calls == 3


def test_batch_plan_groups_similar_lengths(angry_dir):
    eng = Emotion2vecOnnx(angry_dir, int8=False, max_batch=3, max_pad_ratio=1.25)
    plan = eng.plan_batches([16000, 80000, 17000, 16500, 81000, 15000])
    assert sorted(i for b in plan for i in b) == list(range(6))
    assert all(len(b) <= 3 for b in plan)
    lengths = [16000, 80000, 17000, 16500, 81000, 15000]
    for b in plan:
        assert max(lengths[i] for i in b) <= 1.25 * min(lengths[i] for i in b)


# ---- conditioning ------------------------------------------------------------------------------------------
def test_too_short_is_unknown_with_a_reason_not_a_guess(engine):
    for n in (0, 100, int(0.3 * SR)):
        out = engine.score([seg(noise(n / SR) if n else np.zeros(0, np.float32), 2000)], EmotionOptions())[0]
        assert out.reason == "too_short" and "too_short" in out.flags
        assert out.scores[EMOTION_NAMES.index("unknown")] == 1.0 and sum(out.scores) == 1.0
        assert out.embedding is None
        assert len(out.windows) == 1 and out.windows[0].start_ms == 2000
    longer = engine.score([seg(noise(0.3))], EmotionOptions(min_duration_ms=200))[0]
    assert longer.reason is None


def test_quiet_and_clipped_segments_are_flagged_but_scored(engine):
    quiet = noise(1.5, amp=1e-4)
    assert level_dbfs(quiet) < -50
    out = engine.score([seg(quiet)], EmotionOptions())[0]
    assert "low_level" in out.flags and out.reason is None and out.embedding is not None
    square = np.sign(np.sin(np.arange(SR) * 2 * np.pi * 200 / SR)).astype(np.float32)
    out = engine.score([seg(square)], EmotionOptions())[0]
    assert "clipped" in out.flags and "low_level" not in out.flags
    normal = engine.score([seg(noise(1.5))], EmotionOptions())[0]
    assert normal.flags == ()


# ---- int8, files, registry, first use --------------------------------------------------------------------
def test_int8_keeps_label_and_embedding(angry_dir):
    q = Emotion2vecOnnx(angry_dir)  # prefers int8 when present
    f = Emotion2vecOnnx(angry_dir, int8=False)
    assert q.model_path.name == "model.int8.onnx" and f.model_path.name == "model.onnx"
    s = [seg(noise(2.0, 5))]
    a, b = q.score(s, EmotionOptions())[0], f.score(s, EmotionOptions())[0]
    assert np.argmax(a.scores) == np.argmax(b.scores)
    assert float(a.embedding @ b.embedding / np.linalg.norm(a.embedding) / np.linalg.norm(b.embedding)) >= 0.999


def test_incomplete_directory_says_what_to_do(tmp_path, angry_dir):
    d = tmp_path / "m"
    d.mkdir()
    for name in ("head.npz", "tokens.txt", "emotion2vec.json"):
        (d / name).write_bytes((angry_dir / name).read_bytes())
    with pytest.raises(ModelFormatError, match="export"):
        Emotion2vecOnnx(d)
    (d / "head.npz").write_bytes(b"junk")
    with pytest.raises(ModelFormatError, match="head"):
        Emotion2vecOnnx(d)


def test_registry_creates_the_onnx_engine(angry_dir):
    eng = registry.create("emotion", "onnx", angry_dir, num_threads=1, device="cpu")
    assert isinstance(eng, EmotionEngine)
    assert eng.info.runtime == "onnx" and eng.info.task == "emotion"


def test_ensure_onnx_uses_an_installed_export(tmp_path, angry_dir):
    from callsense.engines.manager import ModelManager

    root = tmp_path / "models"
    (root / "emotion2vec-plus-base").mkdir(parents=True)
    (root / "emotion2vec-plus-base" / "onnx").symlink_to(angry_dir, target_is_directory=True)
    mm = ModelManager(home=tmp_path / "home", model_dirs=[root], allow_download=False)
    assert ensure_onnx(mm, "emotion2vec_plus_base") == root / "emotion2vec-plus-base" / "onnx"


def test_ensure_onnx_offline_names_the_ways_forward(tmp_path):
    """No ONNX model, no checkpoint, downloads off: pull (networked) or import (air-gapped), no torch."""
    from callsense.engines.manager import ModelManager

    mm = ModelManager(home=tmp_path / "home", model_dirs=[], allow_download=False)
    with pytest.raises(ModelNotFoundError) as err:
        ensure_onnx(mm, "emotion2vec-plus-large")
    hint = err.value.hint
    assert "callsense models pull emotion2vec-plus-large" in hint and "callsense models import DIR" in hint
    assert "torch" not in hint and "downloads are off" in err.value.message


def test_window_spans_cover_the_segment():
    for dur in (999, 1000, 1001, 2250, 7777):
        spans = window_spans(dur, 1000, 250)
        assert spans[0][0] == 0 and spans[-1][1] == dur
        assert all(e - s == min(1000, dur) for s, e in spans)
    with pytest.raises(UsageError):
        window_spans(1000, 0, 250)


def test_session_runs_without_the_cpu_arena_and_scores_are_unchanged(angry_dir, monkeypatch):
    """Memory (issue 18): no arena keeping the largest segment's activations, and a stage end hands freed
    pages back; the scores are bit-identical to a session with the arena."""
    from callsense.engines import memory

    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1) or True)
    eng = Emotion2vecOnnx(angry_dir, int8=True, num_threads=1)
    assert eng.session.get_session_options().enable_cpu_mem_arena is False
    segments = [seg(noise(s, seed=i), sid=f"s{i}") for i, s in enumerate((1.2, 3.0, 0.7))]
    ours = eng.score(segments, EmotionOptions())
    assert calls, "score() released nothing at the end of the stage"
    monkeypatch.setenv("CALLSENSE_ORT_ARENA", "1")  # the same sessions (split or whole), with the arena
    with_arena = Emotion2vecOnnx(angry_dir, int8=True, num_threads=1)
    assert type(with_arena.session) is type(eng.session)
    assert with_arena.session.get_session_options().enable_cpu_mem_arena is True
    theirs = with_arena.score(segments, EmotionOptions())
    assert [o.scores for o in ours] == [o.scores for o in theirs]
    assert all(np.array_equal(a.embedding, b.embedding) for a, b in zip(ours, theirs) if a.embedding is not None)
