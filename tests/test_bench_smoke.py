"""The benchmark suite works: the call generator is deterministic and truthful, and e2e.py --smoke runs.

The full benchmark (bench/README.md) takes about an hour; these tests exercise the same code paths on a
20 s call and tiny forged models.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


gen_call = _load("gen_call")


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as f:
        assert f.getframerate() == 16_000 and f.getnchannels() == 2
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2).T.astype(np.float64) / 32768


def test_generator_is_deterministic_from_its_seed(tmp_path):
    a = gen_call.generate(tmp_path / "a.wav", seed=3, duration_s=12)
    b = gen_call.generate(tmp_path / "b.wav", seed=3, duration_s=12)
    c = gen_call.generate(tmp_path / "c.wav", seed=4, duration_s=12)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert a["channels"] == b["channels"]
    assert (tmp_path / "a.wav").read_bytes() != (tmp_path / "c.wav").read_bytes()
    assert a["channels"] != c["channels"]


def test_truth_intervals_match_the_signal_energy(tmp_path):
    truth = gen_call.generate(tmp_path / "call.wav", seed=11, duration_s=45)
    audio = _read(tmp_path / "call.wav")
    assert json.loads(gen_call.truth_path(tmp_path / "call.wav").read_text()) == truth
    frame = 160  # 10 ms
    for ch in truth["channels"]:
        x = audio[ch["channel"]]
        n = len(x) // frame
        db = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
        inside = np.zeros(n, bool)
        for iv in ch["intervals"]:
            inside[iv["start_ms"] // 10: -(-iv["end_ms"] // 10)] = True  # frames touching speech
        assert inside.any() and (~inside).any()
        # Outside the truth there is only line hiss (-60 dBFS); inside, speech-like energy with short
        # syllable gaps only (the generator allows <= 90 ms inner gaps).
        assert db[~inside].max() < -50, "energy outside the ground-truth intervals"
        assert np.mean(db[inside] > -45) > 0.8, "ground-truth interval without energy"
        assert ch["speech_ms"] == sum(iv["end_ms"] - iv["start_ms"] for iv in ch["intervals"])


def test_plan_has_turns_overlaps_pauses_and_about_half_speech():
    plan = gen_call.plan_call(seed=7, duration_s=600)
    doc = gen_call.truth_document(plan, 7, "synth")
    channels = [t["channel"] for t in doc["turns"]]
    assert all(a != b for a, b in itertools.pairwise(channels)), "turns alternate"
    assert {t["language"] for t in doc["turns"]} == {"zh", "en"}
    assert len(doc["overlaps"]) >= 10 and len(doc["long_pauses"]) >= 2
    for ch in doc["channels"]:
        assert 0.38 <= ch["speech_ratio"] <= 0.55  # VAD speech (padding, merged gaps) comes out near 48 %


@pytest.fixture(scope="module")
def e2e_models(tmp_path_factory) -> Path:
    """The tiny models e2e.py would forge when bench/work has none (its ensure_models: SenseVoice and both
    emotion2vec+ sizes for onnx and funasr, and the seeds' fsmn-vad), forged here in the test process:
    e2e.py's own forging runs two more Pythons that import torch and FunASR again (most of the test's
    time on a clean checkout, as in CI); given --models it finds them and forges nothing."""
    from callsense.testing.forge import forge

    out = tmp_path_factory.mktemp("e2e-models")
    # e2e.EMOTION_MODELS' two sizes (should that list grow, e2e.py forges the set itself: slower, still right)
    forge(out, size="tiny", models=("sensevoice-small", "emotion2vec-plus-large", "emotion2vec-plus-base"),
          runtimes=("onnx", "funasr"))
    _load("seeds_way").forge_fsmn_vad(out / "fsmn-vad" / "funasr")
    return out


@pytest.mark.torch
def test_e2e_smoke_runs_both_ways_and_emits_the_verdict(tmp_path, e2e_models):
    results = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "e2e.py"), "--smoke", "--json", "--configs", "seeds,callsense-onnx-large",
         "--results", str(results), "--models", str(e2e_models)],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["meta"]["smoke"] is True and doc["targets_apply"] is False
    assert set(doc["speedup"]) == {"callsense-onnx-large"} and doc["speedup"]["callsense-onnx-large"] > 0
    assert set(doc["targets"]) == {"rtf_large", "peak_rss_mb", "first_result_s"}
    for target in doc["targets"].values():
        assert target["met"] == (target["value"] <= target["limit"])
    assert doc["peak_rss_mb"]["seeds"] > 50 and doc["peak_rss_mb"]["callsense-onnx-large"] > 50
    assert 0 < doc["first_result_s"]["first-result-callsense"] < doc["rtf"]["callsense-onnx-large"] * 20 + 60
    table = results.read_text()
    assert "<!-- e2e:start -->" in table and "| seeds |" in table and "| callsense-onnx-large |" in table
