"""emotion2vec+ with torch: the real FunASR model class (tiny, random), its ONNX export, runtime parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callsense.engines.base import EmotionOptions, SegmentAudio
from callsense.labels import EMOTION_NAMES

pytestmark = pytest.mark.torch
SR = 16000


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    from callsense.testing.forge_emotion2vec import forge_funasr

    return forge_funasr(tmp_path_factory.mktemp("e2v-funasr") / "funasr", "tiny", label="sad", seed=1)


@pytest.fixture(scope="session")
def exported(checkpoint, tmp_path_factory) -> Path:
    from callsense.engines.emotion2vec.export import export_onnx

    return export_onnx(checkpoint, tmp_path_factory.mktemp("e2v-export") / "onnx", int8=True)


@pytest.fixture(scope="session")
def funasr_engine(checkpoint):
    from callsense.engines.emotion2vec.funasr import Emotion2vecFunasr

    return Emotion2vecFunasr(checkpoint, device="cpu", num_threads=1)


def segments() -> list[SegmentAudio]:
    rng = np.random.default_rng(11)
    lens = [1.0, 1.15, 2.6, 0.7, 4.1]
    return [SegmentAudio(f"s{i}", (rng.standard_normal(int(s * SR)) * 0.1).astype(np.float32), 5000 * i)
            for i, s in enumerate(lens)]


def cosine(a, b) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_export_runs_at_several_lengths_and_matches_funasr_features(checkpoint, exported):
    """The ALiBi trap: a traced per-length cache would fail at any length but the traced one."""
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F

    from callsense.engines.emotion2vec.export import load_checkpoint
    from callsense.engines.emotion2vec.head import frame_count

    model, _, _ = load_checkpoint(checkpoint)
    sess = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for seconds in (0.5, 2.0, 3.3, 9.1):  # 2.0 s is the traced length
        x = (rng.standard_normal(int(seconds * SR)) * 0.1).astype(np.float32)
        got = sess.run(None, {"samples": x[None], "lengths": np.array([len(x)], np.int64)})[0][0]
        with torch.no_grad():  # FunASR's own inference path, not our re-implementation
            src = torch.from_numpy(x)
            ref = model.extract_features(F.layer_norm(src, src.shape).view(1, -1))["x"][0].numpy()
        assert got.shape == ref.shape == (frame_count(len(x)), ref.shape[1])
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_runtime_parity_fp32(funasr_engine, exported):
    from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx

    onnx = Emotion2vecOnnx(exported, int8=False)
    segs = segments()
    a, b = funasr_engine.score(segs, EmotionOptions()), onnx.score(segs, EmotionOptions())
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-4)
        assert len(x.windows) == len(y.windows) > 0
        for wx, wy in zip(x.windows, y.windows):
            assert (wx.start_ms, wx.end_ms) == (wy.start_ms, wy.end_ms)
            np.testing.assert_allclose(wx.scores, wy.scores, atol=1e-4)
        assert cosine(x.embedding, y.embedding) > 0.99999
        assert EMOTION_NAMES[int(np.argmax(x.scores))] == "sad"  # the forge's steered head


def test_runtime_parity_int8(funasr_engine, exported):
    from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx

    q = Emotion2vecOnnx(exported, int8=True)
    assert q.model_path.name == "model.int8.onnx"
    segs = segments()
    for x, y in zip(funasr_engine.score(segs, EmotionOptions()), q.score(segs, EmotionOptions())):
        assert np.argmax(x.scores) == np.argmax(y.scores)
        assert cosine(x.embedding, y.embedding) >= 0.999


def test_funasr_own_scores_are_the_head_on_the_mean_frame(funasr_engine):
    x = segments()[2].samples
    raw = funasr_engine.generate(x)
    ours = funasr_engine.score([SegmentAudio("s", x, 0)], EmotionOptions(granularity="utterance"))[0]
    assert [lab.rsplit("/", 1)[-1] for lab in raw["labels"]][:8] == list(EMOTION_NAMES[:8])
    np.testing.assert_allclose(ours.scores, raw["scores"], atol=1e-5)
    np.testing.assert_allclose(ours.embedding, np.mean(raw["feats"], axis=0), atol=1e-5)


def test_funasr_one_forward_pass_per_segment(funasr_engine):
    before = funasr_engine.forward_calls
    segs = segments() + [SegmentAudio("short", np.zeros(1000, np.float32), 0)]
    outs = funasr_engine.score(segs, EmotionOptions(granularity="frame"))
    assert funasr_engine.forward_calls - before == len(segs) - 1
    assert outs[-1].reason == "too_short"


def test_padded_batches_equal_one_by_one_on_the_real_architecture(exported):
    """Padding is masked in the graph (positional convs and attention), so batching changes nothing."""
    from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx

    one = Emotion2vecOnnx(exported, int8=False, max_batch=1)
    many = Emotion2vecOnnx(exported, int8=False, max_batch=8, max_pad_ratio=10.0)
    segs = segments()
    a, b = one.score(segs, EmotionOptions()), many.score(segs, EmotionOptions())
    assert many.forward_calls == 1 and one.forward_calls == len(segs)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-4)
        np.testing.assert_allclose(x.embedding, y.embedding, atol=1e-4)
        for wx, wy in zip(x.windows, y.windows):
            np.testing.assert_allclose(wx.scores, wy.scores, atol=1e-4)


def test_first_use_converts_once_and_caches(tmp_path, checkpoint, monkeypatch):
    import callsense.engines.emotion2vec.convert as convert_mod
    from callsense.engines.emotion2vec import ensure_onnx
    from callsense.engines.manager import ModelManager

    root = tmp_path / "models"
    (root / "emotion2vec-plus-base").mkdir(parents=True)
    (root / "emotion2vec-plus-base" / "funasr").symlink_to(checkpoint, target_is_directory=True)
    mm = ModelManager(home=tmp_path / "home", model_dirs=[root], allow_download=False)
    calls = []
    real = convert_mod.convert_checkpoint
    monkeypatch.setattr(convert_mod, "convert_checkpoint", lambda *a, **k: calls.append(a) or real(*a, **k))
    path = ensure_onnx(mm, "emotion2vec-plus-base")
    assert path == tmp_path / "home" / "models" / "emotion2vec-plus-base" / "onnx"
    assert {"model.onnx", "model.int8.onnx", "head.npz", "tokens.txt"} <= {p.name for p in path.iterdir()}
    assert ensure_onnx(mm, "emotion2vec-plus-base") == path
    assert len(calls) == 1


def test_forge_onnx_via_export_is_steerable(tmp_path):
    from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx
    from callsense.testing.forge_emotion2vec import forge_onnx

    d = forge_onnx(tmp_path / "onnx", "tiny", via="export", label="happy")
    out = Emotion2vecOnnx(d).score(segments()[:1], EmotionOptions())[0]
    assert EMOTION_NAMES[int(np.argmax(out.scores))] == "happy"


def test_checkpoint_with_prefix_and_leftovers_loads(checkpoint, tmp_path):
    """Hub checkpoints may wrap weights ("model"), prefix them ("module.") and carry pre-training leftovers."""
    import shutil

    import torch

    from callsense.engines.emotion2vec.export import load_checkpoint
    from callsense.errors import ModelFormatError

    d = tmp_path / "ckpt"
    shutil.copytree(checkpoint, d)
    state = torch.load(d / "model.pt")
    wrapped = {"model": {f"module.{k}": v for k, v in state.items()} | {"_ema.extra": torch.zeros(1)}}
    torch.save(wrapped, d / "model.pt")
    model, conf, labels = load_checkpoint(d)
    assert labels == EMOTION_NAMES and model.proj.weight.shape[0] == 9
    torch.save({k: v for k, v in state.items() if not k.startswith("blocks.")}, d / "model.pt")
    with pytest.raises(ModelFormatError, match="lacks"):
        load_checkpoint(d)
