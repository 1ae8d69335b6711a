"""Option helpers shared by the commands: one name per thing, old names as deprecated aliases, paths checked.

Names used everywhere (docs/README "Commands"): ``--db URL`` (the store), ``--asr-runtime`` /
``--emotion-runtime`` / ``--emotion-model``, ``--max-duration SECONDS`` / ``--max-size MB`` (limits on
input), ``--json`` (one JSON document on stdout). An old name stays one release as a hidden option that
prints ``warning: --old is deprecated; use --new`` and then behaves like the new one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TypeVar

import typer

from callsense.errors import InputError, UsageError

T = TypeVar("T")

DB_HELP = "Store URL (default: $CALLSENSE_DATABASE_URL, else SQLite in the user data folder)."
DB_METAVAR = "URL"


def deprecated_option(old: str, help_new: str) -> Any:
    """A hidden option for a renamed one (pair it with :func:`prefer`)."""
    return typer.Option(None, old, hidden=True, help=f"Deprecated: use {help_new}.")


def prefer(new_value: T, old_value: T | None, *, old: str, new: str, default: Any = None) -> T:
    """The value of ``new``, or of its deprecated alias ``old`` (printing the deprecation line)."""
    if old_value is None:
        return new_value
    sys.stderr.write(f"warning: {old} is deprecated and goes in the next release; use {new}\n")
    if new_value is not None and new_value != default and new_value != old_value:
        raise UsageError(f"{old} and {new} are the same option; give only {new}")
    return old_value


def writable_folder(path: Path, *, option: str) -> Path:
    """Prove ``path`` is (or can become) a writable folder, before any model loads; creates nothing.

    Raises :class:`InputError` (exit 3): the path is the user's to fix.
    """
    hint = f"give {option} a folder you can write to"
    probe = path.expanduser().absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"cannot create a folder here: {probe} is not a folder", source=path, hint=hint)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError("cannot write here: permission denied" + ("" if probe == path else f" in {probe}"),
                         source=path, hint=hint)
    return path
