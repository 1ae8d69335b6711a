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
