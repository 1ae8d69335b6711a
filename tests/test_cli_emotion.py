"""`callsense emotion FILE`: the standalone clip mode, end to end on a forged tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from callsense.cli.app import main
from callsense.labels import EMOTION_NAMES

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "clip_angry_zh.wav"


@pytest.fixture(scope="module")
def model_root(tmp_path_factory) -> Path:
    from callsense.testing.forge_emotion2vec import forge_onnx

    root = tmp_path_factory.mktemp("cli-e2v")
    forge_onnx(root / "emotion2vec-plus-large" / "onnx", "tiny", label="angry")
    forge_onnx(root / "emotion2vec-plus-base" / "onnx", "tiny", label="happy", seed=4)
    return root


@pytest.fixture
def models(model_root, monkeypatch) -> Path:
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(model_root))
    return model_root


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return int(e.value.code or 0)


def only_folder(out: Path) -> Path:
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1
    return folders[0]


def test_frame_mode_prints_label_bars_timeline_and_writes_outputs(models, tmp_path, capsys):
    assert EXAMPLE.is_file()
    out = tmp_path / "out"
    assert run(["emotion", str(EXAMPLE), "--granularity", "frame", "--embeddings", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "😠 愤怒 (Angry)" in text and "%" in text
    assert all(name.capitalize() in text for name in EMOTION_NAMES)  # the full distribution
    assert "█" in text and "timeline" in text
    folder = only_folder(out)
    assert folder.name.startswith("outputs_") and len(folder.name.split("_")[-1]) == 8
    result = json.loads((folder / "result.json").read_text("utf-8"))
    assert result["kind"] == "clip-emotion" and result["granularity"] == "frame"
    em = result["emotion"]
    assert em["label"] == "angry" and em["label_zh"] == "愤怒" and em["emoji"] == "😠"
    assert abs(sum(em["scores"]) - 1) < 1e-4 and em["confidence"] == max(em["scores"])
    duration = result["duration_ms"]
    tl = result["timeline"]
    assert tl[0]["start_ms"] == 0 and tl[-1]["end_ms"] == duration
    assert len(tl) == 1 + -(-(duration - 1000) // 250)
    emb = np.load(folder / "embeddings.npy")  # the name and layout analyze uses: one row per segment
    assert result["embedding_file"] == "embeddings.npy" and em["embedding_index"] == 0
    assert emb.shape == (1, 32) and emb.dtype == np.float32
    assert (folder / "audio_16k.wav").is_file()


def test_utterance_mode_other_model_json_and_no_embedding(models, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["emotion", str(EXAMPLE), "--emotion-model", "emotion2vec_plus_base", "--json", "-o", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["emotion"]["label"] == "happy" and data["model"]["name"] == "emotion2vec-plus-base"
    assert data["timeline"] == [] and data["embedding_file"] is None
    assert not (only_folder(out) / "embeddings.npy").exists()


def test_mask_disables_the_winner(models, tmp_path, capsys):
    assert run(["emotion", str(EXAMPLE), "--mask", "angry", "--json", "-o", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["emotion"]["label"] != "angry" and data["emotion"]["scores"][0] == 0.0
    assert data["masked"] == ["angry"]


def test_a_clip_too_short_is_unknown_with_the_reason(models, tmp_path, capsys):
    from callsense.testing.audio import tone, write_audio

    clip = tmp_path / "blip.wav"
    write_audio(clip, tone(300.0, 0.2, 16000), 16000)
    assert run(["emotion", str(clip), "-o", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "未知 (Unknown)" in text and "too_short" in text


def test_usage_and_missing_model_errors(models, tmp_path, capsys, monkeypatch):
    assert run(["emotion", str(EXAMPLE), "--granularity", "word"]) == 2
    assert run(["emotion", str(EXAMPLE), "--mask", "furious"]) == 2
    assert run(["emotion", str(EXAMPLE), "--emotion-model", "emotion2vec-plus-seed", "-o", str(tmp_path)]) == 4
    err = capsys.readouterr().err
    assert "emotion2vec-plus-seed" in err and "models pull emotion2vec-plus-seed" in err


def test_old_option_names_are_deprecated_aliases(models, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["emotion", str(EXAMPLE), "-m", "emotion2vec-plus-base", "--runtime", "onnx", "--embedding", "--json",
                "-o", str(out)]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["model"]["name"] == "emotion2vec-plus-base" and data["embedding_file"] == "embeddings.npy"
    for old, new in (("--model", "--emotion-model"), ("--runtime", "--emotion-runtime"), ("--embedding", "--embeddings")):
        assert any(old in line and "deprecated" in line and new in line for line in captured.err.splitlines()), old
