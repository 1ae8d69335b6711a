"""The store at call-centre scale (issue 21): generate, query, explain, measure disk and ingest.

    python bench/bench_store.py --sizes 1000,10000 --backends sqlite,postgresql [--dim 1024] [--seed 21]
    python bench/bench_store.py --sizes 300 --backends sqlite --dim 64 --repeat 2 --no-write   # smoke

For each backend a fresh store grows to each size in turn, every call stored through the public
``save_result`` (synthetic Chinese call-centre results: ~30 segments per call, 200 agents, 90 days,
rule hits, an embedding per segment; reproducible from ``--seed``). At each size every interactive
query the CLI, API and UI issue runs ``--repeat`` times warm (median reported); its SQL is captured and
explained (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``). Written:
``bench/results/store.json`` and the ``store`` section of bench/RESULTS.md (latency by size, disk per
call, ingest rate, the plans of the largest size). PostgreSQL: ``--pg-admin URL`` (default the test
server on 127.0.0.1:5432); each run creates and drops its own database.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, machine_line, markdown_table, replace_section

from callsense.result.qa import Evidence, QAScore, RuleHit
from callsense.testing.results import make_result, seg

HERE = Path(__file__).resolve().parent
EPOCH = datetime(2026, 1, 1)
DAYS = 90
AGENTS = 200
CATEGORIES = ("billing", "delivery", "refund", "complaint", "account", "technical")
QUEUES = ("normal", "vip", "overseas")
AGENT_LINES = ("您好，请问有什么可以帮您", "好的，我这边帮您查一下", "请您稍等一下", "非常抱歉给您带来不便",
               "这个问题我已经帮您记录了", "还有其他可以帮您的吗", "感谢您的耐心等待", "您的订单已经发货了")
CUSTOMER_LINES = ("我要投诉你们的服务", "我想问一下退款什么时候到账", "快递到现在还没到", "好的谢谢",
                  "我要退款", "你们这个发货太慢了", "能不能帮我改一下地址", "我的账户登录不上去",
                  "为什么又扣了我的钱", "算了不用了", "我要找你们经理")
EMOTIONS = ("neutral", "happy", "angry", "sad", "disgusted", "surprised", "fearful", "other")
EMO_P = np.array([0.55, 0.12, 0.12, 0.07, 0.05, 0.04, 0.03, 0.02])


def make_call(i: int, rng: np.random.Generator, dim: int, n_segments: int):
    """One synthetic call: (result, embeddings)."""
    segs, t = [], 0
    n = max(4, int(rng.normal(n_segments, n_segments / 5)))
    for j in range(n):
        role = "agent" if j % 2 == 0 else "customer"
        lines = AGENT_LINES if role == "agent" else CUSTOMER_LINES
        text = "，".join(lines[int(k)] for k in rng.integers(len(lines), size=int(rng.integers(1, 3))))
        dur = int(rng.integers(1500, 9000))
        label = EMOTIONS[int(rng.choice(len(EMOTIONS), p=EMO_P))]
        segs.append(seg(role, t, t + dur, text, emotion_=(label, float(rng.uniform(0.4, 0.95)))))
        t += dur + int(rng.integers(100, 1500))
    started = EPOCH + timedelta(seconds=int(rng.integers(DAYS * 86400)))
    meta = {"agent_id": f"agent{int(rng.integers(AGENTS)):03d}", "queue": QUEUES[int(rng.integers(len(QUEUES)))],
            "category": CATEGORIES[int(rng.integers(len(CATEGORIES)))], "team": f"team{int(rng.integers(10))}",
            "customer_id": f"cust{int(rng.integers(i // 3 + 1)):06d}", "started_at": started.isoformat() + "Z",
            "direction": "inbound"}
    r = make_result(segs, call_id=f"call{i:07d}", metadata=meta, duration_ms=t + 500)
    hits = []
    texts = " ".join(s.text for s in r.segments)
    if "投诉" in texts:
        hits.append(RuleHit("risk.complaint", "1", "投诉风险", "risk", "critical", score_delta=-20,
                            evidence=(Evidence(r.segments[1].id, r.segments[1].start_ms, r.segments[1].end_ms,
                                               text="投诉"),)))
    if rng.random() < 0.3:
        hits.append(RuleHit("flow.dead_air", "1", "静音过长", "flow", "warning", score_delta=-5))
    if rng.random() < 0.5:
        hits.append(RuleHit("script.greeting", "1", "开场白", "script", "info"))
    score = float(np.clip(rng.normal(0.75, 0.12), 0, 1))
    segments = tuple(dataclasses.replace(s, emotion=dataclasses.replace(s.emotion, embedding_index=k))
                     for k, s in enumerate(r.segments))
    r = dataclasses.replace(r, segments=segments, rule_hits=tuple(hits),
                            source=dataclasses.replace(r.source, sha256=f"{i:064x}", name=f"call{i:07d}.wav"),
                            score=QAScore("default", "1", score * 100, 100.0, score, score >= 0.6))
    # one shared centre per emotion (as in a real embedding space: angry segments of different calls
    # are close), a per-call voice offset and per-segment noise. (Centres drawn per call, as before,
    # left no neighbour structure across calls: the "nearest" segments were noise, recall meaningless.)
    centre = _centres(dim)
    voice = rng.normal(scale=0.7, size=dim).astype(np.float32)
    emb = (centre[[EMOTIONS.index(s.emotion.label) for s in segments]] + voice
           + rng.normal(scale=1.5, size=(len(segments), dim)).astype(np.float32))
    return r, emb


_CENTRES: dict[int, np.ndarray] = {}


def _centres(dim: int) -> np.ndarray:
    if dim not in _CENTRES:
        _CENTRES[dim] = np.random.default_rng([21, dim]).normal(size=(len(EMOTIONS), dim)).astype(np.float32)
    return _CENTRES[dim]


def _generated(task: tuple[int, int, int, int]):
    i, seed, dim, n_segments = task
    return i, make_call(i, np.random.default_rng([seed, i]), dim, n_segments)


def _bounded(pool, indexes: range, args: tuple, ahead: int = 64):
    """``pool``'s generated calls in order, at most ``ahead`` of them waiting: ``Pool.imap`` would hand
    the generator every task at once, and the calls it makes faster than the store takes them pile up
    in this process (6.7 GB after 15,000 calls on PostgreSQL under load)."""
    from collections import deque

    pending: deque = deque()
    it = iter(indexes)
    for i in it:
        pending.append(pool.apply_async(_generated, ((i, *args),)))
        if len(pending) >= ahead:
            break
    while pending:
        yield pending.popleft().get()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.apply_async(_generated, ((nxt, *args),)))


def grow(store, start: int, stop: int, seed: int, dim: int, n_segments: int, *, progress: int = 1000,
         cpu: dict | None = None) -> float:
    """Store calls start..stop-1 through the public ``save_result``; returns calls per second of
    ``save_result`` alone (generation excluded: it runs in a second process, overlapped with the
    saves, so that building 100,000 calls costs the store's time and little more).

    ``cpu`` (if given) receives the CPU milliseconds per call of ``save_result`` in this process and,
    for a PostgreSQL server on this machine, of its backend: figures that other load on a shared
    machine changes far less than the wall-clock rate."""
    import multiprocessing

    from callsense.store import save_result

    if stop <= start:
        return 0.0
    spent, spent_cpu, t_wall, done = 0.0, 0.0, time.perf_counter(), 0
    pid = _backend_pid(store)
    server0 = _proc_cpu(pid)
    # spawn, not fork: the store's open connections must not be copied into another process
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for i, (r, e) in _bounded(pool, range(start, stop), (seed, dim, n_segments)):
            t0, c0 = time.perf_counter(), time.process_time()
            save_result(store, r, embeddings=e, fingerprint="bench")
            spent += time.perf_counter() - t0
            spent_cpu += time.process_time() - c0
            done += 1
            if progress and done % progress == 0:
                print(f"  stored {i + 1} calls ({done / spent:.0f} calls/s in save_result, "
                      f"{done / (time.perf_counter() - t_wall):.0f} calls/s wall)", file=sys.stderr, flush=True)
    if cpu is not None:
        cpu["client_ms_per_call"] = round(spent_cpu / done * 1000, 2)
        server1 = _proc_cpu(pid if pid == _backend_pid(store) else None)
        if server0 is not None and server1 is not None:
            cpu["server_ms_per_call"] = round((server1 - server0) / done * 1000, 2)
    return done / spent if spent else 0.0


def _backend_pid(store) -> int | None:
    if store.dialect != "postgresql":
        return None
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar())


def _proc_cpu(pid: int | None) -> float | None:
    """CPU seconds of a local process (the PostgreSQL backend), or None where it cannot be read."""
    import os

    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def stored_calls(store, seed: int, dim: int, n_segments: int) -> int:
    """How many benchmark calls a reused store holds (calls 0..n-1, stored in order), after checking
    that they were generated with the same seed, dimension and segment count (else: refuse)."""
    from sqlalchemy import text

    from callsense.store import count_calls, get_embeddings, get_result

    n = count_calls(store)
    if n == 0:
        return 0
    with store.engine.connect() as conn:
        last = conn.execute(text("SELECT max(call_id) FROM calls WHERE call_id LIKE 'call%'")).scalar()
    if last is None or int(last[4:]) + 1 != n:
        raise SystemExit(f"the store holds {n} calls that are not benchmark calls 0..{n - 1}: use another --store")
    probe = 0
    want, _ = make_call(probe, np.random.default_rng([seed, probe]), dim, n_segments)
    have = get_result(store, f"call{probe:07d}")
    vec = next(iter(get_embeddings(store, f"call{probe:07d}").values()), None)
    if [x.text for x in have.segments] != [x.text for x in want.segments] or vec is None or vec.shape[0] != dim:
        raise SystemExit("the store was built with another --seed, --dim or --segments: use another --store")
    return n


def queries(store) -> dict[str, Callable[[], object]]:
    """Every interactive query of the CLI, API and UI (list, search filters, dashboards, similar)."""
    from callsense.store import (
        SearchQuery,
        agent_scorecards,
        daily_trends,
        emotion_heatmap,
        find_similar,
        list_calls,
        rule_hit_counts,
        search_calls,
    )

    deep = list_calls(store, limit=1, offset=min(5000, max(0, _count(store) - 1)))
    cursor = deep[0].cursor if deep else None
    end = EPOCH + timedelta(days=DAYS)

    def q(**kw):
        return lambda: search_calls(store, SearchQuery(**kw))

    return {
        "list_calls first page": lambda: list_calls(store, limit=50),
        "list_calls(offset=5000)": lambda: list_calls(store, limit=50, offset=5000),
        "list_calls(after=cursor@5000)": lambda: list_calls(store, limit=50, after=cursor),
        "calls with rule risk.complaint": q(rule_id="risk.complaint"),
        "calls with a critical hit": q(severity="critical"),
        "calls of one agent": q(meta={"agent_id": "agent007"}),
        "calls of a custom field (team)": q(meta={"team": "team3"}),
        "calls of the last 7 days": q(since=end - timedelta(days=7), until=end),
        "text, 1 character (款)": q(text="款"),
        "text, 2 characters (投诉)": q(text="投诉"),
        "text, 4 characters (我要投诉)": q(text="我要投诉"),
        "text absent (火星)": q(text="火星"),
        "angry >= 0.9, customer": q(emotion="angry", min_score=0.9, role="customer"),
        "heat map 90 days": lambda: emotion_heatmap(store, since=EPOCH, until=end),
        "agent scorecards": lambda: agent_scorecards(store),
        "rule hit counts": lambda: rule_hit_counts(store),
        "daily trends": lambda: daily_trends(store),
        "similar segments (find_similar on a segment)": lambda: find_similar(store, "call0000000", "s0002"),
        "similar segments, exact scan": lambda: find_similar(store, "call0000000", "s0002", exact=True),
        "similar calls": lambda: find_similar(store, "call0000000"),
    }


def _recall(store, seed: int, n: int = 20) -> float:
    """recall@10 of the index against exact search, over ``n`` random stored segments."""
    from callsense.store import find_similar

    rng = np.random.default_rng(seed)
    total = _count(store)
    found = want = 0
    for i in rng.integers(0, total, size=n):
        call, segment = f"call{int(i):07d}", f"s{int(rng.integers(1, 5)):04d}"
        exact = {(h.call_id, h.segment_id) for h in find_similar(store, call, segment, exact=True)}
        found += len(exact & {(h.call_id, h.segment_id) for h in find_similar(store, call, segment)})
        want += len(exact)
    return round(found / want, 4) if want else 0.0


def _purge(store, calls: int) -> dict:
    """Purge every call (batched): calls/s, and the longest batch transaction."""
    import logging

    from callsense.store import purge

    took: list[float] = []

    class Grab(logging.Handler):
        def emit(self, record):
            if record.msg.startswith("purge batch"):
                took.append(float(record.args[1]))

    log = logging.getLogger("callsense")
    h, level = Grab(), log.level
    log.addHandler(h)
    log.setLevel(logging.DEBUG)
    try:
        t0 = time.perf_counter()
        purge(store, "0s")
        wall = time.perf_counter() - t0
    finally:
        log.removeHandler(h)
        log.setLevel(level)
    return {"calls": calls, "wall_s": round(wall, 1), "calls_per_s": round(calls / wall, 1) if wall else 0,
            "batches": len(took), "max_batch_s": round(max(took, default=0), 3)}


def _count(store) -> int:
    from callsense.store import count_calls

    return count_calls(store)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, list[str]]:
    fn()  # warm (and the first dashboard read recomputes the dirty rollup days: not an interactive cost)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, []


def capture_sql(store, fn) -> list[tuple[str, object]]:
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def hook(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "rollup_dirty" not in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", hook)
    try:
        fn()
    finally:
        event.remove(store.engine, "before_cursor_execute", hook)
    return seen


def explain(store, statement: str, params: object) -> str:
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            return "\n".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all())
        rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params).all()
        return "\n".join(r[0] for r in rows)


def disk(store, path: Path | None) -> dict[str, int]:
    from sqlalchemy import text

    if store.dialect == "sqlite":
        raw = store.engine.raw_connection()  # outside a transaction: a checkpoint cannot run inside one
        try:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            try:
                out = {n: int(b) for n, b in raw.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")}
            except Exception:  # noqa: BLE001 - dbstat not compiled in
                out = {}
        finally:
            raw.close()
        out["(file)"] = path.stat().st_size if path else 0
        return out
    with store.engine.begin() as conn:
        rows = conn.execute(text("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                                 "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 "WHERE n.nspname = 'public' AND c.relkind = 'r'")).all()
        out = {n: int(b) for n, b in rows}
        out["(file)"] = sum(out.values())
        return out


def _open(backend: str, args, tmp: str):
    """(url, sqlite path or None, context to exit or None): the reused ``--store`` or a fresh one."""
    from callsense.testing.store import fresh_postgres_database

    reuse = args.sqlite_store if backend == "sqlite" else args.pg_store
    if reuse:
        if backend == "sqlite":
            path = Path(reuse).expanduser().resolve()
            return f"sqlite:///{path}", path, None
        return reuse, None, None
    if backend == "sqlite":
        path = Path(tmp) / "store.db"
        return f"sqlite:///{path}", path, None
    ctx = fresh_postgres_database(args.pg_admin)
    return ctx.__enter__(), None, ctx


def bench_backend(backend: str, sizes: list[int], args) -> dict:
    from callsense.store import open_store

    tmp = tempfile.TemporaryDirectory(prefix="bench_store_")
    url, path, ctx = _open(backend, args, tmp.name)
    store = open_store(url)
    out = {"backend": backend, "sizes": {}}
    try:
        have = stored_calls(store, args.seed, args.dim, args.segments)
        if have:
            print(f"{backend}: reusing {have} stored calls", file=sys.stderr)
        for size in sizes:
            if size < have:
                print(f"{backend} {size}: skipped (the store already holds {have} calls)", file=sys.stderr)
                continue
            cpu: dict = {}
            rate = grow(store, have, size, args.seed, args.dim, args.segments, cpu=cpu)
            grown, have = size - have, size
            if backend == "sqlite":
                with store.engine.begin() as conn:
                    conn.exec_driver_sql("ANALYZE")
            else:
                with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE")
            t0 = time.perf_counter()
            from callsense.store.rollups import refresh

            with store.session() as s:
                days = refresh(s, store.dialect)
            rollup_s = time.perf_counter() - t0
            sizes_b = disk(store, path)
            entry = {"ingest_calls_per_s": round(rate, 1) if grown else None, "ingest_calls": grown,
                     "ingest_cpu": cpu,
                     "disk_bytes": sizes_b, "disk_per_call_kb": round(sizes_b["(file)"] / size / 1024, 1),
                     "rollup_refresh_s": round(rollup_s, 2), "rollup_days": days}
            out["sizes"][size] = entry
            if args.build_only:
                print(f"{backend} {size}: built (ingest {rate:.0f} calls/s over {grown} calls, "
                      f"{entry['disk_per_call_kb']} KB/call)", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            recall = _recall(store, args.seed, args.recall_queries)  # the first similarity query also builds the index
            ann_s = time.perf_counter() - t0
            lat, plans = {}, {}
            for name, fn in queries(store).items():
                exact = "exact scan" in name and args.exact_repeat is not None
                lat[name] = round(timed(fn, args.exact_repeat if exact else args.repeat)[0], 2)
                plans[name] = [explain(store, st, p) for st, p in capture_sql(store, fn)][-3:]
            entry.update({"latency_ms": lat, "plans": plans, "ann_build_and_recall_s": round(ann_s, 2),
                          "ann_recall_at_10": recall})
            print(f"{backend} {size}: ingest {rate:.0f} calls/s, {entry['disk_per_call_kb']} KB/call, "
                  f"ANN recall@10 {recall} (build + 40 queries {ann_s:.1f} s)", file=sys.stderr)
            for name, ms in lat.items():
                print(f"  {ms:9.1f} ms  {name}", file=sys.stderr)
        reused = bool(args.sqlite_store if backend == "sqlite" else args.pg_store)
        if args.purge or (not reused and not args.no_purge):
            out["purge"] = _purge(store, have)  # deletes every call: a reused store is left empty
            print(f"{backend} purge: {out['purge']}", file=sys.stderr)
    finally:
        store.close()
        if ctx is not None:
            ctx.__exit__(None, None, None)
        tmp.cleanup()
    return out


def _cpu_cell(cpu: dict) -> str:
    if "client_ms_per_call" not in cpu:
        return "–"
    total = cpu["client_ms_per_call"] + cpu.get("server_ms_per_call", 0.0)
    parts = f"{cpu['client_ms_per_call']}" + (f" + {cpu['server_ms_per_call']}" if "server_ms_per_call" in cpu else "")
    return f"{parts} (= {1000 / total:.0f} calls/s of CPU)" if total else parts


def markdown(results: list[dict], args) -> str:
    sizes = sorted({int(s) for r in results for s in r["sizes"]})
    cols = [f"{r['backend']} {s}" for r in results for s in sorted(r["sizes"], key=int)]
    entries = [r["sizes"][s] for r in results for s in sorted(r["sizes"], key=int)]
    names = next((list(e["latency_ms"]) for e in entries if "latency_ms" in e), [])
    rows = [[n] + [e.get("latency_ms", {}).get(n, "–") for e in entries] for n in names]
    rows.append(["ingest, calls/s (save_result)"] + [
        "–" if e["ingest_calls_per_s"] is None else f"{e['ingest_calls_per_s']} ({e['ingest_calls']} calls)"
        for e in entries])
    rows.append(["ingest, CPU ms per call (save_result + PostgreSQL backend)"] + [_cpu_cell(e.get("ingest_cpu") or {})
                                                                            for e in entries])
    rows.append(["disk per call, KB"] + [e["disk_per_call_kb"] for e in entries])
    if not entries:
        return "## Store at scale (bench/bench_store.py)\n\nNothing measured (every size was below the reused store's).\n"
    parts = ["## Store at scale (bench/bench_store.py)\n",
             f"Recorded {datetime.now().date().isoformat()} on {machine_line(machine_info())}.",
             (f"Synthetic calls: ~{args.segments} segments, {AGENTS} agents, {DAYS} days, {args.dim}-d embedding per "
              f"segment, seed {args.seed}; sizes {', '.join(map(str, sizes))}. Latency: median of {args.repeat} warm "
              "runs, ms.\n"), *([args.note + "\n"] if getattr(args, "note", None) else []),
             markdown_table(["operation"] + cols, rows), ""]
    rows2 = [[r["backend"], s, r["sizes"][s]["ann_recall_at_10"], r["sizes"][s]["ann_build_and_recall_s"]]
             for r in results for s in sorted(r["sizes"], key=int) if "ann_recall_at_10" in r["sizes"][s]]
    nq = getattr(args, "recall_queries", 20)
    parts += [f"Similarity index: recall@10 against exact search ({nq} random segments), and the time of the first"
              f" {2 * nq} similarity queries ({nq} of them exact scans), which build or catch up the index:\n",
              markdown_table(["backend", "calls", "recall@10", f"build + {2 * nq} queries, s"], rows2), ""]
    rows3 = [[r["backend"], r["purge"]["calls"], r["purge"]["wall_s"], r["purge"]["calls_per_s"],
              r["purge"]["batches"], r["purge"]["max_batch_s"]] for r in results if "purge" in r]
    if rows3:
        parts += ["Purge of every call (batched):\n", markdown_table(
            ["backend", "calls", "wall s", "calls/s", "batches", "longest batch s"], rows3), ""]
    first = next(r for r in results if r["sizes"])
    top = max(first["sizes"], key=int)
    disk_rows = sorted(((n, round(b / int(top) / 1024, 2)) for n, b in first["sizes"][top]["disk_bytes"].items()
                        if n != "(file)"), key=lambda t: -t[1])[:16]
    if disk_rows:
        parts += [f"Disk per call by object ({first['backend']}, {top} calls), KB:\n",
                  markdown_table(["object", "KB/call"], disk_rows), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--segments", type=int, default=30)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pg-admin", default=None, help="admin URL for the fresh PostgreSQL database")
    ap.add_argument("--sqlite-store", default=None, metavar="PATH",
                    help="build into (and reuse) this SQLite file instead of a temporary one; a rerun "
                         "resumes from the calls it holds")
    ap.add_argument("--pg-store", default=None, metavar="URL",
                    help="build into (and reuse) this PostgreSQL database instead of a fresh one")
    ap.add_argument("--build-only", action="store_true", help="store the calls, measure ingest and disk, no queries")
    ap.add_argument("--purge", action="store_true", help="also purge every call of a reused store at the end")
    ap.add_argument("--no-purge", action="store_true", help="skip the purge measurement")
    ap.add_argument("--note", default=None, help="a sentence for RESULTS.md (e.g. the machine's load)")
    ap.add_argument("--recall-queries", type=int, default=20,
                    help="random segments for the index's recall@10 (each one exact scan: ~36 s at 100k calls)")
    ap.add_argument("--exact-repeat", type=int, default=None,
                    help="timed runs of the exact-scan query (default --repeat; it is the fallback, not an "
                         "interactive query, and takes tens of seconds at 100k calls)")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "store.json")
    ap.add_argument("--no-write", action="store_true", help="print only (smoke runs)")
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results = [bench_backend(b.strip(), sizes, args) for b in args.backends.split(",") if b.strip()]
    md = markdown(results, args)
    print(md)
    if not args.no_write:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        ensure_ascii=False, indent=1), encoding="utf-8")
        replace_section(HERE / "RESULTS.md", "store", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
