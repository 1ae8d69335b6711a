"""One path from engine output to result types, one overall emotion, one severity order."""

from __future__ import annotations

import pytest

from callsense.analysis.common import mean_distribution, overall_emotion
from callsense.analysis.emotion import role_emotions, sensevoice_emotion
from callsense.analysis.metrics import compute_metrics
from callsense.labels import EMOTION_NAMES
from callsense.report import main_emotion
from callsense.result.qa import SEVERITIES, severity_rank
from callsense.testing.results import make_result, seg


def test_sensevoice_tag_becomes_a_one_hot_emotion_and_no_tag_none():
    e = sensevoice_emotion("ANGRY")
    assert (e.label, e.source, e.confidence) == ("angry", "sensevoice", 1.0)
    assert e.scores[EMOTION_NAMES.index("angry")] == 1.0 and sum(e.scores) == 1.0
    assert sensevoice_emotion(None) is None and sensevoice_emotion("Speech") is None


def test_mean_distribution_weights_and_ignores_weightless_pieces():
    a = tuple(1.0 if n == "angry" else 0.0 for n in EMOTION_NAMES)
    h = tuple(1.0 if n == "happy" else 0.0 for n in EMOTION_NAMES)
    mean = mean_distribution([(3, a), (1, h), (0, h)])
    assert mean[EMOTION_NAMES.index("angry")] == pytest.approx(0.75)
    assert mean[EMOTION_NAMES.index("happy")] == pytest.approx(0.25)
    assert mean_distribution([]) is None


def test_report_metrics_and_role_aggregates_agree_on_the_overall_emotion():
    result = make_result([seg("customer", 0, 3000, "a", emotion="angry"), seg("customer", 3000, 4000, "b", emotion="happy"),
                          seg("agent", 4000, 9000, "c", emotion="neutral")], duration_ms=10_000)
    role, label, conf, scores = main_emotion(result)
    metrics = {r.role: r.emotion for r in compute_metrics(result).roles}
    aggregates = {r.role: r for r in role_emotions(result.segments, duration_ms=result.duration_ms)}
    assert (role, label) == ("customer", "angry") and conf == pytest.approx(0.75)
    assert metrics["customer"].dominant == aggregates["customer"].dominant == label
    assert metrics["customer"].scores == pytest.approx(scores)
    assert aggregates["customer"].mean_scores == pytest.approx(scores)
    assert overall_emotion(result.segments, "agent")[EMOTION_NAMES.index("neutral")] == pytest.approx(1.0)


def test_severity_rank_orders_the_severities_and_unknown_ranks_lowest():
    assert [severity_rank(s) for s in SEVERITIES] == [0, 1, 2]
    assert severity_rank("bogus") == severity_rank(None) == severity_rank("info")
