"""The reference runner: analyse a stereo call "the seeds' way", with FunASR AutoModel in torch.

    python bench/seeds_way.py CALL.wav --models MODELS_DIR [--emotion-model emotion2vec-plus-large]
                              [--threads 2] [--json-out timings.json]

What the seed articles do, kept as they do it (bench/README.md discusses each point):

1. ``from funasr import AutoModel`` (paid at start-up: FunASR imports every model family);
2. ``AutoModel(model=<SenseVoiceSmall dir>, vad_model=<fsmn-vad dir>,
   vad_kwargs={"max_single_segment_time": 30000}, ncpu=threads, disable_update=True)`` and
   ``AutoModel(model=<emotion2vec+ dir>, ...)``;
3. per channel, ``generate(input=samples, language="auto", use_itn=True, batch_size_s=60,
   merge_vad=True, merge_length_s=15)`` — the call in SenseVoice's README. FunASR runs the VAD, then
   *merges* neighbouring VAD segments up to 15 s, so the ASR decodes the silences between them too;
4. emotion2vec+ ``generate(segment, granularity="utterance")`` on every (unmerged) VAD segment,
   one call per segment as the emotion article does.

Models are the project's forged random-weight full-size models in FunASR format
(``python -m callsense.testing.forge --size full MODELS_DIR``): their speed and memory are real,
their outputs meaningless.

The VAD model. FunASR's ``fsmn-vad`` (hub ``iic/speech_fsmn_vad_zh-cn-16k-common-pytorch``) cannot
be downloaded here, so :func:`forge_fsmn_vad` writes one: the real FSMN architecture and config
(400-dim LFR fbank input, 4 FSMN layers of 250/128, 248 outputs; 0.4 M parameters), so FunASR's
frontend, network and Python state machine cost what they cost. Random weights cannot tell speech
from silence, so the forge scales the last layer down and biases it towards "speech" and sets the
config's energy gate ``decibel_thres`` (a real FunASR option; the hub config has -100, off) to
``FSMN_DECIBEL_THRES``: frames quieter than that are silence. The segmentation therefore follows the
signal's energy through FunASR's own endpointing (``max_end_silence_time`` 800 ms etc.), close to
what the real model does on clean synthetic speech. This substitution is the only departure.

The VAD segments that FunASR computes inside ``generate`` are captured (not recomputed) by wrapping
the AutoModel's ``inference`` method, so the VAD runs once, as in the seeds, and its time is measured
separately from the ASR's.

Writes one JSON document: stage times (import, load, decode, vad, asr, emotion, total), audio, speech
and ASR-decoded seconds per channel, segment counts and versions.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
# Energy gate in FunASR's unit: 10*log10(sum of squares of a 400-sample frame of [-1, 1] samples).
# Line hiss at -60 dBFS RMS is 10*log10(400e-6) = -34 dB; synthetic speech frames are about -10..+15 dB.
FSMN_DECIBEL_THRES = -20.0

FSMN_CONFIG = """\
# fsmn-vad as published (iic/speech_fsmn_vad_zh-cn-16k-common-pytorch), forged by bench/seeds_way.py:
# random weights, energy gate decibel_thres set (see the module docstring).
frontend: WavFrontendOnline
frontend_conf:
    fs: 16000
    window: hamming
    n_mels: 80
    frame_length: 25
    frame_shift: 10
    dither: 0.0
    lfr_m: 5
    lfr_n: 1

model: FsmnVADStreaming
model_conf:
    sample_rate: 16000
    detect_mode: 1
    snr_mode: 0
    max_end_silence_time: 800
    max_start_silence_time: 3000
    do_start_point_detection: True
    do_end_point_detection: True
    window_size_ms: 200
    sil_to_speech_time_thres: 150
    speech_to_sil_time_thres: 150
    speech_2_noise_ratio: 1.0
    do_extend: 1
    lookback_time_start_point: 200
    lookahead_time_end_point: 100
    max_single_segment_time: 60000
    snr_thres: -100.0
    noise_frame_num_used_for_snr: 100
    decibel_thres: {decibel_thres}
    speech_noise_thres: 0.6
    fe_prior_thres: 0.0001
    silence_pdf_num: 1
    sil_pdf_ids: [0]
    speech_noise_thresh_low: -0.1
    speech_noise_thresh_high: 0.3
    output_frame_probs: False
    frame_in_ms: 10
    frame_length_ms: 25

encoder: FSMN
encoder_conf:
    input_dim: 400
    input_affine_dim: 140
    fsmn_layers: 4
    linear_dim: 250
    proj_dim: 128
    lorder: 20
    rorder: 0
    lstride: 1
    rstride: 0
    output_affine_dim: 140
    output_dim: 248
"""


def forge_fsmn_vad(out: Path, *, seed: int = 0, decibel_thres: float = FSMN_DECIBEL_THRES) -> Path:
    """Write a FunASR-loadable fsmn-vad directory (config.yaml, model.pt, am.mvn) into ``out``."""
    import torch
    import yaml
    from funasr.models.fsmn_vad_streaming.encoder import FSMN

    out.mkdir(parents=True, exist_ok=True)
    text = FSMN_CONFIG.format(decibel_thres=decibel_thres)
    (out / "config.yaml").write_text(text, encoding="utf-8")
    conf = yaml.safe_load(text)["encoder_conf"]
    torch.manual_seed(seed)
    encoder = FSMN(**conf)
    with torch.no_grad():
        # Tiny weights and a bias against class 0 (silence): every frame scores as speech, so the
        # energy gate alone decides (random weights would make the segmentation random).
        encoder.out_linear2.linear.weight.mul_(1e-3)
        encoder.out_linear2.linear.bias.zero_()
        encoder.out_linear2.linear.bias[0] = -8.0
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    torch.save(state, out / "model.pt")
    dim = conf["input_dim"]
    # CMVN of 16-bit-scaled log-mel features (means ~ -8, std ~ 3): plausible, not measured.
    shift = " ".join(["-8.0"] * dim)
    scale = " ".join(["0.33"] * dim)
    (out / "am.mvn").write_text(
        f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {scale} ]\n</Nnet>\n", encoding="utf-8")
    (out / "configuration.json").write_text(json.dumps({
        "framework": "pytorch", "task": "voice-activity-detection",
        "model": {"type": "funasr"}, "file_path_metas": {"init_param": "model.pt", "config": "config.yaml",
                                                         "frontend_conf": {"cmvn_file": "am.mvn"}}}),
        encoding="utf-8")
    return out


def read_wav(path: Path) -> list[np.ndarray]:
    """PCM16 WAV at 16 kHz -> one float32 array per channel (what the seeds feed FunASR)."""
    with wave.open(str(path), "rb") as f:
        if f.getframerate() != SAMPLE_RATE or f.getsampwidth() != 2:
            raise SystemExit(f"{path}: need 16 kHz PCM16 (bench/gen_call.py writes that)")
        ch = f.getnchannels()
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").reshape(-1, ch)
    return [np.ascontiguousarray(pcm[:, c], dtype=np.float32) / 32768.0 for c in range(ch)]


def model_dirs(models: Path, emotion_model: str) -> dict[str, Path]:
    dirs = {
        "asr": models / "sensevoice-small" / "funasr",
        "emotion": models / emotion_model / "funasr",
        "vad": models / "fsmn-vad" / "funasr",
    }
    for role in ("asr", "emotion"):
        if not (dirs[role] / "model.pt").is_file():
            raise SystemExit(f"{dirs[role]}: no FunASR model; forge it: "
                             f"python -m callsense.testing.forge --size full {models}")
    if not (dirs["vad"] / "model.pt").is_file():
        forge_fsmn_vad(dirs["vad"])
    return dirs


def run(audio_path: Path, models: Path, *, emotion_model: str = "emotion2vec-plus-large",
        threads: int = 2, process_start: float | None = None) -> dict:
    """Analyse the call; returns the timing document. ``process_start``: perf_counter at interpreter start."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    t = time.perf_counter()
    from funasr import AutoModel
    timings["import"] = time.perf_counter() - t
    dirs = model_dirs(models, emotion_model)  # forges fsmn-vad on first use (e2e.py does it beforehand)

    t = time.perf_counter()
    common = {"ncpu": threads, "device": "cpu", "disable_update": True, "disable_pbar": True, "disable_log": True}
    asr = AutoModel(model=str(dirs["asr"]), vad_model=str(dirs["vad"]),
                    vad_kwargs={"max_single_segment_time": 30000}, **common)
    emo = AutoModel(model=str(dirs["emotion"]), **common)
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    channels = read_wav(audio_path)
    timings["decode"] = time.perf_counter() - t

    # Capture the VAD result FunASR computes inside generate(), before merge_vad rewrites it in place.
    captured: list[list[list[int]]] = []
    vad_time = [0.0]
    original_inference = asr.inference

    def inference(*args, **kwargs):
        started = time.perf_counter()
        res = original_inference(*args, **kwargs)
        if kwargs.get("model") is asr.vad_model:
            vad_time[0] += time.perf_counter() - started
            captured.append(copy.deepcopy(res[0]["value"]))
        return res

    asr.inference = inference  # instance attribute: inference_with_vad calls self.inference

    per_channel = []
    asr_total = 0.0
    for c, samples in enumerate(channels):
        before_vad = vad_time[0]
        t = time.perf_counter()
        res = asr.generate(input=samples, cache={}, language="auto", use_itn=True, batch_size_s=60,
                           merge_vad=True, merge_length_s=15)
        elapsed = time.perf_counter() - t
        asr_total += elapsed - (vad_time[0] - before_vad)
        segments = captured[-1] if len(captured) > c else []
        merged = _merge_like_funasr(segments, 15_000)
        per_channel.append({
            "channel": c, "vad_segments": segments,
            "speech_s": sum(b - a for a, b in segments) / 1000,
            "asr_decoded_s": sum(b - a for a, b in merged) / 1000, "asr_pieces": len(merged),
            "text_chars": sum(len(r.get("text", "")) for r in res),
        })
    timings["vad"] = vad_time[0]
    timings["asr"] = asr_total

    t = time.perf_counter()
    n_emotion = 0
    for c, samples in enumerate(channels):
        for a, b in per_channel[c]["vad_segments"]:
            piece = samples[a * SAMPLE_RATE // 1000: b * SAMPLE_RATE // 1000]
            if len(piece) < SAMPLE_RATE // 10:
                continue
            emo.generate(piece, granularity="utterance", extract_embedding=False)
            n_emotion += 1
    timings["emotion"] = time.perf_counter() - t
    timings["run"] = time.perf_counter() - t0
    if process_start is not None:
        timings["process"] = time.perf_counter() - process_start

    import funasr
    import torch

    return {
        "runner": "seeds_way", "audio": str(audio_path), "audio_s": len(channels[0]) / SAMPLE_RATE,
        "channels": len(channels), "threads": threads, "emotion_model": emotion_model,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "per_channel": [{k: v for k, v in pc.items() if k != "vad_segments"} | {"vad_segments": len(pc["vad_segments"])}
                        for pc in per_channel],
        "emotion_segments": n_emotion,
        "peak_rss_mb": _vm_hwm_mb(),
        "versions": {"funasr": getattr(funasr, "__version__", "?"), "torch": torch.__version__},
        "vad_substitution": f"forged fsmn-vad, energy gate decibel_thres={FSMN_DECIBEL_THRES}",
    }


def _merge_like_funasr(segments: list[list[int]], merge_ms: int) -> list[list[int]]:
    """FunASR's ``merge_vad`` (funasr/utils/vad_utils.py), for counting what the ASR decoded.

    Neighbouring segments are joined, gap included, while the joined span stays under ``merge_ms``.
    """
    try:
        from funasr.utils.vad_utils import merge_vad

        return merge_vad(copy.deepcopy(segments), merge_ms)
    except ImportError:  # older/newer FunASR layout: the same rule, written out
        merged: list[list[int]] = []
        for a, b in segments:
            if merged and b - merged[-1][0] <= merge_ms:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        return merged


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("audio", type=Path)
    p.add_argument("--models", type=Path, required=True, help="forge root with <model>/funasr/ directories")
    p.add_argument("--emotion-model", default="emotion2vec-plus-large")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json-out", type=Path, help="write the timing document here (default: stdout)")
    p.add_argument("--forge-vad-only", action="store_true", help="only forge MODELS/fsmn-vad/funasr and exit")
    args = p.parse_args(argv)
    if args.forge_vad_only:
        print(forge_fsmn_vad(args.models / "fsmn-vad" / "funasr"))
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    doc = run(args.audio, args.models, emotion_model=args.emotion_model, threads=args.threads, process_start=start)
    text = json.dumps(doc, indent=1)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
