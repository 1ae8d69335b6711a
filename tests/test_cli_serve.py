"""`callsense serve` fails before it serves: a bad data folder is exit 3, a bad store exit 5, one line each;
the renamed options keep their old names as deprecated aliases."""

from __future__ import annotations

import subprocess
import sys


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callsense", "serve", "--port", "1", "--no-ui", *args],
                          capture_output=True, text=True, timeout=90, check=False)


def test_unwritable_data_dir_is_one_line_and_exit_3(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = serve("--data-dir", str(blocker / "data"))
    assert proc.returncode == 3, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error:") and str(blocker / "data") in line and "--data-dir" in line


def test_a_store_that_cannot_be_opened_is_one_line_and_exit_5(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = serve("--data-dir", str(tmp_path / "data"), "--db", f"sqlite:///{blocker / 'store.db'}")
    assert proc.returncode == 5, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error:") and "store.db" in line and "Traceback" not in proc.stderr


def test_old_option_names_still_work_and_say_they_are_deprecated(tmp_path):
    # a public address without keys is refused (exit 2) right after the options are read: no server starts
    proc = serve("--host", "0.0.0.0", "--data-dir", str(tmp_path), "--max-upload-mb", "5", "--max-duration-s", "60",
                 "--runtime", "onnx", "--database-url", f"sqlite:///{tmp_path / 's.db'}")
    assert proc.returncode == 2 and "without API keys" in proc.stderr
    for old, new in (("--max-upload-mb", "--max-size"), ("--max-duration-s", "--max-duration"),
                     ("--runtime", "--asr-runtime"), ("--database-url", "--db")):
        assert any(old in line and "deprecated" in line and new in line for line in proc.stderr.splitlines()), old


def test_help_names_the_shared_options():
    proc = subprocess.run([sys.executable, "-m", "callsense", "serve", "--help"], capture_output=True, text=True,
                          timeout=60, check=False, env={**__import__("os").environ, "COLUMNS": "200"})
    for name in ("--db", "--max-size", "--max-duration", "--asr-runtime", "--emotion-runtime", "--emotion-model"):
        assert name in proc.stdout
    for old in ("--database-url", "--max-upload-mb", "--max-duration-s", "--runtime "):
        assert old not in proc.stdout
