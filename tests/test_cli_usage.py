"""The command line fails like a good Unix tool: usage errors print the usage and one line, exit 2; no
traceback; --version; readable help; library logs only with -v. All through `python -m callsense`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from callsense._version import __version__


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "callsense", *args], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "COLUMNS": "200", **(env or {})})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("args, usage, needle", [
    (["search", "--bogus"], "Usage: callsense search [OPTIONS] [TEXT]", "--bogus"),
    (["--no-such-option"], "Usage: callsense [OPTIONS] COMMAND [ARGS]...", "--no-such-option"),
    (["analyze"], "Usage: callsense analyze [OPTIONS] FILE|DIR|GLOB...", "FILE|DIR|GLOB"),
    (["search", "--limit", "many"], "Usage: callsense search", "--limit"),
    (["rules", "run", "default"], "Usage: callsense rules run", "RESULTS"),
    (["no-such-command"], "Usage: callsense [OPTIONS] COMMAND [ARGS]...", "no-such-command"),
])
def test_usage_errors_print_the_usage_and_one_line_and_exit_2(args, usage, needle):
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    [line] = error_lines(proc.stderr)
    assert needle in line and "--help" in line
    assert proc.stderr.splitlines()[0].startswith(usage)
    assert len(proc.stderr.strip().splitlines()) == 2  # the usage, then the error


def test_bare_callsense_prints_the_help_and_exits_2():
    proc = cli()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Usage: callsense" in proc.stderr and "analyze" in proc.stderr and "serve" in proc.stderr


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"callsense {__version__}"


@pytest.mark.parametrize("command", [[], ["analyze"], ["rules", "run"], ["search"], ["batch"], ["emotion"],
                                     ["serve"], ["export"], ["report"], ["models", "pull"]])
def test_help_has_readable_placeholders(command):
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for bad in ("<bool>", "<list[", "<str>", "<int>", "<float>", "<path>"):
        assert bad not in text, (bad, text)
    assert not re.search(r"\{\w+\}", text), text  # Typer's {files}
    assert "python -m" not in text  # the program is called callsense, however it was started


def test_store_commands_print_no_library_logs_unless_verbose(tmp_path):
    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    quiet = cli("search", "--db", db)
    assert quiet.returncode == 0, quiet.stderr
    assert "alembic" not in quiet.stderr
    assert len(quiet.stderr.strip().splitlines()) <= 1  # at most our own "schema upgraded" line
    verbose = cli("-v", "search", "--db", f"sqlite:///{tmp_path / 'other.db'}")
    assert verbose.returncode == 0 and re.search(r"INFO alembic\.runtime", verbose.stderr)


def test_debug_lets_a_usage_error_through_as_one_line_too():
    proc = cli("--debug", "search", "--bogus")
    assert proc.returncode == 2 and len(error_lines(proc.stderr)) == 1


@pytest.mark.parametrize("verbose", [False, True])
def test_hub_library_logs_only_with_verbose(verbose):
    """modelscope attaches a console handler of its own; its warnings still stay quiet without -v."""
    code = ("from callsense.cli.app import setup_logging; import logging, warnings; "
            f"setup_logging(verbose={verbose}); "
            "from modelscope.utils.logger import get_logger; get_logger().warning('hub-says-hello'); "
            "logging.getLogger('httpx').info('httpx-says-hello'); warnings.warn('lib-warns'); "
            "logging.getLogger('callsense').info('ours')")
    import os

    env = {k: v for k, v in os.environ.items() if k != "MODELSCOPE_LOG_LEVEL"}  # as a fresh shell has it
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert "ours" in proc.stderr
    for line in ("hub-says-hello", "httpx-says-hello", "lib-warns"):
        assert (line in proc.stderr) is verbose, (line, proc.stderr)


def test_a_missing_batch_source_is_bad_input_and_an_empty_folder_is_said(tmp_path):
    """`batch` says what `analyze` says of the same mistakes: a path that is not there is bad input (exit
    3, one line); a folder without recordings is not a failure (tonight's folder may be empty) but is
    said, instead of a silent "0 done"."""
    env = {"CALLSENSE_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}", "CALLSENSE_HOME": str(tmp_path / "h")}
    proc = cli("batch", str(tmp_path / "no-such-folder"), "--no-progress", env=env)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert "no-such-folder" in line and "no such file or folder" in line
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a recording")
    proc = cli("batch", str(tmp_path / "empty"), "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"no recordings found in {tmp_path / 'empty'}" in proc.stderr and ".wav" in proc.stderr


def test_enrolling_a_missing_clip_names_the_clip_before_any_model(tmp_path):
    """No speaker model installed and a typo in the clip's path: the path is the error (exit 3), not the model."""
    env = {"CALLSENSE_MODEL_DIR": str(tmp_path / "no-models"), "CALLSENSE_HOME": str(tmp_path / "h"),
           "CALLSENSE_OFFLINE": "1"}
    proc = cli("agents", "enroll", "a1", str(tmp_path / "missing.wav"), env=env)
    assert proc.returncode == 3, proc.stderr
    [line] = error_lines(proc.stderr)
    assert "missing.wav" in line and "no such file" in line


def test_a_bad_search_bound_or_tag_is_a_usage_error(tmp_path):
    env = {"CALLSENSE_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    for args, needle in ((["search", "--since", "yesterday"], "since 'yesterday' is not an ISO 8601 time"),
                         (["search", "--event", "Explosion"], "unknown event tag 'Explosion'")):
        proc = cli(*args, env=env)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        [line] = error_lines(proc.stderr)
        assert needle in line
