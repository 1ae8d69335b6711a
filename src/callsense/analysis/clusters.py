"""Clusters and outliers of utterance embeddings (the seeds' 客户聚类分析 and 异常语音检测).

Vectors are L2-normalised first, so Euclidean k-means groups by cosine (spherical k-means, nearly).

- :func:`cluster`: scikit-learn ``KMeans`` (``MiniBatchKMeans`` beyond :data:`MINIBATCH_OVER` vectors)
  with ``k`` given, or chosen in ``k_min..k_max`` by the best **silhouette** (cosine; on a seeded sample
  of at most :data:`SILHOUETTE_SAMPLE` vectors). Each vector's distance to its centre is kept: the
  examples of a cluster are its nearest members.
- :func:`outlier_scores`: a segment's score is its mean cosine distance to its :data:`NEIGHBOURS`
  nearest neighbours in a reference set (a chosen agent's or queue's normal speech), other calls only;
  the reference's own scores (each against the rest of the reference, its own call left out) give the
  threshold, their :data:`FLAG_QUANTILE` quantile: a segment over it is flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from callsense.errors import InputError, MissingExtraError, UsageError

SEED = 0
MINIBATCH_OVER = 20_000
SILHOUETTE_SAMPLE = 3_000
NEIGHBOURS = 5
FLAG_QUANTILE = 0.95
K_MAX = 50


def _sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise MissingExtraError("clusters need scikit-learn", hint="pip install 'callsense[adapt]'") from e


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Clustering:
    k: int
    labels: np.ndarray  # [N] cluster of each vector
    distances: np.ndarray  # [N] Euclidean distance (unit vectors) to its centre
    silhouette: float | None  # of the chosen k (None for k given with too few vectors to score)
    tried: dict[int, float]  # silhouette per k tried
    algorithm: str  # kmeans or minibatch


def _fit(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, str]:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(x) > MINIBATCH_OVER:
        est = MiniBatchKMeans(n_clusters=k, random_state=SEED, n_init=3, batch_size=4096)
        algo = "minibatch"
    else:
        est = KMeans(n_clusters=k, random_state=SEED, n_init=4)
        algo = "kmeans"
    labels = est.fit_predict(x)
    dist = np.linalg.norm(x - est.cluster_centers_[labels], axis=1)
    return labels.astype(np.int64), dist.astype(np.float32), algo


def _silhouette(x: np.ndarray, labels: np.ndarray) -> float | None:
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) < 2 or len(set(labels.tolist())) >= len(x):
        return None
    n = min(len(x), SILHOUETTE_SAMPLE)
    return float(silhouette_score(x, labels, metric="cosine", sample_size=n if n < len(x) else None,
                                  random_state=SEED))


def cluster(x: np.ndarray, *, k: int | None = None, k_min: int = 2, k_max: int = 8) -> Clustering:
    """Cluster the rows of ``x`` (see the module docstring)."""
    _sklearn()
    x = unit(x)
    n = len(x)
    if k is not None:
        if not 2 <= k <= K_MAX:
            raise UsageError(f"--k must be 2..{K_MAX}, not {k}")
        if n < k:
            raise InputError(f"{n} segments cannot make {k} clusters", hint="analyse more calls, or lower --k")
        labels, dist, algo = _fit(x, k)
        sil = _silhouette(x, labels)
        return Clustering(k, labels, dist, sil, {k: sil} if sil is not None else {}, algo)
    if not 2 <= k_min <= k_max <= K_MAX:
        raise UsageError(f"need 2 <= --k-min <= --k-max <= {K_MAX}, not {k_min}..{k_max}")
    if n < k_min + 1:
        raise InputError(f"{n} segments are too few to choose a number of clusters (need {k_min + 1})",
                         hint="analyse more calls, or give --k")
    best: tuple[float, int, np.ndarray, np.ndarray, str] | None = None
    tried: dict[int, float] = {}
    for kk in range(k_min, min(k_max, n - 1) + 1):
        labels, dist, algo = _fit(x, kk)
        sil = _silhouette(x, labels)
        if sil is None:
            continue
        tried[kk] = round(sil, 4)
        if best is None or sil > best[0] + 1e-9:
            best = (sil, kk, labels, dist, algo)
    if best is None:
        raise InputError("the segments could not be clustered (all embeddings identical?)")
    sil, kk, labels, dist, algo = best
    return Clustering(kk, labels, dist, sil, tried, algo)


@dataclass(frozen=True)
class Outliers:
    scores: np.ndarray  # [N] mean cosine distance to the nearest reference neighbours
    flagged: np.ndarray  # [N] bool: over the threshold
    threshold: float
    reference_size: int


def _knn_distance(q: np.ndarray, ref: np.ndarray, q_groups: Sequence[str], ref_groups: Sequence[str],
                  k: int) -> np.ndarray:
    rg = np.asarray(ref_groups)
    qg = np.asarray(q_groups)
    out = np.empty(len(q), np.float32)
    for i in range(0, len(q), 2048):
        sims = q[i:i + 2048] @ ref.T  # cosine (unit rows)
        sims[qg[i:i + 2048, None] == rg[None, :]] = -np.inf  # never a neighbour from the same call
        kk = min(k, ref.shape[0])
        top = -np.partition(-sims, kk - 1, axis=1)[:, :kk]
        top = np.where(np.isfinite(top), top, np.nan)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(top, axis=1)
        out[i:i + 2048] = np.where(np.isnan(mean), 2.0, 1.0 - mean)  # no other call: as far as can be
    return out


def outlier_scores(x: np.ndarray, groups: Sequence[str], ref: np.ndarray, ref_groups: Sequence[str], *,
                   k: int = NEIGHBOURS, quantile: float = FLAG_QUANTILE) -> Outliers:
    """Scores of ``x`` (rows; ``groups`` their call ids) against the reference rows (see the docstring)."""
    if len(ref) < 2 or len(set(ref_groups)) < 2:
        raise InputError(f"the reference set has {len(ref)} segments from {len(set(ref_groups))} calls; "
                         "it needs segments of at least 2 calls", hint="choose a broader reference")
    if not 0 < quantile < 1:
        raise UsageError(f"the flag quantile must be in (0, 1), not {quantile}")
    q, r = unit(x), unit(ref)
    scores = _knn_distance(q, r, groups, ref_groups, k)
    own = _knn_distance(r, r, ref_groups, ref_groups, k)
    threshold = float(np.quantile(own, quantile))
    return Outliers(scores, scores > threshold, threshold, len(ref))
