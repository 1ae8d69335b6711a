"""The batch runner: good and broken files, manifests, idempotence, --force/--retry-failed, kill -9 and
resume, two concurrent batches on PostgreSQL, disk full, audio policies, an unreachable database.

Most tests use the fake analyzer (callsense.testing.store) — they are about storage and process
behaviour; test_batch_real_pipeline runs the real pipeline on tiny forged models.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callsense.batch import BatchOptions, collect, run_batch
from callsense.testing.store import FakeAnalyzer, fresh_postgres_database, write_fake_call

FAKE = "callsense.testing.store:FakeAnalyzer"


def make_folder(root: Path, n: int = 4, broken: int = 1) -> Path:
    for i in range(n):
        write_fake_call(root / f"day{i % 2}" / f"call{i}.wav",
                        [("agent", 0, 2000, "您好，请问有什么可以帮您", "neutral"),
                         ("customer", 2000, 60_000, f"我要退款 order {i}", "angry")])
    for j in range(broken):
        (root / f"broken{j}.mp3").write_bytes(b"\x00\x01 not audio %d" % j)
    (root / "notes.txt").write_text("ignored: not an audio extension")
    return root


def stored(url: str) -> list[tuple[str, str | None]]:
    from sqlalchemy import select

    from callsense.store import open_store
    from callsense.store.models import Call

    s = open_store(url)
    try:
        with s.session() as ses:
            return sorted(ses.execute(select(Call.content_sha256, Call.source_path)).all())
    finally:
        s.close()


def failures(url: str):
    from callsense.store import open_store
    from callsense.store.work import list_failures

    s = open_store(url)
    try:
        return list_failures(s)
    finally:
        s.close()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_folder_with_good_and_broken_files(tmp_path, sqlite_url):
    folder = make_folder(tmp_path / "in", n=4, broken=2)
    items = collect(folder)
    assert len(items) == 6 and all(i.path.endswith((".wav", ".mp3")) for i in items)

    s = run_batch(items, analyzer_factory=FakeAnalyzer, db_url=sqlite_url, options=BatchOptions(workers=2))
    assert (s.done, s.failed, s.skipped, s.stopped) == (4, 2, 0, None)
    assert s.audio_ms == 4 * 60_000 and s.rtf is not None and s.rtf > 0
    rows = stored(sqlite_url)
    assert len(rows) == 4 and len({sha for sha, _ in rows}) == 4
    fails = failures(sqlite_url)
    assert sorted(Path(f.source_path).name for f in fails) == ["broken0.mp3", "broken1.mp3"]
    assert all(f.error_code == "audio_decode" and "not an audio file" in f.message for f in fails)

    again = run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url)
    assert (again.done, again.skipped, again.failed) == (0, 6, 0)  # done ones and failed ones are skipped

    retried = run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url,
                        options=BatchOptions(retry_failed=True))
    assert (retried.done, retried.skipped, retried.failed) == (0, 4, 2)
    assert {f.attempts for f in failures(sqlite_url)} == {2}

    write_fake_call(folder / "broken0.mp3", [("customer", 0, 1000, "fixed", "sad")])  # the file was repaired
    fixed = run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url,
                      options=BatchOptions(retry_failed=True))
    assert (fixed.done, fixed.failed) == (1, 1)
    assert [Path(f.source_path).name for f in failures(sqlite_url)] == ["broken1.mp3"]


def test_force_and_a_new_pipeline_fingerprint_rerun_without_duplicates(tmp_path, sqlite_url, monkeypatch):
    folder = make_folder(tmp_path / "in", n=2, broken=0)
    log = tmp_path / "analysed.log"
    monkeypatch.setenv("CALLSENSE_FAKE_LOG", str(log))
    run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url)
    forced = run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url,
                       options=BatchOptions(force=True))
    assert forced.done == 2
    monkeypatch.setenv("CALLSENSE_FAKE_FINGERPRINT", "fake-2")  # new models or rules: re-analysed
    assert run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url).done == 2
    assert len(log.read_text().splitlines()) == 6
    assert len(stored(sqlite_url)) == 2


def test_manifest_rows_with_missing_files_or_bad_metadata_are_failures(tmp_path, sqlite_url):
    from callsense.store import list_calls, open_store

    audio = tmp_path / "audio"
    write_fake_call(audio / "a.wav", [("customer", 0, 1000, "hello", "happy")])
    write_fake_call(audio / "b.wav", [("customer", 0, 1000, "world", "sad")])
    manifest = tmp_path / "calls.csv"
    manifest.write_text(
        "path,agent_id,queue,started_at,direction,vip\n"
        "audio/a.wav,a1,vip,2026-01-05T09:30:00+08:00,in,yes\n"
        "audio/missing.wav,a1,vip,2026-01-05T10:00:00Z,out,\n"
        "audio/b.wav,a2,normal,yesterday,in,\n"
        ",a3,normal,2026-01-05T10:00:00Z,in,\n", encoding="utf-8")
    s = run_batch(collect(manifest), analyzer_factory=FakeAnalyzer, db_url=sqlite_url)
    assert (s.done, s.failed) == (1, 3)
    by_row = {f.row: f for f in failures(sqlite_url)}
    assert set(by_row) == {2, 3, 4}
    assert by_row[2].error_code == "audio_not_found" and "file not found" in by_row[2].message
    assert by_row[3].error_code == "bad_input" and "started_at" in by_row[3].message
    assert "no 'path' value" in by_row[4].message
    store = open_store(sqlite_url)
    [call] = list_calls(store)
    store.close()
    assert (call.agent_id, call.queue, call.direction) == ("a1", "vip", "inbound")
    assert call.metadata["vip"] == "yes" and call.metadata["started_at"] == "2026-01-05T01:30:00Z"


def test_jsonl_manifest_with_a_broken_line(tmp_path, sqlite_url):
    write_fake_call(tmp_path / "a.wav", [("agent", 0, 1000, "hi", "happy")])
    manifest = tmp_path / "calls.jsonl"
    manifest.write_text('{"path": "a.wav", "agent_id": "a1", "tags": 3}\n{not json\n["a list"]\n', encoding="utf-8")
    s = run_batch(collect(manifest), analyzer_factory=FakeAnalyzer, db_url=sqlite_url)
    assert (s.done, s.failed) == (1, 2)
    assert sorted(f.row for f in failures(sqlite_url)) == [2, 3]


def test_disk_full_stops_cleanly_and_a_rerun_resumes(tmp_path, sqlite_url):
    from sqlalchemy import func, select

    from callsense.store import open_store
    from callsense.store.models import Claim

    folder = tmp_path / "in"
    write_fake_call(folder / "a.wav", [("agent", 0, 1000, "one", "happy")])
    write_fake_call(folder / "b.wav", [("agent", 0, 1000, "two", "happy")], fail="enospc")
    write_fake_call(folder / "c.wav", [("agent", 0, 1000, "three", "happy")])
    s = run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url)
    assert s.stopped and "disk full" in s.stopped and (s.done, s.failed) == (1, 0)
    assert len(stored(sqlite_url)) == 1 and failures(sqlite_url) == []  # not the file's fault: no failure record
    store = open_store(sqlite_url)
    with store.session() as ses:
        assert ses.execute(select(func.count()).select_from(Claim)).scalar() == 0
    store.close()
    write_fake_call(folder / "b.wav", [("agent", 0, 1000, "two", "happy")])  # space freed
    again = run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url)
    assert (again.done, again.skipped, again.stopped) == (2, 1, None)


def test_copy_and_delete_audio_policies(tmp_path, sqlite_url):
    from callsense.batch import file_sha256

    folder = make_folder(tmp_path / "in", n=2, broken=0)
    wavs = sorted(folder.rglob("*.wav"))
    shas = [file_sha256(p) for p in wavs]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,agent_id\n" + "".join(f"{p},a1\n" for p in wavs), encoding="utf-8")
    keep = tmp_path / "kept"
    opts = BatchOptions(copy_audio=keep, delete_audio_after=True)
    s = run_batch(collect(manifest), analyzer_factory=FakeAnalyzer, db_url=sqlite_url, options=opts)
    assert s.done == 2 and not any(p.exists() for p in wavs)
    for sha in shas:
        assert (keep / sha[:2] / f"{sha}.wav").is_file()
    assert not list(keep.rglob("*.tmp"))
    # re-running the same command: the deleted files are known results, not failures
    again = run_batch(collect(manifest), analyzer_factory=FakeAnalyzer, db_url=sqlite_url, options=opts)
    assert (again.skipped, again.failed) == (2, 0) and failures(sqlite_url) == []


def test_a_worker_that_dies_is_recorded_and_the_batch_goes_on(tmp_path, sqlite_url):
    folder = make_folder(tmp_path / "in", n=3, broken=0)
    write_fake_call(folder / "crash.wav", [("agent", 0, 1000, "x", "happy")], fail="crash")
    s = run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url, options=BatchOptions(workers=2))
    assert (s.done, s.failed) == (3, 1)
    [f] = failures(sqlite_url)
    assert f.source_path.endswith("crash.wav") and "worker process died" in f.message


def cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "callsense", *args], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def test_kill_9_mid_batch_then_rerun_gives_exactly_one_result_per_file(tmp_path, sqlite_url):
    folder = make_folder(tmp_path / "in", n=8, broken=0)
    env = {"CALLSENSE_FAKE_DELAY_S": "0.25"}
    p = cli("batch", str(folder), "--analyzer", FAKE, "--db", sqlite_url, "--workers", "2", "--no-progress", env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_count_or_zero(sqlite_url)) < 2:
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()
    os.killpg(p.pid, signal.SIGKILL)  # the batch and its workers, mid-run
    p.wait()
    partial = len(stored(sqlite_url))
    assert 2 <= partial < 8

    p = cli("batch", str(folder), "--analyzer", FAKE, "--db", sqlite_url, "--json", "--no-progress")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    summary = json.loads(out)
    assert summary["done"] == 8 - partial and summary["skipped"] == partial and summary["failed"] == 0
    rows = stored(sqlite_url)
    assert len(rows) == 8 and len({sha for sha, _ in rows}) == 8


def _children(pid: int) -> dict[int, str]:
    """Live (not zombie) child processes of ``pid``: {pid: command line}."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            if int(stat[1]) == pid and stat[0] not in (b"Z", b"X"):
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _runs(url: str) -> list[tuple[int, str, int]]:
    from sqlalchemy import select

    from callsense.store import open_store
    from callsense.store.models import ProcessingRun

    s = open_store(url)
    try:
        with s.session() as ses:
            return [tuple(r) for r in ses.execute(select(ProcessingRun.id, ProcessingRun.status, ProcessingRun.pid)
                                                  .order_by(ProcessingRun.id)).all()]
    finally:
        s.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
def test_workers_die_with_their_batch_and_the_next_run_marks_it_interrupted(tmp_path, sqlite_url):
    """kill -9 of the batch process alone (not its group): its workers exit within seconds instead of
    analysing on, and the next run records the killed run as interrupted."""
    folder = make_folder(tmp_path / "in", n=12, broken=0)
    log = tmp_path / "analysed.log"
    env = {"CALLSENSE_FAKE_DELAY_S": "0.5", "CALLSENSE_FAKE_LOG": str(log)}
    p = cli("batch", str(folder), "--analyzer", FAKE, "--db", sqlite_url, "--workers", "2", "--no-progress", env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_count_or_zero(sqlite_url)) < 2:
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()
    workers = [pid for pid, cmd in _children(p.pid).items() if "spawn_main" in cmd]
    assert len(workers) == 2, _children(p.pid)
    [(killed_run, status, pid)] = _runs(sqlite_url)
    assert (status, pid) == ("running", p.pid)

    os.kill(p.pid, signal.SIGKILL)  # the parent only: the workers must notice by themselves
    p.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "worker processes outlived their batch"
    analysed = log.read_text().count("\n")
    time.sleep(1.0)  # nobody is analysing any more
    assert log.read_text().count("\n") == analysed < 12
    assert _runs(sqlite_url)[0][1] == "running"  # a killed batch cannot record its own end

    p = cli("batch", str(folder), "--analyzer", FAKE, "--db", sqlite_url, "--json", "--no-progress")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert json.loads(out)["failed"] == 0
    runs = _runs(sqlite_url)
    assert [(r[0], r[1]) for r in runs] == [(killed_run, "interrupted"), (runs[1][0], "finished")]
    assert len(stored(sqlite_url)) == 12


def _count_or_zero(url: str) -> list:
    try:
        return stored(url)
    except Exception:  # noqa: BLE001 - the database may not exist yet
        return []


@pytest.mark.postgres
def test_two_concurrent_batches_on_postgresql_never_process_a_file_twice(tmp_path):
    folder = make_folder(tmp_path / "in", n=10, broken=1)
    log = tmp_path / "analysed.log"
    env = {"CALLSENSE_FAKE_DELAY_S": "0.6", "CALLSENSE_FAKE_LOG": str(log)}
    with fresh_postgres_database() as url:
        procs = [cli("batch", str(folder), "--analyzer", FAKE, "--db", url, "--workers", str(w), "--json",
                     "--no-progress", env=env) for w in (1, 2)]
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            outs.append(json.loads(out))
        analysed = log.read_text().splitlines()
        assert len(analysed) == len(set(analysed)) == 10  # every good file analysed exactly once
        assert sum(o["done"] for o in outs) == 10
        assert all(o["done"] > 0 for o in outs)  # both batches really worked
        rows = stored(url)
        assert len(rows) == 10 and len({sha for sha, _ in rows}) == 10
        assert len(failures(url)) == 1


def test_unreachable_database_is_one_clear_message(tmp_path):
    folder = make_folder(tmp_path / "in", n=1, broken=0)
    p = cli("batch", str(folder), "--analyzer", FAKE, "--db", "postgresql://nobody@127.0.0.1:1/none")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 5
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the database"), err
    assert "Traceback" not in err


def test_failures_command_and_retry_failed_without_source(tmp_path, sqlite_url, capsys):
    from callsense.cli.app import main

    folder = make_folder(tmp_path / "in", n=1, broken=1)
    run_batch(collect(folder), analyzer_factory=FakeAnalyzer, db_url=sqlite_url)
    with pytest.raises(SystemExit) as e:
        main(["failures", "--db", sqlite_url, "--json"])
    assert e.value.code == 0
    [row] = json.loads(capsys.readouterr().out)  # --json: one JSON array
    assert row["source_path"].endswith("broken0.mp3")
    write_fake_call(folder / "broken0.mp3", [("customer", 0, 1000, "now fine", "happy")])
    with pytest.raises(SystemExit) as e:
        main(["batch", "--retry-failed", "--db", sqlite_url, "--analyzer", FAKE, "--json", "--no-progress"])
    assert e.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["total"], summary["done"]) == (1, 1)
    assert failures(sqlite_url) == []


@pytest.mark.slow
def test_batch_real_pipeline_on_tiny_models(with_models, tmp_path, sqlite_url):
    """The real Analyzer (tiny forged models) in 2 worker processes, a broken file among good ones."""
    import shutil
    from functools import partial

    from callsense.pipeline import AnalyzeOptions, Analyzer
    from callsense.store import get_embeddings, get_result, list_calls, open_store

    examples = Path(__file__).resolve().parent.parent / "examples"
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(examples / "call_stereo.wav", folder / "a.wav")
    shutil.copy(examples / "call_stereo_8k_mulaw.wav", folder / "b.wav")
    (folder / "c.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    factory = partial(Analyzer, AnalyzeOptions(num_threads=1, allow_download=False))
    s = run_batch(collect(folder), analyzer_factory=factory, db_url=sqlite_url, options=BatchOptions(workers=2))
    assert (s.done, s.failed) == (2, 1), s.failures
    assert s.failures[0].path.endswith("c.wav")
    store = open_store(sqlite_url)
    try:
        calls = list_calls(store)
        assert len(calls) == 2
        for c in calls:
            r = get_result(store, c.call_id)
            assert r.segments and r.source.path.endswith((".wav",))
            assert c.fingerprint == factory().fingerprint
            if any(seg.emotion and seg.emotion.embedding_index is not None for seg in r.segments):
                assert "call" in get_embeddings(store, c.call_id)
    finally:
        store.close()
    assert run_batch(collect(folder), analyzer_factory=factory, db_url=sqlite_url).skipped == 3
