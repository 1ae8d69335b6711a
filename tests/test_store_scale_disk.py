"""Disk (issue 21, item 5): the result JSON stored compressed behind a marker, rows stored plain
before revision 0006 still read, 16 KB pages for a new SQLite file; revision 0011 — short terms from
SQLite's character index matching like a scan, every deletion path reaching it, and the upgrade from
a populated 0010 store keeping every call, row, search and vector (and back down)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from callsense.testing.results import make_result, seg


def _result(i: int):
    return make_result([seg("agent", 0, 1500, "您好请问有什么可以帮您" * 3, emotion_="neutral"),
                        seg("customer", 2000, 3500, "我要投诉你们" * 3, emotion_="angry")], call_id=f"d{i}")


def test_the_result_is_stored_compressed_and_read_back_exactly(tmp_path):
    from sqlalchemy import text

    from callsense.store import get_result, open_store, save_result
    from callsense.store.codec import ZLIB

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        r = _result(1)
        call_id = save_result(store, r)
        with store.engine.connect() as conn:
            plain, z = conn.execute(text("SELECT result_json, result_z FROM calls")).one()
        assert plain == "" and z[:1] == ZLIB
        assert len(z) < len(json.dumps(r.to_dict(), ensure_ascii=False).encode()) / 2
        assert get_result(store, call_id).to_dict() == r.to_dict()
    finally:
        store.close()


def test_a_row_stored_before_compression_is_still_read(tmp_path):
    from sqlalchemy import text

    from callsense.store import get_result, open_store, save_result
    from callsense.store.history import call_history

    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        r = _result(2)
        call_id = save_result(store, r)
        with store.engine.begin() as conn:  # as revision 0005 stored it
            conn.execute(text("UPDATE calls SET result_json = :j, result_z = NULL"),
                         {"j": json.dumps(r.to_dict(), ensure_ascii=False)})
        assert get_result(store, call_id).to_dict() == r.to_dict()
        assert call_history(store, agent_id=r.metadata.get("agent_id") or "none") is not None
    finally:
        store.close()


def test_an_unknown_codec_marker_is_an_error_not_garbage():
    from callsense.store.codec import compress, result_text

    assert result_text("", compress('{"a": 1}')) == '{"a": 1}'
    with pytest.raises(ValueError, match="codec marker"):
        result_text("", b"q123")


def test_a_new_sqlite_store_uses_16_kb_pages(tmp_path):
    from sqlalchemy import text

    from callsense.store import open_store
    from callsense.store.db import SQLITE_PAGE_SIZE

    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA page_size")).scalar() == SQLITE_PAGE_SIZE == 16384
    finally:
        store.close()


def test_each_sqlite_connection_has_a_page_cache_of_the_configured_size(tmp_path, monkeypatch):
    """SQLite's 2 MB default made every save re-read index pages from the OS (48 ms a call at 7,000
    calls against 13.5 ms with 128 MB): each connection gets CALLSENSE_SQLITE_CACHE_MB (default 128)."""
    from sqlalchemy import text

    from callsense.errors import StoreError
    from callsense.store import open_store

    def cache_kib(name: str) -> int:
        store = open_store(f"sqlite:///{tmp_path / name}")
        try:
            with store.engine.connect() as conn:
                return -conn.execute(text("PRAGMA cache_size")).scalar()
        finally:
            store.close()

    monkeypatch.delenv("CALLSENSE_SQLITE_CACHE_MB", raising=False)
    assert cache_kib("a.db") == 128 * 1024
    monkeypatch.setenv("CALLSENSE_SQLITE_CACHE_MB", "16")
    assert cache_kib("b.db") == 16 * 1024
    for bad in ("lots", "0"):
        monkeypatch.setenv("CALLSENSE_SQLITE_CACHE_MB", bad)
        with pytest.raises(StoreError, match="CALLSENSE_SQLITE_CACHE_MB"):
            open_store(f"sqlite:///{tmp_path / 'c.db'}")


# ---------------------------------------------------------------- revision 0011: short terms, keys, vectors

TEXTS = ["我要投诉你们", "退款什么时候到", "好的，谢谢", "OK 您好请问 a,b", "发货太慢了我要退款", "Straße ÉTÉ été"]
DIM = 1024


def _call(i: int):
    from callsense.testing.results import scored

    segs = [seg("agent" if j % 2 == 0 else "customer", j * 2000, j * 2000 + 1500, TEXTS[(i + j) % len(TEXTS)],
                emotion_="neutral") for j in range(4)]
    r = scored(make_result(segs, call_id=f"m{i:03d}", metadata={"agent_id": f"a{i % 2}", "shift": "night"}))
    segs_e = tuple(dataclasses.replace(s, emotion=dataclasses.replace(s.emotion, embedding_index=k))
                   for k, s in enumerate(r.segments))
    r = dataclasses.replace(r, segments=segs_e, source=dataclasses.replace(r.source, sha256=f"{i:064x}"))
    return r, np.random.default_rng(i).normal(size=(4, DIM)).astype(np.float32)


def _scan(store, term: str) -> set[tuple[str, str]]:
    """What a plain ILIKE scan finds (no index): the semantics every indexed search must keep."""
    from sqlalchemy import select

    from callsense.store.models import SegmentRow

    with store.session() as s:
        esc = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return {tuple(r) for r in s.execute(select(SegmentRow.call_id, SegmentRow.segment_id)
                                            .where(SegmentRow.text.ilike(f"%{esc}%", escape="\\")))}


def _found(store, term: str) -> set[tuple[str, str]]:
    from callsense.store import SearchQuery, search_calls

    return {(h.call_id, h.segment_id) for h in search_calls(store, SearchQuery(text=f'"{term}"', limit=1000))}


TERMS = ("投诉", "款", "，", "好的", "ok", "K", "a,b", ",b", "é", "É", "ss", "ß", "慢了", "火星", "我要投诉", "b 您")


def _index_rows(store, segment_pks: list[int]) -> int:
    """Entries the short-term index still holds for these segments (SQLite: the character index's
    vocabulary; PostgreSQL: segment_grams)."""
    from sqlalchemy import text

    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(text("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chars_terms USING "
                              "fts5vocab(main, segments_chars, 'instance')"))
            table, col = "temp.chars_terms", "doc"
        else:
            table, col = "segment_grams", "segment_pk"
        if not segment_pks:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar())
        ids = ", ".join(str(int(i)) for i in segment_pks)
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {col} IN ({ids})")).scalar())


def _segment_pks(store, call_id: str) -> list[int]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT id FROM segments WHERE call_id = :c"), {"c": call_id})]


def _integrity(store) -> None:
    from sqlalchemy import text

    if store.dialect == "sqlite":
        with store.engine.begin() as conn:  # FTS5's own check of each index against the texts
            for name in ("segments_fts", "segments_chars"):
                conn.execute(text(f"INSERT INTO {name}({name}) VALUES ('integrity-check')"))


def test_short_terms_of_any_kind_match_like_a_scan(empty_url):
    """1-2 character terms (CJK, punctuation, Latin in any case, accents) and longer ones find exactly
    what a plain ILIKE scan finds, on both backends."""
    from callsense.store import open_store, save_result

    store = open_store(empty_url)
    try:
        for i in range(6):
            r, e = _call(i)
            save_result(store, r, embeddings=e)
        for term in TERMS:
            want = _scan(store, term)
            assert _found(store, term) == want, term
        assert _scan(store, "投诉") and _scan(store, "，") and _scan(store, "ok")  # the index really served hits
        _integrity(store)
    finally:
        store.close()


def test_every_deletion_path_removes_the_short_term_index_entries(empty_url):
    """A re-store, delete_call, a raw SQL delete and purge leave no index entry of a deleted segment."""
    from sqlalchemy import text

    from callsense.store import open_store, purge, save_result
    from callsense.store.privacy import delete_call

    store = open_store(empty_url)
    try:
        for i in range(4):
            r, e = _call(i)
            save_result(store, r, embeddings=e)
        assert _index_rows(store, []) > 0
        old = _segment_pks(store, "m000")
        r, e = _call(0)
        save_result(store, dataclasses.replace(r, segments=r.segments[:2]), embeddings=e[:2])  # re-store, fewer segments
        assert not set(old) & set(_segment_pks(store, "m000")) and _index_rows(store, old) == 0
        assert {h for h in _found(store, "投诉") if h[0] == "m000"} == {h for h in _scan(store, "投诉") if h[0] == "m000"}
        gone = _segment_pks(store, "m001")
        delete_call(store, "m001")
        assert gone and _index_rows(store, gone) == 0
        raw = _segment_pks(store, "m002")
        with store.engine.begin() as conn:  # any path: the triggers / the cascade do it
            conn.execute(text("DELETE FROM calls WHERE call_id = 'm002'"))
        assert _index_rows(store, raw) == 0
        if store.dialect == "sqlite":  # an edited text (e.g. redacted by hand) is indexed anew by the triggers
            with store.engine.begin() as conn:  # (PostgreSQL's grams are written by save_result only)
                conn.execute(text("UPDATE segments SET text = '火星来客' WHERE call_id = 'm003' AND segment_id = 's0001'"))
            assert _found(store, "火星") == {("m003", "s0001")} == _scan(store, "火星")
            assert ("m003", "s0001") not in _found(store, TEXTS[3][:2])
        _integrity(store)
        purge(store, "0s")
        assert _index_rows(store, []) == 0
        assert _found(store, "投诉") == set() == _found(store, "款")
    finally:
        store.close()


def _as_revision_0010_wrote_it(store, monkeypatch) -> None:
    """Calls stored as callsense at revision 0010 stored them: 12-bit vectors, and (both backends)
    the 2-character grams in segment_grams."""
    from sqlalchemy import text

    from callsense.store import save_result, vectors
    from callsense.store.grams import grams

    with monkeypatch.context() as m:
        m.setattr(vectors, "rotates", lambda dim: False)  # 0010's code: 12-bit codes for every even dim
        for i in range(5):
            r, e = _call(i)
            save_result(store, r, embeddings=e)
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":  # 0010's save_result wrote the grams on SQLite too
            rows = conn.execute(text("SELECT id, text FROM segments")).all()
            conn.execute(text("INSERT INTO segment_grams (gram, segment_pk) VALUES (:g, :s)"),
                         [{"g": g, "s": sid} for sid, t in rows for g in grams(t)])


def _snapshot(store) -> dict:
    from sqlalchemy import text

    from callsense.store import SearchQuery, get_embeddings, get_result, list_calls, search_calls
    from callsense.store.models import META_FIELDS

    calls = [c.call_id for c in list_calls(store, limit=1000)]
    with store.engine.connect() as conn:
        tables = {t: sorted(tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}"))
                            if t != "call_meta" or r[1] not in META_FIELDS) for t in ("call_meta", "metrics")}
    meta = {f"{k}={v}": [h.call_id for h in search_calls(store, SearchQuery(meta={k: v}, limit=1000))]
            for k, v in (("agent_id", "a1"), ("shift", "night"), ("shift", "day"))}
    return {"calls": calls, "meta": meta, "results": {c: get_result(store, c).to_dict() for c in calls},
            "vectors": {c: {k: v.tolist() for k, v in get_embeddings(store, c).items()} for c in calls},
            "scan": {t: _scan(store, t) for t in TERMS}, **tables}


def test_upgrade_from_0010_keeps_every_call_search_and_vector(empty_url, monkeypatch):
    """A store written at revision 0010 upgrades to 0011 without losing a call: results, metadata and
    metrics rows, every search and every stored vector are the same; SQLite's grams are gone (the
    character index serves short terms); new vectors are rotated codes; and back down to 0010."""
    from sqlalchemy import inspect, text

    from callsense.store import find_similar, open_store, save_result, vectors
    from callsense.store.migrate import current_revision, head_revision, upgrade

    store = open_store(empty_url, migrate=False)
    try:
        upgrade(store, "0010")
        _as_revision_0010_wrote_it(store, monkeypatch)
        before = _snapshot(store)
        assert before["metrics"] and before["call_meta"] and before["scan"]["投诉"] and before["meta"]["shift=night"]
        with store.engine.connect() as conn:
            assert {len(r[0]) for r in conn.execute(text("SELECT vector FROM embeddings"))} == {DIM * 3 // 2 + 4}
        assert upgrade(store) == "0010" and current_revision(store) == head_revision()
        assert _snapshot(store) == before  # every call, row and vector as it was
        assert {t: _found(store, t) for t in TERMS} == before["scan"]  # every search finds what it did
        assert "ix_segments_call_id" not in {ix["name"] for ix in inspect(store.engine).get_indexes("segments")}
        _integrity(store)
        with store.engine.connect() as conn:
            # fields with their own column are filtered there: no second copy in call_meta
            assert conn.execute(text("SELECT count(*) FROM call_meta WHERE key = 'agent_id'")).scalar() == 0
            grams_left = conn.execute(text("SELECT count(*) FROM segment_grams")).scalar()
            if store.dialect == "sqlite":
                assert grams_left == 0
                for table in ("call_meta", "metrics"):
                    sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}).scalar()
                    assert "WITHOUT ROWID" in sql
            else:
                assert grams_left > 0  # PostgreSQL keeps its gram index
        assert len(find_similar(store, "m000", "s0001", k=3, exact=True)) == 3  # 12-bit rows still compared
        r, e = _call(7)
        save_result(store, r, embeddings=e)
        with store.engine.connect() as conn:
            new = conn.execute(text("SELECT vector FROM embeddings WHERE call_id = 'm007'")).scalars().all()
        assert {len(v) for v in new} == {vectors.nbytes(DIM)} == {1197}
        assert ("m007", "s0001") in _found(store, TEXTS[7 % len(TEXTS)][:2])

        from alembic import command

        from callsense.store.migrate import alembic_config

        with store.engine.begin() as conn:
            cfg = alembic_config(store.url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0010")
        with store.engine.connect() as conn:
            lengths = {len(r[0]) for r in conn.execute(text("SELECT vector FROM embeddings"))}
            assert lengths == {DIM * 3 // 2 + 4}  # what 0010's code reads
            assert conn.execute(text("SELECT count(*) FROM segment_grams")).scalar() > 0
            assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 6
            assert conn.execute(text("SELECT count(*) FROM call_meta WHERE key = 'agent_id'")).scalar() == 6
        assert upgrade(store) == "0010"  # and up again: every search as a scan finds it, the new call too
        assert all(_found(store, t) == _scan(store, t) for t in TERMS)
        assert ("m007", "s0001") in _found(store, TEXTS[7 % len(TEXTS)][:2])
        _integrity(store)
    finally:
        store.close()
