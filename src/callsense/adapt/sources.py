"""Labelled clips for training and evaluation: a CSV or JSONL of ``path,label[,speaker]``.

Relative paths are resolved against the source file's folder. Every problem is an
:class:`~callsense.errors.InputError` naming the file and the line.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from callsense.errors import AudioNotFoundError, InputError


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    label: str
    speaker: str | None = None  # the CV group (speaker or call); None: the clip is its own group


def read_source(source: Path) -> tuple[LabelledClip, ...]:
    """The clips listed in ``source`` (``.csv`` with a header, or ``.jsonl``), in file order."""
    source = Path(source)
    if not source.is_file():
        raise AudioNotFoundError("no such clip list", source=source,
                                 hint="give a CSV or JSONL file of path,label[,speaker] rows")
    try:
        text = source.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the clip list: {e}", source=source) from e
    rows: list[tuple[int, dict]] = []
    if source.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise InputError(f"line {n}: not JSON ({e.args[0]})", source=source,
                                 hint='one object per line: {"path": ..., "label": ...}') from e
            if not isinstance(row, dict):
                raise InputError(f"line {n}: expected an object with path and label", source=source)
            rows.append((n, row))
    else:
        reader = csv.DictReader(text.splitlines())
        missing = {"path", "label"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"the header lacks {', '.join(sorted(missing))} (has {reader.fieldnames})",
                             source=source, hint="first line: path,label[,speaker]")
        rows = [(n, row) for n, row in enumerate(reader, 2)]
    clips = []
    for n, row in rows:
        path, label = str(row.get("path") or "").strip(), str(row.get("label") or "").strip()
        if not path or not label:
            raise InputError(f"line {n}: path and label are required", source=source)
        p = Path(path)
        speaker = row.get("speaker") or row.get("call_id")
        clips.append(LabelledClip(p if p.is_absolute() else source.parent / p, label,
                                  str(speaker).strip() if speaker not in (None, "") else None))
    if not clips:
        raise InputError("the clip list is empty", source=source)
    return tuple(clips)
