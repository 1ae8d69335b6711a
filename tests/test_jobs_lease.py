"""Jobs that tell the truth with several servers: two real ``callsense serve`` processes on one
PostgreSQL store (and one data folder). A server never takes over a job another server is running
(its lease is alive); a job whose server died is taken over once its lease expires; each job's
outcome is written once, by its owner."""

from __future__ import annotations

import time

import pytest

from api_support import CALL, Server
from callsense.testing.store import fresh_postgres_database

pytestmark = pytest.mark.slow


def _jobs(url: str) -> list[dict]:
    from sqlalchemy import select

    from callsense.store import open_store
    from callsense.store.models import service_jobs

    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(service_jobs)).mappings()]
    finally:
        store.close()


def _pair(tmp_path, tiny_models, url, lease_s: float = 6):
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1", "CALLSENSE_DATABASE_URL": url}
    args = ("--no-ui", "--workers", "1", "--job-lease-s", str(lease_s))
    return Server(tmp_path / "data", env, *args), Server(tmp_path / "data", env, *args)


def _submit(c) -> str:
    r = c.post("/v1/analyze", files={"file": ("c.wav", CALL.read_bytes())},
               data={"mode": "async", "embeddings": "false"})
    assert r.status_code == 202, r.text[:300]
    return r.json()["job"]["id"]


def test_second_server_leaves_running_jobs_alone(tmp_path, tiny_models):
    with fresh_postgres_database() as url:
        # A lease long enough that a loaded CI machine never lets a live one lapse: this test is about
        # live leases (the next one lets a lease expire on purpose).
        a, b = _pair(tmp_path, tiny_models, url, lease_s=30)
        a.start()
        try:
            with a.client() as c:
                ids = [_submit(c) for _ in range(10)]
                deadline = time.monotonic() + 30
                while not any(j["status"] == "running" for j in _jobs(url)) and time.monotonic() < deadline:
                    time.sleep(0.1)
                running = [j["id"] for j in _jobs(url) if j["status"] == "running"]
                assert running, "server A never started a job"
                b.start()  # starts while A runs a job: it must not touch it
                for job_id in ids:
                    job = c.get(f"/v1/jobs/{job_id}", params={"wait": 120}).json()
                    assert job["status"] == "done", job
            rows = {j["id"]: j for j in _jobs(url)}
            assert all(rows[i]["attempts"] == 1 for i in ids), [(i, rows[i]["attempts"]) for i in ids]
            assert all(rows[i]["error_json"] is None for i in ids)
            assert str(a.proc.pid) in rows[running[0]]["owner"]
        finally:
            b.stop()
            a.stop()


def test_a_dead_servers_job_is_taken_over_after_its_lease(tmp_path, tiny_models):
    with fresh_postgres_database() as url:
        a, b = _pair(tmp_path, tiny_models, url)
        a.start()
        b.start()
        try:
            with a.client() as c:
                ids = [_submit(c) for _ in range(4)]
            deadline = time.monotonic() + 30
            victim = None
            while victim is None and time.monotonic() < deadline:
                victim = next((j for j in _jobs(url) if j["status"] == "running"
                               and f":{a.proc.pid}:" in (j["owner"] or "")), None)
                time.sleep(0.05)
            assert victim is not None, "server A never ran a job"
            a.kill()
            with b.client() as c:
                for job_id in ids:
                    job = c.get(f"/v1/jobs/{job_id}", params={"wait": 120}).json()
                    assert job["status"] == "done", job
            row = next(j for j in _jobs(url) if j["id"] == victim["id"])
            if row["attempts"] == 2:  # A died mid-job: B took it over once the lease expired
                assert f":{b.proc.pid}:" in row["owner"]
            else:  # A had just finished it when it was killed
                assert row["attempts"] == 1
        finally:
            b.stop()
            a.stop()
