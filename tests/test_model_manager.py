"""Model lookup, import, listing and the one-message failure when a model is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callsense.cli.app import main
from callsense.engines.catalog import CATALOG, get_spec
from callsense.engines.manager import ModelManager, detect_format
from callsense.errors import ModelNotFoundError, UsageError

REPO = Path(__file__).resolve().parent.parent


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


def offline_env(tmp_path, host: str = "127.0.0.1:9") -> dict[str, str]:
    """A subprocess environment whose hubs point at a closed local port (or an address that never answers):
    no network, deterministic. CALLSENSE_OFFLINE is unset, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"CALLSENSE_OFFLINE", "HF_HUB_OFFLINE", "CALLSENSE_MODEL_DIR", "HTTPS_PROXY", "https_proxy",
                        "HTTP_PROXY", "http_proxy", "MODELSCOPE_DOMAIN"}}
    env.update(CALLSENSE_HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"),
               MODELSCOPE_CACHE=str(tmp_path / "ms"), HF_ENDPOINT=f"http://{host}",
               MODELSCOPE_ENDPOINT=f"http://{host}")
    return env


def run_offline(args, env, timeout=60):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "callsense", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
    return proc, time.monotonic() - start


@pytest.mark.parametrize("host", ["127.0.0.1:9", "hub.invalid"], ids=["refused", "unresolvable"])
def test_first_analyze_offline_stops_in_seconds_with_one_message(tmp_path, host):
    """The README's first command on a machine without network: exit 4, one message, under 5 s."""
    proc, took = run_offline(["analyze", "examples/call_stereo.wav", "--out", str(tmp_path / "out")],
                             offline_env(tmp_path, host))
    assert proc.returncode == 4, proc.stderr
    assert took < 5.0, f"took {took:.1f} s"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr  # no hub client warnings, no retry lines, no emotion2vec warning
    msg = lines[0]
    assert msg.startswith("error: model sensevoice-small is not installed and no model hub is reachable")
    assert "looked in: " + str(tmp_path / "home" / "models" / "sensevoice-small" / "onnx") in msg
    assert msg.index("ModelScope (") < msg.index("Hugging Face (")  # the documented order
    assert "callsense models pull sensevoice-small" in msg and "callsense models import DIR" in msg
    assert 'README, "Try it without any download"' in msg
    assert "--hub" not in msg and "Traceback" not in msg
    assert msg.rstrip().endswith(")")  # whole: the hint closes the line, nothing was cut


def test_pull_offline_names_both_hubs_and_the_readme_says_the_same_order(tmp_path):
    proc, took = run_offline(["models", "pull", "emotion2vec-plus-base"], offline_env(tmp_path))
    assert proc.returncode == 4 and took < 5.0
    assert "iic/emotion2vec_plus_base" in proc.stderr and "emotion2vec/emotion2vec_plus_base" in proc.stderr
    assert proc.stderr.index("ModelScope") < proc.stderr.index("Hugging Face")
    readme = (REPO / "README.md").read_text("utf-8")
    assert "ModelScope first, then Hugging Face" in readme
    help_text = subprocess.run([sys.executable, "-m", "callsense", "models", "pull", "--help"], capture_output=True,
                               text=True, env=offline_env(tmp_path)).stdout
    assert "ModelScope first, then Hugging Face" in " ".join(help_text.split())
    for spec in CATALOG.values():
        for fmt in spec.formats.values():
            # the documented order wherever a model is on both hubs (the diarization models are on one)
            assert [s.hub for s in fmt.sources] in ([], ["modelscope"], ["huggingface"],
                                                    ["modelscope", "huggingface"]), spec.name


def test_pull_from_one_unreachable_hub_offers_the_other(tmp_path):
    proc, _ = run_offline(["models", "pull", "sensevoice-small", "--hub", "huggingface"], offline_env(tmp_path))
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "Hugging Face" in proc.stderr and "ModelScope (" not in proc.stderr
    assert "callsense models import DIR" in proc.stderr


def test_probe_reports_why_and_remembers(monkeypatch):
    from callsense.engines import hubs

    hubs.forget_probes()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    first = hubs.unreachable("huggingface")
    assert first == "127.0.0.1:9 unreachable (connection refused)"
    monkeypatch.setattr(hubs, "_connect", lambda *a: pytest.fail("probed again"))
    assert hubs.unreachable("huggingface") == first
    hubs.forget_probes()


def test_probe_never_waits_longer_than_its_timeout(monkeypatch):
    """A DNS lookup or connection that hangs (blackholed network) still gives an answer in time."""
    from callsense.engines import hubs

    hubs.forget_probes()
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", "https://hangs.example")
    def hangs(*a, **k):  # a blackholed connect: nothing for a long while, then the OS gives up
        time.sleep(30)
        raise TimeoutError("timed out")

    monkeypatch.setattr(hubs.socket, "create_connection", hangs)
    start = time.monotonic()
    assert hubs.unreachable("modelscope", timeout=0.5) == "hangs.example:443 unreachable (no answer within 0.5 s)"
    assert time.monotonic() - start < 1.5
    hubs.forget_probes()


def test_probe_goes_to_the_proxy_when_one_is_set(monkeypatch):
    from callsense.engines import hubs

    hubs.forget_probes()
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert hubs.unreachable("huggingface") == "proxy 127.0.0.1:9 unreachable (connection refused)"
    hubs.forget_probes()


def test_unknown_hub_is_a_usage_error(capsys):
    code, _, err = run_cli(["models", "pull", "sensevoice-small", "--hub", "github"], capsys)
    assert code == 2 and "modelscope, huggingface" in err
