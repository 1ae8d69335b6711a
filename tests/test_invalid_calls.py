"""Calls with nothing in them, end to end on the real pipeline (tiny random-weight models): a 0.2 s file and
30 s of ringback are not scored, flagged ``call.invalid`` with the reason, and land in the discard view
(``callsense search --invalid``, ``GET /v1/calls?invalid=true``, the UI's "not scored"); a real call is not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from callsense.labels import SAMPLE_RATE as SR
from callsense.pipeline.outputs import write_wav
from callsense.result.io import read_result
from cli_support import run_cli
from conftest import EXAMPLES

pytestmark = pytest.mark.slow


def ringback(seconds: int = 30) -> np.ndarray:
    t = np.arange(SR * seconds) / SR
    return (0.3 * np.sin(2 * np.pi * 450 * t) * ((t % 5) < 1)).astype(np.float32)  # 1 s on, 4 s off


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    write_wav(d / "short.wav", (np.random.default_rng(0).standard_normal(SR // 5) * 0.1).astype(np.float32))
    write_wav(d / "tones.wav", ringback())
    shutil.copy(EXAMPLES / "call_stereo.wav", d / "real.wav")
    return d


def cli(*argv):
    """`callsense ARGV` in this process (cli_support: no Python start-up per command)."""
    p = run_cli(argv, {"COLUMNS": "200"})
    return p.returncode, p.stdout, p.stderr


def cli_process(*argv):
    """The same in a ``python -m callsense`` process, kept for `batch`: its worker pool is spawned from the
    command's own process, as when a user runs it."""
    p = subprocess.run([sys.executable, "-m", "callsense", *argv], capture_output=True, text=True, timeout=300,
                       check=False, env={**os.environ, "COLUMNS": "200"})
    return p.returncode, p.stdout, p.stderr


def test_analyze_leaves_the_empty_and_the_ringing_call_not_scored(with_models, folder, tmp_path):
    code, out, err = cli("analyze", str(folder), "-o", str(tmp_path / "out"))
    assert code == 0, err
    results = {r.source.name: r for r in (read_result(p) for p in (tmp_path / "out").glob("*/result.json"))}
    assert set(results) == {"short.wav", "tones.wav", "real.wav"}
    for name in ("short.wav", "tones.wav"):
        r = results[name]
        assert r.score.status == "not_scored" and r.score.passed is None and r.score.normalized is None, name
        assert [h.rule_id for h in r.rule_hits] == ["call.invalid"]
        assert r.score.reason.startswith("call.invalid: ") and "s of speech (< 3 s)" in r.score.reason
    tones = results["tones.wav"]
    assert [e.type for e in tones.events] == ["Ringback"]  # the signal detector: SenseVoice has no such event
    assert "Ringback" in tones.score.reason
    real = results["real.wav"]
    assert real.score.scored and real.score.normalized is not None and "call.invalid" not in {
        h.rule_id for h in real.rule_hits}
    assert out.count("QA score: not scored — call.invalid: ") == 2


def test_the_discard_view_lists_them_with_the_reason(with_models, folder, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    code, _, err = cli_process("batch", str(folder), "--db", url)
    assert code == 0, err
    code, out, err = cli("search", "--db", url, "--invalid", "--json")
    assert code == 0, err
    hits = {h["source_name"]: h for h in json.loads(out)}
    assert set(hits) == {"short.wav", "tones.wav"}
    assert all(h["qa_score"] is None and h["reason"].startswith("call.invalid: ") for h in hits.values())
    assert "Ringback" in hits["tones.wav"]["reason"] and "Ringback" not in hits["short.wav"]["reason"]
    code, out, _ = cli("search", "--db", url, "--invalid")
    assert code == 0 and "why not scored" in out and "tones.wav" in out and "real.wav" not in out
    code, out, _ = cli("search", "--db", url, "--json")
    assert "reason" not in out  # only the discard view reads the reasons


def test_the_api_discard_view_and_the_ui_list(tiny_models, folder, tmp_path):
    from fastapi.testclient import TestClient

    from api_support import wait_ready
    from callsense.api import create_app
    from callsense.service import ServiceSettings

    mp = pytest.MonkeyPatch()
    mp.setenv("CALLSENSE_MODEL_DIR", str(tiny_models))
    try:
        settings = ServiceSettings(data_dir=tmp_path / "data", ui=False, database_url=f"sqlite:///{tmp_path / 's.db'}")
        with TestClient(create_app(settings), raise_server_exceptions=False) as api:
            wait_ready(api.get)
            for name in ("tones.wav", "real.wav"):
                r = api.post("/v1/analyze", files={"file": (name, (folder / name).read_bytes())})
                assert r.status_code == 200, r.text
            invalid = api.get("/v1/calls", params={"invalid": "true"}).json()["items"]
            assert [c["filename"] for c in invalid] == ["tones.wav"]
            assert invalid[0]["score"] is None and "Ringback" in invalid[0]["not_scored_reason"]
            every = {c["filename"]: c for c in api.get("/v1/calls").json()["items"]}
            assert set(every) == {"tones.wav", "real.wav"} and every["real.wav"]["not_scored_reason"] is None
            call = api.get(f"/v1/calls/{invalid[0]['call_id']}").json()
            assert call["score"]["status"] == "not_scored" and call["rule_hits"][0]["rule_id"] == "call.invalid"
            suggestion = call["rule_hits"][0]["suggestion"]  # the API shows the hit's suggested reply
            assert "不计分" in suggestion["zh"] and "not scored" in suggestion["en"]
    finally:
        mp.undo()
