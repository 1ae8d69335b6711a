"""Diarization of mono calls: forged sherpa-onnx models, role inference, bad models (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import onnx
import pytest

from callsense.analysis.roles import RoleOptions, SpeakerTurnText, infer_roles
from callsense.engines.diarization import Diarizer, validate_embedding, validate_segmentation
from callsense.errors import ModelFormatError
from callsense.testing.forge import DIARIZATION_MODELS, forge
from cli_support import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOLERANCE_MS = 300
COMPLAINT = "我要投诉，不发货我就要退款"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("forge-diar")
    forge(out, size="tiny", runtimes=("onnx",), models=("sensevoice-small", "emotion2vec-plus-large",
                                                        *DIARIZATION_MODELS),
          lang="zh", emotion="ANGRY", text=COMPLAINT, label="angry")
    return out


def _seg(models: Path) -> Path:
    return models / "pyannote-segmentation-3-0" / "onnx" / "model.onnx"


def _emb(models: Path) -> Path:
    return models / "eres2net-base-3dspeaker" / "onnx" / "model.onnx"


@pytest.fixture(scope="module")
def mono() -> tuple[np.ndarray, dict]:
    """The committed two-voice espeak call mixed to one channel, with its per-turn truth."""
    with wave.open(str(EXAMPLES / "call_stereo.wav"), "rb") as f:
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2).astype(np.float32) / 32768
    return pcm.sum(axis=1), json.loads((EXAMPLES / "call_stereo.truth.json").read_text())


def _write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_two_voices_found_with_turn_times_near_the_truth(models, mono):
    samples, truth = mono
    d = Diarizer(_seg(models), _emb(models)).process(samples)
    assert len(d.speakers) == 2
    overlapped = [(o["start_ms"], o["end_ms"]) for o in truth["overlaps"]]
    speaker_of_role = {}
    for ch in truth["channels"]:
        for t in ch["turns"]:
            if any(a < t["end_ms"] and t["start_ms"] < b for a, b in overlapped):
                continue  # a turn that starts inside the other's speech: its start is not a boundary
            near = [x for x in d.turns if abs(x.start_ms - t["start_ms"]) <= TOLERANCE_MS]
            assert near, f"no turn starts near {t['start_ms']} ms: {d.turns}"
            x = near[0]
            assert abs(x.end_ms - t["end_ms"]) <= TOLERANCE_MS, (t, x)
            speaker_of_role.setdefault(ch["role"], set()).add(x.speaker)
    assert all(len(v) == 1 for v in speaker_of_role.values()), speaker_of_role
    assert speaker_of_role["agent"] != speaker_of_role["customer"]
    assert set(d.embeddings) == {0, 1}
    assert float(np.dot(d.embeddings[0], d.embeddings[1])) < 0.5


def test_one_voice_is_one_speaker_and_silence_is_none(models, mono):
    samples, truth = mono
    diarizer = Diarizer(_seg(models), _emb(models))
    agent = truth["channels"][0]["turns"][0]
    one = diarizer.process(samples[agent["start_ms"] * 16:agent["end_ms"] * 16])
    assert len(one.speakers) == 1
    rng = np.random.default_rng(0)
    assert diarizer.process((rng.standard_normal(16000 * 5) * 1e-4).astype(np.float32)).turns == ()
    assert diarizer.process(np.zeros(16000 * 3, dtype=np.float32)).turns == ()


@pytest.mark.parametrize("which,key", [("seg", "receptive_field_shift"), ("seg", "num_classes"),
                                       ("emb", "framework"), ("emb", "output_dim")])
def test_missing_metadata_key_is_refused_with_file_and_key(models, tmp_path, which, key):
    src = _seg(models) if which == "seg" else _emb(models)
    m = onnx.load(str(src))
    keep = [p for p in m.metadata_props if p.key != key]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    bad = tmp_path / "model.onnx"
    onnx.save(m, str(bad))
    with pytest.raises(ModelFormatError) as e:
        (validate_segmentation if which == "seg" else validate_embedding)(bad)
    assert key in str(e.value) and str(bad) in str(e.value)


def test_forged_formats_validate(models):
    s = validate_segmentation(_seg(models))
    assert (s.num_speakers, s.powerset_max_classes, s.num_classes) == (3, 2, 7)
    assert validate_embedding(_emb(models)).framework in ("3d-speaker", "wespeaker")


# ---- role inference (pure) -----------------------------------------------------------------------
def test_roles_from_the_lexicon_beat_turn_order():
    turns = [SpeakerTurnText(0, 0, "喂，我的快递呢"), SpeakerTurnText(1, 2000, "您好，欢迎致电，工号1234"),
             SpeakerTurnText(0, 5000, COMPLAINT)]
    r = infer_roles(turns)
    assert r.role_of(1) == "agent" and r.role_of(0) == "customer" and "lexicon" in r.method
    assert any("欢迎致电" in e for d in r.decisions if d.speaker == 1 for e in d.evidence)


def test_first_speaker_prior_depends_on_direction():
    turns = [SpeakerTurnText(0, 0, "嗯"), SpeakerTurnText(1, 2000, "好的")]
    assert infer_roles(turns, RoleOptions(direction="inbound")).role_of(0) == "agent"
    assert infer_roles(turns, RoleOptions(direction="outbound")).role_of(1) == "agent"
    low = infer_roles(turns, RoleOptions(min_margin=1.0))
    assert {d.role for d in low.decisions} == {"unknown"}  # the prior alone is too weak for that margin


def test_enrolled_voiceprint_names_the_agent():
    a, b = np.array([1.0, 0.0, 0.1]), np.array([-1.0, 0.2, 0.1])
    turns = [SpeakerTurnText(0, 0, "嗯"), SpeakerTurnText(1, 2000, "嗯")]
    r = infer_roles(turns, embeddings={0: a, 1: b}, voiceprints={"a17": np.array([-0.9, 0.25, 0.1])})
    assert r.role_of(1) == "agent" and r.agent_id == "a17" and r.method.startswith("voiceprint")


# ---- end to end ----------------------------------------------------------------------------------
def _analyze(call: Path, models: Path, out: Path, *extra: str, home: Path | None = None):
    """`callsense analyze --json` in this process (see cli_support): for the calls that succeed."""
    env = {"CALLSENSE_MODEL_DIR": str(models)}
    if home is not None:
        env["CALLSENSE_HOME"] = str(home)
    return run_cli(["analyze", call, "--out", out, "--json", *extra], env)


def _analyze_process(call: Path, models: Path, out: Path, *extra: str):
    """The same in a real ``python -m callsense`` process: for the exit statuses of errors, which the
    process must end with (not an abort at interpreter shutdown while models load)."""
    env = {**os.environ, "CALLSENSE_MODEL_DIR": str(models)}
    return subprocess.run([sys.executable, "-m", "callsense", "analyze", str(call), "--out", str(out), "--json",
                           *extra], check=False, capture_output=True, text=True, env=env,
                          timeout=600)


def test_mono_call_diarized_roles_and_complaint(models, mono, tmp_path):
    call = _write(tmp_path / "mono.wav", mono[0])
    proc = _analyze(call, models, tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    [data] = json.loads(proc.stdout)["calls"]  # analyze --json: {"calls": [...], "failures": [...]}
    sep = data["separation"]
    assert sep["method"] == "diarization+roles" and len(sep["speakers"]) == 2
    assert {s["role"] for s in data["segments"]} == {"agent", "customer"}
    first = min(data["segments"], key=lambda s: s["start_ms"])
    assert first["role"] == "agent"  # the first speaker on an inbound call (every segment says the same text)
    assert any(h["rule_id"] == "risk.complaint" for h in data["rule_hits"])
    assert any(m["task"] == "diarization" for m in data["processing"]["models"])
    # metrics per diarized role: the talk ratio follows the truth's turns, talk-over is measurable
    truth = mono[1]
    talk = {c["role"]: sum(t["end_ms"] - t["start_ms"] for t in c["turns"]) for c in truth["channels"]}
    metrics = data["metrics"]
    assert metrics["overlap_measurable"] is True
    assert metrics["agent_talk_ratio"] == pytest.approx(talk["agent"] / (talk["agent"] + talk["customer"]), abs=0.1)


def test_corrupt_diarization_model_exits_4_naming_file_and_key(models, mono, tmp_path):
    import shutil

    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    seg = _seg(copy)
    m = onnx.load(str(seg))
    keep = [p for p in m.metadata_props if p.key != "window_size"]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    onnx.save(m, str(seg))
    proc = _analyze_process(_write(tmp_path / "mono.wav", mono[0]), copy, tmp_path / "o")
    assert proc.returncode == 4, proc.stderr
    assert "window_size" in proc.stderr and "model.onnx" in proc.stderr


def test_enrolled_agent_is_matched_and_fills_agent_id(models, mono, tmp_path):
    samples, truth = mono
    home = tmp_path / "home"
    # enrol the *customer's* voice as agent c9: the voiceprint must outweigh the first-speaker prior
    t = truth["channels"][1]["turns"][0]
    clip = _write(tmp_path / "c9.wav", samples[t["start_ms"] * 16:t["end_ms"] * 16])
    enrolled = run_cli(["agents", "enroll", "c9", clip], {"CALLSENSE_MODEL_DIR": str(models), "CALLSENSE_HOME": str(home)})
    assert enrolled.returncode == 0, enrolled.stderr
    [data] = json.loads(_analyze(_write(tmp_path / "mono.wav", samples), models, tmp_path / "o", home=home).stdout)["calls"]
    assert data["metadata"]["agent_id"] == "c9"
    agent = next(s for s in data["separation"]["speakers"] if s["role"] == "agent")
    assert agent["agent_id"] == "c9" and any("voiceprint" in e for e in agent["evidence"])
    first = min(data["segments"], key=lambda s: s["start_ms"])
    assert first["role"] == "customer"


def test_roles_override(models, mono, tmp_path):
    proc = _analyze(_write(tmp_path / "mono.wav", mono[0]), models, tmp_path / "o", "--roles", "customer,agent")
    [data] = json.loads(proc.stdout)["calls"]  # analyze --json: {"calls": [...], "failures": [...]}
    assert data["separation"]["role_method"] == "override"
    assert min(data["segments"], key=lambda s: s["start_ms"])["role"] == "customer"
    bad = _analyze_process(_write(tmp_path / "m2.wav", mono[0]), models, tmp_path / "o2", "--roles", "boss")
    assert bad.returncode == 2 and "--roles" in bad.stderr


def test_models_import_tells_segmentation_from_embedding(models, tmp_path):
    env = {"CALLSENSE_HOME": str(tmp_path / "home")}
    for name, src in (("pyannote-segmentation-3-0", _seg(models).parent), ("eres2net-base-3dspeaker", _emb(models).parent)):
        proc = run_cli(["models", "import", src], env)
        assert proc.returncode == 0, proc.stderr
        path = run_cli(["models", "path", name], env)
        assert path.returncode == 0 and name in path.stdout, path.stderr


def test_campplus_chosen_by_setting_keeps_its_own_voiceprints(models, mono, tmp_path):
    """CALLSENSE_SPEAKER_MODEL=campplus: diarization and enrolment use CAM++; its voiceprints live apart
    from the default model's, so the default never compares against them; a wrong name is a usage error."""
    import shutil

    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    forge(copy, size="tiny", runtimes=("onnx",), models=("campplus-zh-cn-3dspeaker",))
    samples, truth = mono
    home = tmp_path / "home"
    t = truth["channels"][1]["turns"][0]
    clip = _write(tmp_path / "c9.wav", samples[t["start_ms"] * 16:t["end_ms"] * 16])
    env = {"CALLSENSE_MODEL_DIR": str(copy), "CALLSENSE_HOME": str(home), "CALLSENSE_SPEAKER_MODEL": "campplus"}
    enrolled = run_cli(["agents", "enroll", "c9", clip], env)
    assert enrolled.returncode == 0, enrolled.stderr
    assert (home / "agents" / "campplus-zh-cn-3dspeaker" / "c9.npy").is_file()
    assert not (home / "agents" / "c9.npy").exists()
    call = _write(tmp_path / "mono.wav", samples)

    def analyze(**extra_env):
        return run_cli(["analyze", call, "--out", tmp_path / "o", "--json"], {**env, **extra_env})

    proc = analyze()
    assert proc.returncode == 0, proc.stderr
    [data] = json.loads(proc.stdout)["calls"]
    diar = next(m for m in data["processing"]["models"] if m["task"] == "diarization")
    assert "campplus-zh-cn-3dspeaker" in diar["name"]
    assert data["metadata"]["agent_id"] == "c9"
    # the default model: CAM++'s voiceprints are not its own, so no agent is matched
    proc = analyze(CALLSENSE_SPEAKER_MODEL="")
    assert proc.returncode == 0, proc.stderr
    [data] = json.loads(proc.stdout)["calls"]
    assert "eres2net" in next(m for m in data["processing"]["models"] if m["task"] == "diarization")["name"]
    assert "agent_id" not in data["metadata"]
    bad = subprocess.run([sys.executable, "-m", "callsense", "analyze", str(call), "--out", str(tmp_path / "o"),
                          "--json"], check=False, capture_output=True, text=True, timeout=600,
                         env={**os.environ, **env, "CALLSENSE_SPEAKER_MODEL": "sensevoice-small"})
    assert bad.returncode == 2 and "speaker-embedding" in bad.stderr and "campplus" in bad.stderr


# ---- bad input through the CLI: silence, music, one voice (issue 14, "Bad input") --------------------
def test_silent_and_music_mono_calls_have_no_speaker_and_are_invalid(models, tmp_path):
    t = np.arange(16000 * 8) / 16000
    chord = sum(np.sin(2 * np.pi * f * t) for f in (440, 554, 659)) * 0.1  # steady tones: no speech for the VAD
    for name, samples in (("silent", np.zeros(16000 * 5)), ("music", chord)):
        proc = _analyze(_write(tmp_path / f"{name}.wav", samples), models, tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        [data] = json.loads(proc.stdout)["calls"]
        assert data["separation"]["method"] == "diarization", name
        assert data["separation"]["speakers"] == [] and data["segments"] == [], name  # no speaker of music
        assert [h["rule_id"] for h in data["rule_hits"]] == ["call.invalid"], name
        assert data["score"]["status"] == "not_scored", name
        assert any("call invalid" in w for w in data["processing"]["warnings"]), name


def test_one_voice_mono_call_is_one_speaker_and_its_complaint_still_fires(models, tmp_path):
    with wave.open(str(EXAMPLES / "call_stereo.wav"), "rb") as f:  # the customer's channel alone, as a mono file
        one = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, 2)[:, 1].astype(np.float32) / 32768
    proc = _analyze(_write(tmp_path / "one.wav", one), models, tmp_path / "o")
    assert proc.returncode == 0, proc.stderr
    [data] = json.loads(proc.stdout)["calls"]
    [speaker] = data["separation"]["speakers"]
    assert speaker["role"] == "unknown" and data["separation"]["method"] == "diarization"  # no cue: no guess
    assert {s["speaker"] for s in data["segments"]} == {0}
    hit = next(h for h in data["rule_hits"] if h["rule_id"] == "risk.complaint")
    assert all("role not established" in (e["note"] or "") for e in hit["evidence"])


# ---- roles from the lexicon on the generated call, and a call centre's own lexicon -------------------
# The tiny ASR emits piece k of its pinned text 120*k ms into a segment, so a phrase placed after 24
# pieces is heard only in segments over ~3.3 s: on the example call only the second voice's first turn
# (3.5 s; the first voice's turns are at most 2.9 s). The lexicon must then beat the first-speaker prior.
GREETING_TEXT = "我要投诉不发货我就要退款一二三四五六七八九十甲欢迎致电"


@pytest.fixture(scope="module")
def greeting_models(models, tmp_path_factory) -> Path:
    import shutil

    out = tmp_path_factory.mktemp("forge-greeting") / "models"
    shutil.copytree(models, out)
    forge(out, size="tiny", runtimes=("onnx",), models=("sensevoice-small",), lang="zh", text=GREETING_TEXT)
    return out


def test_roles_from_the_lexicon_and_a_configured_lexicon(greeting_models, mono, tmp_path):
    call = _write(tmp_path / "mono.wav", mono[0])

    def roles(*extra, env_lexicon=None):
        env = {"CALLSENSE_MODEL_DIR": str(greeting_models),
               "CALLSENSE_AGENT_LEXICON": str(env_lexicon) if env_lexicon else None}
        proc = run_cli(["analyze", call, "--out", tmp_path / "o", "--json", *extra], env)
        assert proc.returncode == 0, proc.stderr
        [data] = json.loads(proc.stdout)["calls"]
        sep = data["separation"]
        agent = next(s for s in sep["speakers"] if s["role"] == "agent")
        first = min(data["segments"], key=lambda s: s["start_ms"])
        return agent, sep["role_method"], first["role"], data

    agent, method, first, data = roles()
    assert agent["speaker"] == 1 and "lexicon" in method and first == "customer"  # the greeting beat the prior
    assert any(e == "agent lexicon: 欢迎致电" for e in agent["evidence"]), agent
    assert any(h["rule_id"] == "risk.complaint" for h in data["rule_hits"])
    drop = tmp_path / "drop.txt"
    drop.write_text("# our agents never say it\n-欢迎致电\n", "utf-8")
    agent, method, first, _ = roles("--agent-lexicon", str(drop))
    assert agent["speaker"] == 0 and method == "first_speaker" and first == "agent"
    agent, method, first, _ = roles("--agent-lexicon", str(drop), "--meta", "direction=outbound")
    assert agent["speaker"] == 1 and method == "first_speaker" and first == "customer"  # the customer answers
    assert agent["evidence"] == ["outbound call: the agent is not the first to speak"]
    own = tmp_path / "own.txt"
    own.write_text("-欢迎致电\n甲欢\n", "utf-8")  # a phrase of its own: only the second voice says it
    agent, method, first, _ = roles("--agent-lexicon", str(own))
    assert agent["speaker"] == 1 and "agent lexicon: 甲欢" in agent["evidence"] and first == "customer"
    agent, method, first, _ = roles(env_lexicon=drop)  # $CALLSENSE_AGENT_LEXICON (batch, serve) alike
    assert agent["speaker"] == 0 and method == "first_speaker"


def test_bad_agent_lexicons_are_usage_errors(models, mono, tmp_path):
    call = _write(tmp_path / "mono.wav", mono[0])
    missing = _analyze_process(call, models, tmp_path / "o", "--agent-lexicon", str(tmp_path / "none.txt"))
    assert missing.returncode == 2 and "--agent-lexicon" in missing.stderr and "none.txt" in missing.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("工单\n-not a phrase\n", "utf-8")
    proc = _analyze_process(call, models, tmp_path / "o", "--agent-lexicon", str(bad))
    assert proc.returncode == 2 and "bad.txt:2" in proc.stderr and "not in the lexicon" in proc.stderr


def test_batch_reanalyses_mono_calls_once_diarization_models_or_agents_are_added(models, mono, tmp_path):
    """The fingerprint covers the diarization models and the enrolled voiceprints: a mono archive stored
    before they were installed is not skipped as "already analysed" (and is skipped once it is)."""
    import shutil

    from callsense.store import get_result, list_calls, open_store

    models_dir = tmp_path / "models"
    for name in ("sensevoice-small", "emotion2vec-plus-large"):
        shutil.copytree(models / name, models_dir / name)
    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "mono.wav", mono[0])
    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "CALLSENSE_MODEL_DIR": str(models_dir), "CALLSENSE_HOME": str(tmp_path / "home"),
           "CALLSENSE_OFFLINE": "1"}

    def batch() -> tuple[int, int]:
        proc = subprocess.run([sys.executable, "-m", "callsense", "batch", str(folder), "--db", db, "--json",
                               "--no-progress"], check=False, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        return summary["done"], summary["skipped"]

    def method() -> str:
        store = open_store(db)
        try:
            [call] = list_calls(store)
            return get_result(store, call.call_id).separation.method
        finally:
            store.close()

    assert batch() == (1, 0) and method() == "mono"
    for name in DIARIZATION_MODELS:
        shutil.copytree(models / name, models_dir / name)
    assert batch() == (1, 0) and method() == "diarization+roles"
    assert batch() == (0, 1)
    t = mono[1]["channels"][1]["turns"][0]
    clip = _write(tmp_path / "c9.wav", mono[0][t["start_ms"] * 16:t["end_ms"] * 16])
    enrolled = run_cli(["agents", "enroll", "c9", clip], env)
    assert enrolled.returncode == 0, enrolled.stderr
    assert batch() == (1, 0)  # a new agent voiceprint can change the roles
