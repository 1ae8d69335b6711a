"""SenseVoice on FunASR, the ONNX export, and the agreement of both runtimes (tiny forge models)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from callsense.engines.base import AsrOptions, SegmentAudio
from callsense.errors import ModelFormatError, UsageError

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from callsense.engines.sensevoice.export import export_onnx
    from callsense.testing.forge_sensevoice import forge_funasr

    root = tmp_path_factory.mktemp("svf")
    forge_funasr(root / "funasr", "tiny", lang="yue", emotion="HAPPY", event="BGM", seed=5)
    export_onnx(root / "funasr", root / "onnx", int8=True)
    return {"funasr": root / "funasr", "onnx": root / "onnx"}


@pytest.fixture(scope="module")
def funasr_engine(models):
    from callsense.engines.sensevoice.funasr import SenseVoiceFunasr

    return SenseVoiceFunasr(models["funasr"], num_threads=1)


def _tones(specs) -> list[SegmentAudio]:
    segs = []
    for k, (freq, dur) in enumerate(specs):
        t = np.arange(int(dur * 16000)) / 16000
        x = 0.2 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * freq * 2.7 * t)
        segs.append(SegmentAudio(f"s{k}", x.astype(np.float32), start_ms=10_000 * k + 250))
    return segs


SEGS = _tones([(220, 1.0), (440, 2.0), (700, 1.5), (1000, 3.0), (1500, 0.5), (3300, 2.2)])


def test_funasr_engine_tags_itn_language(funasr_engine):
    out = funasr_engine.transcribe(SEGS[:2], AsrOptions(use_itn=True, both_itn=True))
    for t in out:
        assert (t.language, t.emotion, t.events) == ("yue", "HAPPY", ("BGM",))
        assert t.raw_tags == "<|yue|><|HAPPY|><|BGM|><|withitn|>"
        assert t.status == "ok" and t.text and t.text_no_itn
        assert t.tokens[0].start_ms >= SEGS[0].start_ms
    forced = funasr_engine.transcribe(SEGS[:1], AsrOptions(language="en", use_itn=False))[0]
    assert forced.language == "en" and forced.raw_tags.endswith("<|woitn|>") and forced.itn is False
    with pytest.raises(UsageError):
        funasr_engine.transcribe(SEGS[:1], AsrOptions(language="zn"))


def test_funasr_timestamps_on_call_time_line(funasr_engine):
    t = funasr_engine.transcribe(SEGS[3:4], AsrOptions())[0]
    starts = [w.start_ms for w in t.tokens]
    seg = SEGS[3]
    assert starts and starts == sorted(starts)
    assert seg.start_ms <= starts[0] and starts[-1] <= seg.start_ms + len(seg.samples) // 16


def test_funasr_too_short_and_ban_emo_unk(tmp_path):
    from callsense.engines.sensevoice.funasr import SenseVoiceFunasr
    from callsense.testing.forge_sensevoice import forge_funasr

    forge_funasr(tmp_path, "tiny", emotion="EMO_UNKNOWN")
    engine = SenseVoiceFunasr(tmp_path, num_threads=1)
    segs = [SegmentAudio("a", np.zeros(300, np.float32), 0), SEGS[1]]
    short, plain = engine.transcribe(segs, AsrOptions())
    assert short.status == "too_short" and short.text == ""
    assert plain.emotion == "EMO_UNKNOWN"
    banned = engine.transcribe(segs[1:], AsrOptions(ban_emo_unk=True))[0]
    assert banned.emotion == "NEUTRAL"


def test_funasr_dir_checks(models, tmp_path):
    from callsense.engines.sensevoice.funasr import SenseVoiceFunasr

    d = shutil.copytree(models["funasr"], tmp_path / "a")
    (d / "am.mvn").unlink()
    with pytest.raises(ModelFormatError, match="am.mvn"):
        SenseVoiceFunasr(d)
    d = shutil.copytree(models["funasr"], tmp_path / "b")
    shutil.copy(models["onnx"] / "tokens.txt", d / "tokens.txt")
    with pytest.raises(ModelFormatError, match="tokens.txt"):
        SenseVoiceFunasr(d)


def _greedy(logits: np.ndarray, length: int) -> list[int]:
    ids = logits[:length].argmax(-1)
    out, prev = [], -1
    for i in ids:
        if i != prev and i != 0:
            out.append(int(i))
        prev = i
    return out


def test_export_parity_with_funasr(models):
    """The exported graph decodes the same tokens as FunASR's own inference on the same features."""
    import onnxruntime as ort
    import torch
    from funasr import AutoModel

    am = AutoModel(model=str(models["funasr"]), disable_update=True, device="cpu", ncpu=1, log_level="ERROR",
                   disable_pbar=True)
    tokenizer = am.kwargs["tokenizer"]
    sess32 = ort.InferenceSession(str(models["onnx"] / "model.onnx"), providers=["CPUExecutionProvider"])
    sess8 = ort.InferenceSession(str(models["onnx"] / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    agree8 = []
    for n_frames in (1, 7, 33, 150):
        feats = rng.normal(0, 1, (1, n_frames, 560)).astype(np.float32)
        for language, lid, itn in (("auto", 0, True), ("ko", 12, False)):
            ref, _ = am.model.inference(torch.from_numpy(feats.copy()), torch.tensor([n_frames]), key=["k"],
                                        tokenizer=tokenizer, frontend=None, data_type="fbank", language=language,
                                        use_itn=itn, device="cpu")
            inputs = {"x": feats, "x_length": np.array([n_frames], np.int32), "language": np.array([lid], np.int32),
                      "text_norm": np.array([14 if itn else 15], np.int32)}
            logits = sess32.run(None, inputs)[0][0]
            assert logits.shape == (n_frames + 4, 25055)
            assert tokenizer.decode(_greedy(logits, n_frames + 4)) == ref[0]["text"]
            logits8 = sess8.run(None, inputs)[0][0]
            assert _greedy(logits8, 4)[:4] == _greedy(logits, 4)[:4]  # the tags survive int8
            agree8.append(float(np.mean(logits8.argmax(-1) == logits.argmax(-1))))
    assert np.mean(agree8) > 0.7, agree8


def test_export_batch_matches_single(models):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(models["onnx"] / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    lengths = [20, 57, 9]
    x = np.zeros((3, max(lengths), 560), np.float32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.normal(0, 1, (n, 560))
    batch = sess.run(None, {"x": x, "x_length": np.array(lengths, np.int32), "language": np.zeros(3, np.int32),
                            "text_norm": np.full(3, 14, np.int32)})[0]
    for i, n in enumerate(lengths):
        one = sess.run(None, {"x": x[i:i + 1, :n], "x_length": np.array([n], np.int32),
                              "language": np.zeros(1, np.int32), "text_norm": np.full(1, 14, np.int32)})[0]
        np.testing.assert_allclose(batch[i, :n + 4], one[0], atol=2e-3, rtol=1e-3)


def test_onnx_and_funasr_runtimes_agree(models, funasr_engine):
    """Same weights, same audio: same tags and text; timestamps within one LFR frame.

    Stationary tones are used because the front-ends differ at segment edges (sherpa-onnx applies
    LFR without FunASR's 3-frame left padding), which can change edge frames on a random model."""
    from callsense.engines.sensevoice.onnx import SenseVoiceOnnx

    onnx32 = SenseVoiceOnnx(models["onnx"], num_threads=1, precision="fp32")
    onnx8 = SenseVoiceOnnx(models["onnx"], num_threads=1)
    for options in (AsrOptions(), AsrOptions(language="ja", use_itn=False)):
        ref = funasr_engine.transcribe(SEGS, options)
        got = onnx32.transcribe(SEGS, options)
        got8 = onnx8.transcribe(SEGS, options)
        assert len({t.text for t in ref}) > 3
        for a, b, c in zip(ref, got, got8):
            assert (a.raw_tags, a.language, a.emotion, a.events, a.text) == \
                   (b.raw_tags, b.language, b.emotion, b.events, b.text)
            assert [w.token for w in a.tokens] == [w.token for w in b.tokens]
            assert all(abs(x.start_ms - y.start_ms) <= 60 for x, y in zip(a.tokens, b.tokens))
            assert (c.raw_tags, c.language, c.emotion, c.events) == (a.raw_tags, a.language, a.emotion, a.events)


def test_export_refuses_bad_checkpoints(models, tmp_path):
    import yaml

    from callsense.engines.sensevoice.export import export_onnx

    d = shutil.copytree(models["funasr"], tmp_path / "nopt")
    (d / "model.pt").unlink()
    with pytest.raises(ModelFormatError, match="model.pt"):
        export_onnx(d, tmp_path / "out1")
    d = shutil.copytree(models["funasr"], tmp_path / "mismatch")
    cfg = yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))
    cfg["encoder_conf"]["output_size"] = 32
    (d / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(ModelFormatError, match="does not match config.yaml"):
        export_onnx(d, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()  # nothing half-written
