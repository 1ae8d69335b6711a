"""Uploads: written straight into the private ``uploads/`` folder under a server-chosen name, with the
size limit enforced while the bytes arrive (at most the limit plus one chunk is ever written).

The client's file name is kept only for display (:func:`safe_filename`); it never becomes a path.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from callsense.errors import CallsenseError
from callsense.service.errors import BadRequestError, UploadTooLargeError

log = logging.getLogger("callsense")

CHUNK = 1 << 20
SUFFIX = ".upload"
_EMPTY_HINT = "send an audio file (WAV, MP3, M4A, FLAC, OGG, ...)"


@dataclass(frozen=True)
class Upload:
    path: Path  # server-chosen name under the private uploads folder
    filename: str  # the client's name, sanitised, for display only
    size: int


def safe_filename(name: str | None) -> str:
    """A display name from a client's file name: no folders, no control characters, bounded length."""
    base = (name or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip() or "upload"
    return base[:200]


@contextmanager
def named_as_uploaded(upload: Upload, count: Callable[[str], None] | None = None) -> Iterator[None]:
    """Errors raised inside name the client's file, never the server's upload path (and are counted)."""
    try:
        yield
    except CallsenseError as e:
        if e.source and str(upload.path) in e.source:
            e.source = upload.filename
        if count is not None:
            count(e.code)
        raise


class UploadWriter:
    """One upload being received: ``write`` chunks as they arrive, then ``finish`` (or ``abort``)."""

    def __init__(self, path: Path, filename: str | None, max_bytes: int, max_mb: float):
        self.path = path
        self.filename = safe_filename(filename)
        self.size = 0
        self._max_bytes = max_bytes
        self._max_mb = max_mb
        self._file: BinaryIO | None = open(path, "xb")  # noqa: SIM115 ("x": never another upload's file)

    def write(self, data: bytes) -> None:
        """Append ``data``; raises 413 (and removes the file) once the upload passes the limit."""
        self.size += len(data)
        if self.size > self._max_bytes:
            self.abort()
            raise UploadTooLargeError(f"upload larger than the limit of {self._max_mb:g} MB",
                                      hint="send a shorter recording or raise --max-upload-mb",
                                      source=self.filename)
        if self._file is not None:
            self._file.write(data)

    def finish(self) -> Upload:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.size == 0:
            self.path.unlink(missing_ok=True)
            raise BadRequestError("the uploaded file is empty", source=self.filename, hint=_EMPTY_HINT)
        return Upload(path=self.path, filename=self.filename, size=self.size)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


class UploadSpool:
    """The private uploads folder of one service."""

    def __init__(self, folder: Path, max_bytes: int, max_mb: float):
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_mb = max_mb

    def open(self, filename: str | None) -> UploadWriter:
        """A writer for a new upload named ``<uuid4>.upload`` (the client chooses nothing of it)."""
        return UploadWriter(self.folder / f"{uuid.uuid4().hex}{SUFFIX}", filename, self.max_bytes, self.max_mb)

    def save(self, stream: BinaryIO, filename: str | None) -> Upload:
        """Copy a stream in, refusing it (413) as soon as it exceeds the limit."""
        writer = self.open(filename)
        try:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.finish()

    def save_path(self, path: str | Path) -> Upload:
        """Copy a local file (UI uploads, examples) in."""
        p = Path(path)
        with open(p, "rb") as f:
            return self.save(f, p.name)

    def discard(self, upload: Upload) -> None:
        upload.path.unlink(missing_ok=True)

    def scrub(self, text: str | None) -> str | None:
        """``text`` without this folder's path (a last guard: responses never show server paths)."""
        if not text:
            return text
        return text.replace(str(self.folder) + "/", "").replace(str(self.folder), "uploads")
