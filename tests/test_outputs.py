"""The output folder's audio file: PCM16, one channel per track, written block by block."""

from __future__ import annotations

import wave

import numpy as np

from callsense.pipeline.stages import dbfs as _dbfs
from callsense.pipeline.outputs import write_wav


def _read(path):
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(
            -1, w.getnchannels())


def test_blocks_join_seamlessly_and_channels_stay_apart(tmp_path):
    rng = np.random.default_rng(0)
    left, right = rng.uniform(-1.2, 1.2, 16000 * 23 + 7).astype(np.float32), np.zeros(16000 * 23 + 7, np.float32)
    right[::3] = 0.5
    write_wav(tmp_path / "a.wav", [left, right])
    channels, rate, pcm = _read(tmp_path / "a.wav")
    assert (channels, rate, pcm.shape) == (2, 16000, (len(left), 2))
    expected = (np.clip(np.stack([left, right], 1), -1, 1) * 32767).round().astype("<i2")
    assert np.array_equal(pcm, expected)  # across the 10 s block boundaries too
    write_wav(tmp_path / "b.wav", np.stack([left, right], 1))  # the array form writes the same file
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    write_wav(tmp_path / "m.wav", left)
    assert _read(tmp_path / "m.wav")[0] == 1


def test_track_level_is_the_rms_in_dbfs():
    x = np.full(3_000_000, 0.5, np.float32)  # longer than one block
    assert _dbfs(x) == round(20 * np.log10(0.5), 2)
    assert _dbfs(np.zeros(0, np.float32)) is None
