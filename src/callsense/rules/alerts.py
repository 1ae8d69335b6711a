"""Alert webhooks: critical hits (and hits of rules marked ``alert: true``) sent to chat robots.

Formats: ``generic`` (callsense JSON), ``wecom`` (企业微信 group robot, markdown), ``dingtalk`` (钉钉
custom robot, markdown, optional HMAC signing with ``secret``), ``feishu`` (飞书/Lark custom bot,
text, optional signing) and ``slack`` (incoming webhook, mrkdwn text).

This is the I/O edge. :func:`post_once` is one HTTP attempt (signed, bounded by the target's
``timeout_s``); the store's outbox (:mod:`callsense.store.outbox`) uses it to deliver queued alerts
with backoff after a result is stored. :func:`send_alerts` sends in-process, for ``callsense analyze``
(no store): it never raises and retries ``retries`` times with exponential backoff; every delivery is
returned as an :class:`~callsense.result.AlertRecord` so the result says what was sent and whether it
arrived. One message per call and target, listing all its alerting hits.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from callsense.result.model import CallAnalysis
from callsense.result.qa import AlertRecord, RuleHit, severity_rank
from callsense.rules.model import AlertTarget

log = logging.getLogger("callsense")
MAX_EVIDENCE_LINES = 3


def alerting_hits(result: CallAnalysis, target: AlertTarget) -> tuple[RuleHit, ...]:
    """Hits this target receives: those marked ``alert`` and those at or above its ``min_severity``."""
    return tuple(h for h in result.rule_hits
                 if h.alert or severity_rank(h.severity) >= severity_rank(target.min_severity))


def send_alerts(result: CallAnalysis, targets: Sequence[AlertTarget], *, client: Any = None,
                sleep: Callable[[float], None] = time.sleep) -> tuple[AlertRecord, ...]:
    """Send ``result``'s alerting hits to each target; one record per target that had hits.

    ``client`` is an ``httpx.Client`` to reuse (tests inject one with a mock transport); by default
    one is made per call. Never raises: a dead webhook gives a record with ``delivered=False``.
    """
    records = []
    own = None
    try:
        if client is None:
            import httpx

            own = client = httpx.Client(follow_redirects=False)
        for target in targets:
            hits = alerting_hits(result, target)
            if not hits:
                continue
            try:
                records.append(_deliver(client, target, result, hits, sleep))
            except Exception as e:  # belt and braces: an alert must never lose the analysis
                log.warning("alert to %s failed: %s", target_name(target), e)
                records.append(AlertRecord(rule_ids=tuple(h.rule_id for h in hits), target=target_name(target),
                                           format=target.format, delivered=False, attempts=0, error=str(e),
                                           sent_at=_now()))
    finally:
        if own is not None:
            own.close()
    return tuple(records)


def attach_alerts(result: CallAnalysis, targets: Sequence[AlertTarget], **kwargs: Any) -> CallAnalysis:
    """``result`` with the records of :func:`send_alerts` appended to ``result.alerts``."""
    records = send_alerts(result, targets, **kwargs)
    return dataclasses.replace(result, alerts=result.alerts + records) if records else result


# ------------------------------------------------------------------------------------- delivery
@dataclass(frozen=True)
class Attempt:
    """What one POST of one message gave: delivered, or the reason and whether retrying can help."""

    delivered: bool
    status: int | None = None  # HTTP status, None when no answer came
    error: str | None = None
    retryable: bool = False  # network error, timeout, HTTP 429 or 5xx; a refusal is final


def post_once(client: Any, target: AlertTarget, body: dict[str, Any]) -> Attempt:
    """POST ``body`` to ``target`` once (signed where the format signs), waiting at most its ``timeout_s``.

    The one HTTP step both in-process sending (:func:`send_alerts`) and the store's outbox
    (:func:`callsense.store.outbox.deliver_pending`) use. Never raises for a network problem.
    """
    import httpx

    url, payload = _signed(target, body)
    try:
        resp = client.post(url, json=payload, timeout=httpx.Timeout(target.timeout_s))
    except httpx.HTTPError as e:
        return Attempt(False, None, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, retryable=True)
    error = _refused(target.format, resp)
    if error is None:
        return Attempt(True, resp.status_code)
    return Attempt(False, resp.status_code, error, retryable=resp.status_code == 429 or resp.status_code >= 500)


def backoff_s(target: AlertTarget, attempts: int) -> float:
    """The wait before the attempt after ``attempts`` failed ones: ``backoff_s``·2ⁿ⁻¹."""
    return target.backoff_s * 2 ** (attempts - 1)


def _deliver(client: Any, target: AlertTarget, result: CallAnalysis, hits: Sequence[RuleHit],
             sleep: Callable[[float], None]) -> AlertRecord:
    rule_ids = tuple(h.rule_id for h in hits)
    body = build_body(result, hits, target.format)
    started = time.monotonic()
    attempt = Attempt(False)
    attempts = 0
    for n in range(target.retries + 1):
        if n:
            sleep(backoff_s(target, n))
        attempts += 1
        attempt = post_once(client, target, body)
        if attempt.delivered:
            log.info("alert sent to %s (%d hits)", target_name(target), len(hits))
            return AlertRecord(rule_ids=rule_ids, target=target_name(target), format=target.format, delivered=True,
                               attempts=attempts, status=attempt.status, sent_at=_now(), elapsed_ms=_ms(started))
        log.info("alert attempt %d to %s failed: %s", attempts, target_name(target), attempt.error)
        if not attempt.retryable:
            break  # the robot refused the message (bad key, bad body): retrying cannot help
    log.warning("alert to %s not delivered after %d attempt(s): %s", target_name(target), attempts, attempt.error)
    return AlertRecord(rule_ids=rule_ids, target=target_name(target), format=target.format, delivered=False,
                       attempts=attempts, status=attempt.status, error=attempt.error, sent_at=_now(),
                       elapsed_ms=_ms(started))


@dataclass(frozen=True)
class SentAlert:
    """One message already tried before its call was stored — a live call's alert, sent the moment its
    rule fired. When the call is stored, the outbox records it (delivered, or refused for good) or queues
    it for the retries its target has left (:func:`callsense.store.outbox.enqueue`)."""

    hit: RuleHit
    target: AlertTarget
    body: dict[str, Any]
    attempt: Attempt
    at: datetime  # naive UTC, as the outbox stores times


def send_now(result: CallAnalysis, hit: RuleHit, targets: Sequence[AlertTarget], *,
             client: Any = None) -> tuple[SentAlert, ...]:
    """One immediate attempt of ``hit`` to each target that receives it (no retry, no sleep: a live call
    cannot wait; what failed is retried by the outbox once the call is stored). Never raises."""
    import httpx

    one = dataclasses.replace(result, rule_hits=(hit,))
    out = []
    own = client is None
    client = client or httpx.Client(follow_redirects=False)
    try:
        for target in targets:
            if not alerting_hits(one, target):
                continue
            body = build_body(one, [hit], target.format)
            try:
                attempt = post_once(client, target, body)
            except Exception as e:  # noqa: BLE001 - belt and braces: an alert must never lose the call
                attempt = Attempt(False, None, f"{type(e).__name__}: {e}", retryable=True)
            if attempt.delivered:
                log.info("live alert %s sent to %s", hit.rule_id, target_name(target))
            else:
                log.warning("live alert %s to %s failed: %s", hit.rule_id, target_name(target), attempt.error)
            out.append(SentAlert(hit, target, body, attempt, datetime.now(timezone.utc).replace(tzinfo=None)))
    finally:
        if own:
            client.close()
    return tuple(out)


def _refused(fmt: str, resp: Any) -> str | None:
    """None when the webhook accepted the message; the reason otherwise."""
    if not 200 <= resp.status_code < 300:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    if fmt in ("wecom", "dingtalk", "feishu"):  # these answer 200 with an error code in the body
        try:
            data = resp.json()
        except ValueError:
            return None
        if isinstance(data, dict):
            code = data.get("errcode", data.get("code", data.get("StatusCode", 0)))
            if code not in (0, None):
                return f"{fmt} error {code}: {data.get('errmsg') or data.get('msg') or data.get('StatusMessage')}"
    return None


def _signed(target: AlertTarget, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """DingTalk signs in the query string, Feishu in the body; both with HMAC-SHA256 of the secret."""
    if not target.secret:
        return target.url, body
    if target.format == "dingtalk":
        ts = str(int(time.time() * 1000))
        digest = hmac.new(target.secret.encode(), f"{ts}\n{target.secret}".encode(), hashlib.sha256).digest()
        sign = urllib.parse.quote_plus(base64.b64encode(digest))
        sep = "&" if "?" in target.url else "?"
        return f"{target.url}{sep}timestamp={ts}&sign={sign}", body
    if target.format == "feishu":
        ts = str(int(time.time()))
        digest = hmac.new(f"{ts}\n{target.secret}".encode(), b"", hashlib.sha256).digest()
        return target.url, {"timestamp": ts, "sign": base64.b64encode(digest).decode(), **body}
    return target.url, body


# ----------------------------------------------------------------------------------------- bodies
def build_body(result: CallAnalysis, hits: Sequence[RuleHit], fmt: str) -> dict[str, Any]:
    """The JSON body of one alert message in ``fmt``."""
    if fmt == "generic":
        return {
            "event": "callsense.alert",
            "call_id": result.call_id,
            "duration_ms": result.duration_ms,
            "source": result.source.name,
            "metadata": result.metadata,
            "score": None if result.score is None else {
                "scorecard_id": result.score.scorecard_id, "normalized": result.score.normalized,
                "passed": result.score.passed, "auto_failed": result.score.auto_failed},
            "hits": [{
                "rule_id": h.rule_id, "rule_version": h.rule_version, "name": h.name, "category": h.category,
                "severity": h.severity,
                "evidence": [{"segment_id": e.segment_id, "start_ms": e.start_ms, "end_ms": e.end_ms,
                              "text": e.text, "note": e.note} for e in h.evidence],
            } for h in hits],
        }
    title = f"callsense: {len(hits)} alert(s) on call {result.call_id}"
    if fmt == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": _markdown(result, hits, title)}}
    if fmt == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title, "text": _markdown(result, hits, title)}}
    if fmt == "feishu":
        return {"msg_type": "text", "content": {"text": _plain(result, hits, title)}}
    if fmt == "slack":
        return {"text": _plain(result, hits, title, bold="*")}
    raise ValueError(f"unknown alert format {fmt!r}")


def _lines(result: CallAnalysis, hit: RuleHit) -> list[str]:
    texts = {s.id: s for s in result.segments}
    out = []
    for e in hit.evidence[:MAX_EVIDENCE_LINES]:
        seg = texts.get(e.segment_id or "")
        who = f"{seg.role} " if seg else ""
        said = e.text or (seg.text[:60] if seg and seg.text else None)
        out.append(f"{_clock(e.start_ms)} {who}{('“' + said + '”') if said else ''} {e.note or ''}".strip())
    if len(hit.evidence) > MAX_EVIDENCE_LINES:
        out.append(f"... {len(hit.evidence) - MAX_EVIDENCE_LINES} more")
    return out


def _markdown(result: CallAnalysis, hits: Sequence[RuleHit], title: str) -> str:
    parts = [f"**{title}**", f"> file: {result.source.name}, {result.duration_ms / 1000:.0f} s"]
    for h in hits:
        parts.append(f"**[{h.severity.upper()}] {h.name}** (`{h.rule_id}`)")
        parts += [f"> {line}" for line in _lines(result, h)]
    if result.score is not None:
        parts.append(_score_line(result))
    return "\n".join(parts)


def _plain(result: CallAnalysis, hits: Sequence[RuleHit], title: str, bold: str = "") -> str:
    parts = [f"{bold}{title}{bold}", f"file: {result.source.name}, {result.duration_ms / 1000:.0f} s"]
    for h in hits:
        parts.append(f"{bold}[{h.severity.upper()}] {h.name}{bold} ({h.rule_id})")
        parts += [f"  {line}" for line in _lines(result, h)]
    if result.score is not None:
        parts.append(_score_line(result))
    return "\n".join(parts)


def _score_line(result: CallAnalysis) -> str:
    score = result.score
    if score is None or not score.scored or score.normalized is None:  # an invalid call gets no score
        return f"score: not scored ({score.reason})" if score is not None and score.reason else "score: not scored"
    return f"score {score.normalized:.0f}/100 {'PASS' if score.passed else 'FAIL'}"


def _clock(ms: int) -> str:
    return f"{ms // 60000:02d}:{ms % 60000 / 1000:04.1f}"


def target_name(target: AlertTarget) -> str:
    """The target's name, or format and host: webhook URLs carry their key, which must not be stored."""
    return target.name or f"{target.format}:{urllib.parse.urlsplit(target.url).netloc}"


def target_key(target: AlertTarget) -> str:
    """The target's identity (a hash of format and URL): two robots on one host are two targets."""
    return hashlib.sha256(f"{target.format}|{target.url}".encode()).hexdigest()[:32]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
