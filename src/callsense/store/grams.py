"""The short-term index: which segments contain a given 1- or 2-character term.

SQLite's trigram FTS and PostgreSQL's pg_trgm need 3 characters, but the most common Chinese keywords
have two (退款, 投诉, 发货). The index only narrows the candidates: the exact, case-insensitive
substring test (ILIKE) still decides, so matching semantics are those of the scan.

**SQLite** (revision 0011): ``segments_chars``, an FTS5 index with one token per character — every
text is indexed as the view ``segments_chars_src`` gives it, each character followed by a space, by
``unicode61`` with every category but spaces as token characters (so punctuation and symbols are
tokens too; case is folded by the tokenizer, on both sides alike). A term is a phrase query of its
characters (:func:`char_phrase`): one doclist for a 1-character term, two merged by position for a
2-character one. A substring of a text is always a run of consecutive tokens of it, so every
segment containing the term is a candidate. No copy of the text is stored (external content), and
triggers keep it in step on every insert, update and delete, by any path. On text of realistic
diversity it holds ~70 bytes a segment against ~770 for the gram table below (measured: docs/store.md).

**PostgreSQL**: each segment's case-folded text has its distinct 2-character grams, plus its last
character alone, stored in ``segment_grams`` (primary key ``(gram, segment_pk)``): a 2-character
term is a key lookup (``gram = term``), a 1-character term a key-range scan over the grams that start
with it (the last character is stored alone because no gram starts with it otherwise).
"""

from __future__ import annotations

import unicodedata
from typing import Any

MAX_TERM = 2  # terms up to this length are served by the short-term index

# What the character index does not index: the spaces (Unicode Zs; U+180E was one in the Unicode
# version SQLite's tables follow). A term of nothing else cannot use it.
_SEPARATORS = frozenset({"\u180e"})


def fold(text: str) -> str:
    """Case folding, character by character (so that a substring stays a substring)."""
    return text.casefold()


def grams(text: str) -> set[str]:
    """The grams stored for ``text`` (PostgreSQL): its distinct 2-character substrings and its last character."""
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


def char_phrase(term: str) -> str | None:
    """The FTS5 query on ``segments_chars`` that every segment containing ``term`` matches: the phrase
    of its characters, spaced as the index's view spaces the texts (the tokenizer then drops the
    spaces and folds case on both sides alike). None when the term has no indexed character (spaces only)."""
    if all(ch in _SEPARATORS or unicodedata.category(ch) == "Zs" for ch in term):
        return None
    return '"' + " ".join(term).replace('"', '""') + '"'
