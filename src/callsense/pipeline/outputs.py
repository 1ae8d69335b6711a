"""Writing one call's output folder: ``<out>/outputs_<call-id>/`` with result.json, the processed
16 kHz audio (``audio_16k.wav``, one channel per track) and ``embeddings.npy`` when emotion2vec ran.

The folder is written under a temporary name and renamed at the end, so a folder that exists is
always complete.
"""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np

from callsense.labels import SAMPLE_RATE
from callsense.pipeline.analyzer import CallRun
from callsense.result.io import dump_result

RESULT_FILE = "result.json"
AUDIO_FILE = "audio_16k.wav"
EMBEDDINGS_FILE = "embeddings.npy"


def folder_name(call_id: str) -> str:
    return f"outputs_{call_id}"


def write_call_folder(run: CallRun, out_root: str | Path, *, audio: bool = True) -> Path:
    """Write the call's folder under ``out_root`` and return its path (never overwrites: ``-2``, ``-3``…)."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    base = folder_name(run.result.call_id)
    target = out_root / base
    n = 2
    while target.exists():
        target = out_root / f"{base}-{n}"
        n += 1
    tmp = out_root / f".{target.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        (tmp / RESULT_FILE).write_text(dump_result(run.result) + "\n", encoding="utf-8")
        if audio and run.audio.tracks:
            write_wav(tmp / AUDIO_FILE, np.stack([t.samples for t in run.audio.tracks], axis=1))
        if run.embeddings is not None:
            np.save(tmp / EMBEDDINGS_FILE, run.embeddings.astype(np.float32))
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """PCM16 WAV of ``samples`` shaped [n] or [n, channels] in [-1, 1]."""
    if samples.ndim == 1:
        samples = samples[:, None]
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
