"""How embeddings are stored: 9⅓-bit codes of a rotated vector, told apart from older rows by length.

An L2-normalised vector whose dimension is a multiple of 64 (emotion2vec+ large 1024, base 768) is
stored as 645-level codes of the vector after a fixed orthogonal rotation, three codes in 28 bits
(six in 7 bytes): ``7 * ceil(dim / 6)`` bytes, 1,197 for 1024-d — 29 % of float32, 78 % of the 12-bit
codes of revisions 0008–0010 (issue 21: embeddings are most of the disk).

* **The rotation** (random sign flips, then a Walsh–Hadamard transform over each block of ``B``
  dimensions, ``B`` the largest power of two dividing ``dim``: one block of 1024, three of 256 for
  768-d) spreads the few dominant dimensions transformer features have over every value, so one
  scale fits them all. Without it a per-vector scale had to span the outliers: int8 or 10-bit codes
  broke the bound below (4.8e-3, 1.2e-3 measured), which is why revision 0008 stored 12 bits.
  The sign pattern is a fixed integer hash of (dimension, index): stored codes depend on it, it must
  never change.
* **The codes**: each rotated value divided by the vector's largest one, times 322, rounded
  (-322..322). The scale is not stored: vectors are unit length, and :func:`decode` normalises what
  it reads, so only the direction matters.
* **The bound**: the cosine between decoded vectors stays within 1e-3 of float32's — tested; the
  worst over 1.1 million pairs of each of six kinds of 1024-d vectors (a few dominant dimensions,
  two huge ones, heavy tails, skewed non-negative, tight clusters) measured 6.6e-4 to 7.5e-4, and
  7.5e-4 at 768-d with the dominant dimensions in one block (the 12-bit codes without rotation:
  up to 5.7e-4 on the same pairs). 9 bits (511 levels) was measured at 1.02e-3 there; 10 bits
  (4.5e-4) costs 83 bytes more per vector, 2.7 KB a call.

Other dimensions keep the 12-bit codes with a per-vector scale (even ``dim`` above 8: a float32
scale then two codes in three bytes, ``1.5 * dim + 4``) or float16 (``2 * dim``). Rows of revisions
0008–0010 hold 12-bit codes, of 0005–0007 float16, before float32 (``4 * dim``); :func:`decode` reads
every form — the lengths never coincide for one dimension.

:func:`cosines` scores a block of stored vectors against a query without undoing the rotation
(rotate the query once instead: the rotation keeps inner products), which keeps an exact scan as
fast as before; :func:`decode_block` returns the vectors themselves (the similarity index, clusters).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

STORED_DTYPE = np.float16  # the fallback (odd or tiny dimensions) and the rows of revisions 0005-0007
CODE_MAX = 2047  # 12-bit signed range used: -2047..2047, stored offset by 2048
LEVELS = 645  # rotated codes: -322..322 offset by 322; three of them fit 28 bits (645**3 < 2**28)
HALF = (LEVELS - 1) // 2
ROTATED_MULTIPLE = 64  # dimensions that are a multiple of this are rotated (a Hadamard block of >= 64)


def rotates(dim: int) -> bool:
    """Whether vectors of ``dim`` are stored as rotated 9⅓-bit codes."""
    return dim >= ROTATED_MULTIPLE and dim % ROTATED_MULTIPLE == 0


def packs(dim: int) -> bool:
    """Whether vectors of ``dim`` (not rotated) are stored as 12-bit codes (even, and a length no other form has)."""
    return dim % 2 == 0 and dim > 8


def nbytes(dim: int) -> int:
    """Bytes of one vector of ``dim`` as stored now."""
    if rotates(dim):
        return 7 * -(-dim // 6)
    return 4 + 3 * dim // 2 if packs(dim) else 2 * dim


def encode(v: np.ndarray) -> bytes:
    return encode_rows(np.asarray(v, dtype=np.float32).reshape(1, -1))[0]


def encode_rows(m: np.ndarray) -> list[bytes]:
    """:func:`encode` of each row of a matrix (one conversion for all of them)."""
    m = np.asarray(m, dtype=np.float32)
    dim = m.shape[1]
    if rotates(dim):
        raw = _pack_rotated(rotate(m)).tobytes()
        width = nbytes(dim)
        return [raw[k:k + width] for k in range(0, len(raw), width)]
    if not packs(dim):
        data = np.ascontiguousarray(m.astype(STORED_DTYPE))
        width = dim * data.itemsize
        raw = data.tobytes()
        return [raw[k:k + width] for k in range(0, len(raw), width)]
    return encode_q12(m)


def encode_q12(m: np.ndarray) -> list[bytes]:
    """Rows as 12-bit codes with a per-vector scale (even dimensions above 8): the form of dimensions
    that are not rotated, and of every row of revisions 0008-0010 (the 0011 downgrade writes it)."""
    m = np.asarray(m, dtype=np.float32)
    n, dim = m.shape
    if not packs(dim):
        raise ValueError(f"12-bit codes need an even dimension above 8, not {dim}")
    peak = np.abs(m).max(axis=1)
    scale = np.where(peak > 0, peak / CODE_MAX, 1.0).astype(np.float32)
    codes = (np.clip(np.rint(m / scale[:, None]), -CODE_MAX, CODE_MAX) + 2048).astype(np.uint16)
    a, b = codes[:, 0::2], codes[:, 1::2]
    packed = np.empty((n, dim // 2, 3), dtype=np.uint8)
    packed[..., 0] = a & 0xFF
    packed[..., 1] = (a >> 8) | ((b & 0x0F) << 4)
    packed[..., 2] = b >> 4
    head = scale.astype("<f4").view(np.uint8).reshape(n, 4)
    rows = np.concatenate([head, packed.reshape(n, -1)], axis=1)
    return [r.tobytes() for r in rows]


# ---------------------------------------------------------------- the rotation


def _block(dim: int) -> int:
    return dim & -dim  # the largest power of two dividing dim


@lru_cache(maxsize=8)
def _hadamard(size: int) -> np.ndarray:
    """The orthonormal (Sylvester) Hadamard matrix of a power-of-two ``size``."""
    h = np.ones((1, 1), dtype=np.float64)
    while h.shape[0] < size:
        h = np.block([[h, h], [h, -h]])
    return (h / np.sqrt(size)).astype(np.float32)


@lru_cache(maxsize=8)
def _signs(dim: int) -> np.ndarray:
    """±1 per dimension from a fixed integer hash (splitmix64 of dim and index): never to change."""
    with np.errstate(over="ignore"):
        z = np.arange(dim, dtype=np.uint64) + np.uint64(dim) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return np.where((z >> np.uint64(63)) == 1, -1.0, 1.0).astype(np.float32)


@lru_cache(maxsize=8)
def _mixer(blocks: int) -> np.ndarray:
    """The orthonormal DCT-II matrix of ``blocks`` points: mixes the blocks (a dimension that is not a
    power of two, e.g. 768 = 3 × 256), so that no block keeps more than ``2 / blocks`` of the energy
    of another (dominant dimensions in one block would otherwise set the scale for all)."""
    j = np.arange(blocks)
    m = np.sqrt(2.0 / blocks) * np.cos(np.pi * (2 * j[None, :] + 1) * j[:, None] / (2 * blocks))
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def _hadamard_blocks(x: np.ndarray) -> np.ndarray:
    """The Walsh–Hadamard transform of each block of ``B`` values (its own inverse): the block as an
    ``a × b`` matrix ``X`` becomes ``H_a X H_b`` (``H_a ⊗ H_b = H_B``), two small products."""
    n, dim = x.shape
    size = _block(dim)
    a = 1 << (size.bit_length() - 1) // 2
    b = size // a
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, a, b)
    return np.matmul(_hadamard(a), x @ _hadamard(b)).reshape(n, dim)


def rotate(m: np.ndarray) -> np.ndarray:
    """Rows in the rotated space of the stored codes: sign flips, the Hadamard transform of each
    block, then (several blocks) the blocks mixed. Orthogonal: inner products are kept."""
    m = np.asarray(m, dtype=np.float32)
    n, dim = m.shape
    y = _hadamard_blocks(m * _signs(dim))
    blocks = dim // _block(dim)
    if blocks > 1:
        y = np.matmul(_mixer(blocks), y.reshape(n, blocks, -1)).reshape(n, dim)
    return y


def unrotate(y: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rotate`."""
    y = np.asarray(y, dtype=np.float32)
    n, dim = y.shape
    blocks = dim // _block(dim)
    if blocks > 1:
        y = np.matmul(_mixer(blocks).T, y.reshape(n, blocks, -1)).reshape(n, dim)
    return _hadamard_blocks(y) * _signs(dim)


# ---------------------------------------------------------------- 645-level codes, three in 28 bits


def _pack_rotated(y: np.ndarray) -> np.ndarray:
    """(n, dim) rotated rows -> (n, 7 * ceil(dim / 6)) uint8: codes 0..644, three to a 28-bit word
    (``c0 + 645 c1 + 645² c2``), two words to 7 bytes (little-endian)."""
    n, dim = y.shape
    peak = np.abs(y).max(axis=1, keepdims=True)
    unit = np.divide(y, peak, out=np.zeros_like(y), where=peak > 0)
    codes = np.full((n, -(-dim // 6) * 6), HALF, dtype=np.uint32)  # padding codes decode to 0
    codes[:, :dim] = np.rint(unit * HALF) + HALF  # |unit| <= 1: no clipping needed
    c = codes.reshape(n, -1, 3)
    words = (c[..., 0] + LEVELS * c[..., 1] + LEVELS * LEVELS * c[..., 2]).reshape(n, -1, 2)
    groups = words.shape[1]
    out = np.empty((n, groups, 8), dtype=np.uint8)
    out[..., :4] = (words[..., 0] | (words[..., 1] << np.uint32(28))).astype("<u4").view(np.uint8).reshape(n, groups, 4)
    out[..., 4:] = (words[..., 1] >> np.uint32(4)).astype("<u4").view(np.uint8).reshape(n, groups, 4)
    return out[..., :7].reshape(n, -1)


def _codes(block: np.ndarray, dim: int) -> np.ndarray:
    """(n, 7 * ceil(dim / 6)) uint8 rows -> (n, dim) float32 codes (-322..322) in the rotated space."""
    n = block.shape[0]
    g = block.reshape(n, -1, 7)
    words = np.empty((n, g.shape[1], 2), dtype=np.uint32)
    words[..., 0] = np.ascontiguousarray(g[..., 0:4]).view("<u4")[..., 0] & np.uint32(0x0FFFFFFF)
    words[..., 1] = np.ascontiguousarray(g[..., 3:7]).view("<u4")[..., 0] >> np.uint32(4)
    words = words.reshape(n, -1)
    out = np.empty((n, words.shape[1], 3), dtype=np.float32)
    rest, out[..., 0] = np.divmod(words, np.uint32(LEVELS))
    out[..., 2], out[..., 1] = np.divmod(rest, np.uint32(LEVELS))
    out -= HALF
    return out.reshape(n, -1)[:, :dim]


def _normalised(m: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("ij,ij->i", m, m))[:, None]
    return np.divide(m, norm, out=m, where=norm > 0)


# ---------------------------------------------------------------- 12-bit codes (revisions 0008-0010, other dims)


def _unpack(block: np.ndarray, dim: int) -> np.ndarray:
    """(n, 4 + 1.5 dim) uint8 rows of 12-bit codes -> (n, dim) float32, each row L2-normalised."""
    n = block.shape[0]
    scale = np.ascontiguousarray(block[:, :4]).view("<f4").reshape(n, 1)
    b0, b1, b2 = (block[:, 4 + k::3].astype(np.int16) for k in range(3))
    out = np.empty((n, dim), dtype=np.float32)
    out[:, 0::2] = b0 | ((b1 & 0x0F) << 8)
    out[:, 1::2] = (b1 >> 4) | (b2 << 4)
    out -= 2048.0
    out *= scale
    return _normalised(out)


# ---------------------------------------------------------------- reading


def _form(nbytes_: int, dim: int) -> str:
    if rotates(dim) and nbytes_ == nbytes(dim):
        return "r9"
    if packs(dim) and nbytes_ == 4 + 3 * dim // 2:
        return "q12"
    if nbytes_ == 2 * dim:
        return "f16"
    if nbytes_ == 4 * dim:
        return "f32"
    raise ValueError(f"a stored vector of {nbytes_} bytes does not hold {dim} rotated, 12-bit, float16 or "
                     "float32 values")


def decode(data: bytes, dim: int) -> np.ndarray:
    """The float32 vector stored as ``data`` (any stored form; the coded ones L2-normalised)."""
    return decode_block([data], dim)[0]


def decode_block(rows: list[bytes], dim: int) -> np.ndarray:
    """A (len(rows), dim) float32 matrix of stored vectors (one vectorised decode per stored form)."""
    if not rows:
        return np.empty((0, dim), dtype=np.float32)
    forms = [_form(len(r), dim) for r in rows]
    if len(set(forms)) > 1:
        out = np.empty((len(rows), dim), dtype=np.float32)
        for form in set(forms):
            idx = [i for i, f in enumerate(forms) if f == form]
            out[idx] = decode_block([rows[i] for i in idx], dim)
        return out
    form = forms[0]
    joined = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), -1)
    if form == "r9":
        return _normalised(unrotate(_codes(joined, dim)))
    if form == "q12":
        return _unpack(joined, dim)
    return joined.view(np.float16 if form == "f16" else np.float32).reshape(len(rows), dim).astype(np.float32)


def cosines(rows: list[bytes], dim: int, query: np.ndarray) -> np.ndarray:
    """The cosine between each stored vector and ``query`` (float32, any norm): what
    ``decode_block(rows, dim) @ unit(query)`` gives, with rotated rows compared in their own space
    (the query rotated once instead of every row un-rotated: an exact scan stays as fast)."""
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    qn = float(np.linalg.norm(q)) or 1.0
    if not rows:
        return np.empty(0, dtype=np.float32)
    forms = {_form(len(r), dim) for r in rows}
    if forms == {"r9"}:
        codes = _codes(np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), -1), dim)
        norms = np.sqrt(np.einsum("ij,ij->i", codes, codes))
        norms[norms == 0] = 1.0
        return (codes @ rotate(q.reshape(1, -1))[0]) / (norms * qn)
    mat = decode_block(rows, dim)
    norms = np.linalg.norm(mat, axis=1)
    norms[norms == 0] = 1.0
    return (mat @ q) / (norms * qn)
