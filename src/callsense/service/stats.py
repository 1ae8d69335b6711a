"""Dashboard aggregates over analysed calls (pure functions over CallAnalysis values)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from callsense.labels import EMOTION_NAMES, NEGATIVE_EMOTIONS

STATS = ("emotions", "agents", "rules", "daily")


def _role_distribution(result: Any, role: str) -> tuple[list[float], int]:
    """Duration-weighted mean emotion distribution of one role's segments, and its speech ms."""
    total = [0.0] * len(EMOTION_NAMES)
    ms = 0
    for s in result.segments:
        if s.role != role or s.emotion is None:
            continue
        d = max(1, s.end_ms - s.start_ms)
        ms += d
        for i, p in enumerate(s.emotion.scores):
            total[i] += p * d
    return ([t / ms for t in total] if ms else total), ms


def emotions(results: Iterable[Any], *, by: str = "category", role: str = "customer") -> dict[str, Any]:
    """Heatmap: mean emotion distribution of ``role`` per value of metadata ``by``."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(EMOTION_NAMES))
    weight: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for r in results:
        key = str((r.metadata or {}).get(by) or "(none)")
        dist, ms = _role_distribution(r, role)
        calls[key] += 1
        if ms:
            weight[key] += ms
            for i, p in enumerate(dist):
                acc[key][i] += p * ms
    rows = [{"key": k, "calls": calls[k],
             "scores": [round(v / weight[k], 4) if weight[k] else 0.0 for v in acc[k]]} for k in sorted(calls)]
    return {"by": by, "role": role, "labels": list(EMOTION_NAMES), "rows": rows}


def agents(results: Iterable[Any]) -> dict[str, Any]:
    """Per-agent scorecard: calls, mean QA score, pass rate, rule hits, customers' negative share."""
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"calls": 0, "scores": [], "passed": 0, "hits": 0,
                                                          "negative": []})
    for r in results:
        a = per[str((r.metadata or {}).get("agent_id") or "(none)")]
        a["calls"] += 1
        if r.score is not None and r.score.normalized is not None:  # invalid calls are not scored
            a["scores"].append(r.score.normalized)
            a["passed"] += int(r.score.passed)
        a["hits"] += len(r.rule_hits)
        dist, ms = _role_distribution(r, "customer")
        if ms:
            a["negative"].append(sum(p for n, p in zip(EMOTION_NAMES, dist) if n in NEGATIVE_EMOTIONS))
    rows = []
    for agent, a in sorted(per.items()):
        rows.append({"agent_id": agent, "calls": a["calls"],
                     "mean_score": round(sum(a["scores"]) / len(a["scores"]), 2) if a["scores"] else None,
                     "pass_rate": round(a["passed"] / len(a["scores"]), 3) if a["scores"] else None,
                     "rule_hits": a["hits"],
                     "customer_negative": round(sum(a["negative"]) / len(a["negative"]), 3) if a["negative"] else None})
    return {"rows": rows}


def rules(results: Iterable[Any]) -> dict[str, Any]:
    counts: Counter[tuple[str, str, str]] = Counter()
    calls: Counter[str] = Counter()
    for r in results:
        seen = set()
        for h in r.rule_hits:
            counts[(h.rule_id, h.name, h.severity)] += 1
            seen.add(h.rule_id)
        for rid in seen:
            calls[rid] += 1
    rows = [{"rule_id": rid, "name": name, "severity": sev, "hits": n, "calls": calls[rid]}
            for (rid, name, sev), n in counts.most_common()]
    return {"rows": rows}


def daily(results: Iterable[Any]) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"calls": 0, "audio_ms": 0, "scores": [], "hits": 0})
    for r in results:
        day = (r.processing.started_at or "")[:10]
        d = per[day]
        d["calls"] += 1
        d["audio_ms"] += r.duration_ms
        d["hits"] += len(r.rule_hits)
        if r.score is not None and r.score.normalized is not None:
            d["scores"].append(r.score.normalized)
    return {"rows": [{"day": day, "calls": d["calls"], "audio_minutes": round(d["audio_ms"] / 60000, 2),
                      "rule_hits": d["hits"],
                      "mean_score": round(sum(d["scores"]) / len(d["scores"]), 2) if d["scores"] else None}
                     for day, d in sorted(per.items())]}


def compute(name: str, results: list[Any], **params: Any) -> dict[str, Any]:
    fn = {"emotions": emotions, "agents": agents, "rules": rules, "daily": daily}[name]
    if name == "emotions":
        return fn(results, **{k: v for k, v in params.items() if k in ("by", "role") and v})
    return fn(results)
