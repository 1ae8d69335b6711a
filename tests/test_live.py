"""Live calls against a real ``callsense serve``: WebSocket clients, the stored call, bad input, FunASR."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets

from api_support import EXAMPLES, TEST_RULES, Server
from callsense.live import protocol
from callsense.live.client import read_recording, stream
from funasr_client import funasr_recognize

MULAW = EXAMPLES / "call_stereo_8k_mulaw.wav"
VAD_TOLERANCE_MS = 100  # live and offline segment bounds differ by at most this (resampler edges, the pad)


@pytest.fixture(scope="module")
def steered_models(tmp_path_factory):
    """Tiny models steered to anger, so emotions and an emotion rule are deterministic."""
    from callsense.testing.forge import forge

    out = tmp_path_factory.mktemp("forge-angry")
    forge(out, size="tiny", label="angry")
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory, steered_models):
    data = tmp_path_factory.mktemp("live-server")
    home = tmp_path_factory.mktemp("live-home")
    srv = Server(data, {"CALLSENSE_MODEL_DIR": str(steered_models), "CALLSENSE_HOME": str(home),
                        "CALLSENSE_DATABASE_URL": f"sqlite:///{home / 'store.db'}",
                        "CALLSENSE_MAX_LIVE_CALLS": "2"}).start()
    rules = TEST_RULES + """\
  - id: test.angry_customer
    name: 客户愤怒 Angry customer
    scope: {role: customer}
    conditions:
      1: {type: emotion, labels: [angry]}
    consequence: {severity: critical}
  - id: test.long_call
    name: only at the end
    conditions:
      1: {type: duration, above_s: 1}
    consequence: {severity: info}
"""
    with srv.client() as c:
        assert c.put("/v1/rules", json={"yaml": rules}).status_code == 200
    yield srv
    srv.stop()


def ws_url(srv: Server, path: str = "/v1/live") -> str:
    return f"ws://127.0.0.1:{srv.port}{path}"


def collect(srv: Server, recording, **kw) -> list[dict]:
    async def go():
        return [m async for m in stream(ws_url(srv), recording, **kw)]

    return asyncio.run(go())


def check_schema(msg: dict) -> None:
    body = {k: v for k, v in msg.items() if k != "_t"}
    errors = list(protocol.validator(body["type"]).iter_errors(body))
    assert not errors, (body["type"], errors[0].message)


def test_stereo_mulaw_call_gives_finals_emotions_alerts_and_is_stored(server):
    rec = read_recording(MULAW)
    assert (rec.encoding, rec.sample_rate, rec.channels) == ("mulaw", 8000, 2)
    messages = collect(server, rec, speed=0, frame_ms=20, metadata={"agent_id": "a7"})
    for m in messages:
        check_schema(m)
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "started" and kinds[-1] == "stopped"
    finals = [m["segment"] for m in messages if m["type"] == "final"]
    assert {s["role"] for s in finals} == {"agent", "customer"}
    assert {(s["channel"], s["role"]) for s in finals} == {(0, "agent"), (1, "customer")}
    assert all(s["emotion"]["label"] == "angry" for s in finals)  # steered tiny emotion2vec
    assert "partial" in kinds
    alerts = [m for m in messages if m["type"] == "alert"]
    fired = [a["rule_id"] for a in alerts]
    assert sorted(fired) == ["test.angry_customer", "test.customer_spoke"]  # each once; not the end-only rule
    first_customer = min(i for i, m in enumerate(messages) if m["type"] == "final" and m["segment"]["role"] == "customer")
    assert min(i for i, m in enumerate(messages) if m["type"] == "alert") > first_customer
    assert kinds.index("alert") < len(kinds) - 2  # during the call, not at its end
    stopped = messages[-1]
    assert stopped["status"] == "complete"
    with server.client() as c:
        stored = c.get(stopped["result_url"])
        assert stored.status_code == 200, stored.text
        result = stored.json()
        result = result.get("result", result)
    assert [s["id"] for s in sorted(result["segments"], key=lambda s: s["id"])] == sorted(s["id"] for s in finals)
    hits = {h["rule_id"] for h in result["rule_hits"]}
    assert {"test.angry_customer", "test.customer_spoke", "test.long_call"} <= hits  # whole-call rules at stop
    assert result["score"] is not None
    assert result["metadata"]["agent_id"] == "a7" and result["metadata"]["live_status"] == "complete"

    # offline analysis of the same recording: the same utterances, within the VAD's tolerance
    import os

    from callsense.pipeline import AnalyzeOptions, Analyzer

    os.environ["CALLSENSE_MODEL_DIR"] = str(server.env["CALLSENSE_MODEL_DIR"])
    try:
        offline = Analyzer(AnalyzeOptions(run_qa=False)).analyze(MULAW)
    finally:
        del os.environ["CALLSENSE_MODEL_DIR"]
    live = sorted(result["segments"], key=lambda s: (s["start_ms"], s["channel"]))
    assert len(live) == len(offline.segments)
    for a, b in zip(live, offline.segments):
        assert (a["channel"], a["role"]) == (b.channel, b.role)
        assert abs(a["start_ms"] - b.start_ms) <= VAD_TOLERANCE_MS and abs(a["end_ms"] - b.end_ms) <= VAD_TOLERANCE_MS
        assert a["emotion"]["label"] == b.emotion.label


def test_live_calls_use_the_rule_files_emotion_weights(server):
    """The active rule file's emotion_weights reach a live session as they reach an upload's analysis."""
    weighted = TEST_RULES.replace("rules:\n", "emotion_weights: {angry: 0.001, happy: 99}\nrules:\n", 1)
    with server.client() as c:
        before = c.get("/v1/rules").json()["yaml"]
        assert c.put("/v1/rules", json={"yaml": weighted}).status_code == 200
    try:
        # another recording than the other tests' (the store keeps one call per recording)
        messages = collect(server, read_recording(EXAMPLES / "call_stereo.wav"), speed=0)
        finals = [m["segment"] for m in messages if m["type"] == "final"]
        assert finals and all(s["emotion"]["label"] == "happy" for s in finals)  # steered to angry, weighted away
        with server.client() as c:
            stored = c.get(messages[-1]["result_url"]).json()
        stored = stored.get("result", stored)
        assert stored["emotion"]["weights"] == {"angry": 0.001, "happy": 99}
        assert {s["emotion"]["label"] for s in stored["segments"]} == {"happy"}
    finally:
        with server.client() as c:
            assert c.put("/v1/rules", json={"yaml": before}).status_code == 200


def _raw(srv: Server, *sends, headers=None) -> list[dict]:
    """Send messages (str or bytes) and collect answers until the server closes."""
    async def go():
        got = []
        async with websockets.connect(ws_url(srv), additional_headers=headers or {}) as ws:
            for s in sends:
                try:
                    await ws.send(s)
                except websockets.ConnectionClosed:
                    break
            try:
                async for text in ws:
                    got.append(json.loads(text))
            except websockets.ConnectionClosed:
                pass
        return got

    return asyncio.run(asyncio.wait_for(go(), 60))


START = json.dumps({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 1})


@pytest.mark.parametrize("sends, code", [
    ((b"\x00\x01" * 160,), "frames_before_start"),
    ((json.dumps({"type": "start", "sample_rate": 44100, "encoding": "pcm_s16le", "channels": 1}),), "bad_sample_rate"),
    ((json.dumps({"type": "start", "sample_rate": 8000, "encoding": "opus", "channels": 1}),), "unsupported_encoding"),
    ((json.dumps({"type": "start", "sample_rate": 8000, "encoding": "mulaw", "channels": 1, "codec": "x"}),), "bad_start"),
    (("not json",), "bad_message"),
    ((START, b"\x01\x02\x03"), "bad_frame"),
])
def test_bad_input_gets_an_error_with_a_code(server, sends, code):
    got = _raw(server, *sends)
    errors = [m for m in got if m["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == code, got
    check_schema(errors[0])
    assert errors[0]["message"]


def test_disconnect_mid_utterance_stores_the_call_as_interrupted(server):
    rec = read_recording(MULAW)
    frames = rec.frames(20)[:250]  # 5 s: the customer is mid-sentence

    async def go():
        ws = await websockets.connect(ws_url(server))
        await ws.send(json.dumps({"type": "start", "sample_rate": 8000, "encoding": "mulaw", "channels": 2,
                                  "call_id": "cut-off-call"}))
        assert json.loads(await ws.recv())["type"] == "started"
        for f in frames:
            await ws.send(f)
        while json.loads(await ws.recv())["type"] != "final":  # the server has been listening
            pass
        await asyncio.sleep(1.5)  # and has read what was sent
        ws.transport.abort()  # gone without stop or a close handshake, as when a client crashes

    asyncio.run(go())
    with server.client() as c:
        for _ in range(100):
            r = c.get("/v1/calls/cut-off-call")
            if r.status_code == 200:
                break
            asyncio.run(asyncio.sleep(0.2))
        assert r.status_code == 200, r.text
        result = r.json().get("result", r.json())
    assert result["metadata"]["live_status"] == "interrupted"
    assert 4000 <= result["source"]["duration_ms"] <= 5100
    assert result["segments"] and max(s["end_ms"] for s in result["segments"]) <= 5100
    # and the server still serves: a new call goes through
    assert collect(server, read_recording(MULAW), speed=0)[-1]["type"] == "stopped"


def test_too_many_live_calls_are_refused_with_a_code_and_others_go_on(server):
    async def go():
        opened = []
        for _ in range(2):
            ws = await websockets.connect(ws_url(server))
            await ws.send(START)
            assert json.loads(await ws.recv())["type"] == "started"
            opened.append(ws)
        async with websockets.connect(ws_url(server)) as extra:
            await extra.send(START)
            refused = json.loads(await extra.recv())
        # the open calls still work
        await opened[0].send(np.zeros(1600, dtype="<i2").tobytes())
        await opened[0].send(json.dumps({"type": "stop"}))
        answers = [json.loads(t) async for t in opened[0]]
        await opened[1].close()
        return refused, answers

    refused, answers = asyncio.run(asyncio.wait_for(go(), 60))
    assert refused["type"] == "error" and refused["code"] == "too_many_calls"
    assert answers[-1]["type"] == "stopped"


def test_faster_than_real_time_is_accepted_with_bounded_memory(server):
    rec = read_recording(MULAW)
    before = server.peak_rss_mb()
    longer = type(rec)(rec.data * 6, rec.sample_rate, rec.encoding, rec.channels)  # 2+ minutes as fast as possible
    messages = collect(server, longer, speed=0, frame_ms=200)
    assert messages[-1]["type"] == "stopped"
    assert server.peak_rss_mb() - before < 150


def test_authentication_like_the_rest_api(tmp_path, steered_models):
    from callsense.service.keys import KeyStore

    data = tmp_path / "auth"
    data.mkdir()
    _, viewer = KeyStore(data / "api-keys.json").create("viewer", "wallboard")
    _, analyst = KeyStore(data / "api-keys.json").create("analyst", "tester")
    srv = Server(data, {"CALLSENSE_MODEL_DIR": str(steered_models),
                        "CALLSENSE_DATABASE_URL": f"sqlite:///{data / 'store.db'}"}, "--auth", "--no-ui").start()
    stop = json.dumps({"type": "stop"})
    try:
        assert _raw(srv, START)[0]["code"] == "unauthorized"
        assert _raw(srv, START, headers={"Authorization": "Bearer nope"})[0]["code"] == "unauthorized"
        assert _raw(srv, START, headers={"Authorization": f"Bearer {viewer}"})[0]["code"] == "forbidden"
        got = _raw(srv, START, stop, headers={"Authorization": f"Bearer {analyst}"})
        assert [m["type"] for m in got] == ["started", "stopped"], got
        async def by_query():  # browsers cannot set headers on a WebSocket: ?api_key=
            async with websockets.connect(ws_url(srv) + f"?api_key={analyst}") as ws:
                await ws.send(START)
                return json.loads(await ws.recv())
        assert asyncio.run(by_query())["type"] == "started"
    finally:
        srv.stop()


def test_cli_live_streams_and_prints_the_call_id(server):
    from cli_support import run_cli  # in this process: the client loads no model, two Python start-ups saved

    out = run_cli(["live", MULAW, "--url", ws_url(server), "--speed", "0", "--call-id", "cli-call"])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "cli-call"
    assert any("✓ customer" in line for line in lines) and any("! CRITICAL test.angry_customer" in line for line in lines)
    bad = run_cli(["live", MULAW, "--url", "http://x"])
    assert bad.returncode == 2 and "ws://" in bad.stderr


def test_funasr_protocol_client(server):
    from callsense.audio.decode import load_audio

    audio = load_audio(EXAMPLES / "call_stereo.wav")
    pcm = (audio.tracks[1].samples * 32767).astype("<i2").tobytes()
    answers = asyncio.run(funasr_recognize(ws_url(server, "/v1/funasr"), pcm, wav_name="demo", mode="2pass"))
    assert answers[-1]["is_final"] is True
    offline = [a for a in answers if a["mode"] == "2pass-offline"]
    assert offline and all(a["wav_name"] == "demo" and "timestamp" in a for a in offline)
    assert all(a["emotion"] == "angry" for a in offline if a["text"])
    assert any(a["mode"] == "2pass-online" for a in answers)
