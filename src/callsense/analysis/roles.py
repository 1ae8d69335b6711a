"""Which diarized speaker is the agent: pure role inference from text, turn order and voiceprints.

Three kinds of evidence, each a score in favour of "this speaker is the agent":

* **lexicon** — the agent's formulas (您好 / 欢迎致电 / 工号 / 请问有什么可以帮您 / "thank you for calling")
  in the speaker's first turns; the strongest textual cue call-centre products use;
* **first-speaker prior** — on an inbound call the agent answers and speaks first; on an outbound call
  the agent dials and the customer answers first (``metadata.direction``); weak on its own;
* **voiceprint** — cosine similarity of the speaker's embedding to an enrolled agent voiceprint above
  ``voiceprint_threshold``; the strongest cue when present, and it names the agent.

The speaker with the highest total is the agent, every other speaker the customer, when the margin
over the runner-up is at least ``min_margin``; otherwise roles stay ``unknown`` (and customer/agent
rules then run on every unknown speaker: rules/evaluate.py). Confidence is a logistic of the margin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

AGENT_LEXICON: tuple[str, ...] = (
    "您好", "你好", "欢迎致电", "欢迎来电", "工号", "请问有什么可以帮您", "有什么可以帮您", "很高兴为您服务",
    "请问您", "还有什么可以帮您", "感谢您的来电", "客服", "thank you for calling", "how may i help",
    "how can i help", "my name is", "speaking", "is there anything else",
)
WEIGHTS = {"lexicon": 2.0, "first_speaker": 0.75, "voiceprint": 4.0}


@dataclass(frozen=True)
class RoleOptions:
    lexicon: tuple[str, ...] = AGENT_LEXICON
    first_turns: int = 3  # lexicon looks at each speaker's first N turns
    voiceprint_threshold: float = 0.6  # cosine
    min_margin: float = 0.5  # agent score over the runner-up needed to decide
    direction: str | None = None  # "inbound" (agent speaks first) / "outbound" / None (treated as inbound)


@dataclass(frozen=True)
class SpeakerTurnText:
    speaker: int
    start_ms: int
    text: str = ""


@dataclass(frozen=True)
class RoleDecision:
    speaker: int
    role: str  # agent / customer / unknown
    confidence: float | None
    evidence: tuple[str, ...] = ()
    agent_id: str | None = None  # the enrolled voiceprint it matched


@dataclass(frozen=True)
class RoleInference:
    decisions: tuple[RoleDecision, ...]
    method: str  # what decided: "lexicon", "voiceprint", "first_speaker", combinations, or "none"
    scores: dict[int, float] = field(default_factory=dict)

    def role_of(self, speaker: int) -> str:
        return next((d.role for d in self.decisions if d.speaker == speaker), "unknown")

    @property
    def agent_id(self) -> str | None:
        return next((d.agent_id for d in self.decisions if d.role == "agent" and d.agent_id), None)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na and nb else 0.0


def infer_roles(turns: Sequence[SpeakerTurnText], options: RoleOptions = RoleOptions(), *,
                embeddings: Mapping[int, np.ndarray] | None = None,
                voiceprints: Mapping[str, np.ndarray] | None = None) -> RoleInference:
    speakers = sorted({t.speaker for t in turns})
    if not speakers:
        return RoleInference((), "none")
    score = {s: 0.0 for s in speakers}
    evidence: dict[int, list[str]] = {s: [] for s in speakers}
    used: set[str] = set()
    matched: dict[int, str] = {}

    lexicon = tuple(w.lower() for w in options.lexicon)
    for s in speakers:
        first = sorted((t for t in turns if t.speaker == s), key=lambda t: t.start_ms)[:options.first_turns]
        hits = sorted({w for t in first for w in lexicon if w and w in t.text.lower()})
        if hits:
            score[s] += WEIGHTS["lexicon"] * min(len(hits), 2) / 2 * 2
            evidence[s].append("agent lexicon: " + ", ".join(hits))
            used.add("lexicon")

    opener = min(turns, key=lambda t: t.start_ms).speaker
    outbound = (options.direction or "").lower() == "outbound"
    if len(speakers) > 1:
        if outbound:
            for s in speakers:
                if s != opener:
                    score[s] += WEIGHTS["first_speaker"]
                    evidence[s].append("outbound call: the agent is not the first to speak")
        else:
            score[opener] += WEIGHTS["first_speaker"]
            evidence[opener].append(f"{options.direction or 'inbound'} call: first to speak")
        used.add("first_speaker")

    if embeddings and voiceprints:
        for s in speakers:
            v = embeddings.get(s)
            if v is None:
                continue
            best = max(((cosine(v, p), aid) for aid, p in voiceprints.items()), default=(0.0, None))
            if best[1] is not None and best[0] >= options.voiceprint_threshold:
                score[s] += WEIGHTS["voiceprint"] * best[0]
                matched[s] = best[1]
                evidence[s].append(f"voiceprint of agent {best[1]}: cosine {best[0]:.2f}")
                used.add("voiceprint")

    ranked = sorted(speakers, key=lambda s: score[s], reverse=True)
    top = ranked[0]
    runner = score[ranked[1]] if len(ranked) > 1 else 0.0
    margin = score[top] - runner
    method = "+".join(k for k in ("voiceprint", "lexicon", "first_speaker") if k in used) or "none"
    if len(speakers) == 1 and "lexicon" not in used and "voiceprint" not in used:
        return RoleInference((RoleDecision(top, "unknown", None, tuple(evidence[top]) or ("one speaker, no cue",)),),
                             "none", score)
    if margin < options.min_margin:
        return RoleInference(tuple(RoleDecision(s, "unknown", None, tuple(evidence[s]) or ("no cue",))
                                   for s in speakers), "none", score)
    conf = round(1 / (1 + math.exp(-2 * margin)), 3)
    decisions = [RoleDecision(s, "agent" if s == top else "customer", conf, tuple(evidence[s]),
                              matched.get(s) if s == top else None) for s in speakers]
    return RoleInference(tuple(decisions), method, score)


__all__ = ["AGENT_LEXICON", "RoleDecision", "RoleInference", "RoleOptions", "SpeakerTurnText", "cosine",
           "infer_roles"]
