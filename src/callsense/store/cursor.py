"""Keyset pagination: an opaque cursor naming the last row of a page, and the condition for the next.

Listings and searches are ordered newest call first (``sort_at`` descending), then ``call_id``, then
(for segment hits) the segment's index in its call. The cursor is that key; the next page is
``key > cursor`` in this order, an index range scan however deep the page — unlike ``OFFSET``, whose
cost grows with the rows it skips.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from callsense.errors import UsageError


def make_cursor(sort_at: datetime | None, call_id: str, idx: int | None = None) -> str:
    key = [sort_at.isoformat() if sort_at else None, call_id] + ([idx] if idx is not None else [])
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[datetime | None, str, int | None]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = datetime.fromisoformat(raw[0]) if raw[0] else None
        return at, str(raw[1]), (int(raw[2]) if len(raw) > 2 else None)
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise UsageError(f"bad page cursor {cursor[:40]!r}",
                         hint="pass the cursor of the last item of the previous page, unchanged") from e


def after_condition(cursor: str, sort_col: Any, id_col: Any, idx_col: Any = None) -> Any:
    """Rows after ``cursor`` in (sort_at desc, call_id, idx) order."""
    from sqlalchemy import and_, or_

    at, call_id, idx = parse_cursor(cursor)
    same_call = id_col == call_id
    later_in_call = and_(same_call, idx_col > idx) if idx_col is not None and idx is not None else None
    if at is None:
        return or_(id_col > call_id, later_in_call) if later_in_call is not None else id_col > call_id
    parts = [sort_col < at, and_(sort_col == at, id_col > call_id)]
    if later_in_call is not None:
        parts.append(and_(sort_col == at, later_in_call))
    # the redundant bound is what the planner turns into an index range (the OR alone is not)
    return and_(sort_col <= at, or_(*parts))
