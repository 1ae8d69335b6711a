"""What a batch processes: a folder (recursive, by extension), a glob, one file, or a manifest.

A manifest is a CSV file (header row) or a JSONL file (one object per line) with a ``path`` column
(relative paths are relative to the manifest's folder) and any other columns as call metadata
(``agent_id``, ``team``, ``queue``, ``category``, ``direction``, ``customer_id``, ``started_at``, custom
fields). A row with no path, a missing file, or bad metadata becomes a :class:`WorkItem` carrying its
error, which the runner records as a failure of that row.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callsense.errors import AudioNotFoundError, CallsenseError, InputError, UsageError

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".aac", ".amr", ".wma",
                                     ".webm", ".mp4", ".mka", ".gsm", ".au")
MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class WorkItem:
    """One recording to analyse (or one manifest row that cannot be, with ``error`` set)."""

    key: str  # identity for failure records: the absolute path, or "manifest.csv#row"
    path: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    manifest: str | None = None
    row: int | None = None  # 1-based data row in the manifest
    error: CallsenseError | None = None


def collect(source: str | Path, *, extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
            path_column: str = "path") -> list[WorkItem]:
    """The work items of ``source`` (see the module docstring), in a stable order."""
    text = str(source)
    p = Path(text).expanduser()
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        return [_file_item(f) for f in files]
    if p.is_file() and p.suffix.lower() in MANIFEST_EXTENSIONS:
        return list(read_manifest(p, path_column=path_column))
    if p.is_file():
        return [_file_item(p)]
    if any(ch in text for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
        return [_file_item(f) for f in files if f.suffix.lower() in exts or "." + f.suffix.lower() in exts]
    # bad input (exit 3), as `callsense analyze` says of a missing file
    raise InputError("no such file or folder (expected a folder, an audio file, a manifest (.csv/.jsonl) "
                     "or a glob)", source=text,
                     hint="e.g. callsense batch recordings/  or  callsense batch 'calls/**/*.wav'")


def _file_item(path: Path) -> WorkItem:
    resolved = str(path.resolve())
    return WorkItem(key=resolved, path=resolved)


def read_manifest(path: Path, *, path_column: str = "path") -> Iterator[WorkItem]:
    from callsense.store.metadata import normalize_metadata

    base = path.resolve().parent
    for row_no, row, row_error in _rows(path):
        key = f"{path.resolve()}#{row_no}"
        if row_error is not None:
            yield WorkItem(key=key, path=None, manifest=str(path), row=row_no, error=row_error)
            continue
        raw_path = row.pop(path_column, None)
        meta_src = f"{path.name} row {row_no}"
        if raw_path is None or not str(raw_path).strip():
            yield WorkItem(key=key, path=None, metadata=row, manifest=str(path), row=row_no,
                           error=InputError(f"no {path_column!r} value", source=meta_src))
            continue
        audio = Path(str(raw_path).strip()).expanduser()
        audio = (audio if audio.is_absolute() else base / audio).resolve()
        try:
            meta = normalize_metadata(row, source=meta_src)
        except InputError as e:
            yield WorkItem(key=str(audio), path=str(audio), metadata={}, manifest=str(path), row=row_no, error=e)
            continue
        error = None
        if not audio.is_file():
            error = AudioNotFoundError("file not found", hint=f"fix the path in {path.name} row {row_no}",
                                       source=audio)
        yield WorkItem(key=str(audio), path=str(audio), metadata=meta, manifest=str(path), row=row_no, error=error)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any], CallsenseError | None]]:
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames:
                    raise UsageError(f"{path}: empty manifest (no header row)")
                for i, row in enumerate(reader, start=1):
                    extra = row.pop(None, None)  # type: ignore[call-overload]
                    if extra:
                        yield i, {}, InputError(f"row has {len(extra)} more cells than the header",
                                                source=f"{path.name} row {i}")
                        continue
                    yield i, {k.strip(): v for k, v in row.items() if k is not None}, None
        else:
            with path.open(encoding="utf-8") as f:
                i = 0
                for line in f:
                    if not line.strip():
                        continue
                    i += 1
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        yield i, {}, InputError(f"not valid JSON: {e.msg}", source=f"{path.name} row {i}")
                        continue
                    if not isinstance(obj, dict):
                        yield i, {}, InputError("a row must be a JSON object", source=f"{path.name} row {i}")
                        continue
                    yield i, obj, None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: manifest is not UTF-8 text ({e.reason})") from e
