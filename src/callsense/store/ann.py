"""The in-process nearest-neighbour index behind :func:`callsense.store.similar` (faiss).

One index per store, embedding kind (``segment``, ``call``, ``call:customer``…) and dimension, keyed
by ``embeddings.id``. It only proposes candidates: :mod:`callsense.store.similar` re-reads them from
the store and ranks them by exact cosine, so a vector deleted a moment ago is never returned.

Kept in step with the store by ``embedding_log`` (revision 0006): triggers on ``calls`` append one
row per call stored, re-stored or deleted — whichever path did it (save, the API's delete, purge,
raw SQL). Before each search the index applies the rows after its position: it drops the call's
vectors and adds the ones stored now. On PostgreSQL a log row can become visible after a higher one
(transactions commit out of order), so a gap in the sequence is re-read until it fills or is
``GAP_S`` old (a rolled-back transaction).

- **Built** on first use, or when missing, when its saved copy does not match the store, or when
  the store has grown ``REBUILD_GROWTH``× since it was trained. Below ``EXACT_BELOW`` vectors it is
  an exact flat index; above, an IVF index (inverted lists over k-means centroids, float16 codes)
  searched in ``nprobe`` lists — recall@10 ≥ 0.95 against exact search (tests/test_ann.py).
- **Saved** next to a SQLite file (``<file>.ann/``) or under the user cache folder for PostgreSQL,
  so the next process starts from it; after a delete or purge the saved copy is rewritten without
  the deleted vectors (or removed, when this process has not loaded it) — docs/privacy.md.
- Without faiss (an unusual platform) :func:`index_for` returns None and similarity is an exact scan.

pgvector: a server with the ``vector`` extension could hold an HNSW index instead; that path is not
built (the test server has no pgvector, see docs/store.md), so PostgreSQL uses this index too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from callsense.store.db import Store

log = logging.getLogger("callsense")

EXACT_BELOW = 20_000  # vectors: a flat (exact) index is fast enough and needs no training
NPROBE_FRACTION = 1 / 4  # IVF lists searched: bench_store at 45k vectors gave recall@10 0.90 at 1/16, 0.93 at 1/8
REBUILD_GROWTH = 4.0  # retrain when the store holds this many times the vectors the index was trained on
GAP_S = 60.0  # a sequence gap older than this is a rolled-back transaction, not a late commit
SAVE_EVERY = 500  # calls applied from the log between two saves of the index file
READ_BLOCK = 20_000


def available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class VectorIndex:
    """The index of one kind and dimension of one store (see the module docstring)."""

    kind: str
    dim: int
    index: Any = None  # faiss index (IndexIDMap2 over a flat index, or IndexIVFScalarQuantizer)
    trained_on: int = 0
    seq: int = 0  # every log row up to here is applied
    applied: set[int] = field(default_factory=set)  # applied rows above ``seq`` (after a gap)
    gaps: dict[int, float] = field(default_factory=dict)  # missing seq -> when first seen missing
    by_call: dict[str, list[int]] = field(default_factory=dict)  # call id -> embedding ids held
    unsaved: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size(self) -> int:
        return int(self.index.ntotal) if self.index is not None else 0

    def search(self, query: np.ndarray, n: int) -> list[int]:
        """Ids of about ``n`` nearest candidates (approximate; the caller re-ranks exactly)."""
        if self.index is None or self.size == 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        _, ids = self.index.search(q, min(n, self.size))
        return [int(i) for i in ids[0] if i >= 0]


_LOCK = threading.Lock()
_INDEXES: dict[tuple[str, str, int], VectorIndex] = {}


def index_for(store: Store, kind: str, dim: int) -> VectorIndex | None:
    """The index of ``kind``/``dim`` vectors of ``store``, in step with it; None without faiss."""
    if not available():
        return None
    key = (store.url, kind, dim)
    with _LOCK:
        vi = _INDEXES.get(key)
        if vi is None:
            vi = _INDEXES[key] = VectorIndex(kind, dim)
    with vi.lock:
        if vi.index is None and not _load(store, vi):
            _build(store, vi)
        _sync(store, vi)
        if vi.size > REBUILD_GROWTH * max(vi.trained_on, EXACT_BELOW / REBUILD_GROWTH):
            _build(store, vi)
        if vi.unsaved >= SAVE_EVERY:
            _save(store, vi)
    return vi


def after_delete(store: Store) -> None:
    """Bring this store's indexes in step after calls were deleted, and leave no saved copy holding
    a deleted vector: loaded indexes are synced and saved again, saved copies not loaded here are
    removed (the next search rebuilds them)."""
    if not available():
        return
    loaded: set[Path] = set()
    for (url, _kind, _dim), vi in list(_INDEXES.items()):
        if url != store.url:
            continue
        with vi.lock:
            if vi.index is None:
                continue
            _sync(store, vi)
            _save(store, vi)
            path = _paths(store, vi)
            if path:
                loaded.add(path[0])
    folder = index_folder(store)
    if folder and folder.is_dir():
        for f in folder.glob("*.faiss"):
            if f not in loaded:
                f.unlink(missing_ok=True)
                f.with_suffix(".json").unlink(missing_ok=True)


def forget(store: Store) -> None:
    """Drop this process's indexes of ``store`` (tests; a store closed for good)."""
    with _LOCK:
        for key in [k for k in _INDEXES if k[0] == store.url]:
            del _INDEXES[key]


def index_folder(store: Store) -> Path | None:
    """Where the indexes of ``store`` are saved: ``<file>.ann/`` beside a SQLite file, the user cache
    folder for a server; None for an in-memory SQLite store."""
    url = store.url
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:":
            return None
        return Path(path).expanduser().with_name(Path(path).name + ".ann")
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("callsense")) / "ann" / hashlib.sha256(url.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- building, syncing, saving


def _new_index(dim: int, n: int, sample: np.ndarray | None) -> Any:
    import faiss

    if n < EXACT_BELOW or sample is None:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    nlist = int(min(4096, max(64, 2 * np.sqrt(n))))
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                        faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = 10  # k-means iterations: enough to spread the lists, the re-rank is exact anyway
    ivf.train(np.ascontiguousarray(sample[: 40 * nlist], dtype=np.float32))
    ivf.nprobe = max(8, int(nlist * NPROBE_FRACTION))
    return ivf


def _build(store: Store, vi: VectorIndex) -> None:
    """A new index from every stored vector of the kind (the log position is read first, so a call
    stored meanwhile is applied again by the next sync — applying is idempotent)."""
    from sqlalchemy import func, select

    from callsense.store.models import EmbeddingLog, EmbeddingRow

    started = time.perf_counter()
    with store.session() as s:
        seq = int(s.execute(select(func.coalesce(func.max(EmbeddingLog.seq), 0))).scalar_one())
        n = int(s.execute(select(func.count()).select_from(EmbeddingRow)
                          .where(EmbeddingRow.kind == vi.kind, EmbeddingRow.dim == vi.dim)).scalar_one())
        sample = None
        if n >= EXACT_BELOW:  # a training sample spread over the whole table (every step-th row)
            step = max(1, n // 60_000)
            rows = s.execute(select(EmbeddingRow.vector).where(EmbeddingRow.kind == vi.kind,
                                                               EmbeddingRow.dim == vi.dim,
                                                               EmbeddingRow.id % step == 0)).scalars().all()
            sample = _decode(list(rows), vi.dim) if rows else None
        index = _new_index(vi.dim, n, sample)
        by_call: dict[str, list[int]] = {}
        q = select(EmbeddingRow.id, EmbeddingRow.call_id, EmbeddingRow.vector).where(
            EmbeddingRow.kind == vi.kind, EmbeddingRow.dim == vi.dim)
        for block in s.execute(q.execution_options(yield_per=READ_BLOCK)).partitions(READ_BLOCK):
            _add(index, by_call, block, vi.dim)
    vi.index, vi.by_call, vi.trained_on = index, by_call, max(n, 1)
    vi.seq, vi.applied, vi.gaps = seq, set(), {}
    log.info("built the %s similarity index of %d vectors in %.1f s", vi.kind, vi.size,
             time.perf_counter() - started)
    _save(store, vi)


def _add(index: Any, by_call: dict[str, list[int]], rows: list[Any], dim: int) -> None:
    if not rows:
        return
    ids = np.array([r.id for r in rows], dtype=np.int64)
    index.add_with_ids(_decode([r.vector for r in rows], dim), ids)
    for r in rows:
        by_call.setdefault(r.call_id, []).append(int(r.id))


def _decode(rows: list[bytes], dim: int) -> np.ndarray:
    from callsense.store.vectors import decode_block

    return np.ascontiguousarray(decode_block(rows, dim), dtype=np.float32)


def _sync(store: Store, vi: VectorIndex) -> None:
    """Apply the log rows after ``vi.seq``: for each call named, drop its vectors, add what is stored."""
    from sqlalchemy import select

    from callsense.store.models import EmbeddingLog, EmbeddingRow

    with store.session() as s:
        rows = s.execute(select(EmbeddingLog.seq, EmbeddingLog.call_id).where(EmbeddingLog.seq > vi.seq)
                         .order_by(EmbeddingLog.seq)).all()
        new = [r for r in rows if r.seq not in vi.applied]
        calls = list(dict.fromkeys(r.call_id for r in new))
        for i in range(0, len(calls), 500):
            chunk = calls[i:i + 500]
            old = [k for c in chunk for k in vi.by_call.pop(c, [])]
            if old:
                vi.index.remove_ids(np.array(old, dtype=np.int64))
            stored = s.execute(select(EmbeddingRow.id, EmbeddingRow.call_id, EmbeddingRow.vector).where(
                EmbeddingRow.call_id.in_(chunk), EmbeddingRow.kind == vi.kind, EmbeddingRow.dim == vi.dim)).all()
            _add(vi.index, vi.by_call, list(stored), vi.dim)
    vi.applied.update(r.seq for r in new)
    vi.unsaved += len(calls)
    _advance(vi, time.monotonic())


def _advance(vi: VectorIndex, now: float) -> None:
    """Move ``seq`` over the applied rows, stopping at a gap younger than ``GAP_S``."""
    expected = vi.seq + 1
    top = max(vi.applied, default=vi.seq)
    while expected <= top:
        if expected in vi.applied:
            vi.applied.discard(expected)
        elif now - vi.gaps.setdefault(expected, now) < GAP_S:
            break
        else:
            vi.gaps.pop(expected, None)
        vi.seq = expected
        expected += 1
    vi.gaps = {g: t for g, t in vi.gaps.items() if g > vi.seq}


def _paths(store: Store, vi: VectorIndex) -> tuple[Path, Path] | None:
    folder = index_folder(store)
    if folder is None:
        return None
    stem = f"{vi.kind.replace(':', '-')}-{vi.dim}"
    return folder / f"{stem}.faiss", folder / f"{stem}.json"


def _save(store: Store, vi: VectorIndex) -> None:
    import faiss

    paths = _paths(store, vi)
    vi.unsaved = 0
    if paths is None or vi.index is None:
        return
    data, meta = paths
    try:
        data.parent.mkdir(parents=True, exist_ok=True)
        tmp = data.with_suffix(".tmp")
        faiss.write_index(vi.index, str(tmp))
        state = {"seq": vi.seq, "applied": sorted(vi.applied), "trained_on": vi.trained_on, "by_call": vi.by_call}
        meta.with_suffix(".jtmp").write_text(json.dumps(state))
        tmp.replace(data)
        meta.with_suffix(".jtmp").replace(meta)
    except OSError as e:  # a cache that cannot be written costs a rebuild next time, nothing more
        log.warning("cannot save the similarity index in %s: %s", data.parent, e.strerror)


def _load(store: Store, vi: VectorIndex) -> bool:
    """The saved index, when it exists and matches the store (else False: rebuild)."""
    import faiss
    from sqlalchemy import func, select

    from callsense.store.models import EmbeddingLog

    paths = _paths(store, vi)
    if paths is None or not paths[0].is_file() or not paths[1].is_file():
        return False
    try:
        state = json.loads(paths[1].read_text())
        index = faiss.read_index(str(paths[0]))
    except (OSError, ValueError, RuntimeError) as e:
        log.info("rebuilding the similarity index: the saved one cannot be read (%s)", e)
        return False
    with store.session() as s:
        top = int(s.execute(select(func.coalesce(func.max(EmbeddingLog.seq), 0))).scalar_one())
    held = sum(len(v) for v in state["by_call"].values())
    if state["seq"] > top or held != index.ntotal or index.d != vi.dim:  # another store, or a torn save
        log.info("rebuilding the similarity index: the saved one does not match the store")
        return False
    vi.index, vi.seq, vi.applied = index, int(state["seq"]), set(state["applied"])
    vi.trained_on, vi.by_call, vi.gaps = int(state["trained_on"]), state["by_call"], {}
    return True


def remove_saved(store: Store) -> None:
    """Delete the saved indexes of ``store`` (and drop the loaded ones)."""
    forget(store)
    folder = index_folder(store)
    if folder and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
