"""Limits before cost, against a real ``callsense serve``: a request without a key is refused before its
body is read, an oversized chunked body is cut at the limit, a decompression bomb is refused without
the server's memory growing, and concurrent identical uploads all succeed."""

from __future__ import annotations

import threading

import pytest

from api_support import CLIP, Server, stream_upload
from audio_bombs import peak_rss_mb, reset_peak_rss, silent_flac
from callsense.service.keys import KeyStore

pytestmark = pytest.mark.slow

LIMIT_MB = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models):
    data = tmp_path_factory.mktemp("limits")
    _, key = KeyStore(data / "api-keys.json").create("analyst", "tester")
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1",
           "CALLSENSE_DATABASE_URL": f"sqlite:///{data / 'store.db'}"}
    srv = Server(data, env, "--auth", "--no-ui", "--workers", "2", "--max-queue", "40",
                 "--max-upload-mb", str(LIMIT_MB)).start()
    srv.key = key
    yield srv
    srv.stop()


def test_no_key_is_refused_before_the_body_is_read(server):
    status, sent = stream_upload(server.port, "/v1/analyze", total=64 << 20)
    print(f"\n401 after {sent / 2**20:.2f} MB of a 64 MB chunked upload")
    assert status == 401
    assert sent < 8 << 20  # socket buffers only: the server answered without reading the body
    assert list((server.data_dir / "uploads").iterdir()) == []


def test_chunked_body_is_cut_at_the_limit(server):
    status, sent = stream_upload(server.port, "/v1/analyze", total=64 << 20,
                                 headers={"Authorization": f"Bearer {server.key}"})
    print(f"\n413 after {sent / 2**20:.2f} MB of a 64 MB chunked upload (limit {LIMIT_MB} MB)")
    assert status == 413
    assert sent < (LIMIT_MB << 20) + (8 << 20)  # the limit, one buffer and the sockets' buffers
    assert list((server.data_dir / "uploads").iterdir()) == []


def test_decoding_bomb_refused_without_memory_growth(server, tmp_path):
    bomb = silent_flac(tmp_path / "bomb.flac", 5 * 3600, hide_length=True)  # ~120 KB, header hides 5 h
    before = reset_peak_rss(server.proc.pid)
    with server.client(server.key) as c:
        r = c.post("/v1/analyze", files={"file": ("bomb.flac", bomb.read_bytes(), "audio/flac")})
    grown = peak_rss_mb(server.proc.pid) - before
    print(f"\nbomb: {r.status_code} {r.json().get('code')}, server RSS growth {grown:.1f} MB")
    assert r.status_code == 413 and r.json()["code"] == "audio_limit", r.text
    assert r.json()["source"] == "bomb.flac"  # the client's name, not the server's upload path
    assert grown < 300, grown  # before: 1.98 GB
    assert list((server.data_dir / "uploads").iterdir()) == []


def test_thirty_concurrent_identical_uploads_all_succeed(server):
    clip = CLIP.read_bytes()
    statuses: list[int] = []
    bodies: list[dict] = []
    lock = threading.Lock()

    def one() -> None:
        with server.client(server.key, timeout=600) as c:
            r = c.post("/v1/analyze", files={"file": ("same.wav", clip, "audio/wav")}, data={"rules": "false"})
        with lock:
            statuses.append(r.status_code)
            bodies.append(r.json())

    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 30, [b for b in bodies if "status" in b and b.get("status") != "done"][:3]
    for b in bodies:
        src = b["result"]["source"]
        assert src["name"] == "same.wav" and src["path"] is None  # no server path in responses
    assert not list((server.data_dir / "calls").glob(".*.partial"))
