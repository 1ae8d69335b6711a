"""The service with a custom head and weights (docs/adapt.md): /v1/emotion and /predict_emotion answers."""

from __future__ import annotations

import io
import json
import wave

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api_support import assert_problem, wait_ready
from callsense.api import create_app
from callsense.service import ServiceSettings
from test_adapt import cli, write_clips


def wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


@pytest.fixture(scope="module")
def service(tmp_path_factory, tiny_models):
    home = tmp_path_factory.mktemp("adapt-api-home")
    clips = write_clips(tmp_path_factory.mktemp("adapt-api-clips"), speakers=3, per=3)
    cli(["adapt", "train", clips, "--out", "edu"], home=home, models=tiny_models)
    mp = pytest.MonkeyPatch()
    mp.setenv("CALLSENSE_HOME", str(home))
    mp.setenv("CALLSENSE_MODEL_DIR", str(tiny_models))
    mp.setenv("CALLSENSE_OFFLINE", "1")
    data = tmp_path_factory.mktemp("adapt-api")
    s = ServiceSettings(data_dir=data, ui=False, database_url=f"sqlite:///{data / 'store.db'}", emotion_head="edu",
                        emotion_weights=(("neutral", 0.5),))
    client = TestClient(create_app(s), raise_server_exceptions=False)
    client.__enter__()
    wait_ready(client.get)
    yield client, clips
    client.__exit__(None, None, None)
    mp.undo()


def post(client, path, content: bytes):
    return client.post(path, files={"file": ("clip.wav", content, "audio/wav")})


def test_emotion_answer_carries_head_weights_trim_and_reply_style(service):
    client, clips = service
    r = post(client, "/v1/emotion", (clips.parent / "urgent_0_0.wav").read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["custom"]["head"] == "edu" and body["custom"]["label"] in ("anxious", "urgent")
    assert body["weights"] == {"neutral": 0.5}
    assert set(body["trim"]) == {"start_ms", "end_ms", "kept_ms"}
    assert body["reply_style"]
    alias = post(client, "/predict_emotion", (clips.parent / "urgent_0_0.wav").read_bytes()).json()
    assert alias["custom"] == body["custom"]


def test_too_quiet_clip_is_a_422_problem(service):
    client, _ = service
    r = post(client, "/v1/emotion", wav_bytes(np.zeros(3 * 16000, np.float32)))
    assert_problem(r, 422)
    text = json.dumps(r.json(), ensure_ascii=False)
    assert "音量过低 / audio too quiet" in text and "clip.wav" in text and "/tmp" not in text


def test_live_call_carries_the_head_and_the_weights(service):
    """A live call through the service's head and weights records them as an upload's analysis does."""
    from api_support import EXAMPLES
    from callsense.live.client import read_recording

    client, _ = service
    rec = read_recording(EXAMPLES / "call_stereo.wav")
    with client.websocket_connect("/v1/live") as ws:
        ws.send_text(json.dumps({"type": "start", "sample_rate": rec.sample_rate, "encoding": rec.encoding,
                                 "channels": rec.channels, "call_id": "live-head"}))
        assert ws.receive_json()["type"] == "started"
        for frame in rec.frames(200):
            ws.send_bytes(frame)
        ws.send_text(json.dumps({"type": "stop"}))
        while (msg := ws.receive_json())["type"] not in ("stopped", "error"):
            pass
    assert msg["type"] == "stopped", msg
    result = client.get("/v1/calls/live-head").json()
    result = result.get("result", result)
    assert result["emotion"]["head"] == "edu" and result["emotion"]["weights"]["neutral"] == 0.5
    custom = [s["emotion"]["custom"] for s in result["segments"] if s["emotion"] and s["emotion"].get("custom")]
    assert custom and {c["label"] for c in custom} <= {"anxious", "urgent"}


def test_active_rule_file_weights_apply_to_emotion_answers_and_the_setting_wins(service):
    client, clips = service
    rules = ('ruleset: {id: w, version: "1", name: w}\nemotion_weights: {happy: 99, neutral: 3}\nrules: []\n')
    assert client.put("/v1/rules", content=rules, headers={"content-type": "text/yaml"}).status_code == 200
    body = post(client, "/v1/emotion", (clips.parent / "urgent_0_0.wav").read_bytes()).json()
    assert body["weights"] == {"happy": 99, "neutral": 0.5}  # the service's neutral=0.5 wins over the file's 3
    assert body["label"] == "happy"
