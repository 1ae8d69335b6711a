"""How embeddings are stored: int8 with one float scale per vector.

An L2-normalised vector ``v`` is stored as ``q = round(v / s)`` with ``s = max|v| / 127``: a quarter
of float32's bytes, and the cosine between decoded vectors stays within 1e-3 of float32's (tested).
Rows written before schema revision 0005 hold float32 bytes and a NULL scale; :func:`decode` reads both.
"""

from __future__ import annotations

import numpy as np


def encode(v: np.ndarray) -> tuple[bytes, float]:
    """``(int8 bytes, scale)`` of a float vector."""
    v = np.asarray(v, dtype=np.float32)
    peak = float(np.max(np.abs(v))) if v.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.rint(v / scale), -127, 127).astype(np.int8)
    return q.tobytes(), scale


def decode(data: bytes, scale: float | None) -> np.ndarray:
    """The float32 vector stored as ``data`` (int8 when ``scale`` is set, else float32 bytes)."""
    if scale is None:
        return np.frombuffer(data, dtype=np.float32)
    return np.frombuffer(data, dtype=np.int8).astype(np.float32) * np.float32(scale)


def decode_block(rows: list[tuple[bytes, float | None]], dim: int) -> np.ndarray:
    """A (len(rows), dim) float32 matrix from stored ``(vector, scale)`` pairs."""
    out = np.empty((len(rows), dim), dtype=np.float32)
    ints = [i for i, (_, s) in enumerate(rows) if s is not None]
    if len(ints) == len(rows):  # the common case: one frombuffer for the block
        q = np.frombuffer(b"".join(r[0] for r in rows), dtype=np.int8).reshape(len(rows), dim)
        out[:] = q
        out *= np.asarray([r[1] for r in rows], dtype=np.float32)[:, None]
        return out
    for i, (data, scale) in enumerate(rows):
        out[i] = decode(data, scale)
    return out
