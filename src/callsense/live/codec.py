"""Telephone sample formats of the live protocol to float32: 16-bit PCM, G.711 μ-law and A-law.

G.711 decodes by table (ITU-T G.711, the same expansion ``audioop.ulaw2lin``/``alaw2lin`` did before
``audioop`` left the standard library): 256 entries built once with numpy, then one fancy index per frame.
"""

from __future__ import annotations

import numpy as np

ENCODINGS = ("pcm_s16le", "mulaw", "alaw")
BYTES_PER_SAMPLE = {"pcm_s16le": 2, "mulaw": 1, "alaw": 1}


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.float32) / 32768.0


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.float32) / 32768.0


_TABLES = {"mulaw": _ulaw_table(), "alaw": _alaw_table()}


def decode_frame(data: bytes, encoding: str, channels: int) -> np.ndarray:
    """Interleaved samples -> float32 ``[n, channels]`` in [-1, 1]. The caller checks the length first."""
    if encoding == "pcm_s16le":
        x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        x = _TABLES[encoding][np.frombuffer(data, dtype=np.uint8)]
    return x.reshape(-1, channels)


def encode_mulaw(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] -> μ-law bytes (the nearest table entry; for tests and the demo client)."""
    table = _TABLES["mulaw"]
    order = np.argsort(table)
    x = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    pos = np.clip(np.searchsorted(table[order], x), 1, 255)
    lo, hi = order[pos - 1], order[pos]
    pick = np.where(np.abs(table[lo] - x) <= np.abs(table[hi] - x), lo, hi)
    return pick.astype(np.uint8).tobytes()
