"""The short-term index: which segments contain a given 1- or 2-character term.

SQLite's trigram FTS and PostgreSQL's pg_trgm need 3 characters, but the most common Chinese keywords
have two (退款, 投诉, 发货). Each segment's text is case-folded and its distinct 2-character grams, plus
its last character alone, are stored in ``segment_grams`` (primary key ``(gram, segment_pk)``):

* a 2-character term is a key lookup (``gram = term``);
* a 1-character term is a key-range scan over the grams that start with it (the last character is
  stored alone because no gram starts with it otherwise).

The index only narrows the candidates: the exact, case-insensitive substring test (ILIKE) still
decides, so matching semantics are those of the scan.
"""

from __future__ import annotations

from typing import Any

MAX_TERM = 2  # terms up to this length are served by the gram index


def fold(text: str) -> str:
    """Case folding, character by character (so that a substring stays a substring)."""
    return text.casefold()


def grams(text: str) -> set[str]:
    """The grams stored for ``text``: its distinct 2-character substrings and its last character."""
    t = fold(text or "")
    if not t:
        return set()
    out = {t[i:i + 2] for i in range(len(t) - 1)}
    out.add(t[-1])
    return out


def gram_condition(gram_col: Any, term: str) -> Any:
    """The SQL condition on ``gram_col`` that finds every segment containing ``term`` (1–2 chars)."""
    t = fold(term)
    if len(t) == 2:
        return gram_col == t
    if len(t) != 1:
        raise ValueError("gram_condition serves terms of 1 or 2 characters")
    upper = chr(ord(t) + 1) if ord(t) < 0x10FFFF else t + "\U0010ffff"
    return (gram_col >= t) & (gram_col < upper)


def servable(term: str) -> bool:
    return 1 <= len(fold(term)) <= MAX_TERM
