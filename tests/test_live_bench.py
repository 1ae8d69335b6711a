"""bench/live.py --smoke runs end to end: a real server, a real-time WebSocket call, sane measurements."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

pytestmark = pytest.mark.slow


def test_live_bench_smoke(tmp_path, tiny_models):
    r = subprocess.run([sys.executable, str(BENCH / "live.py"), "--smoke", "--json", "--models", str(tiny_models)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    assert doc["size"] == "tiny" and doc["speed"] == 2.0
    (row,) = doc["rows"]
    assert row["calls"] == row["completed"] == 1 and not row["errors"]
    assert row["finals"] > 0 and row["alerts"] > 0
    # a final can only come after the VAD heard the closing silence (300 ms of audio, 0.15 s at 2x)
    assert 0.1 < row["final_p50_s"] <= row["final_p95_s"] <= row["final_max_s"] < 60
    # counting rules fire once each, each right after the final of the utterance that made the count
    assert row["alerts"] <= row["finals"] and row["alert_p50_s"] > 0.1
    # the protocol's promise: partials at most every 0.5 s (wall clock)
    assert row["partial_interval_p50_s"] is None or row["partial_interval_p50_s"] >= 0.5 - 0.02
    assert row["cpu_cores"] > 0 and row["peak_rss_mb"] > 50
    assert len(row["loadavg_before"].split()) == 3
