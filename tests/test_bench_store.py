"""bench/bench_store.py builds into a kept store, resumes it and refuses one built differently
(issue 21: the lead builds 10k and 100k stores once and measures them later). Run as a subprocess,
as the lead runs it, at a toy size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_store.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), "--backends", "sqlite", "--dim", "16", "--segments", "6",
                           "--repeat", "1", *args], check=False, capture_output=True, text=True, timeout=300)


def test_a_kept_store_is_built_resumed_and_measured(tmp_path):
    from callsense.store import count_calls, get_result, open_store

    db = tmp_path / "bench.db"
    first = _run("--sizes", "12", "--sqlite-store", str(db), "--build-only", "--no-write")
    assert first.returncode == 0, first.stderr
    assert "sqlite 12: built" in first.stderr
    second = _run("--sizes", "8,20", "--sqlite-store", str(db), "--no-write")
    assert second.returncode == 0, second.stderr
    assert "reusing 12 stored calls" in second.stderr and "sqlite 8: skipped" in second.stderr
    assert "| ingest, calls/s (save_result) | " in second.stdout and "(8 calls)" in second.stdout
    store = open_store(f"sqlite:///{db}")
    try:
        assert count_calls(store) == 20  # a kept store is not purged unless --purge
        assert get_result(store, "call0000019").call_id == "call0000019"
    finally:
        store.close()
    other = _run("--sizes", "24", "--sqlite-store", str(db), "--seed", "5", "--build-only", "--no-write")
    assert other.returncode != 0 and "another --seed" in other.stderr
