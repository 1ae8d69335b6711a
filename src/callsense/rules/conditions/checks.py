"""Checks of meaning that several condition types share (emotion names, regular expressions)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from callsense.labels import EMOTION_NAMES
from callsense.rules.model import Findings

EMOTION_GROUPS = ("positive", "negative", "neutral")


def check_emotions(findings: Findings, key: str, values: Sequence[str]) -> None:
    findings.need(bool(values), key, f"{key} must list emotions")
    for v in values:
        if v not in EMOTION_NAMES and v not in EMOTION_GROUPS:
            close = difflib.get_close_matches(v, [*EMOTION_NAMES, *EMOTION_GROUPS], n=1)
            findings.add(key, f"unknown emotion {v!r} (expected one of: {', '.join(EMOTION_NAMES)}, "
                         f"or a group: {', '.join(EMOTION_GROUPS)})", f"did you mean {close[0]!r}?" if close else None)


def check_regex(findings: Findings, key: str, pattern: str | None, hint: str | None) -> None:
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as e:
        findings.add(key, f"bad regular expression {pattern!r}: {e.msg} at position {e.pos}", hint)


def kind_of(value: Any) -> str:
    """'a mapping', 'a list', 'text' ... for messages about a value of the wrong kind."""
    for t, name in ((bool, "true/false"), (dict, "a mapping"), (list, "a list"), (str, "text")):
        if isinstance(value, t):
            return name
    return "nothing" if value is None else f"a {type(value).__name__}"
