"""Heads on frozen emotion2vec+ embeddings: scikit-learn, grouped cross-validation, ONNX (skl2onnx).

emotion2vec's own recipe adapts the model with a small head on mean-pooled frozen features (a linear
layer or a two-layer MLP), and emotion2vec+'s classifier is itself a linear layer on that feature; so:

* ``logreg`` (default): standardised features, logistic regression with balanced class weights;
* ``mlp``: standardised features, one hidden layer of 256 (scikit-learn's ``MLPClassifier``, early
  stopping off so small sets train deterministically).

Metrics come from cross-validation grouped by speaker (or call): no speaker is in both the training and
the test fold, so a head that memorises voices scores what it deserves. ``UA`` is the unweighted
accuracy (mean recall per class, the SER literature's UA), ``WA`` the plain accuracy, and ``macro_f1``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from callsense.errors import InputError, MissingExtraError, UsageError

KINDS = ("logreg", "mlp")
MAX_FOLDS = 5
SEED = 0


def _require() -> None:
    try:
        import skl2onnx  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as e:
        raise MissingExtraError("training a head needs scikit-learn and skl2onnx",
                                hint="pip install 'callsense[adapt]'") from e


@dataclass(frozen=True)
class Metrics:
    ua: float  # unweighted accuracy: mean per-class recall
    wa: float  # weighted accuracy: share of clips right
    macro_f1: float
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: true label, columns: predicted, in ``labels`` order
    folds: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"ua": self.ua, "wa": self.wa, "macro_f1": self.macro_f1, "labels": list(self.labels),
                "confusion": [list(r) for r in self.confusion], "folds": self.folds, "n": self.n}


def metrics_of(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], folds: int = 0) -> Metrics:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

    labels = list(labels)
    return Metrics(
        ua=round(float(balanced_accuracy_score(y_true, y_pred)), 4),
        wa=round(float(accuracy_score(y_true, y_pred)), 4),
        macro_f1=round(float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)), 4),
        labels=tuple(labels),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion_matrix(y_true, y_pred, labels=labels)),
        folds=folds, n=len(y_true))


def make_estimator(kind: str) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        clf = LogisticRegression(class_weight="balanced", max_iter=2000, C=1.0)
    elif kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(256,), max_iter=500, random_state=SEED)
    else:
        raise UsageError(f"head kind must be {' or '.join(KINDS)}, not {kind!r}")
    return make_pipeline(StandardScaler(), clf)


def training_hash(hashes: Sequence[str], labels: Sequence[str]) -> str:
    """sha256 over the sorted (audio sha256, label) pairs: the same clips and labels, the same hash."""
    h = hashlib.sha256()
    for sha, lab in sorted(zip(hashes, labels)):
        h.update(f"{sha}\t{lab}\n".encode())
    return h.hexdigest()


def check_training_set(labels: Sequence[str]) -> dict[str, int]:
    counts = Counter(labels)
    if len(counts) < 2:
        raise InputError(f"a head needs at least two labels; the clips have {len(counts)} ({', '.join(counts)})",
                         hint="label clips of at least two emotions")
    few = {k: v for k, v in counts.items() if v < 2}
    if few:
        raise InputError(f"every label needs at least 2 clips; {', '.join(f'{k} has {v}' for k, v in few.items())}",
                         hint="docs/adapt.md: aim for 50+ clips per label")
    return dict(sorted(counts.items()))


def cross_validate(x: np.ndarray, labels: Sequence[str], groups: Sequence[str], kind: str) -> Metrics:
    """Out-of-fold predictions with folds grouped by ``groups`` (stratified where the groups allow)."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels)
    g = np.asarray(groups)
    n_groups = len(set(groups))
    folds = min(MAX_FOLDS, n_groups, min(Counter(labels).values()) if n_groups == len(labels) else n_groups)
    names = sorted(set(labels))
    if folds < 2:
        raise InputError(f"cross-validation needs clips from at least 2 speakers (have {n_groups})",
                         hint="give a speaker column, or more clips")
    pred = np.empty(len(y), dtype=object)
    for train, test in StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=SEED).split(x, y, g):
        if len(set(y[train])) < 2:
            pred[test] = y[train][0]
            continue
        est = make_estimator(kind).fit(x[train], y[train])
        pred[test] = est.predict(x[test])
    return metrics_of(list(y), list(pred), names, folds)


@dataclass(frozen=True)
class TrainedHead:
    onnx_model: Any  # onnx.ModelProto
    labels: tuple[str, ...]
    metrics: Metrics
    kind: str


def train_head(x: np.ndarray, labels: Sequence[str], groups: Sequence[str], kind: str = "logreg") -> TrainedHead:
    """Cross-validate, then fit on every clip and convert to ONNX (probabilities as a plain tensor)."""
    _require()
    check_training_set(labels)
    make_estimator(kind)  # the kind's check before any work
    metrics = cross_validate(x, labels, groups, kind)
    names = sorted(set(labels))
    index = {lab: i for i, lab in enumerate(names)}
    est = make_estimator(kind).fit(np.asarray(x, np.float32), np.array([index[v] for v in labels], np.int64))
    return TrainedHead(to_onnx(est, x.shape[1]), tuple(names), metrics, kind)


def to_onnx(estimator: Any, dim: int) -> Any:
    from skl2onnx import to_onnx as convert
    from skl2onnx.common.data_types import FloatTensorType

    # zipmap off: the probabilities come out as a [N, C] tensor, read by index in label order
    return convert(estimator, initial_types=[("embedding", FloatTensorType([None, dim]))],
                   options={id(estimator.steps[-1][1]): {"zipmap": False}}, target_opset=17)
