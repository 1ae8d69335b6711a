"""The alert outbox: alerts are stored with the result, then delivered by whoever runs the store.

:func:`enqueue` runs inside :func:`callsense.store.save_result`'s transaction: for each webhook target
and each alerting rule hit of the result it adds a ``pending_alerts`` row, unless the same call, rule,
evidence and target already has one (delivered, failed or still queued) — so re-analysing a call
(``--force``, a new pipeline, the same audio uploaded again) never sends an alert twice, and a result
is never stored without its alerts or the other way round. The new hits of one target go out as one
message (one ``message_id``), as :func:`callsense.rules.alerts.send_alerts` does in-process.

:func:`deliver_pending` sends what is due, one HTTP attempt per message per pass, and schedules a
failed attempt again after ``backoff_s``·2ⁿ⁻¹ seconds until the target's ``retries`` are spent; a
refusal (HTTP 4xx, a robot's error code) is final at once. It runs outside any analysis: the batch
runner and the service each keep a :class:`Courier` thread, so a webhook that hangs never holds an
analysis slot. Several deliverers on one store are safe: a message is claimed by a conditional UPDATE
before it is sent.

A row keeps the message body and, until it is final, the target (URL with its key, signing secret);
once delivered or given up the target is cleared. Rows go with their call (foreign key, cascade):
delete, purge and retention remove them (docs/privacy.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from callsense.result.qa import AlertRecord, RuleHit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from callsense.result.model import CallAnalysis
    from callsense.rules.alerts import SentAlert
    from callsense.rules.model import AlertTarget
    from callsense.store.db import Store

log = logging.getLogger("callsense")

AlertStatus = Literal["pending", "delivered", "failed"]
STATUSES: tuple[AlertStatus, ...] = ("pending", "delivered", "failed")
CLAIM_MARGIN_S = 30.0
"""A claimed message is invisible to other deliverers for its timeout plus this: a deliverer that
died mid-POST leaves the message to be retried, not lost."""


def evidence_hash(hit: RuleHit) -> str:
    """What identifies "the same evidence" of a rule hit: its segments, times, texts and notes."""
    key = [[e.segment_id, e.start_ms, e.end_ms, e.text, e.note] for e in hit.evidence]
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# ------------------------------------------------------------------------------------------ enqueue
def enqueue(session: Session, result: CallAnalysis, targets: Sequence[AlertTarget],
            now: datetime | None = None, sent: Sequence[SentAlert] = ()) -> int:
    """Queue ``result``'s alerting hits for each target in ``session``'s transaction; returns the number of
    rows added (hits already queued or sent for the same call, rule, evidence and target are left out).

    ``sent`` are messages tried before the call was stored (a live call's alerts): each becomes a row as
    it stands — delivered, refused for good, or pending for the retries its target has left — and the
    same rule is not queued again for that target."""
    from sqlalchemy import select

    from callsense.rules.alerts import alerting_hits, build_body, target_key, target_name
    from callsense.store.models import PendingAlert

    if not (targets and result.rule_hits) and not sent:
        return 0
    now = now or _now()
    known = {tuple(r) for r in session.execute(select(PendingAlert.rule_id, PendingAlert.evidence_hash,
                                                      PendingAlert.target).where(PendingAlert.call_id == result.call_id))}
    rows: list[dict[str, Any]] = [_sent_row(result.call_id, a, now) for a in sent
                                  if (a.hit.rule_id, evidence_hash(a.hit), target_key(a.target)) not in known]
    tried = {(a.hit.rule_id, target_key(a.target)) for a in sent}
    for target in targets:
        key = target_key(target)
        new: list[tuple[RuleHit, str]] = []
        for hit in alerting_hits(result, target):
            h = evidence_hash(hit)
            if (hit.rule_id, key) in tried:
                continue  # sent while the call was live
            if (hit.rule_id, h, key) not in known and all((hit.rule_id, h) != (n.rule_id, nh) for n, nh in new):
                new.append((hit, h))
        if not new:
            continue
        body = json.dumps(build_body(result, [hit for hit, _ in new], target.format), ensure_ascii=False)
        spec = json.dumps(dataclasses.asdict(target), ensure_ascii=False)
        message = uuid.uuid4().hex
        rows += [{"call_id": result.call_id, "rule_id": hit.rule_id[:128], "evidence_hash": h, "target": key,
                  "target_name": target_name(target)[:255], "format": target.format, "message_id": message,
                  "payload_json": body, "target_json": spec, "status": "pending", "attempts": 0,
                  "max_attempts": target.retries + 1, "created_at": now, "next_attempt_at": now}
                 for hit, h in new]
    if rows:
        session.execute(_insert_ignoring_duplicates(session), rows)
        log.debug("queued %d alert(s) for call %s", len(rows), result.call_id)
    return len(rows)


def _sent_row(call_id: str, a: SentAlert, now: datetime) -> dict[str, Any]:
    from callsense.rules.alerts import backoff_s, target_key, target_name

    ok = a.attempt.delivered
    final = ok or not a.attempt.retryable or a.target.retries == 0
    return {"call_id": call_id, "rule_id": a.hit.rule_id[:128], "evidence_hash": evidence_hash(a.hit),
            "target": target_key(a.target), "target_name": target_name(a.target)[:255], "format": a.target.format,
            "message_id": uuid.uuid4().hex, "payload_json": json.dumps(a.body, ensure_ascii=False),
            "target_json": None if final else json.dumps(dataclasses.asdict(a.target), ensure_ascii=False),
            "status": "delivered" if ok else ("failed" if final else "pending"), "attempts": 1,
            "max_attempts": a.target.retries + 1, "created_at": a.at,
            "next_attempt_at": None if final else max(now, a.at + timedelta(seconds=backoff_s(a.target, 1))),
            "last_attempt_at": a.at, "delivered_at": a.at if ok else None, "last_status": a.attempt.status,
            "last_error": None if ok else (a.attempt.error or "")[:2000]}


def _insert_ignoring_duplicates(session: Session) -> Any:
    """INSERT that skips a row another transaction queued meanwhile (the unique key), where the database
    can say so; elsewhere the key still refuses a duplicate (that save then fails and is retried)."""
    from sqlalchemy import insert

    from callsense.store.models import PendingAlert

    name = session.get_bind().dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(PendingAlert).on_conflict_do_nothing(constraint="uq_pending_alerts_key")
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(PendingAlert).on_conflict_do_nothing()
    return insert(PendingAlert)


# ------------------------------------------------------------------------------------------ deliver
@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_pending` pass did, counted in messages."""

    sent: int = 0  # delivered on this pass
    retrying: int = 0  # failed on this pass, scheduled again
    failed: int = 0  # given up on this pass (refused, or attempts spent)

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.failed


def deliver_pending(store: Store, *, client: Any = None, now: datetime | None = None,
                    limit: int = 100) -> DeliveryReport:
    """Send every queued message that is due (at most ``limit``), one attempt each; never raises for a
    webhook problem. ``client`` is an ``httpx.Client`` to reuse (one is made otherwise)."""
    from sqlalchemy import select

    from callsense.store.models import PendingAlert

    now = now or _now()
    with store.session() as s:
        due = s.execute(select(PendingAlert.message_id, PendingAlert.target_json, PendingAlert.payload_json)
                        .where(PendingAlert.status == "pending", PendingAlert.next_attempt_at <= now)
                        .order_by(PendingAlert.next_attempt_at, PendingAlert.id).limit(limit * 4)).all()
    messages: dict[str, tuple[str | None, str]] = {}
    for message_id, spec, body in due:
        messages.setdefault(message_id, (spec, body))
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    if not messages:
        return DeliveryReport()
    own = None
    try:
        if client is None:
            import httpx

            own = client = httpx.Client(follow_redirects=False)
        for message_id, (spec, body) in list(messages.items())[:limit]:
            outcome = _deliver_one(store, client, message_id, spec, body, now)
            if outcome is not None:
                counts[outcome] += 1
    finally:
        if own is not None:
            own.close()
    return DeliveryReport(**counts)


def _deliver_one(store: Store, client: Any, message_id: str, spec: str | None, body: str,
                 now: datetime) -> str | None:
    """Claim, send and record one message; returns sent/retrying/failed, or None when another took it."""
    from sqlalchemy import update

    from callsense.rules.alerts import backoff_s, post_once
    from callsense.rules.model import AlertTarget
    from callsense.store.models import PendingAlert

    try:
        target = AlertTarget(**json.loads(spec or "{}"))
    except Exception as e:  # noqa: BLE001 - a row that cannot be read is given up, not retried forever
        _give_up(store, message_id, now, f"unreadable target: {e}")
        return "failed"
    rows = PendingAlert.message_id == message_id
    with store.session() as s:  # the claim: one deliverer wins (the others see no due row left)
        claimed = s.execute(update(PendingAlert).where(rows, PendingAlert.status == "pending",
                                                       PendingAlert.next_attempt_at <= now)
                            .values(next_attempt_at=now + timedelta(seconds=target.timeout_s + CLAIM_MARGIN_S))
                            ).rowcount
    if not claimed:
        return None
    try:
        attempt = post_once(client, target, json.loads(body))
    except Exception as e:  # noqa: BLE001 - belt and braces: a bug here must not stop the courier
        from callsense.rules.alerts import Attempt

        attempt = Attempt(False, None, f"{type(e).__name__}: {e}", retryable=True)
    done = _now()
    with store.session() as s:
        row = s.execute(_counts(rows)).first()
        if row is None:  # the call was deleted while the message was in flight
            return None
        attempts = row.attempts + 1
        if attempt.delivered:
            values: dict[str, Any] = {"status": "delivered", "delivered_at": done, "target_json": None,
                                      "next_attempt_at": None}
            outcome = "sent"
        elif attempt.retryable and attempts < row.max_attempts:
            values = {"next_attempt_at": done + timedelta(seconds=backoff_s(target, attempts))}
            outcome = "retrying"
        else:
            values = {"status": "failed", "target_json": None, "next_attempt_at": None}
            outcome = "failed"
        s.execute(update(PendingAlert).where(rows).values(attempts=attempts, last_attempt_at=done,
                                                          last_status=attempt.status,
                                                          last_error=attempt.error, **values))
    log_at = log.info if outcome == "sent" else log.warning
    log_at("alert message %s to %s: %s (attempt %d)%s", message_id[:8], target.name or target.format, outcome,
           attempts, f": {attempt.error}" if attempt.error else "")
    return outcome


def _counts(where: Any) -> Any:
    from sqlalchemy import select

    from callsense.store.models import PendingAlert

    return select(PendingAlert.attempts, PendingAlert.max_attempts).where(where).limit(1)


def _give_up(store: Store, message_id: str, now: datetime, error: str) -> None:
    from sqlalchemy import update

    from callsense.store.models import PendingAlert

    with store.session() as s:
        s.execute(update(PendingAlert).where(PendingAlert.message_id == message_id).values(
            status="failed", target_json=None, next_attempt_at=None, last_attempt_at=now, last_error=error))


# ------------------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class OutboxEntry:
    """One queued or sent message of a call, as ``callsense alerts`` lists it."""

    call_id: str
    message_id: str
    rule_ids: tuple[str, ...]
    target: str  # the target's name, or format:host
    format: str
    status: AlertStatus
    attempts: int
    max_attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None

    def to_record(self) -> AlertRecord:
        """As the result's ``alerts`` list shows a delivery."""
        sent = self.delivered_at or self.last_attempt_at
        return AlertRecord(rule_ids=self.rule_ids, target=self.target, format=self.format,
                           delivered=self.status == "delivered", attempts=self.attempts, status=self.last_status,
                           error=self.last_error if self.status != "delivered" else None,
                           sent_at=sent.replace(tzinfo=timezone.utc).isoformat(timespec="seconds") if sent else None)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rule_ids"] = list(self.rule_ids)
        for k in ("created_at", "next_attempt_at", "delivered_at", "last_attempt_at"):
            d[k] = d[k].replace(tzinfo=timezone.utc).isoformat(timespec="seconds") if d[k] else None
        return d


def list_alerts(store: Store, *, call_id: str | None = None, status: AlertStatus | None = None,
                limit: int = 100) -> list[OutboxEntry]:
    """The newest messages first (one entry per message, with all its rule ids)."""
    from sqlalchemy import select

    from callsense.errors import UsageError
    from callsense.store.models import PendingAlert as P

    if status is not None and status not in STATUSES:
        raise UsageError(f"alert status must be one of {', '.join(STATUSES)}, not {status!r}")
    q = select(P).order_by(P.created_at.desc(), P.id.desc())
    if call_id is not None:
        q = q.where(P.call_id == call_id)
    if status is not None:
        q = q.where(P.status == status)
    with store.session() as s:
        rows = s.execute(q.limit(limit * 8)).scalars().all()
    return _entries(rows)[:limit]


def entries_of_call(session: Session, call_id: str) -> list[OutboxEntry]:
    """The messages of one call, oldest first (what its result's ``alerts`` list shows)."""
    from sqlalchemy import select

    from callsense.store.models import PendingAlert as P

    rows = session.execute(select(P).where(P.call_id == call_id).order_by(P.id)).scalars().all()
    return _entries(rows)


def _entries(rows: Iterable[Any]) -> list[OutboxEntry]:
    grouped: dict[str, list[Any]] = {}
    for r in rows:
        grouped.setdefault(r.message_id, []).append(r)
    out = []
    for message_id, rs in grouped.items():
        r = rs[0]
        out.append(OutboxEntry(call_id=r.call_id, message_id=message_id,
                               rule_ids=tuple(dict.fromkeys(x.rule_id for x in rs)), target=r.target_name,
                               format=r.format, status=r.status, attempts=r.attempts, max_attempts=r.max_attempts,
                               created_at=r.created_at, next_attempt_at=r.next_attempt_at,
                               delivered_at=r.delivered_at, last_attempt_at=r.last_attempt_at,
                               last_status=r.last_status, last_error=r.last_error))
    return out


def with_outbox_records(session: Session, result: CallAnalysis) -> CallAnalysis:
    """``result`` with its call's outbox messages (queued, delivered, failed) appended to ``alerts``."""
    entries = entries_of_call(session, result.call_id)
    if not entries:
        return result
    return dataclasses.replace(result, alerts=result.alerts + tuple(e.to_record() for e in entries))


# ------------------------------------------------------------------------------------------ courier
class Courier:
    """A daemon thread that delivers the outbox of one store: every ``period_s``, and at once when
    :meth:`wake` is called (a result was just stored). The batch runner and the service each run one.

    ``stop(drain_s=...)`` keeps delivering for up to ``drain_s`` seconds — what is due now, and retries
    that fall due within that time — so a batch that ends has given its alerts their attempts; what
    is still queued after that is left for the next deliverer (another batch, the service,
    ``callsense alerts --deliver``).
    """

    def __init__(self, store: Store, *, period_s: float = 2.0, client: Any = None):
        self.store = store
        self.period_s = period_s
        self.client = client
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline = 0.0
        self._thread: threading.Thread | None = None
        self.delivered = 0  # messages delivered by this courier (for summaries and tests)

    def start(self) -> Courier:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="callsense-alerts", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, drain_s: float = 0.0) -> None:
        import time

        self._deadline = time.monotonic() + drain_s
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(drain_s + 5.0)  # a hanging webhook costs at most its timeout past the drain
            self._thread = None

    def run_once(self) -> DeliveryReport:
        report = deliver_pending(self.store, client=self.client)
        self.delivered += report.sent
        return report

    def _loop(self) -> None:
        import time

        while True:
            self._wake.clear()
            try:
                while self.run_once().attempted:  # a full page may leave more due messages
                    pass
                wait = self.period_s
                if self._stop.is_set():
                    due = next_attempt_at(self.store)
                    left = self._deadline - time.monotonic()
                    if due is None or left <= 0:
                        return
                    wait = max(0.0, (due - _now()).total_seconds()) + 0.01
                    if wait > left:
                        return
            except Exception:  # noqa: BLE001 - the store may be briefly away: try again next period
                log.exception("alert delivery failed")
                if self._stop.is_set():
                    return
                wait = self.period_s
            if self._stop.is_set():
                time.sleep(wait)
            else:
                self._wake.wait(wait)


def next_attempt_at(store: Store) -> datetime | None:
    """When the next queued message falls due (None when nothing is queued)."""
    from sqlalchemy import func, select

    from callsense.store.models import PendingAlert

    with store.session() as s:
        return s.execute(select(func.min(PendingAlert.next_attempt_at))
                         .where(PendingAlert.status == "pending")).scalar()


__all__ = ["AlertStatus", "Courier", "DeliveryReport", "OutboxEntry", "deliver_pending", "enqueue",
           "entries_of_call", "evidence_hash", "list_alerts", "next_attempt_at", "with_outbox_records"]
