"""The similarity index at a year's scale (issue 21 item 4), without building a store of calls.

    python bench/bench_ann.py --sizes 330000,3300000           # ~25 min on 2 cores, ~6 GB of disk
    python bench/bench_ann.py --sizes 40000 --queries 20 --no-write   # smoke (a minute)

Makes N synthetic segment embeddings with the structure of bench_store.py's generator (its emotion
centres and weights: one shared centre per emotion, a per-call voice offset, per-segment noise,
~30 segments a call; drawn here a block of calls at a time, vectorised), L2-normalised, and stores
them as the store does — the 12-bit codes of callsense.store.vectors, in a SQLite table laid out as
``embeddings`` (id, call_id, kind, segment_id, role, dim, vector) — so that the index is fed and
its candidates are re-read exactly as in the store. Never more than one block of float32 vectors
is held (3.3M of them would be 13.5 GB).

For each size (a prefix of the same vectors) the index is built through store/ann.py's own
functions — :func:`ann.train` on :func:`ann.sample_size` vectors read by random id, then
``VectorIndex.add`` of ``ann.READ_BLOCK`` rows at a time — and measured: training and add time,
peak RSS, the saved file's bytes per vector, and for ``--queries`` stored segments (of random calls
of the first blocks; the calls are i.i.d.) the top-10 of other calls: index search of
``candidates(10)``, re-read of those rows from the table (``id IN``, the same columns and filter as
similar.py) and exact re-rank, p50/p95 of each, and recall@10 against exact search (computed
blockwise over the decoded codes while the vectors are written). ``--nprobe`` / ``--candidates``
sweep the search settings on the same built index (recall by share of lists probed).

Writes ``bench/results/ann.json`` and the ``ann`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_store import EMO_P, EMOTIONS, _centres
from common import machine_info, machine_line, markdown_table, replace_section

from callsense.store import ann
from callsense.store.vectors import decode_block, encode_rows

CALLS_PER_BLOCK = 1000
VOICE, NOISE = 0.7, 1.5  # bench_store.make_call's scales
SEGMENTS = 30


def generate(seed: int, block: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """One block of calls: (L2-normalised float32 vectors, call number of each)."""
    rng = np.random.default_rng([seed, 4, block])
    n = np.maximum(4, rng.normal(SEGMENTS, SEGMENTS / 5, CALLS_PER_BLOCK).astype(int))
    calls = np.repeat(np.arange(CALLS_PER_BLOCK) + block * CALLS_PER_BLOCK, n)
    emotion = rng.choice(len(EMOTIONS), p=EMO_P, size=int(n.sum()))
    voice = rng.standard_normal((CALLS_PER_BLOCK, dim), dtype=np.float32) * VOICE
    x = rng.standard_normal((int(n.sum()), dim), dtype=np.float32)
    x *= NOISE
    x += _centres(dim)[emotion]
    x += voice[calls - block * CALLS_PER_BLOCK]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, calls


def call_id(c: int) -> str:
    return f"call{int(c):07d}"


class Truth:
    """Exact top-10 of other calls for each query, over a growing prefix of the vectors."""

    def __init__(self, queries: np.ndarray, calls: np.ndarray, k: int = 10):
        self.q, self.calls, self.k = queries, calls, k
        self.ids = np.zeros((len(queries), 0), dtype=np.int64)
        self.scores = np.zeros((len(queries), 0), dtype=np.float32)

    def update(self, first_id: int, mat: np.ndarray, calls: np.ndarray) -> None:
        if not len(mat):
            return
        sc = self.q @ mat.T
        sc[calls[None, :] == self.calls[:, None]] = -np.inf
        top = np.argsort(-sc, axis=1)[:, : self.k] if len(mat) <= self.k else \
            np.argpartition(-sc, self.k, axis=1)[:, : self.k]
        ids = np.concatenate([self.ids, top + first_id], axis=1)
        scores = np.concatenate([self.scores, np.take_along_axis(sc, top, 1)], axis=1)
        order = np.argsort(-scores, axis=1)[:, : self.k]
        self.ids, self.scores = np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)


def write_vectors(db: sqlite3.Connection, sizes: list[int], seed: int, dim: int, n_queries: int) -> dict:
    """Store max(sizes) vectors as 12-bit codes; the exact top-10 of the queries at each size."""
    db.execute("PRAGMA page_size=16384")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE embeddings (id INTEGER PRIMARY KEY, call_id TEXT, kind TEXT, segment_id TEXT, "
               "role TEXT, dim INTEGER, vector BLOB)")
    first, first_calls = generate(seed, 0, dim)
    rng = np.random.default_rng(seed)
    qrows = np.sort(rng.choice(min(len(first), min(sizes)), n_queries, replace=False))  # ids: row number + 1
    qcalls = first_calls[qrows]
    queries = decode_block(encode_rows(first[qrows]), dim)  # the stored (decoded) vectors, as similar.py reads
    truth, out, written, block = Truth(queries, qcalls), {}, 0, 0
    top = max(sizes)
    started = time.perf_counter()
    while written < top:
        x, calls = generate(seed, block, dim)
        x, calls = x[: top - written], calls[: top - written]
        codes = encode_rows(x)
        seg = np.arange(len(x)) - np.searchsorted(calls, calls)  # position in its call
        db.executemany("INSERT INTO embeddings VALUES (?, ?, 'segment', ?, ?, ?, ?)", [
            (written + i + 1, call_id(calls[i]), f"s{seg[i] + 1:04d}", "agent" if seg[i] % 2 == 0 else "customer",
             dim, codes[i]) for i in range(len(x))])
        db.commit()
        mat = decode_block(codes, dim)
        done = 0
        for size in sorted(sizes):  # a size reached inside this block: its truth is the prefix up to it
            if written < size <= written + len(x):
                cut = size - written
                truth.update(written + 1 + done, mat[done:cut], calls[done:cut])
                out[size] = (truth.ids.copy(), truth.scores.copy())
                done = cut
        truth.update(written + 1 + done, mat[done:], calls[done:])
        written += len(x)
        block += 1
    return {"queries": queries, "query_ids": qrows + 1, "query_calls": [call_id(c) for c in qcalls],
            "truth": out, "write_s": round(time.perf_counter() - started, 1)}


def build(db: sqlite3.Connection, size: int, dim: int) -> tuple[ann.VectorIndex, dict]:
    """The index of the first ``size`` stored vectors, through store/ann.py's train and add."""
    t0 = time.perf_counter()
    want = ann.sample_size(size)
    ids = np.sort(np.random.default_rng(size).choice(size, want, replace=False) + 1)
    rows: list[bytes] = []
    for i in range(0, len(ids), 1000):
        chunk = [int(v) for v in ids[i:i + 1000]]
        rows += [r[0] for r in db.execute(
            f"SELECT vector FROM embeddings WHERE id IN ({','.join('?' * len(chunk))})", chunk)]
    sample = decode_block(rows, dim)
    del rows
    t_sample = time.perf_counter()
    vi = ann.train("segment", dim, size, sample)
    del sample
    t_train = time.perf_counter()
    last = 0
    while last < size:
        block = db.execute("SELECT id, call_id, vector FROM embeddings WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                           (last, size, ann.READ_BLOCK)).fetchall()
        if not block:
            break
        vi.add(np.array([r[0] for r in block], dtype=np.int64), [r[1] for r in block],
               decode_block([r[2] for r in block], dim))
        last = block[-1][0]
    t_add = time.perf_counter()
    return vi, {"sample_vectors": want, "sample_read_s": round(t_sample - t0, 1),
                "train_s": round(t_train - t_sample, 1), "add_s": round(t_add - t_train, 1),
                "build_s": round(t_add - t0, 1)}


def saved_bytes(vi: ann.VectorIndex, folder: Path) -> dict:
    import faiss

    path = folder / "index.faiss"
    t = time.perf_counter()
    faiss.write_index(vi.index, str(path))
    meta = folder / "index.json"  # the per-call ids saved beside it (store/ann.py's _save)
    meta.write_text(json.dumps({c: v.tolist() for c, v in vi.by_call.items()}, separators=(",", ":")))
    write_s = time.perf_counter() - t
    out = {"index_bytes_per_vector": round(path.stat().st_size / vi.size, 1),
           "ids_bytes_per_vector": round(meta.stat().st_size / vi.size, 1), "save_s": round(write_s, 1)}
    path.unlink()
    meta.unlink()
    return out


def query(db: sqlite3.Connection, vi: ann.VectorIndex, facts: dict, truth: np.ndarray, dim: int,
          nprobe: int, candidates: int, k: int = 10) -> dict:
    """Search, re-read and exact re-rank for every query (similar.py's path without the ORM): a first
    pass (``cold``: the rows may have to come from disk) and a second one, reported (warm, as
    bench_store.py's medians are)."""
    if ann._is_ivf(vi.index):
        vi.index.nprobe = nprobe
    cold = _pass(db, vi, facts, truth, dim, candidates, k)
    warm = _pass(db, vi, facts, truth, dim, candidates, k)
    return {"nprobe": nprobe, "lists": int(vi.index.nlist) if ann._is_ivf(vi.index) else 0,
            "candidates": candidates, **warm, "cold_total_p50_ms": cold["total_p50_ms"]}


def _pass(db: sqlite3.Connection, vi: ann.VectorIndex, facts: dict, truth: np.ndarray, dim: int, candidates: int,
          k: int) -> dict:
    search, reread, cpu, found = [], [], [], 0
    for j, q in enumerate(facts["queries"]):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        ids = vi.search(q, candidates)
        t1 = time.perf_counter()
        rows = db.execute(f"SELECT id, call_id, segment_id, role, vector FROM embeddings WHERE id IN "
                          f"({','.join('?' * len(ids))}) AND dim = ? AND call_id != ?",
                          (*ids, dim, facts["query_calls"][j])).fetchall()
        mat = decode_block([r[4] for r in rows], dim)
        best = [rows[i][0] for i in np.argsort(-(mat @ q))[:k]]
        t2 = time.perf_counter()
        cpu.append(time.thread_time() - c0)
        search.append(t1 - t0)
        reread.append(t2 - t1)
        found += len(set(best) & {int(i) for i in truth[j]})
    total = [a + b for a, b in zip(search, reread)]
    return {"recall_at_10": round(found / (k * len(truth)), 3),
            "search_p50_ms": _ms(search, 50), "search_p95_ms": _ms(search, 95),
            "reread_p50_ms": _ms(reread, 50), "reread_p95_ms": _ms(reread, 95),
            "total_p50_ms": _ms(total, 50), "total_p95_ms": _ms(total, 95), "cpu_p50_ms": _ms(cpu, 50)}


def _ms(values: list[float], pct: int) -> float:
    return round(float(np.percentile(values, pct)) * 1000, 1)


def _rss_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2)


def _current_rss_gb() -> float:
    """Resident memory now, after handing freed heap back to the system (glibc keeps it otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024 / 1024, 2)
    return 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="330000,3300000", help="vectors (segments), comma-separated")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--nprobe", default=None, help="shares of the lists to probe besides the default, e.g. 1/8,3/8")
    ap.add_argument("--candidates", default=None, help="candidate counts besides the default candidates(10)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the SQLite table goes (default: a temp dir)")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR",
                    help="keep the table and the exact top-10s in DIR, and reuse them when a later run asks for "
                         "the same seed, dimension, queries and sizes it holds (the writing pass is minutes)")
    ap.add_argument("--note", default=None, help="a sentence for RESULTS.md (e.g. the machine's load)")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "ann.json")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    shares = [eval_share(s) for s in args.nprobe.split(",")] if args.nprobe else []
    extra = [int(c) for c in args.candidates.split(",")] if args.candidates else []
    if not ann.available():
        raise SystemExit("faiss is not installed: the similarity index is an exact scan then")
    load0 = os.getloadavg()  # (faiss imported above: its libraries are not counted as the index's memory)
    results = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        facts = _kept(folder, sizes, args)
        db = sqlite3.connect(folder / "vectors.db")
        if facts is None:
            (folder / "vectors.db").unlink(missing_ok=True)
            db = sqlite3.connect(folder / "vectors.db")
            facts = write_vectors(db, sizes, args.seed, args.dim, args.queries)
            if args.keep:
                _keep(folder, facts, sizes, args)
            print(f"wrote {max(sizes)} vectors in {facts['write_s']} s", flush=True)
        else:
            print(f"reusing the vectors and exact top-10s kept in {folder}", flush=True)
        for size in sizes:
            before = _current_rss_gb()
            vi, timing = build(db, size, args.dim)
            held = _current_rss_gb()
            entry = {"vectors": size, "index": type(vi.index).__name__, **timing,
                     "peak_rss_gb": _rss_gb(), "rss_before_build_gb": before, "rss_after_build_gb": held,
                     "index_memory_bytes_per_vector": round((held - before) * 1024**3 / size, 1),
                     "code_bytes_per_vector": vi.code_bytes(), "stored_bytes_per_vector": 4 + 3 * args.dim // 2,
                     **saved_bytes(vi, Path(tmp)), "write_s": facts["write_s"]}
            truth = facts["truth"][size][0]
            default = vi.index.nprobe if ann._is_ivf(vi.index) else 0
            runs = [query(db, vi, facts, truth, args.dim, default, vi.candidates(10))]
            if ann._is_ivf(vi.index):
                for share in shares:
                    runs.append(query(db, vi, facts, truth, args.dim, max(1, round(vi.index.nlist * share)),
                                      vi.candidates(10)))
                for c in extra:
                    runs.append(query(db, vi, facts, truth, args.dim, default, c))
            entry["runs"] = runs
            print(json.dumps(entry), flush=True)
            results.append(entry)
            del vi
        db.close()
    load1 = os.getloadavg()
    md = markdown(results, args, load0, load1)
    print(md)
    if not args.no_write:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=1), encoding="utf-8")
        replace_section(HERE / "RESULTS.md", "ann", md)
    return 0


def _keep(folder: Path, facts: dict, sizes: list[int], args) -> None:
    np.savez(folder / "facts.npz", queries=facts["queries"], query_ids=facts["query_ids"],
             query_calls=np.array(facts["query_calls"]), **{f"truth_{n}": facts["truth"][n][0] for n in sizes})
    (folder / "facts.json").write_text(json.dumps({"seed": args.seed, "dim": args.dim, "queries": args.queries,
                                                   "sizes": sizes, "write_s": facts["write_s"]}))


def _kept(folder: Path, sizes: list[int], args) -> dict | None:
    """The kept table's facts, when it holds what this run asks for."""
    try:
        meta = json.loads((folder / "facts.json").read_text())
        data = np.load(folder / "facts.npz")
    except (OSError, ValueError):
        return None
    if (meta["seed"], meta["dim"], meta["queries"]) != (args.seed, args.dim, args.queries) or \
            not set(sizes) <= set(meta["sizes"]) or not (folder / "vectors.db").is_file():
        return None
    return {"queries": data["queries"], "query_ids": data["query_ids"], "query_calls": list(data["query_calls"]),
            "truth": {n: (data[f"truth_{n}"], None) for n in sizes}, "write_s": meta["write_s"]}


def eval_share(text: str) -> float:
    num, _, den = text.partition("/")
    return float(num) / float(den or 1)


def markdown(results: list[dict], args, load0, load1) -> str:
    info = machine_info()
    rows = [[e["vectors"], e["index"], e["sample_vectors"], e["train_s"], e["add_s"], e["build_s"], e["peak_rss_gb"],
             e["index_memory_bytes_per_vector"], e["code_bytes_per_vector"], e["index_bytes_per_vector"],
             e["ids_bytes_per_vector"], e["stored_bytes_per_vector"], e["save_s"]] for e in results]
    qrows = [[e["vectors"], r["lists"], r["nprobe"], r["candidates"], r["recall_at_10"], r["search_p50_ms"],
              r["search_p95_ms"], r["reread_p50_ms"], r["total_p50_ms"], r["total_p95_ms"], r["cpu_p50_ms"],
              r["cold_total_p50_ms"]]
             for e in results for r in e["runs"]]
    parts = ["## Similarity index at scale (bench/bench_ann.py)\n",
             (f"Recorded {time.strftime('%Y-%m-%d')} on {machine_line(info)}; load average at start "
             f"{[round(v, 1) for v in load0]}, at end {[round(v, 1) for v in load1]}."),
             (f"Synthetic {args.dim}-d segment vectors with bench_store.py's structure (seed {args.seed}), stored as "
             f"12-bit codes in a SQLite table laid out as `embeddings`; {args.queries} queries, top-10 of other "
             "calls. Build through store/ann.py (`train` on a random-id sample, `add` in blocks of "
             f"{ann.READ_BLOCK}); the first row of each size is the default setting.\n"),
             *([args.note + "\n"] if args.note else []),
             markdown_table(["vectors", "index", "training sample", "train s", "add s", "build s", "peak RSS GB",
                             "memory held B/vector", "code B/vector", "saved index B/vector", "saved ids B/vector",
                             "stored B/vector", "save s"], rows),
             "",
             ("Queries (search = the index's `search` of `candidates(10)` ids; re-read = those rows from the "
             "SQLite table by `id IN`, decoded, exact re-rank; the second of two passes over the queries (warm), "
             "the first one's total apart (cold: rows may come from disk); CPU = the thread's CPU time for search "
             "and re-read, what an idle core would take):\n"),
             markdown_table(["vectors", "lists", "nprobe", "candidates", "recall@10", "search p50 ms",
                             "search p95 ms", "re-read p50 ms", "total p50 ms", "total p95 ms", "CPU p50 ms",
                             "cold total p50 ms"],
                            qrows), ""]
    return "\n".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
