"""Utterance embeddings of labelled clips, from the configured emotion2vec+ model, cached by audio hash.

Each clip is decoded, mixed to mono, preprocessed (:mod:`callsense.adapt.clip`: trimmed, too-quiet
refused) and scored whole; the embedding (the mean frame, as stored for every segment) is cached under
``$CALLSENSE_HOME/cache/embeddings/<model checksum>/<audio sha256>.npy``, so re-training, evaluating
and calibrating on the same clips costs one forward pass per clip in all. A clip that cannot be used
is recorded with its reason and skipped: one bad file does not stop a training set.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callsense.adapt.clip import prepare_clip
from callsense.adapt.head import model_checksum
from callsense.adapt.sources import LabelledClip
from callsense.errors import CallsenseError

log = logging.getLogger("callsense")


@dataclass(frozen=True)
class Embedded:
    embeddings: np.ndarray  # [N, D] float32, the usable clips in order
    scores: np.ndarray  # [N, 9] the model's own distribution of each clip (for calibration)
    labels: tuple[str, ...]
    groups: tuple[str, ...]  # speaker, or the clip's own hash
    hashes: tuple[str, ...]  # audio sha256
    failed: tuple[tuple[str, str], ...]  # (path, reason)
    cached: int  # how many came from the cache


def cache_dir(checksum: str) -> Path:
    from callsense.engines.manager import callsense_home

    return callsense_home() / "cache" / "embeddings" / checksum[:16]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def embed_clip(engine: Any, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(embedding [D], scores [9]) of one clip scored whole."""
    from callsense.adapt.clip import mono
    from callsense.audio.decode import load_audio
    from callsense.engines.base import EmotionOptions, SegmentAudio
    from callsense.errors import InputError

    audio = load_audio(path)
    clip = prepare_clip(mono([t.samples for t in audio.tracks]), source=path)
    out = engine.score([SegmentAudio(id="clip", samples=clip.samples, start_ms=0)],
                       EmotionOptions(granularity="utterance", embeddings=True))[0]
    if out.embedding is None:
        raise InputError(f"not scored ({out.reason or 'no embedding'})", source=path,
                         hint="clips must hold at least 0.5 s of speech")
    return np.asarray(out.embedding, np.float32), np.asarray(out.scores, np.float64)


def embed_clips(engine: Any, clips: Sequence[LabelledClip], *,
                advance: Callable[[], None] | None = None) -> Embedded:
    checksum = model_checksum(engine)
    folder = cache_dir(checksum)
    folder.mkdir(parents=True, exist_ok=True)
    rows, scores, labels, groups, hashes, failed, cached = [], [], [], [], [], [], 0
    for clip in clips:
        try:
            if not clip.path.is_file():
                raise CallsenseError("no such file")
            sha = file_sha256(clip.path)
            f = folder / f"{sha}.npz"
            if f.is_file():
                with np.load(f) as data:
                    emb, sc = data["embedding"], data["scores"]
                cached += 1
            else:
                emb, sc = embed_clip(engine, clip.path)
                tmp = folder / f".{sha}.partial.npz"
                np.savez(tmp, embedding=emb, scores=sc)
                tmp.replace(f)
        except CallsenseError as e:
            failed.append((str(clip.path), e.message))
            log.warning("skipped %s: %s", clip.path, e.message)
        else:
            rows.append(emb)
            scores.append(sc)
            labels.append(clip.label)
            groups.append(clip.speaker or sha)
            hashes.append(sha)
        if advance is not None:
            advance()
    dim = int(engine.head.dim)
    return Embedded(np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32),
                    np.stack(scores) if scores else np.zeros((0, 9)), tuple(labels), tuple(groups),
                    tuple(hashes), tuple(failed), cached)


STORE_SOURCES = ("store:corrections",)


def is_store_source(source: object) -> bool:
    return str(source).startswith("store:")


def embed_store(engine: Any, source: str, db: str | None = None) -> Embedded:
    """Reviewers' corrections as a training set (``store:corrections``): each corrected segment's stored
    embedding and scores (no audio is read), grouped by call. A segment embedded by another emotion model
    than ``engine``'s, or stored without an embedding, is skipped with its reason."""
    from callsense.errors import UsageError

    if source not in STORE_SOURCES:
        raise UsageError(f"unknown store source {source!r}; use {', '.join(STORE_SOURCES)}")
    from callsense.store.corrections import training_rows
    from callsense.store.db import open_store

    with open_store(db) as store:
        rows = training_rows(store)
    dim = int(engine.head.dim)
    name = engine.info.name
    embs, scores, labels, groups, hashes, failed = [], [], [], [], [], []
    for r in rows:
        where = f"store:{r.call_id}/{r.segment_id}"
        if r.embedding is None:
            failed.append((where, "no stored embedding (analysed without embeddings)"))
        elif r.model is not None and r.model != name:
            failed.append((where, f"embedded by {r.model}, not {name}"))
        elif r.embedding.shape[0] != dim:
            failed.append((where, f"embedding of dimension {r.embedding.shape[0]}, the model's is {dim}"))
        else:
            embs.append(r.embedding)
            scores.append(r.scores or (1.0 / 9,) * 9)
            labels.append(r.label)
            groups.append(r.call_id)
            hashes.append(hashlib.sha256(f"{r.call_id}/{r.segment_id}".encode() + r.embedding.tobytes()).hexdigest())
    for where, reason in failed:
        log.warning("skipped %s: %s", where, reason)
    return Embedded(np.stack(embs).astype(np.float32) if embs else np.zeros((0, dim), np.float32),
                    np.asarray(scores, np.float64) if scores else np.zeros((0, 9)), tuple(labels), tuple(groups),
                    tuple(hashes), tuple(failed), 0)
