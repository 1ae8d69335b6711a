"""No silent pass: a rule scoped to a party whose role the call never established runs on the speakers
of unknown role, and its hit says so (issue 14, item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from callsense.rules import apply_qa, default_ruleset
from callsense.rules.evaluate import ROLE_NOT_ESTABLISHED, evaluate
from callsense.testing.results import make_result, seg

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COMPLAINT = "我要投诉，不发货我就要退款"


def _hits(result):
    return {h.rule_id: h for h in evaluate(result, default_ruleset())}


def test_customer_rule_runs_on_unknown_speakers_and_says_so():
    mono = make_result([seg("unknown", 0, 3000, COMPLAINT, emotion_="angry")], stereo=False,
                       channel_map=("unknown",))
    hit = _hits(mono).get("risk.complaint")
    assert hit is not None and hit.severity == "critical"
    assert all(ROLE_NOT_ESTABLISHED in (e.note or "") for e in hit.evidence)
    assert any(e.text and "投诉" in e.text for e in hit.evidence)


def test_established_roles_keep_their_scope():
    # the agent says the words: with both roles known, a customer rule must not fire on the agent
    stereo = make_result([seg("agent", 0, 3000, COMPLAINT, emotion_="angry"), seg("customer", 3500, 5000, "好的")])
    assert "risk.complaint" not in _hits(stereo)
    hit = _hits(make_result([seg("customer", 0, 3000, COMPLAINT, emotion_="angry"),
                             seg("agent", 3500, 5000, "好的")]))["risk.complaint"]
    assert not any(ROLE_NOT_ESTABLISHED in (e.note or "") for e in hit.evidence)


def test_one_known_party_leaves_the_other_to_the_unknown_speakers():
    # diarization named the agent; the other voice stayed unknown: customer rules look at it
    result = make_result([seg("agent", 0, 2000, "您好"), seg("unknown", 2500, 5000, COMPLAINT, emotion_="angry")],
                         stereo=False, channel_map=("unknown",))
    assert "risk.complaint" in _hits(result)


def test_mono_call_is_not_passed():
    mono = make_result([seg("unknown", 0, 3000, COMPLAINT, emotion_="angry")], stereo=False,
                       channel_map=("unknown",))
    scored = apply_qa(mono)
    assert scored.score is not None and not scored.score.passed


# ---- end to end: the CLI on a mono call with the tiny forge models steered to an angry complaint -----
@pytest.fixture(scope="module")
def angry_models(tmp_path_factory) -> Path:
    from callsense.testing.forge import forge

    out = tmp_path_factory.mktemp("forge-angry")
    forge(out, size="tiny", runtimes=("onnx",), lang="zh", emotion="ANGRY", text=COMPLAINT, label="angry")
    return out


@pytest.fixture(scope="module")
def mono_call(tmp_path_factory) -> Path:
    """The committed two-voice example call mixed down to one channel."""
    with wave.open(str(EXAMPLES / "call_stereo.wav"), "rb") as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2).astype(np.int32)
    mono = np.clip(pcm.sum(axis=1), -32768, 32767).astype("<i2")
    path = tmp_path_factory.mktemp("mono") / "call_mono.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(mono.tobytes())
    return path


def _analyze(call: Path, models: Path, out: Path, *extra: str) -> dict:
    env = {"CALLSENSE_MODEL_DIR": str(models)}
    import os

    proc = subprocess.run([sys.executable, "-m", "callsense", "analyze", str(call), "--out", str(out), "--json",
                           *extra], capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["calls"][0]  # one document: {calls, failures}


def test_mono_angry_complaint_fires_without_diarization_models(angry_models, mono_call, tmp_path):
    data = _analyze(mono_call, angry_models, tmp_path / "o")
    assert {s["role"] for s in data["segments"]} == {"unknown"}
    hit = next(h for h in data["rule_hits"] if h["rule_id"] == "risk.complaint")
    assert hit["severity"] == "critical"
    assert all(ROLE_NOT_ESTABLISHED in (e["note"] or "") for e in hit["evidence"])
    assert data["score"]["passed"] is False
