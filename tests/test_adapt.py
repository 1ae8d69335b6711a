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
from cli_support import run_cli

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
    """`callsense ARGS` with this module's home and models. A command that must succeed (check) runs in this
    process (cli_support: no Python start-up and imports per command); one whose error status is under test,
    and `batch` (its worker pool spawned from the command's own process), in a ``python -m callsense``."""
    env = {"CALLSENSE_HOME": str(home), "CALLSENSE_MODEL_DIR": str(models), "CALLSENSE_OFFLINE": "1",
           "COLUMNS": "200"}
    if check and args[0] != "batch":
        p = run_cli(args, env)
    else:
        p = subprocess.run([sys.executable, "-m", "callsense", *map(str, args)], capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=600, check=False)
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


# ---- the head in analyze output and in a rule ----------------------------------------------------------
RULES = """\
ruleset: {id: bank, version: "1", name: bank rules}
rules:
  - id: bank.anxious
    version: "1"
    name: 焦虑客户 Anxious customer
    category: emotion
    description: A segment the bank's head calls anxious or urgent.
    conditions:
      1: {type: custom_emotion, labels: [anxious, urgent], min_score: 0.5}
    consequence: {severity: warning, item: risk.anxious}
"""


def test_analyze_carries_the_custom_labels_and_a_rule_uses_them(trained, home, models, tmp_path):
    rules = tmp_path / "bank.yaml"
    rules.write_text(RULES, "utf-8")
    cli(["rules", "check", rules], home=home, models=models)
    p = cli(["analyze", EXAMPLES / "call_stereo.wav", "--emotion-head", "bank", "--rules", rules, "--json",
             "--out", tmp_path / "out"], home=home, models=models)
    call = json.loads(p.stdout)["calls"][0]
    scored = [s for s in call["segments"] if s["emotion"] and s["emotion"]["reason"] is None]
    assert scored
    for s in scored:
        c = s["emotion"]["custom"]
        assert c["head"] == "bank" and c["label"] in ("anxious", "urgent")
        assert set(c["distribution"]) == {"anxious", "urgent"}
        assert abs(sum(c["distribution"].values()) - 1) < 1e-4 and c["confidence"] == max(c["distribution"].values())
        assert len(s["emotion"]["scores"]) == 9  # the nine classes stay beside them
    assert call["emotion"]["head"] == "bank"
    hits = [h for h in call["rule_hits"] if h["rule_id"] == "bank.anxious"]
    assert hits and len(hits[0]["evidence"]) >= 1 and "bank:" in hits[0]["evidence"][0]["note"]
    # without the head the same rule is not applicable (never a silent pass)
    p = cli(["analyze", EXAMPLES / "call_stereo.wav", "--rules", rules, "--json", "--out", tmp_path / "out2"],
            home=home, models=models)
    call = json.loads(p.stdout)["calls"][0]
    assert not [h for h in call["rule_hits"] if h["rule_id"] == "bank.anxious"]
    assert all(s["emotion"]["custom"] is None for s in call["segments"] if s["emotion"])


def test_custom_emotion_rule_checks_its_fields(home, models, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.replace("min_score: 0.5", "min_score: 1.5"), "utf-8")
    p = cli(["rules", "check", bad], home=home, models=models, check=False)
    assert p.returncode == 2 and "min_score must be in [0, 1]" in (p.stdout + p.stderr)


# ---- weights -------------------------------------------------------------------------------------------
def emotion_json(args, *, home, models, check=True):
    p = cli(["emotion", *args, "--json", "--out", home / "clips-out"], home=home, models=models, check=check)
    return json.loads(p.stdout) if check else p


def test_weights_change_the_main_label_and_are_recorded(home, models, clips):
    wav = clips.parent / "urgent_1_1.wav"
    plain = emotion_json([wav], home=home, models=models)["emotion"]
    top = plain["label"]
    ranked = sorted(zip(plain["scores"], range(9)), reverse=True)
    runner = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown"][ranked[1][1]]
    ratio = ranked[0][0] / ranked[1][0]
    out = emotion_json([wav, "--emotion-weights", f"{runner}={ratio * 1.5:.4f}"], home=home, models=models)
    assert out["emotion"]["label"] == runner != top
    assert out["weights"] == {runner: pytest.approx(ratio * 1.5, rel=1e-3)}
    assert abs(sum(out["emotion"]["scores"]) - 1) < 1e-5


def test_bad_weights_are_usage_errors(home, models, clips):
    p = emotion_json([clips.parent / "urgent_1_1.wav", "--emotion-weights", "furious=2"], home=home, models=models,
                     check=False)
    assert p.returncode == 2 and "furious=2" in p.stderr
    p = emotion_json([clips.parent / "urgent_1_1.wav", "--emotion-weights", "angry"], home=home, models=models,
                     check=False)
    assert p.returncode == 2 and "LABEL=WEIGHT" in p.stderr


def test_calibrate_fits_weights_from_labelled_clips(home, models, tmp_path):
    """Clips labelled with a class the plain model never picks: calibration raises that class's weight."""
    folder = write_clips(tmp_path / "cal")
    with open(folder, newline="") as f:
        rows = list(csv.DictReader(f))
    plain = emotion_json([folder.parent / rows[0]["path"]], home=home, models=models)["emotion"]["label"]
    other = "sad" if plain != "sad" else "happy"
    with open(folder, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "speaker"])
        w.writeheader()
        w.writerows({**r, "label": plain if r["label"] == "anxious" else other} for r in rows)
    out = json.loads(cli(["adapt", "calibrate", folder, "--json"], home=home, models=models).stdout)
    assert out["ua_after"] >= out["ua_before"] + 0.2  # one class's weight moved the labels toward the truth
    assert out["weights"] and out["emotion_weights"] == ",".join(f"{k}={v:g}" for k, v in out["weights"].items())


# ---- clip preprocessing -------------------------------------------------------------------------------
def speech_piece() -> np.ndarray:
    from callsense.audio.decode import load_audio

    audio = load_audio(EXAMPLES / "clip_angry_zh.wav")
    return np.asarray(audio.tracks[0].samples, np.float32)


def test_leading_and_trailing_silence_is_trimmed(home, models, tmp_path):
    speech = speech_piece()
    padded = np.concatenate([np.zeros(2 * SR, np.float32), speech, np.zeros(SR, np.float32)])
    wav = write_audio(tmp_path / "padded.wav", padded, SR)
    out = emotion_json([wav], home=home, models=models)
    trim = out["trim"]
    assert 1700 <= trim["start_ms"] <= 2300 and 700 <= trim["end_ms"] <= 1300, trim
    assert abs(out["duration_ms"] - trim["kept_ms"]) <= 1
    whole = emotion_json([wav, "--no-trim"], home=home, models=models)
    assert whole["trim"] == {"start_ms": 0, "end_ms": 0, "kept_ms": whole["duration_ms"]}
    assert whole["duration_ms"] > out["duration_ms"] + 2500


def test_too_quiet_audio_is_refused_with_the_level_and_threshold(home, models, tmp_path):
    wav = write_audio(tmp_path / "silence.wav", np.zeros(3 * SR, np.float32), SR)
    p = emotion_json([wav], home=home, models=models, check=False)
    assert p.returncode == 3
    assert "音量过低 / audio too quiet" in p.stderr and "-120.0 dBFS" in p.stderr and "-60 dBFS" in p.stderr


# ---- fallback and reply style -------------------------------------------------------------------------
def test_unsure_answers_carry_a_fallback_and_every_answer_a_reply_style(home, models, clips, tmp_path, monkeypatch):
    wav = clips.parent / "urgent_1_1.wav"
    out = emotion_json([wav], home=home, models=models)
    assert out["reply_style"]
    conf = out["emotion"]["confidence"]
    cfg = tmp_path / "reply.json"
    cfg.write_text(json.dumps({"min_confidence": min(conf + 0.01, 1.0), "language": "en",
                               "styles": {out["emotion"]["label"]: "my_style"}}), "utf-8")
    monkeypatch.setenv("CALLSENSE_REPLY_CONFIG", str(cfg))  # cli() passes the environment on
    unsure = emotion_json([wav], home=home, models=models)
    assert unsure["fallback"]["action"] == "request_clarification"
    assert unsure["fallback"]["suggested_response"].startswith("Sorry")
    assert unsure["reply_style"] == "my_style"
    cfg.write_text(json.dumps({"min_confidence": max(conf - 0.01, 0.0)}), "utf-8")
    sure = emotion_json([wav], home=home, models=models)
    assert sure["fallback"] is None or out["emotion"]["label"] in ("unknown", "other")


def test_reply_policy_unit():
    from callsense.adapt.reply import ReplyPolicy

    p = ReplyPolicy()
    assert p.fallback("unknown", 0.99)["suggested_response"] == "抱歉我没太听清，您能再说一遍吗？"
    assert p.fallback("angry", 0.3)["reason"].startswith("confidence 0.30")
    assert p.fallback("angry", 0.9) is None
    assert p.answer("angry", 0.9)["reply_style"] == "apologise_and_escalate"
    assert p.answer("fearful", 0.9)["reply_style"] == "reassure"
    assert p.fallback("unknown", 1.0, "too_short")["reason"] == "forced: too_short"


# ---- weights in the rule file (item 2) ---------------------------------------------------------------
WEIGHT_RULES = """\
ruleset: {id: weighted, version: "1", name: weighted}
emotion_weights: {happy: 99, angry: 0.02, disgusted: 0.02, fearful: 0.02, neutral: 0.02, other: 0.02,
                  sad: 0.02, surprised: 0.02, unknown: 0.02}
rules:
  - id: w.spoke
    version: "1"
    name: spoke
    category: test
    conditions:
      1: {type: segment_count, above: 0}
    consequence: {severity: info}
"""


def _labels(call: dict) -> list[str]:
    return [s["emotion"]["label"] for s in call["segments"] if s["emotion"] and s["emotion"]["reason"] is None]


def test_rule_file_emotion_weights_change_the_labels_and_explicit_weights_win(home, models, tmp_path):
    rules = tmp_path / "weighted.yaml"
    rules.write_text(WEIGHT_RULES, "utf-8")
    cli(["rules", "check", rules], home=home, models=models)

    def analyze(*extra):
        p = cli(["analyze", EXAMPLES / "call_stereo.wav", "--json", "--out", tmp_path / f"o{len(extra)}", *extra],
                home=home, models=models)
        return json.loads(p.stdout)["calls"][0]

    plain = analyze()
    assert _labels(plain) and set(_labels(plain)) != {"happy"} and plain["emotion"]["weights"] == {}
    weighted = analyze("--rules", rules)
    assert set(_labels(weighted)) == {"happy"}
    assert weighted["emotion"]["weights"]["happy"] == 99 and weighted["emotion"]["weights"]["sad"] == 0.02
    explicit = analyze("--rules", rules, "--emotion-weights", "happy=0.01")
    assert explicit["emotion"]["weights"]["happy"] == 0.01 and "happy" not in _labels(explicit)
    assert explicit["emotion"]["weights"]["sad"] == 0.02  # the rule file's other classes stay


def test_bad_rule_file_emotion_weights_are_positioned_errors(home, models, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(WEIGHT_RULES.replace("happy: 99", "hapy: 99").replace("sad: 0.02", "sad: -1"), "utf-8")
    p = cli(["rules", "check", bad], home=home, models=models, check=False)
    out = p.stdout + p.stderr
    assert p.returncode == 2 and "unknown emotion 'hapy'" in out and "did you mean 'happy'" in out
    assert "bad.yaml:2:" in out and "the weight of sad must be a number over 0" in out


def test_a_missing_clip_list_is_reported_before_any_model_is_looked_for(tmp_path):
    """No models installed and a CSV that is not there: the user's own file is the problem (exit 3)."""
    env = {k: v for k, v in os.environ.items() if k != "CALLSENSE_MODEL_DIR"}
    env.update(CALLSENSE_HOME=str(tmp_path / "home"), CALLSENSE_OFFLINE="1")
    for cmd in (["adapt", "train", str(tmp_path / "none.csv"), "--out", "h"],
                ["adapt", "calibrate", str(tmp_path / "none.csv")]):
        proc = subprocess.run([sys.executable, "-m", "callsense", *cmd], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        assert proc.returncode == 3, (cmd, proc.returncode, proc.stderr)
        assert "none.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_batch_stores_the_head_labels_and_a_retrained_head_reanalyses(home, models, clips, tmp_path):
    """``batch --emotion-head``: the stored segments carry the head's labels; retraining the head under the
    same name changes the fingerprint, so the calls are analysed again instead of skipped."""
    import shutil

    from callsense.store import get_result, list_calls, open_store

    cli(["adapt", "train", clips, "--out", "batch-head", "--json"], home=home, models=models)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(EXAMPLES / "call_stereo.wav", folder / "a.wav")
    db = f"sqlite:///{tmp_path / 'store.db'}"

    def batch() -> tuple[int, int]:
        p = cli(["batch", folder, "--db", db, "--emotion-head", "batch-head", "--json", "--no-progress"], home=home,
                models=models)
        summary = json.loads(p.stdout)
        return summary["done"], summary["skipped"]

    assert batch() == (1, 0)
    store = open_store(db)
    try:
        [call] = list_calls(store)
        scored = [s for s in get_result(store, call.call_id).segments if s.emotion and s.emotion.custom]
    finally:
        store.close()
    assert scored and {s.emotion.custom.head for s in scored} == {"batch-head"}
    assert {s.emotion.custom.label for s in scored} <= {"anxious", "urgent"}
    assert batch() == (0, 1)
    other = write_clips(tmp_path / "other", labels=("calm", "tense"), speakers=3, per=3)
    cli(["adapt", "train", other, "--out", "batch-head", "--force", "--json"], home=home, models=models)
    assert batch() == (1, 0)
