"""Review clips: ``callsense clip`` on a call folder, and the window a hit plays."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from callsense.cli.app import main
from callsense.pipeline.outputs import AUDIO_FILE, write_wav
from callsense.result.io import dump_result
from callsense.rules import apply_qa
from callsense.testing.results import make_result, seg
from conftest import EXAMPLES as REPO_EXAMPLES


@pytest.fixture()
def turn_folder(tmp_path):
    segs = [seg("customer", 0, 5000, "你好我想问一下订单", emotion_="happy"),
            seg("agent", 6000, 20000, "这个不能退的哦亲", emotion_="neutral"),
            seg("customer", 40000, 45000, "什么意思你们太过分了", emotion_="angry")]
    result = apply_qa(make_result(segs, duration_ms=90000, call_id="c-turn"))
    folder = tmp_path / "outputs_c-turn"
    folder.mkdir()
    (folder / "result.json").write_text(dump_result(result), encoding="utf-8")
    rng = np.random.default_rng(1)
    write_wav(folder / AUDIO_FILE, [rng.uniform(-0.1, 0.1, 90 * 16000).astype(np.float32) for _ in range(2)])
    return folder


def run(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code


def test_clip_of_the_emotion_turn_is_its_30_s_window(turn_folder, tmp_path, capsys):
    out = tmp_path / "turn.wav"
    assert run(["clip", str(turn_folder), "--hit", "emotion.turn", "-o", str(out)]) == 0
    from callsense.result.io import read_result

    hit = next(h for h in read_result(turn_folder / "result.json").rule_hits if h.rule_id == "emotion.turn")
    start, end = hit.window()
    assert start <= 25000 and end >= 55000 and end - start <= 60000  # the 30 s around the turn, at least
    with wave.open(str(turn_folder / AUDIO_FILE)) as full, wave.open(str(out)) as part:
        assert part.getnchannels() == 2 and part.getframerate() == 16000
        assert part.getnframes() == (end - start) * 16
        full.setpos(start * 16)
        assert part.readframes(part.getnframes()) == full.readframes((end - start) * 16)
    assert f"{start / 1000:.1f}" in capsys.readouterr().out


def test_report_of_a_call_folder_embeds_the_review_clips(turn_folder, tmp_path):
    out = tmp_path / "r.html"
    assert run(["report", str(turn_folder), "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert '<audio class="clip" controls' in html and 'data-rule="emotion.turn" src="data:audio/wav;base64,' in html
    (turn_folder / AUDIO_FILE).unlink()  # no audio kept: the report still renders, without players
    assert run(["report", str(turn_folder), "-o", str(out)]) == 0
    assert "<audio" not in out.read_text(encoding="utf-8") and "emotion.turn" in out.read_text(encoding="utf-8")


def test_clip_by_range_and_its_errors(turn_folder, tmp_path, capsys):
    out = tmp_path / "r.wav"
    assert run(["clip", str(turn_folder), "--start-ms", "1000", "--end-ms", "3000", "-o", str(out)]) == 0
    with wave.open(str(out)) as w:
        assert w.getnframes() == 32000
    assert run(["clip", str(turn_folder), "--hit", "risk.complaint"]) == 2  # no such hit in this call
    assert "has no hit of rule 'risk.complaint'" in capsys.readouterr().err
    assert run(["clip", str(turn_folder), "--start-ms", "3000", "--end-ms", "1000"]) == 3  # reversed range
    assert run(["clip", str(turn_folder)]) == 2  # neither --hit nor a range
    (turn_folder / AUDIO_FILE).unlink()
    assert run(["clip", str(turn_folder), "--hit", "emotion.turn"]) == 3
    assert "no processed audio" in capsys.readouterr().err


def _cli(*argv):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "callsense", *argv], capture_output=True, text=True, timeout=300, check=False)
    return p.returncode, p.stdout + p.stderr


def _cli_here(*argv):
    """`callsense ARGV` in this process, answered as _cli answers (cli_support: no Python start-up)."""
    from cli_support import run_cli

    p = run_cli(argv)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.slow
def test_clip_of_a_batch_stored_call_is_cut_from_its_recording(with_models, tmp_path):
    """`callsense batch` keeps no call folder: `callsense clip CALL_ID` decodes the recording (checked by its
    SHA-256) and cuts the hit's window, the same bytes a call folder's processed audio gives."""
    import shutil

    from callsense.audio.decode import load_audio
    from callsense.store import get_result, list_calls, open_store

    src = tmp_path / "in" / "a.wav"
    src.parent.mkdir()
    shutil.copy(REPO_EXAMPLES / "call_stereo.wav", src)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    code, out = _cli("batch", str(src.parent), "--db", url)
    assert code == 0, out
    store = open_store(url)
    try:
        call_id = list_calls(store)[0].call_id
        result = get_result(store, call_id)
    finally:
        store.close()
    hit = next(h for h in result.rule_hits if h.window() is not None)  # the example's 5 s of dead air
    start, end = hit.window()
    clip = tmp_path / "hit.wav"
    code, out = _cli_here("clip", call_id, "--db", url, "--hit", hit.rule_id, "-o", str(clip))
    assert code == 0, out
    full = tmp_path / "full.wav"
    write_wav(full, [t.samples for t in load_audio(src).tracks])
    with wave.open(str(full)) as f, wave.open(str(clip)) as part:
        assert part.getnchannels() == 2 and part.getframerate() == 16000 and part.getnframes() == (end - start) * 16
        f.setpos(start * 16)
        assert part.readframes(part.getnframes()) == f.readframes((end - start) * 16)
    report = tmp_path / "r.html"
    code, out = _cli_here("report", call_id, "--db", url, "-o", str(report))
    assert code == 0, out
    assert f'data-rule="{hit.rule_id}" src="data:audio/wav;base64,' in report.read_text(encoding="utf-8")
    src.write_bytes(src.read_bytes() + b"\x00\x00")  # not the recording that was analysed any more
    code, out = _cli_here("clip", call_id, "--db", url, "--start-ms", "0", "--end-ms", "1000", "-o", str(clip))
    assert code == 3 and "changed since it was analysed" in out
    src.unlink()
    code, out = _cli_here("clip", call_id, "--db", url, "--start-ms", "0", "--end-ms", "1000", "-o", str(clip))
    assert code == 3 and "recording is gone" in out


@pytest.mark.slow
def test_the_api_plays_a_batch_stored_call_from_its_recording(with_models, tmp_path):
    """A call stored by `callsense batch` (no call folder) plays in the API and the web UI: /clip and
    /audio decode its recording once into the UI temp folder (the SHA-256 checked), the copy goes with
    the call's deletion, and a changed recording is a 404, not someone else's audio."""
    import shutil

    from api_support import Server
    from callsense.audio.decode import load_audio
    from callsense.store import get_result, list_calls, open_store

    src = tmp_path / "in" / "a.wav"
    src.parent.mkdir()
    shutil.copy(REPO_EXAMPLES / "call_stereo.wav", src)
    other = tmp_path / "in2" / "b.wav"
    other.parent.mkdir()
    shutil.copy(REPO_EXAMPLES / "call_stereo_8k_mulaw.wav", other)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    for folder in (src.parent, other.parent):
        code, out = _cli("batch", str(folder), "--db", url)
        assert code == 0, out
    store = open_store(url)
    try:
        calls = {c.source_name: c.call_id for c in list_calls(store)}
        assert set(calls) == {"a.wav", "b.wav"}, calls
        call_id, second = calls["a.wav"], calls["b.wav"]
        result = get_result(store, call_id)
    finally:
        store.close()
    hit = next(h for h in result.rule_hits if h.window() is not None)
    start, end = hit.window()
    full = tmp_path / "full.wav"
    write_wav(full, [t.samples for t in load_audio(src).tracks])
    data = tmp_path / "data"
    srv = Server(data, {"CALLSENSE_OFFLINE": "1", "CALLSENSE_DATABASE_URL": url}, "--no-ui").start()
    try:
        with srv.client() as c, wave.open(str(full)) as f:
            r = c.get(f"/v1/calls/{call_id}/clip", params={"start_ms": start, "end_ms": end})
            assert r.status_code == 200, r.text[:300]
            clip = tmp_path / "clip.wav"
            clip.write_bytes(r.content)
            with wave.open(str(clip)) as part:
                assert part.getnchannels() == 2 and part.getnframes() == (end - start) * 16
                f.setpos(start * 16)
                assert part.readframes(part.getnframes()) == f.readframes((end - start) * 16)
            r = c.get(f"/v1/calls/{call_id}/audio", headers={"Range": "bytes=0-99"})
            assert r.status_code == 206 and len(r.content) == 100
            copies = list((data / "ui-tmp").glob(f"{call_id}_*"))
            assert [p.name for p in copies] == [f"{call_id}_recording.wav"]
            assert c.delete(f"/v1/calls/{call_id}").status_code == 204
            assert not copies[0].exists()  # the decoded copy went with the call
            assert c.get(f"/v1/calls/{call_id}/audio").status_code == 404
            other.write_bytes(other.read_bytes() + b"\x00\x00")  # no longer the analysed recording
            assert c.get(f"/v1/calls/{second}/clip", params={"start_ms": 0, "end_ms": 1000}).status_code == 404
            assert not list((data / "ui-tmp").glob(f"{second}_*"))
    finally:
        srv.stop()
