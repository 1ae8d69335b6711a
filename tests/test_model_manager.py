"""Model lookup, import, listing and the one-message failure when a model is absent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from callsense.cli.app import main
from callsense.engines.catalog import get_spec
from callsense.engines.manager import ModelManager, detect_format, missing_files
from callsense.errors import ModelNotFoundError, UsageError


def make_sherpa_dir(path):
    path.mkdir(parents=True)
    (path / "model.int8.onnx").write_bytes(b"onnx")
    (path / "tokens.txt").write_text("<blk> 0\n")
    return path


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_model_dir_is_searched_first(tmp_path, monkeypatch):
    make_sherpa_dir(tmp_path / "models" / "sensevoice-small" / "onnx")
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(tmp_path / "models"))
    found = ModelManager().locate("sensevoice-small")
    assert found.path == tmp_path / "models" / "sensevoice-small" / "onnx"
    assert found.origin == "model_dir"


def test_aliases_resolve_and_unknown_names_list_the_valid_ones():
    assert get_spec("emotion2vec_plus_large").name == "emotion2vec-plus-large"
    assert get_spec("SenseVoiceSmall").name == "sensevoice-small"
    with pytest.raises(UsageError, match="known models: sensevoice-small"):
        get_spec("whisper")


def test_incomplete_dir_is_reported_with_the_missing_file(tmp_path, monkeypatch):
    d = tmp_path / "m" / "sensevoice-small" / "onnx"
    d.mkdir(parents=True)
    (d / "model.int8.onnx").write_bytes(b"x")
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(tmp_path / "m"))
    with pytest.raises(ModelNotFoundError) as e:
        ModelManager().locate("sensevoice-small")
    assert "missing tokens.txt" in str(e.value)
    assert "callsense models pull sensevoice-small" in str(e.value)


def test_missing_model_is_one_line_and_exit_4(capsys):
    code, out, err = run_cli(["models", "path", "sensevoice-small"], capsys)
    assert code == 4
    assert "sensevoice-small" in err and "looked in" in err and "callsense models pull" in err
    assert "Traceback" not in err


def test_import_detects_format_and_copies_into_cache(tmp_path, capsys):
    src = make_sherpa_dir(tmp_path / "downloaded")
    assert [(s.name, r) for s, r in detect_format(src)] == [("sensevoice-small", "onnx")]
    code, out, _ = run_cli(["models", "import", str(src)], capsys)
    assert code == 0
    found = ModelManager().find("sensevoice-small", "onnx")
    assert found is not None and found.origin == "cache"
    manifest = json.loads((found.path / "callsense-manifest.json").read_text())
    assert set(manifest["files"]) == {"model.int8.onnx", "tokens.txt"}
    assert len(manifest["files"]["tokens.txt"]) == 64  # sha256 recorded


def test_import_refuses_an_unknown_directory(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("hi")
    code, _, err = run_cli(["models", "import", str(tmp_path / "x")], capsys)
    assert code == 4 and "not a model directory" in err


def test_list_shows_installed_models(tmp_path, monkeypatch, capsys):
    make_sherpa_dir(tmp_path / "models" / "sensevoice-small" / "onnx")
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(tmp_path / "models"))
    rows = {(r["name"], r["runtime"]): r for r in ModelManager().listing()}
    assert rows[("sensevoice-small", "onnx")]["installed"] == "yes"
    assert rows[("emotion2vec-plus-large", "funasr")]["installed"] == "no"


def test_required_alternatives():
    fmt = get_spec("sensevoice-small").formats["onnx"]
    assert fmt.required[0] == "model.int8.onnx|model.onnx"


def test_pull_with_unreachable_hubs_fails_with_an_actionable_message(monkeypatch, tmp_path):
    """Real hub clients, no network here: the user gets one message, never a stack trace."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    proc = subprocess.run(
        [sys.executable, "-m", "callsense", "models", "pull", "sensevoice-small", "--hub", "huggingface"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 4
    assert "could not download sensevoice-small" in proc.stderr
    assert "huggingface" in proc.stderr and "callsense models import" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not missing_files.__name__ == ""  # the helper stays importable for the CLI


def test_unknown_hub_is_a_usage_error(capsys):
    code, _, err = run_cli(["models", "pull", "sensevoice-small", "--hub", "github"], capsys)
    assert code == 2 and "modelscope, huggingface" in err
