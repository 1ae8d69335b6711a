"""How embeddings are stored: float16 bytes, told apart from older rows by their length.

An L2-normalised vector is stored as float16: half of float32's bytes, and the cosine between decoded
vectors stays within 1e-3 of float32's (tested; measured ~1e-5). int8 with a per-vector scale would be
a quarter, but its worst-case cosine error on 1024-d vectors is ~1.4e-3 — over the bound. Rows
written before schema revision 0005 hold float32 bytes (``4 * dim``); :func:`decode` reads both.
"""

from __future__ import annotations

import numpy as np

STORED_DTYPE = np.float16


def encode(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype=np.float32).astype(STORED_DTYPE).tobytes()


def encode_rows(m: np.ndarray) -> list[bytes]:
    """:func:`encode` of each row of a matrix (one conversion for all of them)."""
    data = np.ascontiguousarray(np.asarray(m, dtype=np.float32).astype(STORED_DTYPE))
    width = data.shape[1] * data.itemsize
    raw = data.tobytes()
    return [raw[k:k + width] for k in range(0, len(raw), width)]


def _dtype(nbytes: int, dim: int) -> type:
    if nbytes == 2 * dim:
        return np.float16
    if nbytes == 4 * dim:
        return np.float32
    raise ValueError(f"a stored vector of {nbytes} bytes does not hold {dim} float16 or float32 values")


def decode(data: bytes, dim: int | None = None) -> np.ndarray:
    """The float32 vector stored as ``data`` (float16 or, for old rows, float32 bytes)."""
    if dim is None:  # without the dimension, the dtype of what save_result writes now
        return np.frombuffer(data, dtype=STORED_DTYPE).astype(np.float32)
    return np.frombuffer(data, dtype=_dtype(len(data), dim)).astype(np.float32)


def decode_block(rows: list[bytes], dim: int) -> np.ndarray:
    """A (len(rows), dim) float32 matrix of stored vectors (one frombuffer when all have one dtype)."""
    joined = b"".join(rows)
    if len(joined) == 2 * dim * len(rows) and all(len(r) == 2 * dim for r in rows):
        return np.frombuffer(joined, dtype=np.float16).reshape(len(rows), dim).astype(np.float32)
    return np.stack([decode(r, dim) for r in rows]) if rows else np.empty((0, dim), dtype=np.float32)
