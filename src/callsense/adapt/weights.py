"""Sensitivity weights for the nine classes: ``angry=1.3,neutral=0.8``.

A weight multiplies a class's probability before the distribution is renormalised and the main label is
chosen (``engines/emotion2vec/head.py``: the same as adding ``log w`` to the logit), for the segment
scores and the timeline alike. ``1`` leaves a class as it is; over 1 makes the model quicker to call it.
The weights used are recorded in the result (``emotion.weights``) and in the fingerprint of a run.

:func:`calibrate` fits them from labelled clips (labels among the nine): coordinate ascent of the
unweighted accuracy (UA) over a grid of weights per class, starting from 1, a few passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from callsense.errors import UsageError
from callsense.labels import EMOTION_NAMES

GRID = tuple(round(float(x), 3) for x in np.geomspace(0.25, 4.0, 17))  # 0.25 ... 4, ratio ~1.19


def parse_weights(text: str | None, *, option: str = "--emotion-weights") -> tuple[tuple[str, float], ...]:
    """``"angry=1.3,neutral=0.8"`` -> ``(("angry", 1.3), ("neutral", 0.8))``; checked by EmotionOptions."""
    out: list[tuple[str, float]] = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        label, sep, value = part.partition("=")
        try:
            w = float(value)
        except ValueError:
            w = float("nan")
        if not sep or not label.strip() or math.isnan(w):
            raise UsageError(f"{option}: {part.strip()!r} is not LABEL=WEIGHT (e.g. angry=1.3,neutral=0.8)")
        out.append((label.strip(), w))
    from callsense.engines.base import EmotionOptions

    EmotionOptions(weights=tuple(out))  # the one check of labels and ranges
    return tuple(out)


def weights_from_mapping(mapping: dict | None) -> tuple[tuple[str, float], ...]:
    """Weights from a settings or rule-file mapping ``{angry: 1.3}``."""
    return parse_weights(",".join(f"{k}={v}" for k, v in (mapping or {}).items()), option="emotion_weights")


def merged(from_rules: Sequence[tuple[str, float]], explicit: Sequence[tuple[str, float]]
           ) -> tuple[tuple[str, float], ...]:
    """The rule file's ``emotion_weights`` under the explicit ones (``--emotion-weights``, the service's
    setting): an explicit weight wins per class. The one merge every path applies (analyzer, service, live)."""
    return tuple({**dict(from_rules), **dict(explicit)}.items())


def with_rule_weights(options: Any, ruleset: Any) -> Any:
    """``AnalyzeOptions`` with ``ruleset``'s ``emotion_weights`` merged under its own (:func:`merged`);
    unchanged when the rule set has none or emotion does not run."""
    from_rules = tuple(getattr(ruleset, "emotion_weights", ()) or ())
    if not from_rules or not options.run_emotion:
        return options
    from dataclasses import replace

    return options.replace(emotion=replace(options.emotion, weights=merged(from_rules, options.emotion.weights)))


def apply(scores: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    x = np.asarray(scores, np.float64) * np.asarray(weights, np.float64)
    return x / x.sum(axis=-1, keepdims=True)


def ua(scores: np.ndarray, truth: np.ndarray, weights: Sequence[float]) -> float:
    pred = np.argmax(apply(scores, weights), axis=1)
    recalls = [float(np.mean(pred[truth == k] == k)) for k in np.unique(truth)]
    return float(np.mean(recalls))


def calibrate(scores: np.ndarray, labels: Sequence[str], passes: int = 3) -> tuple[dict[str, float], float, float]:
    """(weights of the classes that moved, UA before, UA after) from the model's distributions ``[N, 9]``."""
    bad = sorted(set(labels) - set(EMOTION_NAMES))
    if bad:
        raise UsageError(f"calibration needs labels among the nine classes; {', '.join(bad)} are not "
                         f"({', '.join(EMOTION_NAMES)}); for your own labels train a head: callsense adapt train")
    truth = np.array([EMOTION_NAMES.index(lab) for lab in labels])
    w = np.ones(len(EMOTION_NAMES))
    before = best = ua(scores, truth, w)
    for _ in range(passes):
        moved = False
        for k in range(len(EMOTION_NAMES)):
            for g in GRID:
                trial = w.copy()
                trial[k] = g
                score = ua(scores, truth, trial)
                if score > best + 1e-9:
                    best, w, moved = score, trial, True
        if not moved:
            break
    return ({EMOTION_NAMES[k]: float(w[k]) for k in range(len(w)) if w[k] != 1.0}, round(before, 4), round(best, 4))
