"""Store commands through the CLI (report, export, purge, similar, db upgrade), batch sources, and the
small pure helpers (disk-full detection, ages, metadata)."""

from __future__ import annotations

import errno
import json
import sqlite3

import pytest
import typer

from callsense.batch import collect
from callsense.errors import InputError, UsageError
from callsense.testing.store import FakeAnalyzer, write_fake_call


@pytest.fixture
def filled_url(tmp_path):
    from callsense.batch import run_batch

    for i, (text, emo) in enumerate([("我要投诉 13812345678", "angry"), ("thanks, all good", "happy")]):
        write_fake_call(tmp_path / "in" / f"c{i}.wav", [("agent", 0, 2000, "您好", "neutral"),
                                                       ("customer", 2000, 6000, text, emo)])
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert run_batch(collect(tmp_path / "in"), analyzer_factory=FakeAnalyzer, db_url=url).done == 2
    return url


def run_store_cli(args, capsys):
    """The store command group on its own app (``callsense report`` is also registered by the serve group)."""
    from callsense.cli import store

    app = typer.Typer()
    store.register(app)
    try:
        app(args=args, standalone_mode=False)
        code = 0
    except typer.Exit as e:
        code = e.exit_code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_report_tables_as_json(filled_url, capsys):
    code, out, _ = run_store_cli(["report", "--db", filled_url, "--json", "--by", "queue"], capsys)
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"customer emotion by queue", "agent scorecards", "rule hits", "daily trends"}
    [row] = data["customer emotion by queue"]
    assert row["queue"] == "(none)" and row["segments"] == 2
    assert row["angry"] == pytest.approx(0.5) and row["happy"] == pytest.approx(0.5)
    assert data["daily trends"][0]["calls"] == 2


def test_export_cli_redacts_and_parquet_needs_pyarrow(filled_url, tmp_path, capsys):
    from callsense.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["export", "--db", filled_url, "--what", "segments", "--format", "jsonl"])
    assert e.value.code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4 and any(r["text"] == "我要投诉 [PHONE]" for r in rows)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit) as e:
            main(["export", "--db", filled_url, "--format", "parquet", "-o", str(tmp_path / "x.parquet")])
        assert e.value.code == 6  # a missing extra, not a model (4)
        assert "pip install 'callsense[parquet]'" in capsys.readouterr().err


def test_purge_dry_run_and_db_upgrade(filled_url, capsys):
    from callsense.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["purge", "--older-than", "0s", "--dry-run", "--db", filled_url])
    assert e.value.code == 0
    assert "would delete: 2 call records" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["db", "upgrade", "--db", filled_url])
    assert e.value.code == 0
    assert "already at schema revision" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["purge", "--older-than", "soon", "--db", filled_url])
    assert e.value.code == 2


def test_similar_cli(filled_url, capsys):
    from callsense.cli.app import main
    from callsense.store import list_calls, open_store

    store = open_store(filled_url)
    ids = sorted(c.call_id for c in list_calls(store))
    store.close()
    with pytest.raises(SystemExit) as e:
        main(["similar", f"{ids[0]}:s0002", "--db", filled_url, "--json", "-k", "3"])
    assert e.value.code == 0
    hits = json.loads(capsys.readouterr().out)  # --json: one JSON array
    assert [h["call_id"] for h in hits] == [ids[1], ids[1]] and hits[0]["score"] >= hits[1]["score"]
    with pytest.raises(SystemExit) as e:
        main(["similar", "nope", "--db", filled_url])
    assert e.value.code == 3


# ---------------------------------------------------------------- sources


def test_sources_folder_glob_file_and_errors(tmp_path):
    write_fake_call(tmp_path / "a" / "x.wav", [])
    write_fake_call(tmp_path / "a" / "deep" / "y.MP3", [])
    write_fake_call(tmp_path / "a" / ".hidden" / "z.wav", [])
    (tmp_path / "a" / "readme.md").write_text("no")
    assert [p.path.rsplit("/", 1)[1] for p in collect(tmp_path / "a")] == ["y.MP3", "x.wav"]
    assert [p.path.rsplit("/", 1)[1] for p in collect(f"{tmp_path}/a/**/*.wav")] == ["x.wav"]
    assert len(collect(tmp_path / "a" / "x.wav")) == 1
    with pytest.raises(InputError, match="no such file or folder"):  # bad input (exit 3), as analyze says it
        collect(tmp_path / "missing")
    bad = tmp_path / "m.csv"
    bad.write_bytes(b"path\n\xff\xfe\n")
    with pytest.raises(UsageError, match="UTF-8"):
        collect(bad)


def test_manifest_csv_row_with_extra_cells(tmp_path):
    write_fake_call(tmp_path / "x.wav", [])
    m = tmp_path / "m.csv"
    m.write_text("path,agent_id\nx.wav,a1\nx.wav,a1,surplus\n", encoding="utf-8")
    good, extra = collect(m)
    assert good.error is None and good.metadata == {"agent_id": "a1"}
    assert isinstance(extra.error, InputError) and "more cells" in str(extra.error) and extra.row == 2


# ---------------------------------------------------------------- helpers


def test_disk_full_detection():
    from callsense.store import is_disk_full

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))

    class PgDiskFull(Exception):
        sqlstate = "53100"

    wrapped = RuntimeError("write failed")
    wrapped.__cause__ = PgDiskFull()
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("database is locked"))


def test_parse_age_and_metadata_normalisation():
    from datetime import timedelta

    from callsense.store import normalize_metadata, parse_age

    assert parse_age("90d") == timedelta(days=90) and parse_age("36h") == timedelta(hours=36)
    assert parse_age("2w") == timedelta(weeks=2) and parse_age("7") == timedelta(days=7)
    meta = normalize_metadata({"agent_id": " a1 ", "direction": "OUT", "started_at": "2026-01-05 09:30",
                               "empty": "", "score": 3})
    assert meta == {"agent_id": "a1", "direction": "outbound", "started_at": "2026-01-05T09:30:00Z", "score": 3}
    for bad in ({"direction": "sideways"}, {"started_at": "tomorrow"}, {"bad key!": 1}, {"x": [1, 2]}):
        with pytest.raises(InputError, match="bad metadata"):
            normalize_metadata(bad)


def test_parquet_without_pyarrow_exits_6_not_the_model_code(filled_url, tmp_path):
    """In a subprocess where pyarrow cannot be imported (whether or not it is installed here)."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['pyarrow'] = None; from callsense.cli.app import main; "
            f"main(['export', '--db', {filled_url!r}, '--format', 'parquet', '-o', {str(tmp_path / 'x.parquet')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 6, proc.stderr
    expected = "error: parquet export needs pyarrow (pip install 'callsense[parquet]')"
    assert proc.stderr.strip().splitlines() == [expected]


def test_database_url_is_a_deprecated_alias_of_db(filled_url, capsys):
    from callsense.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["report", "--database-url", filled_url, "--json"])
    assert e.value.code == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["daily trends"][0]["calls"] == 2  # the alias reached the same store
    assert "--database-url is deprecated" in out.err and "use --db" in out.err
    with pytest.raises(SystemExit) as e:
        main(["report", "--db", filled_url, "--database-url", "sqlite:///elsewhere.db"])
    assert e.value.code == 2


def test_search_duration_filter_is_min_max_seconds(filled_url, capsys):
    from callsense.cli.app import main

    def calls(*args):
        with pytest.raises(SystemExit) as e:
            main(["search", "--db", filled_url, "--json", *args])
        assert e.value.code == 0
        captured = capsys.readouterr()
        return {h["call_id"] for h in json.loads(captured.out)}, captured.err

    everything, _ = calls()
    assert len(everything) == 2
    assert calls("--min-seconds", "1000")[0] == set()
    assert calls("--max-seconds", "1000")[0] == everything
    old, err = calls("--min-duration", "1000")
    assert old == set() and "--min-duration is deprecated" in err


def test_batch_with_an_unwritable_copy_audio_folder_is_exit_3(tmp_path, capsys):
    from callsense.cli.app import main

    (tmp_path / "in").mkdir()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SystemExit) as e:
        main(["batch", str(tmp_path / "in"), "--copy-audio", str(tmp_path / "a-file" / "copies"), "--no-progress"])
    assert e.value.code == 3
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error:") and "--copy-audio" in line
