"""How to answer: a fallback when the model is unsure, and a reply style per label.

An answer whose label is ``unknown`` or ``other``, was forced (``too_short``), or whose confidence is under
``min_confidence``, carries ``fallback: {action: "request_clarification", suggested_response, reason}``;
every answer carries ``reply_style``: the configured tone for its label, so a voice assistant can pick
its tone without its own mapping (the seeds' example: "why hasn't my order shipped?" answered with an
apology and an escalation for an angry caller, reassurance for a fearful one, plain facts for a neutral
one).

The texts and styles are configuration: :class:`ReplyPolicy` defaults below, overridden by a JSON or
YAML file (``CALLSENSE_REPLY_CONFIG`` or the service setting ``reply_config``) with the same keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from callsense.errors import UsageError

UNSURE_LABELS = ("unknown", "other")

DEFAULT_TEXTS = {
    "zh": "抱歉我没太听清，您能再说一遍吗？",
    "en": "Sorry, I didn't quite catch that. Could you say it again?",
}

DEFAULT_STYLES = {
    "angry": "apologise_and_escalate",
    "disgusted": "apologise_and_escalate",
    "fearful": "reassure",
    "sad": "empathise",
    "happy": "warm",
    "surprised": "clarify",
    "neutral": "plain_facts",
    "other": "plain_facts",
    "unknown": "plain_facts",
}


@dataclass(frozen=True)
class ReplyPolicy:
    min_confidence: float = 0.5
    language: str = "zh"  # which text is the suggested_response
    texts: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TEXTS))
    styles: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STYLES))
    default_style: str = "plain_facts"

    def __post_init__(self) -> None:
        if not 0 <= self.min_confidence <= 1:
            raise UsageError(f"reply min_confidence must be in [0, 1], not {self.min_confidence}")
        if self.language not in self.texts:
            raise UsageError(f"reply language {self.language!r} has no text; texts are given for "
                             f"{', '.join(self.texts)}")

    def style(self, label: str) -> str:
        return self.styles.get(label, self.default_style)

    def fallback(self, label: str, confidence: float, reason: str | None = None) -> dict[str, str] | None:
        why = ("forced: " + reason) if reason else (f"label {label}" if label in UNSURE_LABELS else
                                                     f"confidence {confidence:.2f} < {self.min_confidence:.2f}"
                                                     if confidence < self.min_confidence else None)
        if why is None:
            return None
        return {"action": "request_clarification", "suggested_response": self.texts[self.language],
                "language": self.language, "reason": why}

    def answer(self, label: str, confidence: float, reason: str | None = None) -> dict[str, Any]:
        """``{"fallback": ... | None, "reply_style": ...}`` for one answer."""
        return {"fallback": self.fallback(label, confidence, reason), "reply_style": self.style(label)}


def load_policy(path: str | Path | None = None) -> ReplyPolicy:
    """The policy from ``path`` (or ``$CALLSENSE_REPLY_CONFIG``), over the defaults; defaults without one."""
    path = path or os.environ.get("CALLSENSE_REPLY_CONFIG")
    if not path:
        return ReplyPolicy()
    p = Path(path)
    try:
        text = p.read_text("utf-8")
        data = json.loads(text) if p.suffix == ".json" else _yaml(text)
    except (OSError, ValueError) as e:
        raise UsageError(f"{p}: cannot read the reply configuration: {e}") from e
    if not isinstance(data, dict):
        raise UsageError(f"{p}: the reply configuration must be a mapping")
    unknown = sorted(set(data) - {"min_confidence", "language", "texts", "styles", "default_style"})
    if unknown:
        raise UsageError(f"{p}: unknown key(s) {', '.join(unknown)}; valid: min_confidence, language, texts, "
                         "styles, default_style")
    base = ReplyPolicy()
    return replace(base, **{k: ({**getattr(base, k), **v} if isinstance(v, dict) else v) for k, v in data.items()})


def _yaml(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)
