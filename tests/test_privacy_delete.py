"""Deleted means gone: a real ``callsense serve`` process, on SQLite and on PostgreSQL.

After ``DELETE /v1/calls/{id}`` or ``callsense purge --older-than 0s --what all`` every route answers
404 and a walk of the data folder finds nothing of the call; refused requests and failed jobs leave
nothing; ``--no-keep-audio`` keeps no audio; ``--redact`` stores and answers no phone numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api_support import CALL, CLIP, Server, assert_problem
from callsense.testing.store import fresh_postgres_database

pytestmark = pytest.mark.slow

PHONE = "13812345678"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


def _server(tmp_path: Path, db_url: str, tiny_models: Path, *args: str) -> Server:
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1", "CALLSENSE_DATABASE_URL": db_url}
    return Server(tmp_path / "data", env, "--no-ui", *args).start()


def _files(root: Path) -> list[Path]:
    """Every file under the data folder except the server's own (keys, rules, its log, a SQLite store)."""
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(("serve-", "store.db"))
            and p.parent.name != "rules" and p.name != "api-keys.json"]


def _mentions(root: Path, call_id: str, needle: bytes | None = None) -> list[Path]:
    out = []
    for p in _files(root):
        data = p.read_bytes()
        if call_id in p.as_posix() or call_id.encode() in data or (needle and needle in data) or p.suffix == ".wav":
            out.append(p)
    return out


def _analyze(c, path: Path = CALL, **data):
    r = c.post("/v1/analyze", files={"file": (f"{PHONE}.wav", path.read_bytes())},
               data={"metadata": json.dumps({"customer_id": PHONE, "agent_id": "a1"}), **data})
    assert r.status_code == 200, r.text[:500]
    return r.json()["call_id"]


def _gone(c, call_id: str) -> None:
    for route in ("", "/audio", "/report", "/embeddings"):
        assert_problem(c.get(f"/v1/calls/{call_id}{route}"), 404)
    assert call_id not in c.get("/v1/calls").text
    assert c.get("/v1/search", params={"agent_id": "a1"}).json()["total"] == 0


def test_delete_removes_every_copy(tmp_path, db_url, tiny_models):
    srv = _server(tmp_path, db_url, tiny_models)
    try:
        with srv.client() as c:
            first = _analyze(c)
            time.sleep(1.1)  # another second: without stable identity this would be a new call id
            second = _analyze(c)
            again = _analyze(c)
            # re-analysing the recording keeps its call id (docs/store.md) and replaces the earlier folders
            assert first == second == again
            assert c.get(f"/v1/calls/{again}/audio").status_code == 200
            assert len(list((srv.data_dir / "calls").iterdir())) == 1
            assert c.delete(f"/v1/calls/{again}").status_code == 204
            for cid in {first, second, again}:
                _gone(c, cid)
            assert_problem(c.delete(f"/v1/calls/{again}"), 404)
        left = [p for cid in (first, second, again) for p in _mentions(srv.data_dir, cid, PHONE.encode())]
        assert left == [], left
    finally:
        srv.stop()


def test_purge_all_leaves_nothing(tmp_path, db_url, tiny_models):
    srv = _server(tmp_path, db_url, tiny_models)
    try:
        with srv.client() as c:
            call_id = _analyze(c)
            assert c.get(f"/v1/calls/{call_id}/report").status_code == 200
            cli = subprocess.run([sys.executable, "-m", "callsense", "purge", "--older-than", "0s", "--what", "all",
                                  "--db", db_url], capture_output=True, text=True, timeout=120)
            assert cli.returncode == 0, cli.stderr
            _gone(c, call_id)
        assert _mentions(srv.data_dir, call_id, PHONE.encode()) == []
    finally:
        srv.stop()


def test_refused_requests_and_failed_jobs_leave_nothing(tmp_path, db_url, tiny_models):
    srv = _server(tmp_path, db_url, tiny_models)
    try:
        with srv.client() as c:
            bad = c.post("/v1/analyze", files={"file": ("c.wav", CLIP.read_bytes())},
                         data={"metadata": json.dumps({"started_at": "not a time", "customer_id": PHONE})})
            assert_problem(bad, 422)
            r = c.post("/v1/analyze", files={"file": ("notes.wav", b"this is not audio at all" * 100)},
                       data={"mode": "async"})
            assert r.status_code == 202, r.text
            job = c.get(f"/v1/jobs/{r.json()['job']['id']}", params={"wait": 60}).json()
            assert job["status"] == "failed" and job["error"]["code"] == "audio_decode", job
        assert _files(srv.data_dir) == []
    finally:
        srv.stop()


def test_no_keep_audio_and_redact(tmp_path, db_url, tiny_models):
    srv = _server(tmp_path, db_url, tiny_models, "--no-keep-audio", "--redact")
    try:
        with srv.client() as c:
            r = c.post("/v1/analyze", files={"file": (f"{PHONE}.wav", CALL.read_bytes())},
                       data={"metadata": json.dumps({"customer_id": PHONE, "note": "回电 1 3 8 1 2 3 4 5 6 7 8"})})
            assert r.status_code == 200, r.text[:300]
            call_id = r.json()["call_id"]
            assert PHONE not in r.text and "1 3 8 1 2" not in r.text
            stored = c.get(f"/v1/calls/{call_id}").json()
            assert stored["metadata"]["customer_id"] == "[PHONE]" and stored["metadata"]["filename"] == "[PHONE].wav"
            assert_problem(c.get(f"/v1/calls/{call_id}/audio"), 404)
        assert [p for p in _files(srv.data_dir) if p.suffix in (".wav", ".upload")] == []
        assert [p for p in _files(srv.data_dir) if PHONE.encode() in p.read_bytes()] == []
    finally:
        srv.stop()
    from sqlalchemy import text

    from callsense.store import open_store

    store = open_store(db_url)
    try:
        with store.engine.connect() as conn:
            row = conn.execute(text("SELECT source_name, customer_id, metadata_json, result_json, result_z FROM calls")
                               ).one()
        from callsense.store.codec import result_text

        row = (*row[:3], result_text(row[3], row[4]))
        assert all(PHONE not in str(v) for v in row), row
    finally:
        store.close()
