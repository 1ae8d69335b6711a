"""Call metadata (agent id, queue, started-at, custom fields): validation and normalisation.

Metadata arrives from manifests, the API and ``analyze --meta``; it is checked here once so that a bad
row fails with a message naming the field, and so that the store can index the known fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from callsense.errors import InputError

KNOWN_FIELDS = ("agent_id", "team", "queue", "category", "direction", "customer_id", "started_at")
DIRECTIONS = {"inbound": "inbound", "in": "inbound", "outbound": "outbound", "out": "outbound"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


def normalize_metadata(meta: Mapping[str, Any] | None, *, source: str | None = None) -> dict[str, Any]:
    """Checked, normalised metadata: empty values dropped, ``started_at`` as ISO 8601 UTC,
    ``direction`` as inbound/outbound. Raises :class:`InputError` naming the bad field."""
    out: dict[str, Any] = {}
    for key, value in (meta or {}).items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise InputError(f"bad metadata: field name {key!r} is not a simple name",
                             hint="use letters, digits, _ . - (e.g. agent_id)", source=source)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        if not isinstance(value, (str, int, float, bool)):
            raise InputError(f"bad metadata: {key} must be a text or a number, not {type(value).__name__}",
                             source=source)
        if key == "started_at":
            value = parse_time(value, field=f"bad metadata: {key}", source=source).isoformat().replace("+00:00", "Z")
        elif key == "direction":
            d = DIRECTIONS.get(str(value).strip().lower())
            if d is None:
                raise InputError(f"bad metadata: direction {value!r} is not inbound or outbound", source=source)
            value = d
        elif key in KNOWN_FIELDS:
            value = str(value).strip()
            if len(value) > 128:
                raise InputError(f"bad metadata: {key} is longer than 128 characters", source=source)
        out[key] = value
    return out


def parse_time(value: Any, *, field: str = "time", source: str | None = None) -> datetime:
    """An aware UTC datetime from ISO 8601 text (naive = UTC) or epoch seconds."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InputError(f"{field} {text!r} is not an ISO 8601 time",
                             hint="write e.g. 2024-05-01T09:30:00+08:00", source=source) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def utc_naive(value: Any) -> datetime | None:
    """The naive-UTC datetime the store keeps (None stays None)."""
    if value is None or value == "":
        return None
    return parse_time(value).replace(tzinfo=None)
