"""The service's live calls: admission (a limit of calls at once), the engines and rules a call gets,
storing a call that ended like an uploaded one, and a snapshot of the calls in progress for the UI.

One :class:`LiveCalls` per :class:`~callsense.service.Service` (:func:`live_calls`). The limit is
``ServiceSettings.extra["max_live_calls"]``, else ``$CALLSENSE_MAX_LIVE_CALLS``, else 8.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any

from callsense.errors import LiveProtocolError
from callsense.live import protocol
from callsense.live.gate import DecodeGate
from callsense.live.rules import LiveRules
from callsense.live.session import LiveSession
from callsense.result.model import ModelInfo

log = logging.getLogger("callsense")

DEFAULT_MAX_LIVE_CALLS = 8
ENV_MAX = "CALLSENSE_MAX_LIVE_CALLS"
ENV_PARTIAL_SLOTS = "CALLSENSE_LIVE_PARTIAL_SLOTS"
DEFAULT_PARTIAL_SLOTS = 1
"""Partials decoded at once across all live calls (0: no limit), and only while no final is being
decoded (callsense.live.gate: finals first; docs/live.md)."""
ENV_PARTIAL_DUTY = "CALLSENSE_LIVE_PARTIAL_DUTY"
DEFAULT_PARTIAL_DUTY = 0.25  # partials' share of the time at most (the rest is the finals')
ENV_FINAL_SLOTS = "CALLSENSE_LIVE_FINAL_SLOTS"
"""Finals decoded at once across all live calls (0: no limit); default :func:`default_final_slots`."""
RECENT = 50  # finished calls and alerts kept for the UI


def default_final_slots(num_threads: int, cpus: int | None = None) -> int:
    """Finals decoded at once when no setting says otherwise: as many as the cores hold at the engines'
    ``num_threads`` each — on 2 cores one at a time with ``--threads 2`` (concurrent runs on one shared
    session fight over its thread pool: p95 at 4 calls 5.7 s concurrent, 3.7 s one at a time), two at a
    time with ``--threads 1`` (each on a core of its own; bench/RESULTS.md, "Live calls")."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // max(1, int(num_threads)))


def live_calls(service: Any) -> LiveCalls:
    """The live-call registry of ``service`` (made on first use)."""
    registry = service.__dict__.get("_live_calls")
    if registry is None:
        registry = service.__dict__.setdefault("_live_calls", LiveCalls(service))
    return registry


class LiveCalls:
    def __init__(self, service: Any):
        self.service = service
        extra = service.settings.extra or {}
        self.limit = int(extra.get("max_live_calls") or os.environ.get(ENV_MAX) or DEFAULT_MAX_LIVE_CALLS)
        self._lock = threading.Lock()
        self.active: dict[str, LiveSession] = {}
        self.finished: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=RECENT)
        slots = int(extra.get("live_partial_slots") or os.environ.get(ENV_PARTIAL_SLOTS) or DEFAULT_PARTIAL_SLOTS)
        duty = float(extra.get("live_partial_duty") or os.environ.get(ENV_PARTIAL_DUTY) or DEFAULT_PARTIAL_DUTY)
        finals = int(extra.get("live_final_slots") or os.environ.get(ENV_FINAL_SLOTS)
                     or default_final_slots(service.settings.num_threads))
        self.gate = DecodeGate(slots, duty, final_slots=finals)  # finals first (callsense.live.gate)

    # ---- admission ----------------------------------------------------------------------------
    def open(self, start: protocol.StartMessage) -> LiveSession:
        """A new session, or a protocol error (too many calls, models not ready, a call id in use)."""
        service = self.service
        if service.engines.state == "failed" and service.engines.error is not None:
            raise service.engines.error
        if not service.ready:
            raise LiveProtocolError("not_ready", "models are still loading", hint="retry in a few seconds")
        call_id = start.call_id or f"live_{datetime.now(timezone.utc):%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:8]}"
        with self._lock:
            if len(self.active) >= self.limit:
                raise LiveProtocolError("too_many_calls", f"{len(self.active)} live calls are in progress, the "
                                        f"limit is {self.limit}", hint="retry when one ends, or raise "
                                        f"{ENV_MAX}")
            if call_id in self.active:
                raise LiveProtocolError("bad_start", f"call {call_id} is already live",
                                        hint="give each live call its own call_id")
            self.active[call_id] = None  # type: ignore[assignment]  # the slot is taken while engines load
        try:
            session = self._session(start, call_id)
        except BaseException:
            with self._lock:
                self.active.pop(call_id, None)
            raise
        with self._lock:
            self.active[call_id] = session
        return session

    def _session(self, start: protocol.StartMessage, call_id: str) -> LiveSession:
        from callsense.audio.vad import load_vad_model
        from callsense.service.core import AnalyzeRequest

        service = self.service
        request = AnalyzeRequest(language=start.language, channels=tuple(start.roles), granularity="utterance",
                                 embeddings=True)
        analyzer = service.engines.analyzer(**service._changes(request))
        asr = analyzer.asr_engine() if analyzer.options.run_asr else None
        emotion = analyzer.emotion_engine() if analyzer.options.run_emotion else None
        ruleset = self._ruleset(analyzer)
        history = self._history(ruleset, start.metadata)
        from callsense.adapt.weights import with_rule_weights

        # the rule file's emotion_weights, merged as an upload's analysis merges them (docs/adapt.md)
        options = with_rule_weights(analyzer.options, ruleset)
        session = LiveSession(start, call_id=call_id, options=options, asr=asr, emotion=emotion,
                              live_rules=LiveRules(ruleset, history) if ruleset is not None else None,
                              vad_model=load_vad_model(), spool_dir=service.settings.uploads_dir,
                              max_duration_s=service.settings.max_duration_s,
                              send_webhooks=self._webhook_sender(ruleset), gate=self.gate)
        session.analyzer = analyzer  # type: ignore[attr-defined]
        session.ruleset = ruleset  # type: ignore[attr-defined]
        session.opened = time.time()  # type: ignore[attr-defined]
        return session

    @staticmethod
    def _ruleset(analyzer: Any) -> Any:
        from callsense import rules

        o = analyzer.options
        if not o.run_qa:
            return None
        return rules.load_ruleset(o.rules) if o.rules else rules.default_ruleset()

    def _history(self, ruleset: Any, metadata: dict[str, Any]) -> list[Any]:
        from callsense.store.history import call_history, has_history_conditions

        if ruleset is None or not has_history_conditions(ruleset):
            return []
        ident = {k: metadata.get(f"{k}_id") for k in ("agent", "customer")}
        if not any(ident.values()):
            return []
        return call_history(self.service.store, agent_id=ident["agent"], customer_id=ident["customer"])

    @staticmethod
    def _webhook_sender(ruleset: Any) -> Any:
        targets = tuple(getattr(ruleset, "alerts", ()) or ())
        if not targets:
            return None

        def send(so_far: Any, hit: Any) -> Any:
            from callsense.rules.alerts import send_now

            return send_now(so_far, hit, targets)  # one attempt now; the outbox retries after the call

        return send

    # ---- the end of a call --------------------------------------------------------------------
    def close(self, session: LiveSession, *, interrupted: bool) -> str:
        """Store the call (QA, score, history, folder, store row); returns its result URL."""
        from callsense import rules

        service = self.service
        try:
            analyzer = session.analyzer  # type: ignore[attr-defined]
            models = [ModelInfo("vad", "silero-vad", "onnx", options={"threshold": analyzer.options.vad.threshold})]
            models += [e.info for e in (session.asr, session.emotion) if e is not None and hasattr(e, "info")]
            run = session.build_run(interrupted=interrupted, models=tuple(models))
            result = run.result
            ruleset = session.ruleset  # type: ignore[attr-defined]
            targets: tuple[Any, ...] = ()
            if ruleset is not None:
                result = rules.apply_qa(result, ruleset=ruleset)
                from callsense.store.history import apply_store_rules

                result = apply_store_rules(service.store, result, ruleset)
                targets = tuple(getattr(ruleset, "alerts", ()) or ())
            run = dataclasses.replace(run, result=result)
            # The live alerts were tried when they fired (one attempt each); the outbox records them,
            # retries what failed and queues the hits that only the whole call decides — sent by the
            # service's courier, never by this thread (docs/live.md).
            wait = max((t.timeout_s for t in targets), default=0.0) + 1.0
            sent = session.wait_for_webhooks(wait) if targets else []
            # the same path as an upload: redaction, no-audio and the data map apply (docs/privacy.md)
            _, result = service.calls.persist(run, fingerprint=analyzer.fingerprint, alert_targets=targets,
                                              sent_alerts=sent)
            service.wake_courier()
            service.metrics.audio_seconds.labels("live").inc(result.duration_ms / 1000)
        finally:
            session.close()
            with self._lock:
                self.active.pop(session.call_id, None)
        self.finished.appendleft({"call_id": session.call_id, "status": "interrupted" if interrupted else "complete",
                                  "duration_s": round(result.duration_ms / 1000, 1),
                                  "segments": len(result.segments), "alerts": len(session.hits)})
        log.info("live call %s stored (%s, %d segments)", session.call_id,
                 "interrupted" if interrupted else "complete", len(result.segments))
        return f"/v1/calls/{session.call_id}"

    def discard(self, session: LiveSession) -> None:
        session.close()
        with self._lock:
            self.active.pop(session.call_id, None)

    def note_alert(self, session: LiveSession, message: dict[str, Any]) -> None:
        self.alerts.appendleft({"call_id": session.call_id, "at": time.strftime("%H:%M:%S"), **message})

    # ---- for the UI ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Calls in progress (speaker, emotion, last lines), recent alerts and finished calls."""
        with self._lock:
            sessions = [s for s in self.active.values() if s is not None]
        calls = []
        for s in sessions:
            speaking = [c.role for c in s.channels if c.segmenter.speaking]
            calls.append({
                "call_id": s.call_id, "heard_s": round(s.heard_ms() / 1000, 1),
                "speaking": speaking, "emotion": {c.role: s.current_emotion.get(c.channel) for c in s.channels},
                "last_lines": [f"{seg.role}: {seg.text}" for seg in s.segments[-3:]],
                "alerts": len(s.hits),
            })
        return {"live": calls, "alerts": list(self.alerts), "finished": list(self.finished)}
