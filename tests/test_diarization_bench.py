"""bench/bench_diarization.py runs end to end on tiny models (the full run is documented in bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_diarization.py"


def test_smoke_measures_the_stage_and_mono_against_stereo(tmp_path):
    results = BENCH.parent / "RESULTS.md"
    before = results.read_text(encoding="utf-8")
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke", "--e2e", "--json", "--models", str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    targets = json.loads(proc.stdout.strip().splitlines()[-1])["targets"]
    assert targets["diarization_rtf"]["value"] > 0 and targets["diarization_rtf"]["limit"] == 0.05
    assert targets["mono_over_stereo"]["value"] > 0 and isinstance(targets["mono_over_stereo"]["met"], bool)
    doc = json.loads((BENCH.parent / "work" / "diarization.smoke.json").read_text(encoding="utf-8"))
    assert doc["e2e"]["mono (diarized)"]["separation"].startswith("diarization")
    assert doc["e2e"]["stereo"]["separation"] == "stereo"
    assert results.read_text(encoding="utf-8") == before  # --smoke never rewrites the recorded figures
