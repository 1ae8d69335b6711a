"""``callsense ARGV`` run in the test's own process, answered as ``subprocess.run(..., text=True)`` answers.

A ``python -m callsense`` subprocess pays Python's start-up and every import (numpy, onnxruntime,
sherpa-onnx, the CLI) again: seconds per command on a loaded 2-core runner, where the command's own
work with tiny models is often less. In-process, only that work is left. The CLI is built for it
(``cli.app.main`` returns through ``sys.exit``; its log handler writes to whatever ``sys.stderr`` is).

Keep a real subprocess where the process itself is under test: an exit status decided at interpreter
shutdown (an error while models load on background threads), signals, crashes, the ``python -m``
entry point, help text laid out for ``$COLUMNS``.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import Any


def run_cli(argv: Sequence[Any], env: Mapping[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``callsense *argv`` here; ``env`` sets variables for the command (None unsets one), restored after.

    Returns the exit status, stdout and stderr like a finished subprocess."""
    from callsense.cli.app import main

    args = [str(a) for a in argv]
    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    try:
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(args)
                code = 0
            except SystemExit as e:  # main() always ends here: sys.exit(status)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["callsense", *args], code, out.getvalue(), err.getvalue())
