"""How a call's result JSON is stored: compressed, behind a one-byte codec marker.

Since schema revision 0006 ``calls.result_z`` holds ``b"z" + zlib(json)`` and ``calls.result_json``
is empty; rows stored before keep the plain JSON in ``result_json`` (``result_z`` NULL) and are read
as they are. zlib (level 6) is in the standard library and shrinks a call's JSON about 5x (measured
in bench/RESULTS.md); the marker leaves room for another codec without touching old rows.
"""

from __future__ import annotations

import zlib

ZLIB = b"z"
LEVEL = 6


def compress(text: str) -> bytes:
    return ZLIB + zlib.compress(text.encode("utf-8"), LEVEL)


def result_text(result_json: str | None, result_z: bytes | None) -> str:
    """The stored result JSON of a call row, whichever way it was stored."""
    if result_z:
        data = bytes(result_z)
        if data[:1] == ZLIB:
            return zlib.decompress(data[1:]).decode("utf-8")
        raise ValueError(f"stored result with an unknown codec marker {data[:1]!r}")
    return result_json or ""
