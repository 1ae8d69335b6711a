"""Reading and validating result.json, through pydantic's dataclass support."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from callsense.errors import ResultFormatError
from callsense.result.model import SCHEMA_VERSION, CallAnalysis


@lru_cache(maxsize=1)
def _adapter():  # pydantic import is deferred: it costs ~0.2 s and most runs only write results
    from pydantic import TypeAdapter

    return TypeAdapter(CallAnalysis)


def result_from_dict(data: dict[str, Any], source: str | None = None) -> CallAnalysis:
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version is None:
        raise ResultFormatError("not a callsense result (no schema_version)", source=source)
    if str(version).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ResultFormatError(
            f"result schema version {version} is not supported (this callsense reads {SCHEMA_VERSION})",
            hint="re-run `callsense analyze` on the recording to produce a current result",
            source=source,
        )
    from pydantic import ValidationError

    sep = data.get("separation")
    if isinstance(sep, dict) and sep.get("method") == "channel_map":  # the name before issue 14
        data = {**data, "separation": {**sep, "method": "stereo"}}
    try:
        return _adapter().validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ResultFormatError(f"invalid result at {loc}: {first['msg']}", source=source) from e


def read_result(path: str | Path) -> CallAnalysis:
    """Load a result.json (or a call folder containing one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "result.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ResultFormatError("file not found", source=p) from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultFormatError(f"not valid JSON: {e}", source=p) from e
    return result_from_dict(data, source=str(p))


def dump_result(result: CallAnalysis) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False, indent=2)
