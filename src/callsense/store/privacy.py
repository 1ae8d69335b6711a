"""Privacy: PII redaction of transcripts, and purging by retention.

Redaction replaces, in this order (longest patterns first, so an ID number is not half a phone):
emails → ``[EMAIL]``, Chinese resident ID numbers (18 characters, last may be X) → ``[ID]``, bank card
numbers (16–19 digits, optionally grouped by spaces or dashes) → ``[CARD]``, phone numbers (mainland
mobiles, landlines with area code, international ``+`` numbers, and runs of 7+ spoken Chinese digits
such as 一三八…) → ``[PHONE]``. Stored transcripts are redacted when ``--redact`` is given; exports
redact by default (``--no-redact`` turns it off).

:func:`purge` deletes records (and/or the kept audio copies) of calls older than a retention age.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from callsense.errors import UsageError

if TYPE_CHECKING:
    from callsense.result.model import CallAnalysis
    from callsense.store.db import Store

log = logging.getLogger("callsense")

PII_KINDS = ("email", "id", "card", "phone")

_CN_DIGITS = "零〇一二三四五六七八九幺两"
_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"),
    "id": re.compile(r"(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9])"),
    "card": re.compile(r"(?<![0-9])(?:\d{4}[ \-]?){3}\d{4}(?:[ \-]?\d{1,3})?(?![0-9])"),
    "phone": re.compile(
        r"(?:\+\d{1,3}[ \-]?)?(?<![0-9])1[3-9]\d[ \-]?\d{4}[ \-]?\d{4}(?![0-9])"  # mainland mobile
        r"|(?<![0-9])0\d{2,3}[ \-]?\d{7,8}(?![0-9])"  # landline with area code
        r"|\+\d{1,3}[ \-]?\d[\d \-]{6,14}\d"  # international
        rf"|[{_CN_DIGITS}]{{7,}}"  # spoken digits, e.g. 一三八一二三四五六七八
    ),
}
TOKENS = {"email": "[EMAIL]", "id": "[ID]", "card": "[CARD]", "phone": "[PHONE]"}


@dataclass(frozen=True)
class RedactionConfig:
    """Which kinds of PII to replace (all of :data:`PII_KINDS` by default)."""

    kinds: tuple[str, ...] = PII_KINDS

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(PII_KINDS)
        if unknown:
            raise UsageError(f"unknown PII kind(s) {sorted(unknown)}; choose from {', '.join(PII_KINDS)}")


def redact_text(text: str, config: RedactionConfig = RedactionConfig()) -> tuple[str, tuple[str, ...]]:
    """``text`` with PII replaced by tokens, and the kinds that were found (in :data:`PII_KINDS` order)."""
    found: list[str] = []
    for kind in PII_KINDS:
        if kind not in config.kinds or not text:
            continue
        text, n = _PATTERNS[kind].subn(TOKENS[kind], text)
        if n:
            found.append(kind)
    return text, tuple(found)


def redact_result(result: CallAnalysis, config: RedactionConfig = RedactionConfig()) -> CallAnalysis:
    """A copy of ``result`` whose segment texts (and rule evidence texts) are redacted."""
    segments = []
    for seg in result.segments:
        text, kinds = redact_text(seg.text, config)
        no_itn = redact_text(seg.text_no_itn, config)[0] if seg.text_no_itn else seg.text_no_itn
        redactions = tuple(dict.fromkeys(seg.redactions + kinds))
        tokens = () if kinds else seg.tokens  # token times would spell the number out again
        segments.append(dataclasses.replace(seg, text=text, text_no_itn=no_itn, redactions=redactions, tokens=tokens))
    hits = []
    for hit in result.rule_hits:
        evidence = tuple(
            dataclasses.replace(ev, text=redact_text(ev.text, config)[0]) if ev.text else ev for ev in hit.evidence
        )
        hits.append(dataclasses.replace(hit, evidence=evidence))
    return dataclasses.replace(result, segments=tuple(segments), rule_hits=tuple(hits))


# ---------------------------------------------------------------- retention

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


def parse_age(text: str) -> timedelta:
    """``"90d"`` → 90 days (units s, m, h, d, w; a bare number means days)."""
    m = _AGE.match(str(text))
    if not m:
        raise UsageError(f"bad age {text!r}: write e.g. 90d, 12h or 2w")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


PurgeWhat = Literal["records", "audio", "all"]


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime  # naive UTC: calls stored before this were affected
    calls: int  # call records deleted
    audio_files: int  # kept audio copies deleted
    failures: int  # failure records deleted
    dry_run: bool


def purge(store: Store, older_than: timedelta | str, *, what: PurgeWhat = "all", dry_run: bool = False,
          now: datetime | None = None) -> PurgeReport:
    """Delete what is older than ``older_than`` (by the time the call was stored).

    ``what="audio"`` deletes only the audio copies kept by ``--copy-audio`` (the records stay, marked
    ``audio_deleted``); ``"records"`` deletes the call records (and everything hanging off them) and old
    failure records; ``"all"`` does both.
    """
    from sqlalchemy import delete, select, update

    from callsense.store.models import Call, Failure

    if what not in ("records", "audio", "all"):
        raise UsageError(f"purge what={what!r}: choose records, audio or all")
    age = parse_age(older_than) if isinstance(older_than, str) else older_than
    cutoff = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None) - age
    audio_files = calls = failures = 0
    with store.session() as s:
        old = s.execute(select(Call.call_id, Call.audio_path, Call.audio_deleted).where(Call.stored_at < cutoff)).all()
        if what in ("audio", "all"):
            paths = [p for _, p, deleted in old if p and not deleted]
            audio_files = len(paths) if dry_run else _unlink_all(paths)
            if not dry_run and what == "audio":
                s.execute(update(Call).where(Call.stored_at < cutoff, Call.audio_path.is_not(None))
                          .values(audio_deleted=True))
        if what in ("records", "all"):
            calls = len(old)
            failures = len(s.execute(select(Failure.id).where(Failure.failed_at < cutoff)).all())
            if not dry_run:
                s.execute(delete(Call).where(Call.stored_at < cutoff))
                s.execute(delete(Failure).where(Failure.failed_at < cutoff))
    log.info("purge older than %s: %d calls, %d audio files, %d failures%s", cutoff, calls, audio_files, failures,
             " (dry run)" if dry_run else "")
    return PurgeReport(cutoff, calls, audio_files, failures, dry_run)


def _unlink_all(paths: Iterable[str]) -> int:
    n = 0
    for p in paths:
        try:
            Path(p).unlink()
            n += 1
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not delete %s: %s", p, e)
    return n
