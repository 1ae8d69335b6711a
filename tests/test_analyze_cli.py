"""`callsense analyze` end to end on tiny forge models, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from callsense.cli.app import main
from callsense.result import read_result
from callsense.result.schema import validate

REPO = Path(__file__).resolve().parent.parent
CALL = REPO / "examples" / "call_stereo.wav"
CALL_8K = REPO / "examples" / "call_stereo_8k_mulaw.wav"
TRUTH = json.loads((REPO / "examples" / "call_stereo.truth.json").read_text())


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def one_call(out: str) -> dict:
    """`analyze --json` prints one document; a run over one file holds one call and no failure."""
    doc = json.loads(out)
    assert doc["failures"] == []
    [call] = doc["calls"]
    return call


def truth_turns(channel: int) -> list[tuple[int, int]]:
    ch = next(c for c in TRUTH["channels"] if c["channel"] == channel)
    return [(t["start_ms"], t["end_ms"]) for t in ch["turns"]]


@pytest.fixture
def analyzed(with_models, tmp_path, capsys):
    code, out, err = run_cli(["analyze", str(CALL), "--out", str(tmp_path / "o"), "--json"], capsys)
    assert code == 0, err
    folders = list((tmp_path / "o").iterdir())
    assert len(folders) == 1
    return one_call(out), folders[0]


def test_result_validates_and_segments_match_the_speech_of_both_roles(analyzed):
    data, folder = analyzed
    validate(data)  # the shipped JSON Schema
    assert data["separation"]["channel_map"] == ["agent", "customer"]
    for channel, role in ((0, "agent"), (1, "customer")):
        segs = [(s["start_ms"], s["end_ms"]) for s in data["segments"] if s["channel"] == channel]
        assert {s["role"] for s in data["segments"] if s["channel"] == channel} == {role}
        truth = truth_turns(channel)
        assert len(segs) == len(truth), (segs, truth)
        for (a, b), (ta, tb) in zip(segs, truth):
            assert abs(a - ta) <= 200 and abs(b - tb) <= 200, ((a, b), (ta, tb))
    starts = [s["start_ms"] for s in data["segments"]]
    assert starts == sorted(starts)
    assert [s["id"] for s in data["segments"]] == [f"s{i:04d}" for i in range(1, len(starts) + 1)]


def test_output_folder_holds_result_audio_and_embeddings(analyzed):
    data, folder = analyzed
    assert folder.name == f"outputs_{data['call_id']}"
    assert read_result(folder).call_id == data["call_id"]
    import av

    with av.open(str(folder / "audio_16k.wav")) as f:
        stream = f.streams.audio[0]
        assert stream.rate == 16000 and stream.channels == 2
    emb = np.load(folder / "embeddings.npy")
    indexed = [s["emotion"]["embedding_index"] for s in data["segments"] if s["emotion"]["source"] == "emotion2vec"]
    assert sorted(indexed) == list(range(emb.shape[0]))
    assert emb.shape[1] > 0
    for seg in data["segments"]:
        assert abs(sum(seg["emotion"]["scores"]) - 1.0) < 1e-4
    timings = data["processing"]["timings_ms"]
    assert {"decode", "vad", "asr", "emotion"} <= set(timings)


def test_summary_table_shows_segments(with_models, tmp_path, capsys):
    code, out, err = run_cli(["analyze", str(CALL), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert "agent" in out and "customer" in out and "written to" in out


def test_two_runs_never_collide(with_models, tmp_path, capsys):
    for _ in range(2):
        code, _, err = run_cli(["analyze", str(CALL), "--out", str(tmp_path / "o"), "--json", "--no-audio"], capsys)
        assert code == 0, err
    assert len(list((tmp_path / "o").iterdir())) == 2


def test_telephony_mulaw_is_marked_narrowband(with_models, tmp_path, capsys):
    code, out, err = run_cli(["analyze", str(CALL_8K), "--out", str(tmp_path / "o"), "--json"], capsys)
    assert code == 0, err
    data = one_call(out)
    assert data["source"]["narrowband"] is True and data["source"]["sample_rate"] == 8000
    assert data["source"]["codec"] == "pcm_mulaw"
    assert any("narrowband" in w for w in data["processing"]["warnings"])
    assert {s["role"] for s in data["segments"]} == {"agent", "customer"}


def test_channel_map_swaps_roles(with_models, tmp_path, capsys):
    code, out, err = run_cli(["analyze", str(CALL), "--out", str(tmp_path / "o"), "--json",
                              "--channels", "customer,agent"], capsys)
    assert code == 0, err
    data = one_call(out)
    assert {s["role"] for s in data["segments"] if s["channel"] == 0} == {"customer"}


def test_bad_language_is_a_usage_error_listing_valid_codes(with_models, tmp_path, capsys):
    code, _, err = run_cli(["analyze", str(CALL), "--language", "zn", "--out", str(tmp_path)], capsys)
    assert code == 2
    assert "zn" in err and "zh" in err and "yue" in err


def test_missing_models_exit_4_with_the_fix(tmp_path, capsys):
    code, _, err = run_cli(["analyze", str(CALL), "--out", str(tmp_path)], capsys)
    assert code == 4
    assert "sensevoice-small" in err and "callsense models pull" in err and "Traceback" not in err


def test_without_emotion_model_sensevoice_tags_stand_in(tmp_path, tiny_models, monkeypatch, capsys):
    only_asr = tmp_path / "only-asr"
    (only_asr / "sensevoice-small").mkdir(parents=True)
    (only_asr / "sensevoice-small" / "onnx").symlink_to(tiny_models / "sensevoice-small" / "onnx")
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(only_asr))
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a base install: no export possible
    code, out, err = run_cli(["analyze", str(CALL), "--out", str(tmp_path / "o"), "--json"], capsys)
    assert code == 0, err
    data = one_call(out)
    skipped = {s["feature"]: s for s in data["processing"]["skipped"]}
    assert "emotion2vec" in skipped and "callsense" in (skipped["emotion2vec"]["hint"] or "")
    assert all(s["emotion"] is None or s["emotion"]["source"] == "sensevoice" for s in data["segments"])
    assert any(s["emotion"] for s in data["segments"])


BAD_INPUTS = {
    "empty.wav": b"",
    "noise.wav": bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
    "notes.txt": "this is not audio\n".encode(),
}


def test_multi_file_run_reports_each_failure_and_continues(with_models, tmp_path, capsys):
    paths = []
    for name, data in BAD_INPUTS.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    (tmp_path / "no-audio-here").mkdir()
    paths += [str(tmp_path / "does-not-exist.wav"), str(tmp_path / "no-audio-here"), str(CALL)]
    code, out, err = run_cli(["analyze", *paths, "--out", str(tmp_path / "o"), "--json"], capsys)
    assert code == 3
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    for name in [*BAD_INPUTS, "does-not-exist.wav", "no-audio-here"]:
        assert any(name in line for line in lines), (name, err)
    assert "Traceback" not in err
    doc = json.loads(out)
    assert [c["source"]["name"] for c in doc["calls"]] == [CALL.name]
    failed = {Path(f["path"]).name: f for f in doc["failures"]}
    assert set(failed) == {*BAD_INPUTS, "does-not-exist.wav", "no-audio-here"}
    assert failed["does-not-exist.wav"]["code"] == "audio_not_found" and failed["notes.txt"]["reason"]
    assert "5 of 6 inputs failed" in err


def test_debug_shows_the_traceback(with_models, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "callsense", "--debug", "analyze", str(tmp_path / "empty.wav"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_a_folder_and_a_glob_are_read_as_batch_reads_them(with_models, tmp_path, capsys):
    import shutil

    calls = tmp_path / "calls"
    (calls / "day2").mkdir(parents=True)
    shutil.copy(CALL, calls / "a.wav")
    shutil.copy(CALL_8K, calls / "day2" / "b.wav")
    (calls / "day2" / "broken.wav").write_bytes(b"RIFF not really")
    (calls / "readme.txt").write_text("not a recording")
    code, out, err = run_cli(["analyze", str(calls), "--out", str(tmp_path / "o"), "--json", "--no-audio"], capsys)
    assert code == 3, err  # the broken file fails; the others are analysed
    doc = json.loads(out)
    assert sorted(c["source"]["name"] for c in doc["calls"]) == ["a.wav", "b.wav"]
    assert [Path(f["path"]).name for f in doc["failures"]] == ["broken.wav"]
    assert "1 of 3 inputs failed" in err and "Traceback" not in err

    code, out, err = run_cli(["analyze", str(calls / "**" / "b.wav"), "--out", str(tmp_path / "o2"), "--json",
                              "--no-audio"], capsys)
    assert code == 0, err
    assert [c["source"]["name"] for c in one_call_list(out)] == ["b.wav"]


def one_call_list(out: str) -> list[dict]:
    doc = json.loads(out)
    assert doc["failures"] == []
    return doc["calls"]


def test_unwritable_out_is_one_line_and_exit_3_before_any_model_loads(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = subprocess.run([sys.executable, "-m", "callsense", "analyze", str(CALL), "--out", str(blocker / "o")],
                          capture_output=True, text=True, timeout=120, check=False)  # no models installed: it must not get there
    assert proc.returncode == 3, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error:") and str(blocker / "o") in line and "--out" in line


@pytest.mark.skipif(sys.platform == "win32" or __import__("os").geteuid() == 0, reason="root can write anywhere")
def test_read_only_out_is_exit_3(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    proc = subprocess.run([sys.executable, "-m", "callsense", "analyze", str(CALL), "--out", str(ro)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 3 and "permission denied" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_recording_is_one_line_and_exit_3():
    proc = subprocess.run([sys.executable, "-m", "callsense", "analyze", "/nonexistent/call.wav", "--out",
                           "/tmp/callsense-never-written"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == ["error: /nonexistent/call.wav: no such file (check the path)"]


def test_a_file_that_fails_while_the_models_load_exits_3_not_a_crash(with_models, tmp_path):
    """The models load on background threads while the first file is decoded. A file that fails at once
    (or a bad setting) used to end the process while a loader was inside ONNX Runtime: "terminate called
    without an active exception", exit 134 instead of 3 (and -6 instead of 2 for a bad speaker model)."""
    import os

    broken = tmp_path / "broken.wav"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    env = {**os.environ, "CALLSENSE_MODEL_DIR": str(with_models)}
    for _ in range(3):  # the race lost every time on 2 cores before the fix; three tries keep it honest
        proc = subprocess.run([sys.executable, "-m", "callsense", "analyze", str(broken), "--out",
                               str(tmp_path / "o")], capture_output=True, text=True, timeout=120, check=False,
                              env=env)
        assert proc.returncode == 3, proc.stderr
        assert "not a readable audio file" in proc.stderr and "terminate" not in proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr  # the one error line, nothing from a dying thread
    bad = subprocess.run([sys.executable, "-m", "callsense", "analyze", str(CALL), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120, check=False,
                         env={**env, "CALLSENSE_SPEAKER_MODEL": "sensevoice-small"})
    assert bad.returncode == 2 and "speaker-embedding" in bad.stderr and "terminate" not in bad.stderr
