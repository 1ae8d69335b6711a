"""The similarity index (store/ann.py): recall@10 against exact search, kept in step with saves,
deletes and purges (in this process and through its saved copy), exact fallback. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from callsense.testing.results import make_result, seg
from callsense.testing.store import fresh_postgres_database

DIM = 48
SEGS = 20


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, monkeypatch):
    from callsense.store import ann, open_store

    monkeypatch.setattr(ann, "EXACT_BELOW", 300)  # the IVF path on a test-sized store
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        ann.forget(s)
        s.close()
    else:
        with fresh_postgres_database() as url:
            s = open_store(url)
            yield s
            ann.remove_saved(s)
            s.close()


_CENTRES = np.random.default_rng(0).normal(size=(12, DIM)).astype(np.float32)


def _call(i: int, vectors: np.ndarray | None = None):
    rng = np.random.default_rng(1000 + i)
    segs = [seg("agent" if j % 2 == 0 else "customer", j * 1000, j * 1000 + 900, f"第{j}句", emotion_="neutral") for j in range(SEGS)]
    r = make_result(segs, call_id=f"c{i:04d}")
    segs_e = tuple(dataclasses.replace(s, emotion=dataclasses.replace(s.emotion, embedding_index=k))
                   for k, s in enumerate(r.segments))
    r = dataclasses.replace(r, segments=segs_e, source=dataclasses.replace(r.source, sha256=f"{i:064d}"))
    if vectors is None:  # clustered, as emotion embeddings are
        vectors = _CENTRES[rng.integers(0, len(_CENTRES), SEGS)] + 0.6 * rng.normal(size=(SEGS, DIM))
    return r, vectors.astype(np.float32)


def _fill(store, n: int) -> None:
    from callsense.store import save_result

    for i in range(n):
        r, e = _call(i)
        save_result(store, r, embeddings=e)


def _ids(hits) -> list[tuple[str, str | None]]:
    return [(h.call_id, h.segment_id) for h in hits]


def test_recall_at_10_against_exact_search(store):
    import faiss

    from callsense.store import ann, find_similar

    _fill(store, 60)  # 1200 segment vectors
    queries = [(f"c{i:04d}", f"s{j:04d}") for i, j in zip(range(0, 60, 3), range(1, 21))]
    found = total = 0
    for call, segment in queries:
        exact = find_similar(store, call, segment, k=10, exact=True)
        approx = find_similar(store, call, segment, k=10)
        assert len(exact) == len(approx) == 10
        found += len(set(_ids(exact)) & set(_ids(approx)))
        total += 10
        # the re-rank is exact: every score returned is the true cosine, best first
        scores = {(h.call_id, h.segment_id): h.score for h in exact}
        assert all(abs(h.score - scores[(h.call_id, h.segment_id)]) < 1e-6 for h in approx
                   if (h.call_id, h.segment_id) in scores)
        assert [h.score for h in approx] == sorted((h.score for h in approx), reverse=True)
    assert found / total >= 0.95
    vi = ann.index_for(store, "segment", DIM)
    assert isinstance(vi.index, faiss.IndexIVFPQFastScan) and vi.size == 1200  # the approximate path ran


def _weak_vectors(i: int, dim: int) -> np.ndarray:
    """bench_store.py's structure: a shared centre per emotion, a per-call voice, large per-segment
    noise — neighbours barely stand out (cosine ~0.4 against ~0.27 for any segment of the emotion)."""
    rng = np.random.default_rng(2000 + i)
    centres = np.random.default_rng(21).normal(size=(8, dim))
    emo = rng.choice(8, size=SEGS, p=[0.55, 0.12, 0.12, 0.07, 0.05, 0.04, 0.03, 0.02])
    return centres[emo] + rng.normal(scale=0.7, size=dim) + rng.normal(scale=1.5, size=(SEGS, dim))


def test_the_compressed_index_keeps_recall_on_weakly_clustered_vectors(store, monkeypatch):
    """The IVF-PQ index (4-bit codes over pairs of dimensions, part of the lists probed) on vectors
    like the benchmark's: recall@10 after the exact re-rank >= 0.95, codes a fraction of the stored
    vector. (A small 64-d set needs half of its lists probed where the benchmark's 1024-d millions
    need a quarter, bench/bench_ann.py: the share is what this test sets.)"""
    import faiss

    from callsense.store import ann, find_similar, save_result
    from callsense.store.vectors import encode

    monkeypatch.setattr(ann, "NPROBE_FRACTION", 1 / 2)
    dim = 64
    for i in range(100):  # 2000 segment vectors
        r, _ = _call(i)
        save_result(store, r, embeddings=_weak_vectors(i, dim).astype(np.float32))
    vi = ann.index_for(store, "segment", dim)
    assert isinstance(vi.index, faiss.IndexIVFPQFastScan) and vi.size == 2000
    assert 1 < vi.index.nprobe < vi.index.nlist  # an approximate search: most lists are not read
    assert vi.code_bytes() * 4 <= len(encode(np.ones(dim, dtype=np.float32)))  # 32 of 100 bytes stored
    rng = np.random.default_rng(7)
    found = 0
    queries = [(f"c{int(c):04d}", f"s{int(j):04d}") for c, j in zip(rng.choice(100, 20, replace=False),
                                                                    rng.integers(1, SEGS + 1, 20))]
    for call, segment in queries:
        exact = find_similar(store, call, segment, k=10, exact=True)
        found += len(set(_ids(exact)) & set(_ids(find_similar(store, call, segment, k=10))))
    assert found / (10 * len(queries)) >= 0.95



def test_a_build_reads_the_store_in_bounded_blocks(store, monkeypatch):
    """Training reads a bounded sample and adding reads READ_BLOCK rows at a time: a build never holds
    every float32 vector of the store (13.5 GB at 100,000 calls)."""
    from callsense.store import ann, find_similar

    _fill(store, 40)  # 800 vectors
    monkeypatch.setattr(ann, "READ_BLOCK", 64)
    monkeypatch.setattr(ann, "TRAIN_MAX", 400)
    decoded: list[int] = []
    real = ann._decode
    monkeypatch.setattr(ann, "_decode", lambda rows, dim: (decoded.append(len(rows)), real(rows, dim))[1])
    want = _ids(find_similar(store, "c0003", "s0004", k=10, exact=True))
    assert _ids(find_similar(store, "c0003", "s0004", k=10)) == want
    vi = ann.index_for(store, "segment", DIM)
    assert vi.size == 800 and vi.approximate
    assert decoded[0] == 400  # the training sample: TRAIN_MAX vectors drawn by id
    assert len(decoded) >= 1 + 800 // 64 and max(decoded[1:]) <= 64  # then the store in blocks


def test_calls_similarity_uses_the_index_and_matches_exact(store):
    from callsense.store import find_similar

    _fill(store, 30)
    for role in (None, "customer"):
        assert _ids(find_similar(store, "c0003", k=5, role=role)) == _ids(
            find_similar(store, "c0003", k=5, role=role, exact=True))


def test_save_and_delete_keep_the_index_in_step(store):
    from callsense.store import ann, find_similar, get_embeddings, save_result
    from callsense.store.privacy import delete_call

    _fill(store, 30)
    before = find_similar(store, "c0001", "s0002", k=10)
    victim = before[0].call_id
    delete_call(store, victim)
    after = find_similar(store, "c0001", "s0002", k=10)
    assert victim not in {h.call_id for h in after} and len(after) == 10
    assert victim not in ann.index_for(store, "segment", DIM).by_call

    # a new call whose segment 5 repeats the query vector is found first
    q = get_embeddings(store, "c0001")["s0002"]
    vectors = _call(500)[1]
    vectors[5] = q
    r, _ = _call(500)
    save_result(store, r, embeddings=vectors)
    first = find_similar(store, "c0001", "s0002", k=3)[0]
    assert (first.call_id, first.segment_id) == ("c0500", "s0006") and first.score > 0.999

    # a re-analysis of a stored call replaces its vectors in the index
    save_result(store, r, embeddings=_call(501)[1])
    assert "c0500" not in {h.call_id for h in find_similar(store, "c0001", "s0002", k=3)
                           if h.segment_id == "s0006" and h.score > 0.999}


def test_a_new_process_starts_from_the_saved_index_and_catches_up(store, monkeypatch):
    from callsense.store import ann, find_similar, get_embeddings, purge, save_result

    _fill(store, 20)
    find_similar(store, "c0001", "s0002", k=5)  # built (and saved, for a file store)
    ann.forget(store)  # as if another process: it loads the saved copy, or rebuilds
    r, e = _call(600)
    e[2] = get_embeddings(store, "c0001")["s0002"]
    save_result(store, r, embeddings=e)
    hits = find_similar(store, "c0001", "s0002", k=5)
    assert (hits[0].call_id, hits[0].segment_id) == ("c0600", "s0003")
    assert "c0600" in ann.index_for(store, "segment", DIM).by_call

    # a purge goes in batches and the index (and its saved copy) loses every purged vector
    from callsense.store import privacy

    sizes: list[int] = []
    real = privacy._delete_call_rows
    monkeypatch.setattr(privacy, "PURGE_BATCH_MAX", 4)
    monkeypatch.setattr(privacy, "_delete_call_rows", lambda s, ids: (sizes.append(len(ids)), real(s, ids))[1])
    report = purge(store, "0s")
    assert report.calls == 21 and len(sizes) >= 6 and max(sizes) <= 4
    vi = ann.index_for(store, "segment", DIM)
    assert vi.size == 0 and vi.by_call == {}
    folder = ann.index_folder(store)
    for meta in folder.glob("*.json") if folder and folder.is_dir() else []:
        assert json.loads(meta.read_text())["by_call"] == {}


def test_a_saved_copy_that_does_not_match_the_store_is_rebuilt(tmp_path, monkeypatch):
    from callsense.store import ann, find_similar, open_store

    monkeypatch.setattr(ann, "EXACT_BELOW", 300)
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        _fill(store, 20)
        want = _ids(find_similar(store, "c0002", "s0003", k=5, exact=True))
        assert _ids(find_similar(store, "c0002", "s0003", k=5)) == want
        ann.forget(store)
        meta = next(ann.index_folder(store).glob("segment-*.json"))
        state = json.loads(meta.read_text())
        state["seq"] = 10**9  # a copy from another store
        meta.write_text(json.dumps(state))
        assert _ids(find_similar(store, "c0002", "s0003", k=5)) == want
        ann.forget(store)
        state = json.loads(meta.read_text())
        assert state["seq"] < 10**9 and state["format"] == ann.SAVED_FORMAT  # rebuilt and saved again
        meta.write_text(json.dumps({**state, "format": 1}))  # a copy of the float16 IVF design of before
        builds: list[str] = []
        real = ann._build
        monkeypatch.setattr(ann, "_build", lambda st, vi: (builds.append(vi.kind), real(st, vi))[1])
        assert _ids(find_similar(store, "c0002", "s0003", k=5)) == want
        assert builds == ["segment"]  # not loaded: rebuilt
        ann.forget(store)
        assert _ids(find_similar(store, "c0002", "s0003", k=5)) == want
        assert builds == ["segment"]  # the copy saved by that build is of this format: loaded
        (ann.index_folder(store) / meta.name.replace(".json", ".faiss")).write_bytes(b"garbage")
        ann.forget(store)
        assert _ids(find_similar(store, "c0002", "s0003", k=5)) == want
    finally:
        ann.forget(store)
        store.close()


def test_without_faiss_similarity_is_an_exact_scan(tmp_path, monkeypatch):
    from callsense.store import ann, find_similar, open_store

    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    try:
        _fill(store, 8)
        want = _ids(find_similar(store, "c0002", "s0003", k=5, exact=True))
        monkeypatch.setattr(ann, "available", lambda: False)
        assert ann.index_for(store, "segment", DIM) is None
        assert _ids(find_similar(store, "c0002", "s0003", k=5)) == want
        assert not (tmp_path / "b.db.ann").exists()
    finally:
        store.close()


def test_a_grown_index_is_retrained_in_the_background_while_the_old_one_answers(store, monkeypatch):
    """serve's mode (ann.rebuild_in_background): growth past REBUILD_GROWTH starts a rebuild in a
    thread; searches meanwhile use the old index kept in step; a call deleted during the build is not
    in the new index nor in its saved copy."""
    import threading

    from callsense.store import ann, find_similar, save_result
    from callsense.store.privacy import delete_call

    monkeypatch.setattr(ann, "EXACT_BELOW", 60)  # 4 calls x 20 vectors: trained on 80, rebuilt above 320
    monkeypatch.setattr(ann, "_BACKGROUND", True)
    _fill(store, 4)
    vi = ann.index_for(store, "segment", DIM)
    assert vi.trained_on == 80 and not vi.rebuilding
    for i in range(4, 20):
        r, e = _call(i)
        save_result(store, r, embeddings=e)

    read, release, real = threading.Event(), threading.Event(), ann._build

    def paused_build(st, v, save=True):
        real(st, v, save=save)
        read.set()  # the new index holds every vector stored so far ...
        assert release.wait(30)  # ... and waits, while the test deletes a call and searches

    monkeypatch.setattr(ann, "_build", paused_build)
    assert ann.index_for(store, "segment", DIM) is vi  # returns at once: the rebuild runs in a thread
    assert read.wait(30) and vi.rebuilding and vi.trained_on == 80
    delete_call(store, "c0007")
    hits = find_similar(store, "c0001", "s0002", k=10)  # answered by the old index
    assert len(hits) == 10 and "c0007" not in {h.call_id for h in hits}
    release.set()
    for _ in range(300):
        if not vi.rebuilding:
            break
        threading.Event().wait(0.1)
    assert not vi.rebuilding and vi.trained_on == 20 * SEGS  # trained before the delete
    assert "c0007" not in vi.by_call and len(vi.by_call) == 19
    assert _ids(find_similar(store, "c0001", "s0002", k=5)) == _ids(find_similar(store, "c0001", "s0002", k=5, exact=True))
    folder = ann.index_folder(store)
    for meta in folder.glob("segment-*.json") if folder and folder.is_dir() else []:
        state = json.loads(meta.read_text())
        assert "c0007" not in state["by_call"] and state["trained_on"] == 20 * SEGS


def test_warm_readies_every_kind_before_any_search(store):
    from callsense.store import ann

    _fill(store, 3)
    warmed = ann.warm(store)
    assert ("segment", DIM) in warmed
    for kind, dim in warmed:
        assert (store.url, kind, dim) in ann._INDEXES and ann._INDEXES[(store.url, kind, dim)].index is not None


def test_serve_readies_the_similarity_index_at_start_without_a_search(tmp_path, tiny_models):
    """A real server on a store with vectors saves its index (``<file>.ann/``) before any search asks."""
    import time

    from api_support import Server

    from callsense.store import ann, open_store

    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    try:
        _fill(store, 3)
    finally:
        store.close()
    folder = db.with_name(db.name + ".ann")
    assert not folder.exists()
    env = {"CALLSENSE_MODEL_DIR": str(tiny_models), "CALLSENSE_OFFLINE": "1", "CALLSENSE_DATABASE_URL": f"sqlite:///{db}"}
    srv = Server(tmp_path / "data", env, "--no-ui").start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(folder.glob("segment-*.json")):
            time.sleep(0.2)
        state = json.loads(next(folder.glob(f"segment-{DIM}.json")).read_text())
        assert len(state["by_call"]) == 3 and state["format"] == ann.SAVED_FORMAT
    finally:
        srv.stop()
