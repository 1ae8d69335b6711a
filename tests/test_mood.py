"""Mood history (issue 20, item 4): a user's last answers of ``/v1/emotion``, volatility, trend and the
alert, a customer's mood over their calls, and every way of deleting them — on a real ``callsense serve``
process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from datetime import datetime, timedelta

import numpy as np
import pytest

from api_support import CALL, EXAMPLES, REPO, Server, assert_problem
from callsense.analysis.mood import MoodPoint, summarize, volatility
from callsense.labels import EMOTION_NAMES
from callsense.testing.store import fresh_postgres_database


# ---------------------------------------------------------------- the arithmetic
def _point(i: int, label: str, emb: list[float]) -> MoodPoint:
    d = [0.0] * len(EMOTION_NAMES)
    d[EMOTION_NAMES.index(label)] = 1.0
    return MoodPoint(at=datetime(2026, 1, 1) + timedelta(minutes=i), label=label, confidence=1.0,
                     distribution=tuple(d), embedding=np.asarray(emb, np.float32))


def test_volatility_is_the_mean_cosine_distance_of_successive_embeddings():
    assert volatility([np.array([1.0, 0]), np.array([1.0, 0])]) == pytest.approx(0.0)
    assert volatility([np.array([1.0, 0]), np.array([0.0, 2.0])]) == pytest.approx(1.0)
    # successive pairs only: (a,b)=1, (b,a)=1, not a-to-a
    assert volatility([np.array([1.0, 0]), np.array([0.0, 1]), np.array([1.0, 0])]) == pytest.approx(1.0)
    assert volatility([np.array([1.0, 0]), np.array([-1.0, 0])]) == pytest.approx(2.0)
    assert volatility([np.array([1.0, 0])]) is None


def test_trend_and_alert():
    calm = [_point(i, "neutral", [1, 0.01 * i]) for i in range(4)]
    m = summarize(calm, threshold=0.35)
    assert m.trend == "stable" and m.volatility < 0.01 and not m.alert and m.alert_dict("user:u") is None
    worse = [_point(0, "happy", [1, 0]), _point(1, "neutral", [0, 1]), _point(2, "angry", [1, 0])]
    m = summarize(worse, threshold=0.35)
    assert m.trend == "worsening" and m.valence_slope == pytest.approx(-1.0)
    assert m.alert and m.alert_dict("user:u")["volatility"] == pytest.approx(1.0)
    assert not summarize(worse, threshold=1.5).alert  # under the threshold
    assert not summarize(worse[:2], threshold=0.35).alert  # two answers are not yet a pattern
    assert summarize(list(reversed(worse))).trend == "improving"
    d = summarize(worse).to_dict()
    assert [h["label"] for h in d["history"]] == ["happy", "neutral", "angry"] and d["window"] == 3


# ---------------------------------------------------------------- the service
def _wav(seed: int, seconds: float = 2.0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * (120 + 60 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * (2 + seed) * t))
    x = x + 0.05 * rng.normal(size=t.shape)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def server(tmp_path, db_url, tiny_models):
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1", "CALLSENSE_DATABASE_URL": db_url}
    srv = Server(tmp_path / "data", env, "--no-ui", "--mood-history", "3", "--mood-alert", "0").start()
    yield srv, db_url
    srv.stop()


def _emotion(c, seed: int, path: str = "/v1/emotion", **data):
    r = c.post(path, files={"file": (f"clip{seed}.wav", _wav(seed))}, data=data)
    assert r.status_code == 200, r.text[:500]
    return r.json()


@pytest.mark.slow
def test_user_mood_history_alert_and_deletion(server):
    srv, db_url = server
    with srv.client() as c:
        plain = _emotion(c, 0)
        assert plain["mood"] is None and plain["alert"] is None and plain["embedding"] is None

        first = _emotion(c, 1, user_id="u-1")
        assert first["embedding"] is None  # kept for the history, not answered unless asked
        assert first["mood"]["window"] == 1 and first["mood"]["volatility"] is None and first["alert"] is None
        second = _emotion(c, 2, "/predict_emotion", user_id="u-1")
        assert second["mood"]["window"] == 2 and second["mood"]["volatility"] > 0
        assert second["alert"] is None  # two answers are not yet a pattern
        answers = [_emotion(c, s, user_id="u-1") for s in (3, 4)]
        last = answers[-1]
        assert last["mood"]["window"] == 3  # --mood-history 3: the oldest went
        assert [h["label"] for h in last["mood"]["history"]][-1] == last["label"]
        assert last["mood"]["trend"] in ("improving", "worsening", "stable")
        assert last["alert"]["type"] == "mood_volatility" and last["alert"]["subject"] == "user:u-1"
        assert last["alert"]["volatility"] == last["mood"]["volatility"] >= 0

        stored = c.get("/v1/users/u-1/mood").json()
        assert stored["mood"] == last["mood"] and stored["subject"] == "user:u-1"
        other = _emotion(c, 5, session_id="s-9")  # a session's history is its own
        assert other["mood"]["window"] == 1
        assert c.get("/v1/sessions/s-9/mood").json()["mood"]["window"] == 1

        assert_problem(c.post("/v1/emotion", files={"file": ("a.wav", _wav(1))},
                              data={"user_id": "u-1", "session_id": "s-9"}), 422)
        assert_problem(c.post("/v1/emotion", files={"file": ("a.wav", _wav(1))}, data={"user_id": "x" * 200}), 422)

        assert c.delete("/v1/users/u-1/mood").status_code == 204
        assert c.get("/v1/users/u-1/mood").json()["mood"]["history"] == []
        assert c.delete("/v1/users/u-1/mood").status_code == 204  # idempotent
        assert c.get("/v1/sessions/s-9/mood").json()["mood"]["window"] == 1  # only that user's

        _emotion(c, 6, user_id="u-2")
        cli = subprocess.run([sys.executable, "-m", "callsense", "purge", "--older-than", "0s", "--what", "all",
                              "--db", db_url], capture_output=True, text=True, env=srv.env, timeout=120, check=False)
        assert cli.returncode == 0, cli.stderr
        assert "2 mood entries" in cli.stdout.replace("\n", " ")
        assert c.get("/v1/users/u-2/mood").json()["mood"]["history"] == []
        assert c.get("/v1/sessions/s-9/mood").json()["mood"]["history"] == []


@pytest.mark.slow
def test_customer_mood_over_calls_follows_the_calls(server):
    srv, _ = server
    with srv.client() as c:
        ids = []
        for i, path in enumerate((CALL, EXAMPLES / "call_stereo_8k_mulaw.wav")):
            r = c.post("/v1/analyze", files={"file": (path.name, path.read_bytes())},
                       data={"metadata": json.dumps({"customer_id": "c-7", "agent_id": "a1",
                                                     "started_at": f"2026-01-0{i + 1}T10:00:00Z"})})
            assert r.status_code == 200, r.text[:500]
            body = r.json()
            ids.append(body["call_id"])
            assert body["links"]["mood"] == "/v1/customers/c-7/mood"
            assert [h["call_id"] for h in body["mood"]["history"]] == ids
        assert body["mood"]["volatility"] is not None and body["alert"] is None  # two calls: no alert yet
        no = c.post("/v1/analyze", files={"file": (CALL.name, CALL.read_bytes())},
                    data={"metadata": json.dumps({"customer_id": "c-7"}), "mood": "false"}).json()
        assert no["mood"] is None
        assert c.get("/v1/customers/c-7/mood").json()["mood"]["window"] == 2

        # an async job's result carries the mood as the inline answer does (and mood=false leaves it out)
        english = REPO / "src" / "callsense" / "examples" / "call_en.wav"
        jobs = [c.post("/v1/analyze", files={"file": (english.name, english.read_bytes())},
                       data={"metadata": json.dumps({"customer_id": "c-7", "started_at": "2026-01-03T10:00:00Z"}),
                             "mode": "async", **extra}) for extra in ({}, {"mood": "false"})]
        assert [j.status_code for j in jobs] == [202, 202], jobs[0].text[:300]
        done = [c.get(f"/v1/jobs/{j.json()['job']['id']}", params={"wait": 120, "include_result": "true"}).json()
                for j in jobs]
        assert [d["status"] for d in done] == ["done", "done"], done
        assert done[0]["result"]["call_id"] == done[0]["call_id"]
        assert done[0]["call_id"] in [h["call_id"] for h in done[0]["mood"]["history"]]
        assert done[0]["mood"]["window"] == 3 and done[0]["links"]["mood"] == "/v1/customers/c-7/mood"
        assert "alert" in done[0]
        assert done[1]["result"] and done[1]["mood"] is None and "mood" not in done[1]["links"]
        assert c.get(f"/v1/jobs/{done[0]['id']}").json()["mood"] is None  # no result asked for: no mood
        ids.append(done[0]["call_id"])
        assert c.delete(f"/v1/calls/{ids[0]}").status_code == 204
        left = c.get("/v1/customers/c-7/mood").json()["mood"]
        assert [h["call_id"] for h in left["history"]] == ids[1:]
        assert c.get("/v1/customers/nobody/mood").json()["mood"]["history"] == []
