"""The `ort` SenseVoice runtime (onnxruntime directly, the GPU path) against sherpa-onnx, on tiny forges.

No GPU here: the CUDA code path runs on the CPU provider through ``CALLSENSE_CUDA_ON_CPU=1``; without
it, ``--device cuda`` on the CPU onnxruntime must fail with a clear model-class error (exit 4).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from callsense.cli.app import main
from callsense.engines import registry
from callsense.engines.base import AsrEngine, AsrOptions, SegmentAudio
from callsense.engines.device import CUDA_ON_CPU_ENV, Device, asr_runtime_for, ort_providers, parse_device
from callsense.engines.sensevoice.onnx import SenseVoiceOnnx
from callsense.engines.sensevoice.ort import SenseVoiceOrt
from callsense.engines.sensevoice.tags import MIN_SAMPLES, MS_PER_FRAME
from callsense.errors import DependencyError, UsageError
from callsense.pipeline import AnalyzeOptions
from callsense.testing.forge_sensevoice import forge_onnx

REPO = Path(__file__).resolve().parent.parent
CALL = REPO / "examples" / "call_stereo.wav"
# Lengths around the LFR edges (7 fbank frames = MIN_SAMPLES; 6-frame steps) and a few longer ones.
LENGTHS = [MIN_SAMPLES, MIN_SAMPLES + 160, 2000, 2200, 9000, 16000, 23456, 48000, 48100, 80000]


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, n).astype(np.float32)


def _segments() -> list[SegmentAudio]:
    return [SegmentAudio(f"s{i}", _noise(n, i), start_ms=1000 * i) for i, n in enumerate(LENGTHS)]


@pytest.fixture(scope="module")
def free(tmp_path_factory) -> Path:
    """No text steering: the text is a function of the features, so a front-end mismatch shows."""
    d = tmp_path_factory.mktemp("sv") / "free"
    forge_onnx(d, "tiny", seed=3)
    return d


@pytest.fixture(scope="module")
def steered(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sv") / "steered"
    forge_onnx(d, "tiny", lang="ja", emotion="EMO_UNKNOWN", event="Laughter", text="I paid $20.",
               text_no_itn="i paid twenty dollars")
    return d


@pytest.mark.parametrize("options", [AsrOptions(), AsrOptions(language="en", use_itn=False),
                                     AsrOptions(language="ko", both_itn=True)], ids=["auto", "en-woitn", "ko-both"])
def test_parity_with_sherpa_onnx(free, options):
    """Same text, tags and raw tags; timestamps within one LFR frame (here: equal)."""
    segs = _segments()
    ref = SenseVoiceOnnx(free, num_threads=1).transcribe(segs, options)
    got = SenseVoiceOrt(free, num_threads=1).transcribe(segs, options)
    assert len({t.text for t in ref}) > 5  # the texts really depend on the audio
    for r, g in zip(ref, got):
        assert (g.text, g.language, g.emotion, g.events, g.raw_tags, g.itn, g.status, g.text_no_itn) == \
               (r.text, r.language, r.emotion, r.events, r.raw_tags, r.itn, r.status, r.text_no_itn)
        assert [w.token for w in g.tokens] == [w.token for w in r.tokens]
        assert all(abs(a.start_ms - b.start_ms) <= MS_PER_FRAME for a, b in zip(g.tokens, r.tokens))


def test_registered_as_a_runtime_of_the_onnx_files(free):
    engine = registry.create("asr", "ort", free, num_threads=1)
    assert isinstance(engine, SenseVoiceOrt) and isinstance(engine, AsrEngine)
    assert engine.info.runtime == "ort" and engine.info.options["device"] == "cpu"
    assert registry.model_format("asr", "ort") == "onnx" and "ort" in registry.runtimes("asr")


def test_steered_tags_text_timestamps_and_ban_emo_unk(steered):
    engine = SenseVoiceOrt(steered, num_threads=1)
    seg = SegmentAudio("s", _noise(48000, 0), start_ms=83_250)
    t, = engine.transcribe([seg], AsrOptions(both_itn=True))
    assert (t.language, t.emotion, t.events, t.text, t.text_no_itn) == \
           ("ja", "EMO_UNKNOWN", ("Laughter",), "I paid $20.", "i paid twenty dollars")
    assert [w.start_ms for w in t.tokens][:3] == [83_250, 83_250 + 2 * MS_PER_FRAME, 83_250 + 4 * MS_PER_FRAME]
    assert engine.transcribe([seg], AsrOptions(language="zh"))[0].language == "zh"
    # sherpa-onnx cannot mask a logit; this runtime can
    banned, = engine.transcribe([seg], AsrOptions(ban_emo_unk=True))
    assert banned.emotion != "EMO_UNKNOWN"
    assert SenseVoiceOnnx(steered, num_threads=1).transcribe([seg], AsrOptions(ban_emo_unk=True))[0].emotion \
        == "EMO_UNKNOWN"


def test_batched_by_length_equals_one_by_one(free):
    segs = _segments()
    batched = SenseVoiceOrt(free, num_threads=1, batch_size=4, batch_seconds=600)
    single = SenseVoiceOrt(free, num_threads=1, batch_size=1)
    assert batched.transcribe(segs, AsrOptions()) == single.transcribe(segs, AsrOptions())
    assert batched.forward_calls == 3 and single.forward_calls == len(segs)


def test_cuda_path_on_the_cpu_provider(free, monkeypatch):
    """`cuda` picks the ort runtime, GPU batch sizes and the CUDA provider list; here it runs on the CPU."""
    monkeypatch.setenv(CUDA_ON_CPU_ENV, "1")
    engine = registry.create("asr", asr_runtime_for("onnx", "cuda:0"), free, num_threads=1, device="cuda:0")
    assert isinstance(engine, SenseVoiceOrt)
    assert (engine.batch_size, engine.batch_samples) == (32, 240 * 16000)
    segs = _segments()
    assert engine.transcribe(segs, AsrOptions()) == SenseVoiceOnnx(free, num_threads=1).transcribe(segs, AsrOptions())
    assert engine.forward_calls == 1  # the whole list in one padded batch
    assert engine.info.options["device"] == "cuda:0"


def test_device_parsing_and_the_missing_gpu(free, monkeypatch):
    monkeypatch.delenv(CUDA_ON_CPU_ENV, raising=False)
    assert parse_device("CUDA:1") == Device("cuda", 1) and parse_device(None) == Device("cpu", 0)
    for bad in ("gpu", "cuda:x", "cpu:1", "cuda:"):
        with pytest.raises(UsageError, match="cpu, cuda, cuda:N"):
            parse_device(bad)
    with pytest.raises(UsageError):
        AnalyzeOptions(device="tpu")
    assert asr_runtime_for("funasr", "cuda") == "funasr" and asr_runtime_for("onnx", "cpu") == "onnx"
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():  # pragma: no cover - a GPU build
        pytest.skip("onnxruntime-gpu is installed: the missing-GPU error cannot be provoked")
    with pytest.raises(DependencyError, match="CUDAExecutionProvider") as exc:
        ort_providers("cuda")
    assert exc.value.exit_code == 4 and "callsense[gpu]" in str(exc.value)
    with pytest.raises(DependencyError):
        SenseVoiceOrt(free, device="cuda").prepare(AsrOptions())


def test_analyze_device_cuda_without_gpu_exits_4(with_models, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(CUDA_ON_CPU_ENV, raising=False)
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():  # pragma: no cover - a GPU build
        pytest.skip("onnxruntime-gpu is installed")
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(CALL), "--device", "cuda", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exc.value.code == 4, err
    assert "CUDAExecutionProvider" in err and "callsense[gpu]" in err
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(CALL), "--device", "gpu0", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2


def test_analyze_on_cuda_path_equals_cpu(with_models, tmp_path, capsys, monkeypatch):
    """The whole pipeline on the CUDA code path (ort runtime, CUDA provider list) gives the CPU result."""
    def run(device: str) -> dict:
        with pytest.raises(SystemExit) as exc:
            main(["analyze", str(CALL), "--device", device, "--json", "--no-audio", "--out", str(tmp_path / device)])
        out = capsys.readouterr()
        assert exc.value.code == 0, out.err
        return json.loads(out.out)["calls"][0]

    cpu = run("cpu")
    monkeypatch.setenv(CUDA_ON_CPU_ENV, "1")
    gpu = run("cuda")
    assert {m["task"]: m["runtime"] for m in gpu["processing"]["models"]}["asr"] == "ort"
    assert {m["task"]: m["runtime"] for m in cpu["processing"]["models"]}["asr"] == "onnx"
    key = [(s["start_ms"], s["text"], s.get("language")) for s in cpu["segments"]]
    assert key and key == [(s["start_ms"], s["text"], s.get("language")) for s in gpu["segments"]]


@pytest.mark.slow
def test_gpu_check_smoke_reports_no_gpu(tmp_path):
    """bench/gpu_check.sh --smoke: tiny models, the CUDA path on the CPU provider, "no GPU" said plainly."""
    import os
    import subprocess
    import sys

    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():  # pragma: no cover - a GPU build
        pytest.skip("a GPU build of onnxruntime is installed")
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--smoke"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["gpu"] is False and "CUDAExecutionProvider" in report["gpu_reason"]
    assert report["x_real_time"] > 0 and report["audio_h_per_h"] > 0 and "no GPU present" in report["note"]
    assert set(report["targets"]) == {"x_real_time", "audio_h_per_h"}
