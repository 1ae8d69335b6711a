"""Reading and validating result.json, through pydantic's dataclass support."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from callsense.errors import ResultFormatError
from callsense.result.model import CallAnalysis


def result_from_dict(data: dict[str, Any], source: str | None = None) -> CallAnalysis:
    """A validated :class:`CallAnalysis` from a result.json mapping (see :meth:`CallAnalysis.from_dict`)."""
    return CallAnalysis.from_dict(data, source)


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
