"""callsense adapt (issue 20): heads on a call centre's own labels, weights, clip preprocessing, fallback.

Clips come from the steerable tiny forge: two custom labels whose audio differs in kind (a low hum
against high bright noise), so the random backbone's embeddings separate them; speakers differ in level
and pitch within a label. Every command runs as a subprocess against an isolated CALLSENSE_HOME.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from callsense.testing.audio import write_audio
from callsense.testing.forge import forge
from callsense.testing.forge_emotion2vec import forge_onnx

SR = 16000
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def clip_audio(label: str, speaker: int, k: int, seconds: float = 1.6) -> np.ndarray:
    rng = np.random.default_rng(1000 * speaker + k + (0 if label == "anxious" else 500))
    t = np.arange(int(seconds * SR)) / SR
    amp = 0.15 + 0.05 * speaker
    if label == "anxious":  # a low hum with a slow wobble
        f = 140 + 10 * speaker + 5 * k
        x = np.sin(2 * np.pi * f * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    else:  # "urgent": bright broadband noise
        x = np.diff(rng.standard_normal(len(t) + 1))
    return (amp * x / np.max(np.abs(x))).astype(np.float32)


def write_clips(folder: Path, labels=("anxious", "urgent"), speakers: int = 4, per: int = 4,
                fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for label in labels:
        for s in range(speakers):
            for k in range(per):
                name = f"{label}_{s}_{k}.wav"
                write_audio(folder / name, clip_audio(label, s, k), SR)
                rows.append({"path": name, "label": label, "speaker": f"spk{s}"})
    if fmt == "jsonl":
        out = folder / "clips.jsonl"
        out.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    else:
        out = folder / "clips.csv"
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["path", "label", "speaker"])
            w.writeheader()
            w.writerows(rows)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapt-models")
    forge(out, size="tiny", runtimes=("onnx",))
    return out


@pytest.fixture(scope="module")
def other_models(tmp_path_factory) -> Path:
    """Another emotion2vec checkpoint (other random weights): its embeddings mean something else."""
    out = tmp_path_factory.mktemp("adapt-other")
    forge_onnx(out / "emotion2vec-plus-large" / "onnx", "tiny", seed=11)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("adapt-home")


def cli(args, *, home: Path, models: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CALLSENSE_HOME": str(home), "CALLSENSE_MODEL_DIR": str(models), "CALLSENSE_OFFLINE": "1",
           "COLUMNS": "200"}
    p = subprocess.run([sys.executable, "-m", "callsense", *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def trained(home, models, clips) -> dict:
    p = cli(["adapt", "train", clips, "--out", "bank", "--json"], home=home, models=models)
    return json.loads(p.stdout)


# ---- item 1: train, save, load ------------------------------------------------------------------------
def test_train_separates_the_labels_and_records_metadata(trained, home):
    assert trained["labels"] == ["anxious", "urgent"]
    assert trained["emotion_model"] == "emotion2vec-plus-large"
    assert len(trained["emotion_model_checksum"]) == 64
    assert trained["training"]["clips"] == 32 and trained["training"]["speakers"] == 4
    assert trained["training"]["label_counts"] == {"anxious": 16, "urgent": 16}
    m = trained["metrics"]
    assert m["folds"] >= 2 and m["n"] == 32
    assert m["ua"] >= 0.9 and m["macro_f1"] >= 0.9, m  # the two kinds of audio separate
    assert sum(map(sum, m["confusion"])) == 32
    assert (home / "heads" / "bank.onnx").is_file()


def test_head_is_onnx_with_its_metadata_and_no_pickle(trained, home):
    import onnx
    import onnxruntime as ort

    path = home / "heads" / "bank.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = json.loads({p.key: p.value for p in model.metadata_props}["callsense.head"])
    assert meta["labels"] == trained["labels"] and meta["training"]["sha256"] == trained["training"]["sha256"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.zeros((3, meta["dim"]), np.float32)
    probs = sess.run(["probabilities"], {sess.get_inputs()[0].name: x})[0]
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert b"pickle" not in path.read_bytes()[:64]


def test_list_show_and_eval(trained, home, models, tmp_path):
    rows = json.loads(cli(["adapt", "list", "--json"], home=home, models=models).stdout)
    assert [r["name"] for r in rows] == ["bank"] and rows[0]["labels"] == ["anxious", "urgent"]
    shown = json.loads(cli(["adapt", "show", "bank"], home=home, models=models).stdout)
    assert shown["metrics"] == trained["metrics"]
    held_out = write_clips(tmp_path / "held", speakers=2, per=3, fmt="jsonl")  # other clips, same kinds
    ev = json.loads(cli(["adapt", "eval", "bank", held_out, "--json"], home=home, models=models).stdout)
    assert ev["n"] == 12 and ev["ua"] >= 0.9


def test_embeddings_are_cached_by_audio_hash(trained, home):
    cached = list((home / "cache" / "embeddings").rglob("*.npz"))
    assert len(cached) >= 32


def test_a_head_of_another_emotion_model_is_refused(trained, home, other_models, clips):
    p = cli(["emotion", clips.parent / "anxious_0_0.wav", "--emotion-head", "bank", "--json"], home=home,
            models=other_models, check=False)
    assert p.returncode == 4, p.stderr
    assert "trained on emotion2vec-plus-large" in p.stderr and "checksum" in p.stderr


def test_missing_head_is_a_model_error(home, models, clips):
    p = cli(["emotion", clips.parent / "anxious_0_0.wav", "--emotion-head", "nope"], home=home, models=models,
            check=False)
    assert p.returncode == 4 and "no emotion head named 'nope'" in p.stderr


def test_bad_training_sets_are_input_errors(home, models, tmp_path):
    one = write_clips(tmp_path / "one", labels=("anxious",), speakers=2, per=2)
    p = cli(["adapt", "train", one, "--out", "x"], home=home, models=models, check=False)
    assert p.returncode == 3 and "at least two labels" in p.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("file,emotion\na.wav,x\n")
    p = cli(["adapt", "train", bad, "--out", "x"], home=home, models=models, check=False)
    assert p.returncode == 3 and "header lacks label, path" in p.stderr


def test_mlp_kind_trains_too(home, models, clips):
    out = json.loads(cli(["adapt", "train", clips, "--out", "bank-mlp", "--kind", "mlp", "--json"], home=home,
                         models=models).stdout)
    assert out["kind"] == "mlp" and out["metrics"]["ua"] >= 0.9
