"""Hostile and clumsy input never costs a 5xx: each probe answers 4xx with a problem body saying what
was wrong; a hypothesis test throws random values at every form field and query parameter."""

from __future__ import annotations

import io
import re
import wave

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_support import CLIP, assert_problem
from test_api import _app_client


@pytest.fixture(scope="module")
def api(tmp_path_factory, tiny_models):
    client, mp = _app_client(tmp_path_factory.mktemp("input"), tiny_models)
    yield client
    client.__exit__(None, None, None)
    mp.undo()


def _tiny_wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.sin(np.arange(2400) / 5) * 8000).astype("<i2").tobytes())
    return buf.getvalue()


def test_rules_yaml_must_be_a_string(api):
    body = assert_problem(api.put("/v1/rules", json={"yaml": 5}), 422, "usage")
    assert "string" in body["detail"]
    assert_problem(api.put("/v1/rules", json=[1]), 422)


@pytest.mark.parametrize("path", ["/v1/calls/*", "/v1/calls/*/audio", "/v1/calls/2026*/report",
                                  "/v1/calls/[a-z]*/embeddings", "/v1/calls/a%00b", "/v1/jobs/*"])
def test_ids_are_matched_literally(api, path):
    assert_problem(api.get(path), 404)


def test_search_refuses_control_characters_and_oversized_queries(api):
    body = assert_problem(api.get("/v1/search", params={"q": "a\x00b"}), 422, "usage")
    assert "'q'" in body["detail"]
    assert_problem(api.get("/v1/calls", params={"agent_id": "a\x00"}), 422, "usage")
    body = assert_problem(api.get("/v1/search", params={"q": " ".join(["退款"] * 600)}), 422, "usage")
    assert "600 words" in body["detail"] and "limit is 32" in body["detail"]
    body = assert_problem(api.get("/v1/search", params={"q": "x" * 501}), 422, "usage")
    assert "limit is 500" in body["detail"]
    assert api.get("/v1/search", params={"q": " ".join(["退款"] * 32)}).status_code == 200


def test_problems_and_results_show_the_clients_file_name(api):
    r = api.post("/v1/analyze", files={"file": ("notes.wav", b"not audio at all", "audio/wav")})
    body = assert_problem(r, 415, "audio_decode")
    assert body["source"] == "notes.wav" and "uploads" not in r.text and ".upload" not in r.text
    r = api.post("/v1/analyze", files={"file": ("客户 call.wav", _tiny_wav(), "audio/wav")}, data={"rules": "false"})
    assert r.status_code == 200, r.text
    source = r.json()["result"]["source"]
    assert source["name"] == "客户 call.wav" and source["path"] is None
    assert ".upload" not in r.text
    assert list(api.app.state.service.settings.uploads_dir.iterdir()) == []


def test_refused_forms_leave_no_upload(api):
    assert_problem(api.post("/v1/analyze", files={"file": ("a.wav", _tiny_wav())}, data={"metadata": "[1]"}), 422)
    assert_problem(api.post("/v1/analyze", files={"file": ("a.wav", _tiny_wav())}, data={"embeddings": "maybe"}),
                   422, "validation")
    assert_problem(api.post("/v1/emotion", files={"file": ("a.wav", b"")}), 400)
    assert list(api.app.state.service.settings.uploads_dir.iterdir()) == []


def test_docs_and_redoc_work_offline(api):
    for path in ("/docs", "/redoc"):
        r = api.get(path)
        assert r.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: *['"]([^'"]+)['"]""", r.text)
        found = [u for pair in urls for u in pair if u]
        assert found and not [u for u in found if u.startswith(("http:", "https:", "//"))], found
        for u in found:
            assert api.get(u).status_code == 200, u  # every asset is served by this server
    assert "/predict_emotion" in api.get("/openapi.json").json()["paths"]


def test_predict_emotion_is_an_alias_of_v1_emotion(api):
    clip = CLIP.read_bytes()
    a = api.post("/predict_emotion", files={"file": ("c.wav", clip)}, data={"granularity": "frame"})
    b = api.post("/v1/emotion", files={"file": ("c.wav", clip)}, data={"granularity": "frame"})
    assert a.status_code == b.status_code == 200, a.text
    assert a.json() == b.json() and a.json()["label"] and a.json()["timeline"]
    assert_problem(api.post("/predict_emotion", files={"file": ("c.wav", b"junk")}), 415)


# ---- fuzz: never a 5xx ------------------------------------------------------------------------------------
text = st.one_of(st.text(max_size=40), st.sampled_from(["", "auto", "zh", "frame", "utterance", "true", "false",
                                                        "agent,customer", "{}", '{"agent_id": "a\\u0000"}',
                                                        "sync", "async", "verbose_json", "-1", "1e999", "nan"]))
files = st.sampled_from([None, b"", b"RIFF\x00\x00junk", "wav"])
FORMS = {
    "/v1/analyze": ["language", "channels", "granularity", "embeddings", "emotion_model", "rules", "metadata",
                    "mode"],
    "/v1/emotion": ["granularity", "embedding", "emotion_model"],
    "/predict_emotion": ["granularity", "embedding", "emotion_model"],
    "/v1/audio/transcriptions": ["model", "language", "prompt", "response_format", "temperature",
                                 "timestamp_granularities[]"],
}
QUERIES = {
    "/v1/calls": ["agent_id", "queue", "category", "emotion", "severity", "min_score", "max_score", "date_from",
                  "date_to", "limit", "offset"],
    "/v1/search": ["q", "emotion", "role", "event", "min_score", "severity", "agent_id", "limit", "offset"],
    "/v1/stats/emotions": ["by", "role"],
    "/v1/stats/agents": ["by"],
    "/v1/rules": ["version"],
    "/v1/jobs": ["status", "limit"],
    "/v1/jobs/abc": ["wait", "include_result"],
    "/v1/calls/abc/report": ["download"],
    "/v1/calls/abc/audio": ["token"],
}
WAV = _tiny_wav()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_form_fields_never_5xx(api, data):
    path = data.draw(st.sampled_from(sorted(FORMS)))
    fields = {k: data.draw(text) for k in data.draw(st.lists(st.sampled_from(FORMS[path]), unique=True))}
    content = data.draw(files)
    upload = {"file": ("f.wav", WAV if content == "wav" else content)} if content is not None else None
    r = api.post(path, data=fields, files=upload)
    assert r.status_code < 500, (path, fields, r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["detail"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_query_parameters_never_5xx(api, data):
    path = data.draw(st.sampled_from(sorted(QUERIES)))
    params = {k: data.draw(text) for k in data.draw(st.lists(st.sampled_from(QUERIES[path]), unique=True))}
    r = api.get(path, params=params)
    assert r.status_code < 500, (path, params, r.status_code, r.text[:300])
