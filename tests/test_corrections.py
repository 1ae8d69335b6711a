"""Reviewers' corrections (issue 20, item 3): ``POST /v1/calls/{id}/segments/{seg}/label`` on a real
server, stored with who and when, exported, deleted with the call, and a training source for
``callsense adapt train store:corrections`` — on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from api_support import CALL, EXAMPLES, Server, assert_problem
from callsense.testing.store import fresh_postgres_database

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "callsense", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)


def test_corrections_are_stored_exported_trained_on_and_deleted_with_the_call(tmp_path, db_url, tiny_models):
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1", "CALLSENSE_DATABASE_URL": db_url}
    srv = Server(tmp_path / "data", env, "--no-ui").start()
    cli_env = {**os.environ, **env, "CALLSENSE_HOME": str(tmp_path / "home")}
    try:
        with srv.client() as c:
            calls = []
            for path in (CALL, EXAMPLES / "call_stereo_8k_mulaw.wav"):
                r = c.post("/v1/analyze", files={"file": (path.name, path.read_bytes())})
                assert r.status_code == 200, r.text[:500]
                calls.append(r.json()["result"])
            first = calls[0]
            seg = next(s for s in first["segments"] if s["emotion"])
            url = f"/v1/calls/{first['call_id']}/segments/{seg['id']}/label"

            r = c.post(url, json={"label": "Angry", "note": "shouting"})
            assert r.status_code == 201, r.text
            got = r.json()
            assert got["label"] == "angry" and got["custom"] is False and got["previous"] == seg["emotion"]["label"]
            assert got["reviewer"] == "local" and got["at"].endswith("Z") and got["note"] == "shouting"
            custom = c.post(url, json={"label": "焦虑 anxious"}).json()
            assert custom["custom"] is True and custom["label"] == "焦虑 anxious"

            assert_problem(c.post(url, json={"label": ""}), 422)
            assert_problem(c.post(url, json={"label": "a,b"}), 422)
            assert_problem(c.post(url, json={"nolabel": 1}), 422)
            assert_problem(c.post(url, content=b"{not json"), 422)
            assert_problem(c.post(url, content=b"\xff\xfe"), 422)
            assert_problem(c.post(url, content=b" " * (17 << 10)), 413)
            assert_problem(c.post(f"/v1/calls/{first['call_id']}/segments/s9999/label", json={"label": "sad"}),
                           404, "segment_not_found")
            assert_problem(c.post("/v1/calls/nope/segments/s0001/label", json={"label": "sad"}), 404)

            items = c.get(f"/v1/calls/{first['call_id']}/labels").json()["items"]
            assert [i["label"] for i in items] == ["angry", "焦虑 anxious"]  # history kept, oldest first

            # a training set: two labels over both calls' segments (grouped by call in cross-validation)
            n = 0
            for call in calls:
                for i, s in enumerate(x for x in call["segments"] if x["emotion"]):
                    r = c.post(f"/v1/calls/{call['call_id']}/segments/{s['id']}/label",
                               json={"label": ("calm", "tense")[i % 2]})
                    assert r.status_code == 201
                    n += 1

            out = tmp_path / "corrections.jsonl"
            p = _cli(["export", "--what", "corrections", "--format", "jsonl", "-o", out], cli_env)
            assert p.returncode == 0, p.stderr
            rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
            assert len(rows) == n + 2 and rows[0]["label"] == "angry" and rows[0]["reviewer"] == "local"
            assert {"start_ms", "end_ms", "role", "previous", "at", "text"} <= set(rows[0])

            p = _cli(["adapt", "train", "store:corrections", "--out", "reviewed", "--json"], cli_env)
            assert p.returncode == 0, p.stdout + p.stderr
            head = json.loads(p.stdout)
            assert head["labels"] == ["calm", "tense"] and head["training"]["clips"] == n
            assert head["training"]["speakers"] == 2 and head["training"]["source"] == "store:corrections"

            assert c.delete(f"/v1/calls/{first['call_id']}").status_code == 204
            assert_problem(c.get(f"/v1/calls/{first['call_id']}/labels"), 404)
            p = _cli(["export", "--what", "corrections", "--format", "jsonl", "-o", out], cli_env)
            rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
            assert rows and {r["call_id"] for r in rows} == {calls[1]["call_id"]}
    finally:
        srv.stop()
