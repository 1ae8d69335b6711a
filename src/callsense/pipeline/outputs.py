"""Writing one call's output folder: ``<out>/outputs_<call-id>/`` with result.json, the processed
16 kHz audio (``audio_16k.wav``, one channel per track) and ``embeddings.npy`` when emotion2vec ran.

The folder is written under a temporary name and renamed at the end, so a folder that exists is
always complete.
"""

from __future__ import annotations

import errno
import shutil
import uuid
import wave
from collections.abc import Sequence
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
    """Write the call's folder under ``out_root`` and return its path (never overwrites: ``-2``, ``-3``…).

    Each run writes into its own hidden ``.<name>.<random>.partial`` folder and renames it into place at
    the end; the rename fails if another run took that name meanwhile (a folder that exists is never
    empty), so concurrent analyses of the same recording each get their own complete folder.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    base = folder_name(run.result.call_id)
    tmp = out_root / f".{base}.{uuid.uuid4().hex[:12]}.partial"
    tmp.mkdir()
    try:
        (tmp / RESULT_FILE).write_text(dump_result(run.result) + "\n", encoding="utf-8")
        if audio and run.audio.tracks:
            write_wav(tmp / AUDIO_FILE, [t.samples for t in run.audio.tracks])
        if run.embeddings is not None:
            np.save(tmp / EMBEDDINGS_FILE, run.embeddings.astype(np.float32))
        n = 1
        while True:
            target = out_root / (base if n == 1 else f"{base}-{n}")
            if not target.exists():
                try:
                    tmp.rename(target)  # atomic; refuses a non-empty target that appeared meanwhile
                    return target
                except OSError as e:
                    if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
            n += 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_wav(path: Path, samples: np.ndarray | Sequence[np.ndarray], rate: int = SAMPLE_RATE) -> None:
    """PCM16 WAV of ``samples``: an array shaped [n] or [n, channels], or one [n] array per channel, in [-1, 1].

    Written block by block (about 10 s at a time): converting a 10-minute stereo call in one piece took
    four float copies of it, 250 MB at the very end of a run, when the models' memory is at its peak.
    """
    if isinstance(samples, np.ndarray):
        channels = [samples] if samples.ndim == 1 else [samples[:, c] for c in range(samples.shape[1])]
    else:
        channels = list(samples)
    n = min((len(c) for c in channels), default=0)
    block = 10 * rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        for i in range(0, n, block):
            part = np.stack([c[i:i + block] for c in channels], axis=1)
            w.writeframes((np.clip(part, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes())
