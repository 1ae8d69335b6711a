"""Mood history for the service: ``/v1/emotion``'s ``user_id`` / ``session_id`` and a customer's calls.

``MoodBook`` records an answer in the store (callsense.store.mood) and answers the ``mood`` and ``alert``
fields: the subject's last ``ServiceSettings.mood_history`` answers, their volatility (the mean cosine
distance between successive embeddings) and trend, and an alert at ``ServiceSettings.mood_alert``
(callsense.analysis.mood has the definitions; docs/service.md the API).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from callsense.analysis.mood import summarize
from callsense.errors import UsageError


def subject_of(user_id: str | None, session_id: str | None) -> str | None:
    """``user:<id>`` / ``session:<id>`` / None; both given is a usage error (which history?)."""
    from callsense.store.mood import subject_key

    user_id = user_id or None
    session_id = session_id or None
    if user_id and session_id:
        raise UsageError("give user_id or session_id, not both", hint="a mood history belongs to one of them")
    if user_id:
        return subject_key("user", user_id)
    if session_id:
        return subject_key("session", session_id)
    return None


class MoodBook:
    def __init__(self, service: Any):
        self._svc = service

    @property
    def _keep(self) -> int:
        return self._svc.settings.mood_history

    @property
    def _threshold(self) -> float:
        return self._svc.settings.mood_alert

    def add(self, subject: str, *, label: str, confidence: float, distribution: list[float],
            embedding: np.ndarray, model: str | None) -> dict[str, Any]:
        """Record one answer; returns ``{"mood": ..., "alert": ...}`` for the answer."""
        from callsense.store import mood as store_mood

        store = self._svc.store
        store_mood.record(store, subject, label=label, confidence=confidence, distribution=distribution,
                          embedding=embedding, model=model, keep=self._keep)
        return self.get(subject)

    def get(self, subject: str) -> dict[str, Any]:
        from callsense.store import mood as store_mood

        m = summarize(store_mood.history(self._svc.store, subject, self._keep), self._threshold)
        return {"subject": subject, "mood": m.to_dict(), "alert": m.alert_dict(subject)}

    def customer(self, customer_id: str) -> dict[str, Any]:
        from callsense.store import mood as store_mood

        subject = f"customer:{customer_id}"
        m = summarize(store_mood.customer_history(self._svc.store, customer_id, self._keep), self._threshold)
        return {"subject": subject, "mood": m.to_dict(), "alert": m.alert_dict(subject)}

    def delete(self, subject: str) -> int:
        from callsense.store import mood as store_mood

        return store_mood.delete_subject(self._svc.store, subject)
