"""emotion2vec+ without torch: the safe checkpoint reader, the conversion, and parity with the torch export.

The checkpoints here are forged with torch (the real FunASR class, random weights) and wrapped the way
published ones are (optimizer state, nested dicts, a DDP prefix); the conversion itself runs in a
subprocess where ``import torch`` fails.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from callsense.engines.emotion2vec.checkpoint import Opaque, read_checkpoint, read_state, select_state
from callsense.errors import ModelFormatError
from callsense.labels import EMOTION_NAMES

REPO = Path(__file__).resolve().parent.parent
SR = 16000

# Runs before anything else in the child: torch (and funasr) cannot be imported there.
NO_TORCH = ("import sys; sys.modules['torch'] = None; sys.modules['funasr'] = None; "
            "from callsense.cli.app import main; sys.argv = ['callsense'] + sys.argv[1:]; main()")


def published_like(tmp: Path, label: str | None = "sad", seed: int = 1) -> Path:
    """A forged FunASR checkpoint folder whose model.pt carries more than a bare state dict."""
    import torch

    from callsense.testing.forge_emotion2vec import forge_funasr

    d = forge_funasr(tmp / "funasr", "tiny", label=label, seed=seed)
    state = torch.load(d / "model.pt", weights_only=True)
    param = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([param])
    param.sum().backward()
    opt.step()
    wrapped = {
        "state_dict": {"model": {f"module.{k}": v for k, v in state.items()}},
        "optimizer": opt.state_dict(), "epoch": 40, "step": np.int64(123456),
        "cfg": {"lr": 1e-4, "betas": (0.9, 0.98)}, "scaler": torch.cuda.amp.GradScaler(enabled=False).state_dict(),
        "extra": torch.device("cpu"),
    }
    torch.save(wrapped, d / "model.pt")
    return d


def run_cli_without_torch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="forging the FunASR checkpoint needs the torch extra")
    return published_like(tmp_path_factory.mktemp("e2v-pub"))


# ---- the reader ------------------------------------------------------------------------------------
def test_reader_takes_the_weights_where_funasr_does(checkpoint):
    import torch

    obj = read_checkpoint(checkpoint / "model.pt")
    assert obj["epoch"] == 40 and isinstance(obj["extra"], Opaque) and isinstance(obj["step"], Opaque)
    state = select_state(obj)
    ref = {k.removeprefix("module."): v for k, v in
           torch.load(checkpoint / "model.pt", weights_only=False)["state_dict"]["model"].items()}
    assert set(state) == set(ref)
    for k, v in ref.items():
        np.testing.assert_array_equal(state[k], v.numpy())


def test_reader_keeps_dtypes_strides_and_bf16(tmp_path):
    torch = pytest.importorskip("torch")
    tensors = {"t": torch.randn(3, 5).t(), "slice": torch.arange(10)[2:7], "half": torch.randn(4).half(),
               "bf16": torch.randn(6).bfloat16(), "scalar": torch.tensor(2.5), "mask": torch.tensor([True, False])}
    torch.save({"model_state_dict": tensors}, tmp_path / "m.pt")
    got = read_state(tmp_path / "m.pt")
    for k, v in tensors.items():
        want = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
        assert got[k].dtype == want.dtype and got[k].shape == want.shape, k
        np.testing.assert_array_equal(got[k], want)


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_reader_never_calls_what_the_pickle_names(tmp_path, monkeypatch):
    """A malicious pickle's os.system becomes an inert placeholder; nothing is called."""
    payload = pickle.dumps({"model": {"w": 1}, "evil": _Boom()}, protocol=2)
    assert b"system" in payload
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as z:
        z.writestr("archive/data.pkl", payload)
    obj = read_checkpoint(tmp_path / "evil.pt")
    assert isinstance(obj["evil"], Opaque) and obj["evil"].qualname in ("posix.system", "os.system")
    assert not calls


def test_reader_errors_name_the_file(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(ModelFormatError) as e:
        read_state(bad)
    assert str(bad) in str(e.value) and "pull it again" in str(e.value)
    with zipfile.ZipFile(tmp_path / "legacy.pt", "w") as z:
        z.writestr("something.txt", "x")
    with pytest.raises(ModelFormatError, match="no data.pkl"):
        read_state(tmp_path / "legacy.pt")


# ---- the conversion, without torch, against the torch export ---------------------------------------
@pytest.mark.torch
def test_import_converts_without_torch_and_matches_the_torch_export(checkpoint, tmp_path):
    from callsense.engines.base import EmotionOptions, SegmentAudio
    from callsense.engines.emotion2vec.export import export_onnx
    from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx

    env = dict(os.environ, CALLSENSE_HOME=str(tmp_path / "home"), CALLSENSE_OFFLINE="1")
    proc = run_cli_without_torch(["models", "import", str(checkpoint), "--name", "emotion2vec-plus-large"], env)
    assert proc.returncode == 0, proc.stderr
    converted = tmp_path / "home" / "models" / "emotion2vec-plus-large" / "onnx"
    assert str(converted) in proc.stdout
    assert {"model.onnx", "model.int8.onnx", "head.npz", "tokens.txt", "emotion2vec.json"} <= {
        p.name for p in converted.iterdir()}
    facts = json.loads((converted / "emotion2vec.json").read_text("utf-8"))
    assert "torch" not in facts and facts["converter"].startswith("callsense")

    reference = export_onnx(checkpoint, tmp_path / "torch-export", int8=False)
    rng = np.random.default_rng(5)
    segs = [SegmentAudio(f"s{i}", (rng.standard_normal(int(s * SR)) * 0.1).astype(np.float32), 4000 * i)
            for i, s in enumerate((0.6, 1.3, 2.7, 4.4))]
    a = Emotion2vecOnnx(converted, int8=False).score(segs, EmotionOptions())
    b = Emotion2vecOnnx(reference, int8=False).score(segs, EmotionOptions())
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-4)  # the parity tests' tolerance
        np.testing.assert_allclose(x.embedding, y.embedding, atol=1e-4)
        assert len(x.windows) == len(y.windows) > 0
        for wx, wy in zip(x.windows, y.windows):
            np.testing.assert_allclose(wx.scores, wy.scores, atol=1e-4)
        assert EMOTION_NAMES[int(np.argmax(x.scores))] == EMOTION_NAMES[int(np.argmax(y.scores))] == "sad"
    q = Emotion2vecOnnx(converted, int8=True).score(segs, EmotionOptions())
    for x, y in zip(q, b):
        assert int(np.argmax(x.scores)) == int(np.argmax(y.scores))
        assert float(x.embedding @ y.embedding / np.linalg.norm(x.embedding) / np.linalg.norm(y.embedding)) > 0.999


@pytest.mark.torch
def test_first_analyze_converts_an_installed_checkpoint_without_torch(checkpoint, tmp_path):
    """The checkpoint is where `models pull --runtime funasr` puts it; `emotion` makes the ONNX model once."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(checkpoint, home / "models" / "emotion2vec-plus-large" / "funasr")
    env = dict(os.environ, CALLSENSE_HOME=str(home), CALLSENSE_OFFLINE="1")
    clip = REPO / "examples" / "call_stereo.wav"
    proc = run_cli_without_torch(["emotion", str(clip), "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert "converting emotion2vec-plus-large" in proc.stderr
    assert (home / "models" / "emotion2vec-plus-large" / "onnx" / "model.int8.onnx").is_file()
    again = run_cli_without_torch(["emotion", str(clip), "--json"], env)
    assert again.returncode == 0 and "converting" not in again.stderr
    def stable(text: str) -> dict:
        doc = json.loads(text)
        return {k: v for k, v in doc.items() if k not in ("timings_ms", "created_at")}

    assert stable(again.stdout) == stable(proc.stdout)


def test_a_mismatched_checkpoint_is_refused_with_the_file_named(tmp_path):
    """config.yaml says one size, model.pt holds another: a clear error, no half-written model."""
    pytest.importorskip("torch")
    import yaml

    d = published_like(tmp_path / "bad", label=None)
    config = yaml.safe_load((d / "config.yaml").read_text("utf-8"))
    config["model_conf"]["embed_dim"] = 48
    (d / "config.yaml").write_text(yaml.safe_dump(config), "utf-8")
    env = dict(os.environ, CALLSENSE_HOME=str(tmp_path / "home"), CALLSENSE_OFFLINE="1")
    proc = run_cli_without_torch(["models", "import", str(d), "--name", "emotion2vec-plus-base"], env)
    assert proc.returncode == 4
    assert str(d / "model.pt") in proc.stderr and "config.yaml and model.pt do not match" in proc.stderr
    assert not (tmp_path / "home" / "models" / "emotion2vec-plus-base" / "onnx").exists()


def test_an_unnamed_768_dim_checkpoint_asks_which_model(tmp_path, capsys):
    """base, seed and finetuned share a shape: the import asks rather than guessing."""
    from callsense.cli.app import main
    from callsense.testing.forge_emotion2vec import TOKENS, model_conf

    import yaml

    d = tmp_path / "ckpt"
    d.mkdir()
    conf = model_conf("tiny")
    conf["embed_dim"] = 768
    (d / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec", "model_conf": conf}), "utf-8")
    (d / "model.pt").write_bytes(b"")
    (d / "tokens.txt").write_text(TOKENS, "utf-8")
    with pytest.raises(SystemExit) as e:
        main(["models", "import", str(d)])
    assert e.value.code == 2
    assert "--name" in capsys.readouterr().err


def test_forged_models_go_through_the_same_builder(tmp_path):
    """The forge's torch-free models are the converter's graph on random weights: real architecture."""
    import onnx

    from callsense.testing.forge_emotion2vec import forge_onnx

    d = forge_onnx(tmp_path / "onnx", "tiny", label="happy")
    graph = onnx.load(str(d / "model.onnx")).graph
    names = {i.name for i in graph.initializer}
    assert "blocks.0.attn.qkv.weight_t" in names and "modality_encoders.AUDIO.extra_tokens" in names
    assert json.loads((d / "emotion2vec.json").read_text())["exported_from"] == "forge:tiny:tiny:build"
