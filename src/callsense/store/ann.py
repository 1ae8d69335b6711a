"""The in-process nearest-neighbour index behind :func:`callsense.store.similar` (faiss).

One index per store, embedding kind (``segment``, ``call``, ``call:customer``…) and dimension, keyed
by ``embeddings.id``. It only proposes candidates: :mod:`callsense.store.similar` re-reads them from
the store and ranks them by exact cosine, so every score is exact and a vector deleted a moment ago
is never returned.

Kept in step with the store by ``embedding_log`` (revision 0007): triggers on ``calls`` append one
row per call stored, re-stored or deleted — whichever path did it (save, the API's delete, purge,
raw SQL). Before each search the index applies the rows after its position: it drops the call's
vectors and adds the ones stored now. On PostgreSQL a log row can become visible after a higher one
(transactions commit out of order), so a gap in the sequence is re-read until it fills or is
``GAP_S`` old (a rolled-back transaction).

- **Below** ``EXACT_BELOW`` vectors the index is exact (flat, float32).
- **Above**, an IVF-PQ fast-scan index (``IndexIVFPQFastScan``): spherical k-means lists
  (``LISTS_PER_ROOT · √n`` of them, within ``LISTS_MIN``–``LISTS_MAX``) and a product quantizer of
  4-bit codes over pairs of dimensions (2 bits a value: 256 bytes for a 1024-d vector, about 1/5 of its
  1,197 stored bytes (revision 0011 codes), 1/16 of its 4 KB in float32), scanned with SIMD lookup tables in
  ``NPROBE_FRACTION`` of the lists. The codes only rank candidates roughly, so ``candidates(k)``
  asks for ``CANDIDATES_PER_HIT`` per hit wanted and similar.py re-ranks them exactly from the
  store: recall@10 ≥ 0.95 against exact search (tests/test_ann.py; bench/bench_ann.py at 330k and
  3.3M vectors, the parameters chosen there).
- **Built** on first use, or when missing, when its saved copy does not match the store, or when
  the store has grown ``REBUILD_GROWTH``× since it was trained. A long-running process (``callsense
  serve``) loads or builds every index at start in a thread of its own (:func:`warm`) and retrains at
  growth in the background (:func:`rebuild_in_background`): the old index keeps answering meanwhile,
  so no search waits the minutes a build takes at millions of vectors. A one-shot command builds inline
  (its process would end before a background build did). Training reads a bounded sample
  (``TRAIN_PER_LIST`` vectors a list, at most ``TRAIN_MAX``) by random ids; the vectors are then
  added in blocks of ``READ_BLOCK`` rows, each read in a short transaction of its own (on SQLite a
  session holds the write lock: a build of minutes never makes a writer wait more than one block),
  so a build never holds more than one block of float32 vectors besides the sample.
- **Saved** next to a SQLite file (``<file>.ann/``) or under the user cache folder for PostgreSQL
  (``.faiss``: the index, ~270 bytes a 1024-d vector with its id, as in memory; ``.json``: the log
  position and each call's embedding ids), so the next process starts from it; a saved copy of
  another ``SAVED_FORMAT`` is rebuilt. After a delete or purge the saved copy is rewritten without
  the deleted vectors (or removed, when this process has not loaded it) — docs/privacy.md.
- Without faiss (an unusual platform) :func:`index_for` returns None and similarity is an exact scan.

pgvector: a server with the ``vector`` extension could hold an HNSW index instead; that path is not
built (the test server has no pgvector, see docs/store.md), so PostgreSQL uses this index too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from callsense.store.db import Store

log = logging.getLogger("callsense")

EXACT_BELOW = 20_000  # vectors: a flat (exact) index is fast enough and needs no training
LISTS_PER_ROOT = 1.0  # IVF lists = this × √n ...
LISTS_MIN, LISTS_MAX = 16, 4096  # ... within these bounds
NPROBE_FRACTION = 1 / 4  # share of the lists searched (bench/bench_ann.py: recall by share at 330k and 3.3M)
TRAIN_PER_LIST = 50  # k-means sample: vectors per list (faiss asks for 39 or more) ...
TRAIN_MAX = 100_000  # ... and never more (410 MB of 1024-d float32; the k-means time is bounded by it)
PQ_TRAIN_MAX = 16_384  # the product quantizer's training sample (a part of the k-means one)
KMEANS_ITERATIONS = 10  # enough to spread the lists; the re-rank is exact anyway
CANDIDATES_PER_HIT = 96  # IVF-PQ: candidates re-ranked exactly per hit wanted (k=10: 1,000; bench_ann.py)
EXACT_CANDIDATES_PER_HIT = 8  # flat index: a call's own segments, filtered out, crowd the nearest ones
REBUILD_GROWTH = 4.0  # retrain when the store holds this many times the vectors the index was trained on
GAP_S = 60.0  # a sequence gap older than this is a rolled-back transaction, not a late commit
SAVE_EVERY = 500  # calls applied from the log between two saves of the index file
READ_BLOCK = 20_000  # rows read (and decoded to float32) at a time when building
SAVED_FORMAT = 2  # saved copies of another format (the float16 IVF of before) are rebuilt

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
    index: Any = None  # faiss index: IndexIDMap2 over a flat index, or IndexIVFPQFastScan
    trained_on: int = 0
    seq: int = 0  # every log row up to here is applied
    applied: set[int] = field(default_factory=set)  # applied rows above ``seq`` (after a gap)
    gaps: dict[int, float] = field(default_factory=dict)  # missing seq -> when first seen missing
    by_call: dict[str, np.ndarray] = field(default_factory=dict)  # call id -> embedding ids held (int64)
    unsaved: int = 0
    rebuilding: bool = False  # a background rebuild is under way (the index keeps serving)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def size(self) -> int:
        return int(self.index.ntotal) if self.index is not None else 0

    @property
    def approximate(self) -> bool:
        """Whether the index holds compressed codes (IVF-PQ) rather than the vectors themselves."""
        return self.index is not None and _is_ivf(self.index)

    def candidates(self, k: int) -> int:
        """How many candidates to re-rank exactly for ``k`` hits (the codes rank only roughly)."""
        return (CANDIDATES_PER_HIT if self.approximate else EXACT_CANDIDATES_PER_HIT) * k + 40

    def search(self, query: np.ndarray, n: int) -> list[int]:
        """Ids of about ``n`` nearest candidates (approximate; the caller re-ranks exactly)."""
        with self.lock:  # a sync in another thread must not change the index under a search
            if self.index is None or self.size == 0:
                return []
            q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
            with _threads(1):  # one query does not split over threads; spinning ones cost 5x on busy cores
                _, ids = self.index.search(q, min(n, self.size))
        return [int(i) for i in ids[0] if i >= 0]

    def add(self, ids: np.ndarray, calls: Sequence[str], vectors: np.ndarray) -> None:
        """Add ``vectors`` (float32 rows, L2-normalised) under embedding ``ids``, each of call ``calls[i]``."""
        if not len(ids):
            return
        ids = np.asarray(ids, dtype=np.int64)
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        groups: dict[str, list[int]] = {}
        for call, i in zip(calls, ids.tolist()):
            groups.setdefault(call, []).append(i)
        for call, held in groups.items():
            new = np.array(held, dtype=np.int64)
            before = self.by_call.get(call)
            self.by_call[call] = new if before is None else np.concatenate([before, new])

    def remove_calls(self, calls: Sequence[str]) -> None:
        """Drop every vector of ``calls`` (the codes go from the inverted lists, not only from view)."""
        old = [self.by_call.pop(c) for c in calls if c in self.by_call]
        if old:
            self.index.remove_ids(np.concatenate(old))

    def code_bytes(self) -> int:
        """Bytes the index holds per vector for its codes (float32 vectors when flat)."""
        if self.index is None:
            return 0
        if _is_ivf(self.index):
            return int(self.index.code_size)
        return 4 * self.dim


_LOCK = threading.Lock()
_INDEXES: dict[tuple[str, str, int], VectorIndex] = {}
_BACKGROUND = False  # retrain at growth in a thread (rebuild_in_background), not inline


def rebuild_in_background(enabled: bool = True) -> None:
    """Retrain grown indexes in a thread while the old one keeps answering (long-running processes;
    ``callsense serve`` turns it on). Off by default: a one-shot command would exit before it ended."""
    global _BACKGROUND
    _BACKGROUND = enabled


def warm(store: Store) -> list[tuple[str, int]]:
    """Load (or build) the index of every embedding kind and dimension ``store`` holds, so that the
    first similarity search does not wait for it; returns the (kind, dim) pairs warmed."""
    from sqlalchemy import select

    from callsense.store.models import EmbeddingRow

    if not available():
        return []
    with store.session() as s:
        pairs = [(str(k), int(d)) for k, d in s.execute(select(EmbeddingRow.kind, EmbeddingRow.dim).distinct())]
    for kind, dim in pairs:
        started = time.perf_counter()
        vi = index_for(store, kind, dim)
        log.info("similarity index %s/%d ready: %d vectors in %.1f s", kind, dim, vi.size if vi else 0,
                 time.perf_counter() - started)
    return pairs


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
            if _BACKGROUND:
                _start_rebuild(store, vi)
            else:
                _build(store, vi)
        if vi.unsaved >= SAVE_EVERY:
            _save(store, vi)
    return vi


def _start_rebuild(store: Store, vi: VectorIndex) -> None:
    """Retrain ``vi`` in a thread (caller holds ``vi.lock``); searches use the old index until the new
    one, brought in step with the log, replaces it."""
    if vi.rebuilding:
        return
    vi.rebuilding = True

    def run() -> None:
        try:
            fresh = VectorIndex(vi.kind, vi.dim)
            _build(store, fresh, save=False)  # outside vi.lock: minutes at millions of vectors
            with vi.lock:
                vi.index, vi.by_call, vi.trained_on = fresh.index, fresh.by_call, fresh.trained_on
                vi.seq, vi.applied, vi.gaps = fresh.seq, fresh.applied, fresh.gaps
                _sync(store, vi)  # calls stored or deleted during the build (a deleted vector never stays)
                _save(store, vi)
        except Exception:  # noqa: BLE001 - the old index keeps serving; the next search tries again
            log.warning("rebuilding the %s similarity index failed", vi.kind, exc_info=True)
        finally:
            vi.rebuilding = False

    # Not a daemon: faiss trains with the GIL released, and a daemon thread in native code when the
    # interpreter finalizes aborts the process (see Analyzer._spawn); a stop waits for the build.
    threading.Thread(target=run, name=f"callsense-ann-{vi.kind}").start()


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


def _is_ivf(index: Any) -> bool:
    import faiss

    return isinstance(index, faiss.IndexIVF)


def lists_for(n: int) -> int:
    """The number of IVF lists for an index trained on ``n`` vectors."""
    return int(min(LISTS_MAX, max(LISTS_MIN, round(LISTS_PER_ROOT * math.sqrt(n)))))


def _subquantizers(dim: int) -> int:
    """4-bit product-quantizer codes over pairs of dimensions (single ones for an odd dimension)."""
    return dim // 2 if dim % 2 == 0 else dim


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """faiss's OpenMP threads for the calling thread. Many small parallel regions (the product
    quantizer's training: 512 little k-means; one query's search) ran 5-12x slower on two threads than
    on one when the two cores were busy with other work (measured under load 7-9), so they run on one."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _configure(index: Any) -> Any:
    """Search settings that follow this module's constants, not the saved file's; the quantizer's
    transposed centroids (not saved), with which encoding a vector takes 2/3 of the time."""
    if _is_ivf(index):
        index.nprobe = max(1, round(index.nlist * NPROBE_FRACTION))
        index.pq.sync_transposed_centroids()
    return index


def sample_size(n: int) -> int:
    """How many vectors train the lists of an index of ``n`` (bounded: ``TRAIN_MAX``)."""
    return min(n, TRAIN_PER_LIST * lists_for(n), TRAIN_MAX)


def train(kind: str, dim: int, n: int, sample: np.ndarray | None) -> VectorIndex:
    """An empty index for a store of ``n`` vectors of ``kind``/``dim`` (nothing of a store read):
    flat below ``EXACT_BELOW``, else IVF-PQ trained on ``sample`` (about :func:`sample_size` rows)."""
    return VectorIndex(kind, dim, index=_new_index(dim, n, sample), trained_on=max(n, 1))


def _new_index(dim: int, n: int, sample: np.ndarray | None) -> Any:
    import faiss

    if n < EXACT_BELOW or sample is None or not len(sample):
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    nlist = min(lists_for(n), max(1, len(sample) // 39))  # faiss wants >= 39 training vectors a list
    quantizer = faiss.IndexFlatIP(dim)
    cp = faiss.ClusteringParameters()
    cp.niter, cp.spherical, cp.max_points_per_centroid, cp.seed = KMEANS_ITERATIONS, True, TRAIN_PER_LIST, 21
    faiss.Clustering(dim, nlist, cp).train(sample, quantizer)  # unit centroids: IVF's own train skips them
    index = faiss.IndexIVFPQFastScan(quantizer, dim, nlist, _subquantizers(dim), 4, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    quantizer.this.disown()  # owned by the index from here
    step = max(1, len(sample) // PQ_TRAIN_MAX)
    with _threads(1):
        index.train(np.ascontiguousarray(sample[::step][:PQ_TRAIN_MAX]))
    return _configure(index)


def _build(store: Store, vi: VectorIndex, *, save: bool = True) -> None:
    """A new index from every stored vector of the kind (the log position is read first, so a call
    stored meanwhile is applied again by the next sync — applying is idempotent). The vectors are
    read in blocks of ``READ_BLOCK`` rows by id, each in a transaction of its own."""
    from sqlalchemy import func, select

    from callsense.store.models import EmbeddingLog, EmbeddingRow

    started = time.perf_counter()
    mine = (EmbeddingRow.kind == vi.kind, EmbeddingRow.dim == vi.dim)
    with store.session() as s:
        seq = int(s.execute(select(func.coalesce(func.max(EmbeddingLog.seq), 0))).scalar_one())
        n, lo, hi = s.execute(select(func.count(), func.min(EmbeddingRow.id), func.max(EmbeddingRow.id))
                              .where(*mine)).one()
    n = int(n)
    sample = _sample(store, vi, int(lo), int(hi), n) if n >= EXACT_BELOW else None  # (lo, hi: None when n = 0)
    fresh = train(vi.kind, vi.dim, n, sample)
    trained = time.perf_counter()
    del sample
    last = -1
    q = select(EmbeddingRow.id, EmbeddingRow.call_id, EmbeddingRow.vector).where(*mine).order_by(EmbeddingRow.id)
    while True:
        with store.session() as s:
            block = s.execute(q.where(EmbeddingRow.id > last).limit(READ_BLOCK)).all()
        if not block:
            break
        last = int(block[-1].id)
        _add(fresh, block)
    vi.index, vi.by_call, vi.trained_on = fresh.index, fresh.by_call, fresh.trained_on
    vi.seq, vi.applied, vi.gaps = seq, set(), {}
    log.info("built the %s similarity index of %d vectors in %.1f s (training %.1f s)", vi.kind, vi.size,
             time.perf_counter() - started, trained - started)
    if save:
        _save(store, vi)


def _sample(store: Store, vi: VectorIndex, lo: int, hi: int, n: int) -> np.ndarray:
    """About :func:`sample_size` stored vectors of the kind, drawn at random by id (a primary-key
    lookup each: the cost follows the sample, not the store)."""
    from sqlalchemy import select

    from callsense.store.models import EmbeddingRow

    want = sample_size(n)
    rng = np.random.default_rng(n)
    span = hi - lo + 1
    ids = lo + rng.permutation(span if span <= 8 * want else np.unique(rng.integers(0, span, size=8 * want)))
    rows: list[bytes] = []
    # ids in proportion to the kind's share of the id range: the other kinds' and deleted ids miss
    per = min(len(ids), max(1000, int(want * span / max(n, 1) * 1.1)))
    for start in range(0, len(ids), per):
        chunk = sorted(int(i) for i in ids[start:start + per])
        for i in range(0, len(chunk), 1000):
            with store.session() as s:
                rows += s.execute(select(EmbeddingRow.vector).where(
                    EmbeddingRow.id.in_(chunk[i:i + 1000]), EmbeddingRow.kind == vi.kind,
                    EmbeddingRow.dim == vi.dim)).scalars().all()
        if len(rows) >= want:
            break
    return _decode(rows[:want], vi.dim)


def _add(vi: VectorIndex, rows: Sequence[Any]) -> None:
    """Add stored rows (``id``, ``call_id``, ``vector`` bytes) to the index."""
    if rows:
        vi.add(np.array([r.id for r in rows], dtype=np.int64), [r.call_id for r in rows],
               _decode([r.vector for r in rows], vi.dim))


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
        with store.session() as s:
            stored = s.execute(select(EmbeddingRow.id, EmbeddingRow.call_id, EmbeddingRow.vector).where(
                EmbeddingRow.call_id.in_(chunk), EmbeddingRow.kind == vi.kind, EmbeddingRow.dim == vi.dim)
                .order_by(EmbeddingRow.id)).all()
        vi.remove_calls(chunk)
        _add(vi, stored)
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
    """Write the index and its state (log position, the ids of each call) beside the store: the
    index file first, the state last, both through a temporary name (a torn save is caught on load
    by the index file's size, recorded in the state)."""
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
        state = {"format": SAVED_FORMAT, "seq": vi.seq, "applied": sorted(vi.applied), "trained_on": vi.trained_on,
                 "index_bytes": tmp.stat().st_size, "by_call": {c: v.tolist() for c, v in vi.by_call.items()}}
        meta.with_suffix(".jtmp").write_text(json.dumps(state, separators=(",", ":")))
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
        if state.get("format") != SAVED_FORMAT or state.get("index_bytes") != paths[0].stat().st_size:
            log.info("rebuilding the similarity index: the saved one is of another format or torn")
            return False
        index = faiss.read_index(str(paths[0]))
    except (OSError, ValueError, RuntimeError) as e:
        log.info("rebuilding the similarity index: the saved one cannot be read (%s)", e)
        return False
    with store.session() as s:
        top = int(s.execute(select(func.coalesce(func.max(EmbeddingLog.seq), 0))).scalar_one())
    by_call = {c: np.array(v, dtype=np.int64) for c, v in state["by_call"].items()}
    held = sum(len(v) for v in by_call.values())
    if state["seq"] > top or held != index.ntotal or index.d != vi.dim:  # another store, or a torn save
        log.info("rebuilding the similarity index: the saved one does not match the store")
        return False
    vi.index, vi.seq, vi.applied = _configure(index), int(state["seq"]), set(state["applied"])
    vi.trained_on, vi.by_call, vi.gaps = int(state["trained_on"]), by_call, {}
    return True


def remove_saved(store: Store) -> None:
    """Delete the saved indexes of ``store`` (and drop the loaded ones)."""
    forget(store)
    folder = index_folder(store)
    if folder and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
