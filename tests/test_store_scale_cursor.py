"""Keyset cursors exposed (issue 21, item 2): GET /v1/calls?cursor= with next_cursor, and
`callsense search --after CURSOR`; pages walk every call once, in the order of the offset pages."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from api_support import wait_ready
from callsense.testing.results import make_result, seg

N = 7


def _fill(url: str) -> None:
    import dataclasses

    from callsense.store import open_store, save_result

    store = open_store(url)
    try:
        for i in range(N):
            r = make_result([seg("agent", 0, 1000, "您好", emotion_="neutral"),
                             seg("customer", 1500, 2500, f"我要退款{i}", emotion_="angry"),
                             seg("customer", 3000, 4000, "退款太慢", emotion_="angry")], call_id=f"k{i}",
                            metadata={"agent_id": "a1", "started_at": f"2026-03-0{1 + i % 3}T10:00:0{i}Z"})
            save_result(store, dataclasses.replace(r, source=dataclasses.replace(r.source, sha256=f"{i:064d}")))
    finally:
        store.close()


def test_api_calls_pages_by_cursor(tmp_path, tiny_models, monkeypatch):
    from callsense.api import create_app
    from callsense.service import ServiceSettings

    url = f"sqlite:///{tmp_path / 'store.db'}"
    _fill(url)
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(tiny_models))
    monkeypatch.setenv("CALLSENSE_OFFLINE", "1")
    with TestClient(create_app(ServiceSettings(data_dir=tmp_path, ui=False, database_url=url)),
                    raise_server_exceptions=False) as c:
        wait_ready(c.get)
        for params in ({}, {"emotion": "angry"}):  # call hits, and segment hits (two per call)
            whole = c.get("/v1/calls", params={**params, "limit": 100}).json()
            assert whole["total"] == N and whole["next_cursor"] is None
            seen, cursor = [], ""
            while cursor is not None:
                page = c.get("/v1/calls", params={**params, "limit": 3, "cursor": cursor}).json()
                assert page["total"] is None and len(page["items"]) <= 3
                seen += [it["call_id"] for it in page["items"]]
                cursor = page["next_cursor"]
            assert seen == [it["call_id"] for it in whole["items"]]
        bad = c.get("/v1/calls", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422 and "cursor" in bad.json()["detail"]  # problem+json, never a 500


def test_cli_search_after_cursor(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    _fill(url)

    from cli_support import run_cli  # in this process: four Python start-ups saved

    def search(*extra: str) -> list[dict]:
        p = run_cli(["search", "退款", "--db", url, "--json", *extra])
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    every = search("--limit", "100")
    assert len(every) == 2 * N
    first = search("--limit", "4")
    rest = search("--limit", "100", "--after", first[-1]["cursor"])
    assert [(h["call_id"], h["segment_id"]) for h in first + rest] == [(h["call_id"], h["segment_id"]) for h in every]
    bad = run_cli(["search", "退款", "--db", url, "--after", "zzz"])
    assert bad.returncode == 2 and "cursor" in bad.stderr
