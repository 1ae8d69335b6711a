"""Privacy: PII redaction of everything stored or exported, and purging by retention.

Redaction finds **digit runs** in every form a transcript or a file name writes them — ASCII, full-width
(１３８…), spoken Chinese numerals (一三八…, 幺, 两), mixed (1381234五六七八), spaced or dashed digit by
digit or in groups (1 3 8 …, 138-1234-5678, 110101 19900307 1234), with an area code in brackets
((010)62345678, （０１０）…) or a ``+`` country code — reads each as a plain digit string and decides
what it is, in this order:

- ``[ID]``: 18 characters (the last may be X) that pass the resident ID checksum (ISO 7064 MOD 11-2)
  and carry a real birth date; written in the 6-8-4 groups of an ID card, a plausible date is enough
  (a misheard checksum digit should not leak the rest);
- ``[CARD]``: 15–19 digits that pass the Luhn check (bank cards);
- ``[PHONE]``: a mainland mobile (11 digits, 1[3-9]…, optionally after 86 / +86), a landline with its
  area code (0 + 2–3 digits + 7–8 digits), an international ``+`` number, or 7–12 digits spoken as
  Chinese numerals (a number read out on a call);
- emails → ``[EMAIL]``.

Anything else — order numbers that fail the checksums, amounts, dates, times — is left alone. A run
that is not PII as a whole is searched for PII on its group boundaries (two phone numbers separated
by a space are two phones, not one 22-digit order number).

:func:`redact_result` applies this to every field of a result that can carry PII: segment texts with
and without ITN, rule evidence, the source name and path, every metadata value (``customer_id``
included) and the processing warnings. Stored results are redacted with ``callsense batch --redact``
and ``callsense serve --redact``; exports redact by default (``--no-redact`` turns it off).

:func:`purge` deletes records (and/or the kept audio copies) of calls older than a retention age,
with every file the store knows belongs to them (docs/privacy.md has the full map).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from callsense.errors import UsageError

if TYPE_CHECKING:
    from callsense.result.model import CallAnalysis
    from callsense.store.db import Store

log = logging.getLogger("callsense")

PII_KINDS = ("email", "id", "card", "phone")
TOKENS = {"email": "[EMAIL]", "id": "[ID]", "card": "[CARD]", "phone": "[PHONE]"}

# Every character that may stand for one digit, and the digit it stands for.
_DIGIT_MAP: dict[str, str] = {str(i): str(i) for i in range(10)}
_DIGIT_MAP.update({chr(0xFF10 + i): str(i) for i in range(10)})  # full-width ０-９
_DIGIT_MAP.update(dict(zip("零〇一二三四五六七八九", "00123456789")))
_DIGIT_MAP.update({"幺": "1", "两": "2", "洞": "0"})  # "yao" for 1 when reading numbers; "dong" for 0 (radio)
_CN_NUMERALS = frozenset("零〇一二三四五六七八九幺两洞")
_D = "[0-9０-９零〇一二三四五六七八九幺两洞]"
_GAP = r"(?:[ \u3000\-－–—]{1,2}|[)）][ \u3000\-－]?)"  # between digit groups
_RUN = re.compile(rf"(?:[+＋][ \u3000]?)?[(（]?{_D}(?:{_GAP}?{_D})*(?:[ \u3000]?[Xx](?![A-Za-z]))?")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class RedactionConfig:
    """Which kinds of PII to replace (all of :data:`PII_KINDS` by default)."""

    kinds: tuple[str, ...] = PII_KINDS

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(PII_KINDS)
        if unknown:
            raise UsageError(f"unknown PII kind(s) {sorted(unknown)}; choose from {', '.join(PII_KINDS)}")


def id_checksum_ok(digits: str) -> bool:
    """True when an 18-character resident ID number's last character matches its checksum."""
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    want = "10X98765432"[sum(int(d) * w for d, w in zip(digits[:17], _ID_WEIGHTS)) % 11]
    return digits[17].upper() == want


def luhn_ok(digits: str) -> bool:
    """True when a card number passes the Luhn check."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _birth_date_ok(digits: str) -> bool:
    try:
        born = date(int(digits[6:10]), int(digits[10:12]), int(digits[12:14]))
    except ValueError:
        return False
    return 1900 <= born.year and born <= date.today()


@dataclass(frozen=True)
class _Run:
    digits: str  # normalised: ASCII digits (and a final X)
    groups: tuple[int, ...]  # digits per group, as written
    spoken: bool  # some digits are Chinese numerals
    plus: bool  # starts with "+": an international number
    bracketed: bool = False  # starts with "(": an area code in brackets


def _classify(run: _Run, *, strict: bool = False) -> str | None:
    """The kind of PII ``run`` is, or None. ``strict`` (a part of a longer run) accepts only what
    checks itself: a mobile number, a checksummed ID or card, a landline with its area code in brackets."""
    d = run.digits
    if len(d) == 18 and d[0] != "0" and d[:17].isdigit() and _birth_date_ok(d):
        if id_checksum_ok(d) or run.groups == (6, 8, 4):
            return "id"
    if not d.isdigit():
        return None
    if 15 <= len(d) <= 19 and luhn_ok(d):
        return "card"
    if run.plus and 8 <= len(d) <= 15:
        return "phone"
    mobile = d[2:] if len(d) == 13 and d.startswith("86") else d
    if len(mobile) == 11 and mobile[0] == "1" and mobile[1] in "3456789":
        return "phone"
    if 10 <= len(d) <= 12 and d[0] == "0" and d[1] != "0":  # area code (2-3 digits after the 0) + 7-8 digits
        if not strict or run.bracketed:
            return "phone"
    if strict:
        return None
    if run.spoken and 7 <= len(d) <= 12:
        return "phone"
    return None


def _parse(text: str) -> tuple[_Run, list[tuple[int, int]]]:
    """The run in ``text`` and the span of each of its digit groups (positions in ``text``)."""
    digits: list[str] = []
    spans: list[tuple[int, int]] = []
    spoken = False
    start = None
    for i, ch in enumerate(text):
        if ch in _DIGIT_MAP or (ch in "Xx" and digits):
            if start is None:
                start = i
            digits.append(_DIGIT_MAP.get(ch, "X"))
            spoken = spoken or ch in _CN_NUMERALS
        elif start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(text)))
    head = text.lstrip()[:1]
    groups = tuple(_count_digits(text[a:b]) for a, b in spans)
    return _Run("".join(digits), groups, spoken, head in ("+", "＋"), head in ("(", "（")), spans


def _count_digits(text: str) -> int:
    return sum(1 for ch in text if ch in _DIGIT_MAP or ch in "Xx")


def _redact_run(text: str, kinds: tuple[str, ...], found: list[str]) -> str:
    run, spans = _parse(text)
    kind = _classify(run)
    if kind is not None and kind in kinds:
        found.append(kind)
        return TOKENS[kind]
    if len(spans) < 2:
        return text
    # Not PII as a whole: look for PII made of whole groups (longest first from each group on).
    # Only windows of at most 19 digits (the longest PII) are tried: linear in the run's length.
    counts = run.groups
    out: list[str] = []
    pos = i = 0
    while i < len(spans):
        last, total = i, 0
        while last < len(spans) and total + counts[last] <= 19:
            total += counts[last]
            last += 1
        for j in range(last - 1, i - 1, -1):
            if (i, j) == (0, len(spans) - 1):
                continue  # the whole run: classified above
            a, b = spans[i][0], spans[j][1]
            if i == 0 and text[:a].strip() in ("(", "（"):
                a = 0  # keep the area code's bracket with it
            sub, _ = _parse(text[a:b])
            k = _classify(dataclasses.replace(sub, plus=False), strict=True)
            if k is not None and k in kinds:
                out.append(text[pos:a] + TOKENS[k])
                found.append(k)
                pos, i = b, j + 1
                break
        else:
            i += 1
    out.append(text[pos:])
    return "".join(out)


def redact_text(text: str, config: RedactionConfig = RedactionConfig()) -> tuple[str, tuple[str, ...]]:
    """``text`` with PII replaced by tokens, and the kinds that were found (in :data:`PII_KINDS` order)."""
    if not text:
        return text, ()
    found: list[str] = []
    if "email" in config.kinds:
        text, n = _EMAIL.subn(TOKENS["email"], text)
        if n:
            found.append("email")
    number_kinds = tuple(k for k in config.kinds if k != "email")
    if number_kinds:
        text = _RUN.sub(lambda m: _redact_run(m.group(0), number_kinds, found), text)
    return text, tuple(k for k in PII_KINDS if k in found)


def redact_value(value: Any, config: RedactionConfig = RedactionConfig()) -> Any:
    """``value`` (text, number, list or dict, nested) with every text redacted; numbers of 7+ digits too
    (a customer id or phone stored as a JSON number)."""
    if isinstance(value, str):
        return redact_text(value, config)[0]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and abs(value) >= 1_000_000:
        red = redact_text(str(value), config)[0]
        return value if red == str(value) else red
    if isinstance(value, dict):
        return {k: redact_value(v, config) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, config) for v in value)
    return value


def redact_result(result: CallAnalysis, config: RedactionConfig = RedactionConfig()) -> CallAnalysis:
    """A copy of ``result`` with every field that can carry PII redacted: segment texts (with and
    without ITN), rule evidence texts, the source's name and path, every metadata value and the
    processing warnings. Token times are dropped from segments where a number was found (they would
    spell it out again)."""
    segments = []
    for seg in result.segments:
        text, kinds = redact_text(seg.text, config)
        no_itn, kinds_no_itn = redact_text(seg.text_no_itn, config) if seg.text_no_itn else (seg.text_no_itn, ())
        found = tuple(k for k in PII_KINDS if k in kinds or k in kinds_no_itn)
        redactions = tuple(dict.fromkeys(seg.redactions + found))
        tokens = () if found else seg.tokens  # token times would spell the number out again
        segments.append(dataclasses.replace(seg, text=text, text_no_itn=no_itn, redactions=redactions, tokens=tokens))
    hits = []
    for hit in result.rule_hits:
        evidence = tuple(
            dataclasses.replace(ev, text=redact_text(ev.text, config)[0]) if ev.text else ev for ev in hit.evidence
        )
        hits.append(dataclasses.replace(hit, evidence=evidence))
    src = result.source
    source = dataclasses.replace(src, name=redact_text(src.name, config)[0],
                                 path=redact_text(src.path, config)[0] if src.path else src.path)
    proc = result.processing
    processing = dataclasses.replace(proc, warnings=tuple(redact_text(w, config)[0] for w in proc.warnings))
    metadata = redact_value(dict(result.metadata or {}), config)
    return dataclasses.replace(result, segments=tuple(segments), rule_hits=tuple(hits), source=source,
                               processing=processing, metadata=metadata)


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
PROCESSED_AUDIO = "audio_16k.wav"  # the processed audio inside a call folder (callsense.pipeline.outputs)


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime  # naive UTC: calls stored before this were affected
    calls: int  # call records deleted
    audio_files: int  # kept audio copies deleted
    failures: int  # failure records deleted
    dry_run: bool
    folders: int = 0  # call folders deleted (the service's calls/outputs_<id>)
    jobs: int = 0  # finished service jobs deleted (they carry file names and metadata)
    mood: int = 0  # voice-assistant mood history rows deleted (store/mood.py)


def purge(store: Store, older_than: timedelta | str, *, what: PurgeWhat = "all", dry_run: bool = False,
          now: datetime | None = None) -> PurgeReport:
    """Delete what is older than ``older_than`` (by the time the call was stored).

    - ``"audio"``: every audio copy of those calls — the ``--copy-audio`` copy and the processed audio
      in the call's folder; the records stay, marked ``audio_deleted``;
    - ``"records"``: the call records (with everything hanging off them: segments, embeddings, rule
      hits…), the call's folder (result.json, embeddings.npy, processed audio, report), the finished
      service jobs, the failure records and the voice-assistant mood history (``mood_entries``) from
      before the cut-off; only a ``--copy-audio`` archive copy is kept;
    - ``"all"``: both — nothing of those calls is left.

    The records go first, in batches of whole calls, each its own short transaction (sized to take
    about ``PURGE_BATCH_S``, so no writer waits on a purge for more than about a second; a deleted
    call answers "not found" from its batch on), then the files; a file that cannot be removed is
    logged and removed by the service's next sweep. The similarity index follows (store/ann.py).
    """
    from sqlalchemy import select, update

    from callsense.store.models import Call, Failure

    if what not in ("records", "audio", "all"):
        raise UsageError(f"purge what={what!r}: choose records, audio or all")
    age = parse_age(older_than) if isinstance(older_than, str) else older_than
    cutoff = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None) - age
    from callsense.store.models import MoodEntry

    audio_files = calls = failures = folders = jobs = mood = 0
    with store.session() as s:
        old = s.execute(select(Call.call_id, Call.audio_path, Call.audio_deleted, Call.output_dir)
                        .where(Call.stored_at < cutoff)).all()
        if what in ("records", "all"):
            failures = len(s.execute(select(Failure.id).where(Failure.failed_at < cutoff)).all())
            mood = len(s.execute(select(MoodEntry.id).where(MoodEntry.at < cutoff)).all())
    audio = [p for _, p, deleted, _ in old if p and not deleted] if what in ("audio", "all") else []
    audio += [str(Path(d) / PROCESSED_AUDIO) for _, _, _, d in old
              if d and what == "audio" and (Path(d) / PROCESSED_AUDIO).is_file()]
    dirs = [d for _, _, _, d in old if d] if what in ("records", "all") else []
    ids = [c for c, *_ in old]
    if what in ("records", "all"):
        calls = len(old)
        if not dry_run:
            jobs = _in_batches(store, ids, _delete_call_rows)
            with store.session() as s:
                from sqlalchemy import delete

                jobs += _delete_old_jobs(s, cutoff)
                s.execute(delete(Failure).where(Failure.failed_at < cutoff))
                from callsense.store.mood import delete_older_than

                mood = delete_older_than(s, cutoff)  # the mood history of /v1/emotion's users ages out too
                from callsense.store.models import AnalysisRun

                s.execute(delete(AnalysisRun).where(AnalysisRun.created_at < cutoff))  # clusters runs (cascade)
            from callsense.store.ann import after_delete

            after_delete(store)  # the similarity index and its saved copy lose the deleted vectors
    elif not dry_run and audio:
        _in_batches(store, ids, lambda s, chunk: s.execute(
            update(Call).where(Call.call_id.in_(chunk)).values(audio_deleted=True)).rowcount or 0)
    if dry_run:
        audio_files, folders = len(audio), len(dirs)
    else:
        audio_files = _unlink_all(audio)
        folders = remove_folders(dirs)
    log.info("purge older than %s: %d calls, %d folders, %d audio files, %d failures, %d jobs, %d mood entries%s",
             cutoff, calls, folders, audio_files, failures, jobs, mood, " (dry run)" if dry_run else "")
    return PurgeReport(cutoff, calls, audio_files, failures, dry_run, folders=folders, jobs=jobs, mood=mood)


@dataclass(frozen=True)
class DeletedCall:
    call_id: str
    files: tuple[str, ...]  # files and folders of the call that were removed


def delete_call(store: Store, call_id: str) -> DeletedCall:
    """Delete one call everywhere the store knows of: its record (and every row hanging off it, its
    service jobs included) in one transaction, then its audio copy and its folder.

    Raises :class:`~callsense.errors.CallNotFoundError` for an unknown id (matched literally)."""
    from sqlalchemy import select

    from callsense.errors import CallNotFoundError
    from callsense.store.models import Call

    with store.session() as s:
        row = s.execute(select(Call.audio_path, Call.output_dir).where(Call.call_id == call_id)).first()
        if row is None:
            raise CallNotFoundError(f"no stored call {call_id!r}", hint="list stored calls with `callsense report`")
        _delete_call_rows(s, [call_id])
    from callsense.store.ann import after_delete

    after_delete(store)
    files = [p for p in (row.audio_path,) if p]
    _unlink_all(files)
    if row.output_dir:
        remove_folders([row.output_dir])
        files.append(row.output_dir)
    log.info("deleted call %s", call_id)
    return DeletedCall(call_id, tuple(files))


PURGE_BATCH_S = 0.25  # target time of one purge transaction (the bound is 1 s; other writers add to it)
PURGE_BATCH_MAX = 2000


def _in_batches(store: Store, ids: list[str], work: Any) -> int:
    """``work(session, chunk)`` over ``ids`` in transactions of about ``PURGE_BATCH_S`` each (the
    batch size follows the measured time of the previous batch); returns the sum of its results."""
    import time

    total, i, size = 0, 0, min(50, PURGE_BATCH_MAX)
    while i < len(ids):
        chunk = ids[i:i + size]
        started = time.perf_counter()
        with store.session() as s:
            total += work(s, chunk)
        took = time.perf_counter() - started
        log.debug("purge batch of %d calls in %.3f s", len(chunk), took)
        i += len(chunk)
        # follow the measured time, but at most double: one fast batch must not make the next one long
        size = int(min(PURGE_BATCH_MAX, 2 * size, max(5, size * PURGE_BATCH_S / max(took, 1e-3))))
    return total


def _delete_call_rows(session: Any, call_ids: list[str]) -> int:
    """Delete the calls (cascading to their parts) and the service jobs that produced them; returns the
    number of job rows deleted (a job row carries the file name and metadata of its call)."""
    from sqlalchemy import delete

    from callsense.store.models import Call, service_jobs

    jobs = 0
    for i in range(0, len(call_ids), 500):
        chunk = call_ids[i:i + 500]
        jobs += session.execute(delete(service_jobs).where(service_jobs.c.call_id.in_(chunk))).rowcount or 0
        session.execute(delete(Call).where(Call.call_id.in_(chunk)))
    return jobs


def _delete_old_jobs(session: Any, cutoff: datetime) -> int:
    """Finished jobs (done or failed) that ended before ``cutoff``: their file names and metadata go too."""
    from sqlalchemy import delete

    from callsense.store.models import service_jobs

    # finished_at is ISO 8601 UTC text of one fixed format: text order is time order.
    iso = cutoff.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds")
    t = service_jobs.c
    return session.execute(delete(service_jobs).where(t.status.in_(("done", "failed")), t.finished_at < iso)
                           ).rowcount or 0


def remove_folders(paths: Iterable[str | Path]) -> int:
    """Remove call folders (only folders named ``outputs_*``: a wrong path never removes anything else)."""
    n = 0
    for p in paths:
        path = Path(p)
        if not path.name.startswith(("outputs_", ".outputs_")):
            log.warning("not removing %s: not a call folder", path)
            continue
        if not path.exists():
            continue
        try:
            shutil.rmtree(path)
            n += 1
        except OSError as e:
            log.warning("could not delete %s: %s (removed by the next sweep)", path, e)
    return n


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
