"""Disk (issue 21, item 5): the result JSON stored compressed behind a marker, rows stored plain
before revision 0006 still read, 16 KB pages for a new SQLite file."""

from __future__ import annotations

import json

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
