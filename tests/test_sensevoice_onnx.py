"""SenseVoice on sherpa-onnx, on tiny steerable forge models (no torch)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from callsense.engines import registry
from callsense.engines.base import AsrEngine, AsrOptions, SegmentAudio
from callsense.engines.sensevoice.onnx import SenseVoiceOnnx
from callsense.engines.sensevoice.tags import MIN_SAMPLES, MS_PER_FRAME
from callsense.engines.sensevoice.validate import read_onnx_header
from callsense.errors import ModelFormatError, UsageError
from callsense.labels import SENSEVOICE_EMOTIONS, SENSEVOICE_EVENTS
from callsense.testing.forge_sensevoice import forge_onnx

TEXT = "I paid $20."
TEXT_NO_ITN = "i paid twenty dollars"


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, n).astype(np.float32)


@pytest.fixture(scope="module")
def steered(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sv") / "onnx"
    forge_onnx(d, "tiny", lang="ja", emotion="SAD", event="Laughter", text=TEXT, text_no_itn=TEXT_NO_ITN)
    return d


@pytest.fixture(scope="module")
def free(tmp_path_factory) -> Path:
    """No text steering: the text is a function of the audio."""
    d = tmp_path_factory.mktemp("sv") / "free"
    forge_onnx(d, "tiny", seed=3)
    return d


def test_registry_creates_an_asr_engine(steered):
    engine = registry.create("asr", "onnx", steered, num_threads=1)
    assert isinstance(engine, SenseVoiceOnnx)
    assert isinstance(engine, AsrEngine)
    assert engine.info.runtime == "onnx" and engine.info.path.endswith("model.int8.onnx")


def test_tags_text_and_itn(steered):
    engine = SenseVoiceOnnx(steered, num_threads=1)
    seg = SegmentAudio("s1", _noise(48000, 0), start_ms=0)
    with_itn, = engine.transcribe([seg], AsrOptions(use_itn=True))
    assert (with_itn.language, with_itn.emotion, with_itn.events) == ("ja", "SAD", ("Laughter",))
    assert with_itn.raw_tags == "<|ja|><|SAD|><|Laughter|><|withitn|>"
    assert with_itn.text == TEXT and with_itn.itn is True and with_itn.status == "ok"
    assert with_itn.text_no_itn is None
    no_itn, = engine.transcribe([seg], AsrOptions(use_itn=False))
    assert no_itn.text == TEXT_NO_ITN and no_itn.itn is False
    assert no_itn.raw_tags.endswith("<|woitn|>")
    both, = engine.transcribe([seg], AsrOptions(use_itn=True, both_itn=True))
    assert (both.text, both.text_no_itn) == (TEXT, TEXT_NO_ITN)


def test_language_forcing_and_auto(steered):
    engine = SenseVoiceOnnx(steered, num_threads=1)
    seg = SegmentAudio("s1", _noise(16000, 1), start_ms=0)
    assert engine.transcribe([seg], AsrOptions(language="auto"))[0].language == "ja"  # detected (steered)
    for code in ("zh", "en", "yue", "ko"):
        assert engine.transcribe([seg], AsrOptions(language=code))[0].language == code
    with pytest.raises(UsageError, match="zh"):
        engine.transcribe([seg], AsrOptions(language="zn"))


def test_timestamps_are_on_the_call_time_line(steered):
    engine = SenseVoiceOnnx(steered, num_threads=1)
    t, = engine.transcribe([SegmentAudio("s1", _noise(48000, 2), start_ms=83_250)], AsrOptions())
    # forge: piece k of "▁I ▁paid ▁$ 2 0 ." is emitted at LFR frame 2k; digits are words of their own
    step = 2 * MS_PER_FRAME
    assert [(w.token, w.start_ms) for w in t.tokens] == [
        ("I", 83_250), ("paid", 83_250 + step), ("$", 83_250 + 2 * step), ("2", 83_250 + 3 * step),
        ("0", 83_250 + 4 * step), (".", 83_250 + 5 * step)]


@pytest.mark.parametrize("emotion,event", list(zip(SENSEVOICE_EMOTIONS * 2, SENSEVOICE_EVENTS)))
def test_every_tag_through_the_engine(tmp_path, emotion, event):
    forge_onnx(tmp_path, "tiny", lang="yue", emotion=emotion, event=event, text="ok")
    t, = SenseVoiceOnnx(tmp_path, num_threads=1).transcribe([SegmentAudio("s", _noise(16000, 3), 0)], AsrOptions())
    assert (t.language, t.emotion, t.events, t.text) == ("yue", emotion, (event,), "ok")


def test_batch_decoding_equals_one_by_one(free):
    segs = [SegmentAudio(f"s{i}", _noise(n, i), start_ms=1000 * i)
            for i, n in enumerate([16000, 4000, 40000, 2000, 23000, 16000, 9000, 31000, 1500, 12000])]
    batched = SenseVoiceOnnx(free, num_threads=1, batch_size=4).transcribe(segs, AsrOptions())
    single = SenseVoiceOnnx(free, num_threads=1, batch_size=1).transcribe(segs, AsrOptions())
    assert batched == single
    assert len({t.text for t in batched}) > 5  # the texts really depend on the audio
    budget = SenseVoiceOnnx(free, num_threads=1, batch_size=8, batch_seconds=3.0)
    assert budget.transcribe(segs, AsrOptions()) == single


def test_batches_respect_the_audio_budget(free):
    """Memory grows with a batch's padded audio (CTC logits), so batches stop at the budget."""
    engine = SenseVoiceOnnx(free, num_threads=1, batch_size=4, batch_seconds=2.0)
    lengths = [16000, 4000, 40000, 2000, 23000, 16000, 9000, 31000, 1500, 12000]
    batches = engine.plan_batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # shortest first: a batch pads little
    for b in batches:
        assert len(b) <= 4
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 32000
    assert [40000] in [[lengths[i] for i in b] for b in batches]  # over the budget alone: it runs by itself
    assert len(SenseVoiceOnnx(free, num_threads=1, batch_size=4, batch_seconds=600).plan_batches(lengths)) == 3


def test_too_short_segments_are_marked_not_decoded(free):
    engine = SenseVoiceOnnx(free, num_threads=1)
    segs = [SegmentAudio("a", _noise(MIN_SAMPLES - 1, 0), 0), SegmentAudio("b", np.zeros(0, np.float32), 10),
            SegmentAudio("c", _noise(MIN_SAMPLES, 1), 20), SegmentAudio("d", _noise(16000, 2), 30)]
    out = engine.transcribe(segs, AsrOptions())
    assert [t.status for t in out[:2]] == ["too_short", "too_short"]
    assert out[0].text == "" and out[0].tokens == ()
    assert out[2].status in ("ok", "empty") and out[2].raw_tags.startswith("<|en|>")
    assert out[3].status == "ok"


def test_fast_header_reader_agrees_with_onnx(steered):
    header = read_onnx_header(steered / "model.int8.onnx")
    proto = onnx.load(str(steered / "model.int8.onnx"))
    assert header.metadata == {p.key: p.value for p in proto.metadata_props}
    assert [n for n, _ in header.inputs] == ["x", "x_length", "language", "text_norm"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite_metadata(path: Path, drop: str | None = None, **set_: str) -> None:
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props if p.key != drop}
    meta.update(set_)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(path))


def test_missing_tokens_file_is_detected(steered, tmp_path):
    d = _copy(steered, tmp_path / "m")
    (d / "tokens.txt").unlink()
    with pytest.raises(ModelFormatError, match="tokens.txt"):
        SenseVoiceOnnx(d)


@pytest.mark.parametrize("key", ["lfr_window_shift", "neg_mean", "with_itn", "lang_yue", "vocab_size"])
def test_missing_metadata_key_is_detected(steered, tmp_path, key):
    d = _copy(steered, tmp_path / "m")
    _rewrite_metadata(d / "model.int8.onnx", drop=key)
    with pytest.raises(ModelFormatError, match=key):
        SenseVoiceOnnx(d)


def test_other_corruptions_are_detected(steered, tmp_path):
    d = _copy(steered, tmp_path / "nano")
    _rewrite_metadata(d / "model.int8.onnx", comment="FunASR Nano")
    with pytest.raises(ModelFormatError, match="Nano"):
        SenseVoiceOnnx(d)
    d = _copy(steered, tmp_path / "short")
    lines = (d / "tokens.txt").read_text(encoding="utf-8").splitlines()[:-5]
    (d / "tokens.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ModelFormatError, match="vocab_size"):
        SenseVoiceOnnx(d)
    d = _copy(steered, tmp_path / "trunc")
    data = (d / "model.int8.onnx").read_bytes()
    (d / "model.int8.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFormatError):
        SenseVoiceOnnx(d)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFormatError, match="model.int8.onnx"):
        SenseVoiceOnnx(empty)
