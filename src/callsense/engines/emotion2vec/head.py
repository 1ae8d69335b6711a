"""The runtime-independent half of emotion2vec: the linear head, masking, the timeline and input checks.

Both runtimes (``onnx`` and ``funasr``) produce frame features ``[T, D]`` at 50 frames/s for a segment in
ONE forward pass; everything after that happens here, in numpy, so the two runtimes give the same typed
:class:`~callsense.engines.base.EmotionOutput`:

* utterance scores = softmax(head(mean of all frames)), exactly what FunASR computes
  (``proj(x.mean(dim=1))``), with disabled classes masked out and the rest renormalised;
* the timeline = the same head applied to the mean of the frames inside sliding windows
  (``window_ms``/``hop_ms``), placed on the call's time line. The frame features come from a transformer
  that saw the whole segment, so a window's scores approximate the local emotion; they are not the
  scores a separate forward pass over the window alone would give;
* conditioning: segments shorter than ``min_duration_ms`` are not scored at all (label ``unknown``,
  reason ``too_short``, a one-hot distribution on ``unknown``, no embedding); quiet segments (RMS level
  under ``min_level_dbfs``) are scored but flagged ``low_level``; clipped ones are flagged ``clipped``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callsense.engines.base import EmotionOptions, EmotionOutput, EmotionWindow, SegmentAudio
from callsense.errors import ModelFormatError, UsageError
from callsense.labels import EMOTION_NAMES, SAMPLE_RATE

FRAME_RATE = 50
"""emotion2vec's convolutional front-end strides 320 samples: one feature frame every 20 ms."""
FRAME_MS = 1000 // FRAME_RATE
CONV_SPEC: tuple[tuple[int, int], ...] = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))
"""(kernel, stride) of the front-end's seven convolutions (wav2vec2's), which fix the frame count."""

CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
CLIP_SHARE = 0.001  # ... when more than 0.1 % of the samples are there
UNKNOWN_INDEX = EMOTION_NAMES.index("unknown")


def frame_count(n_samples: int, conv_spec: Sequence[tuple[int, int]] = CONV_SPEC) -> int:
    """Frames the front-end yields for ``n_samples`` (0 when the input is shorter than its receptive field)."""
    n = int(n_samples)
    for kernel, stride in conv_spec:
        if n < kernel:
            return 0
        n = (n - kernel) // stride + 1
    return n


def parse_token_line(line: str) -> str:
    """``"生气/angry"`` -> ``"angry"``; ``"<unk>"`` -> ``"unknown"``; other labels are kept as written."""
    text = line.strip()
    if text in ("<unk>", "unk"):
        return "unknown"
    return text.rsplit("/", 1)[-1].strip().lower() if "/" in text else text


def read_tokens(path: Path) -> tuple[str, ...]:
    """The class labels of a model directory's ``tokens.txt``, one per line, in model order."""
    try:
        lines = [ln for ln in path.read_text("utf-8").splitlines() if ln.strip()]
    except OSError as e:
        raise ModelFormatError(f"cannot read the label file: {e}", source=path,
                               hint="the model directory is incomplete; pull or export it again") from e
    return tuple(parse_token_line(ln) for ln in lines)


@dataclass(frozen=True)
class Head:
    """The linear classifier over time-averaged features: ``logits = x @ weight.T + bias``."""

    weight: np.ndarray  # [C, D] float32
    bias: np.ndarray  # [C] float32
    labels: tuple[str, ...]  # C model labels, e.g. ("angry", ..., "unknown") or "unuse_3"

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def disabled(self, masked: Sequence[str] = ()) -> np.ndarray:
        """Boolean [C]: classes the model itself disables (``unuse*``) or the user masked."""
        unknown = sorted(set(masked) - set(EMOTION_NAMES))
        if unknown:
            raise UsageError(f"cannot mask unknown emotion label(s) {', '.join(unknown)}; "
                             f"valid: {', '.join(EMOTION_NAMES)}")
        return np.array([lab.startswith("unuse") or lab in masked for lab in self.labels], dtype=bool)

    def scores(self, pooled: np.ndarray, masked: Sequence[str] = (),
               weights: Sequence[tuple[str, float]] = ()) -> np.ndarray:
        """Softmax over ``head(pooled)`` ([D] or [W, D]) with disabled classes at exactly 0.

        ``weights`` (label, w): sensitivity per class. A class's probability is multiplied by ``w`` and the
        distribution renormalised (the same as adding ``log w`` to its logit), so the main label is chosen
        from the weighted scores."""
        logits = np.asarray(pooled, dtype=np.float64) @ self.weight.T.astype(np.float64) + self.bias
        if weights:
            by_label = dict(weights)
            logits = logits + np.log([float(by_label.get(lab, 1.0)) for lab in self.labels])
        return masked_softmax(logits, self.disabled(masked))

    @classmethod
    def load(cls, npz_path: Path, tokens_path: Path) -> Head:
        try:
            with np.load(npz_path) as data:
                weight = np.asarray(data["weight"], dtype=np.float32)
                bias = np.asarray(data["bias"], dtype=np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise ModelFormatError(f"not a classifier head (needs arrays weight [9, D] and bias [9]): {e}",
                                   source=npz_path, hint="export the model again") from e
        labels = read_tokens(tokens_path)
        if weight.ndim != 2 or bias.shape != (weight.shape[0],) or len(labels) != weight.shape[0]:
            raise ModelFormatError(
                f"head shapes do not match: weight {weight.shape}, bias {bias.shape}, {len(labels)} labels in "
                f"{tokens_path.name}", source=npz_path, hint="export the model again")
        return cls(weight, bias, labels)


def masked_softmax(logits: np.ndarray, disabled: np.ndarray) -> np.ndarray:
    """Softmax along the last axis with ``disabled`` classes removed (score 0) and the rest renormalised."""
    z = np.array(logits, dtype=np.float64)
    if disabled.all():
        raise UsageError("every emotion class is masked; leave at least one enabled")
    z[..., disabled] = -np.inf
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def to_model_order(scores: np.ndarray, labels: Sequence[str]) -> tuple[float, ...]:
    """Scores of the model's classes as the 9 callsense classes in ``EMOTION_NAMES`` order.

    Official models already list the 9 classes in this order; older revisions with ``unuse`` slots map
    by name, and classes a model lacks get 0.
    """
    if tuple(labels) == EMOTION_NAMES:
        return tuple(float(s) for s in scores)
    by_name = {lab: float(s) for lab, s in zip(labels, scores)}
    return tuple(by_name.get(name, 0.0) for name in EMOTION_NAMES)


# ---- the timeline ------------------------------------------------------------------------------------
def window_spans(duration_ms: int, window_ms: int, hop_ms: int) -> list[tuple[int, int]]:
    """Windows ``(start, end)`` in ms from the segment start.

    Full windows every ``hop_ms``; when they do not reach the end, one last full window is aligned to the
    end, so the windows cover the whole segment. A segment shorter than a window gets one window.
    """
    if window_ms <= 0 or hop_ms <= 0:
        raise UsageError(f"emotion window and hop must be positive (got {window_ms} ms / {hop_ms} ms)")
    if duration_ms <= window_ms:
        return [(0, max(duration_ms, 0))]
    spans = [(s, s + window_ms) for s in range(0, duration_ms - window_ms + 1, hop_ms)]
    if spans[-1][1] < duration_ms:
        spans.append((duration_ms - window_ms, duration_ms))
    return spans


def pool_windows(frames: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Mean frame feature inside each span (ms) -> [W, D]; a frame t covers [20 t, 20 t + 20) ms."""
    t = frames.shape[0]
    csum = np.concatenate([np.zeros((1, frames.shape[1]), np.float64), np.cumsum(frames, axis=0, dtype=np.float64)])
    out = np.empty((len(spans), frames.shape[1]), np.float64)
    for i, (s, e) in enumerate(spans):
        f0 = min(int(s // FRAME_MS), t - 1)
        f1 = min(max(math.ceil(e / FRAME_MS), f0 + 1), t)
        out[i] = (csum[f1] - csum[f0]) / (f1 - f0)
    return out


# ---- input conditioning --------------------------------------------------------------------------------
def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-inf dB for digital silence is reported as -120)."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(20.0 * math.log10(rms), -120.0) if rms > 0 else -120.0


def is_clipped(samples: np.ndarray) -> bool:
    if samples.size == 0:
        return False
    return float(np.mean(np.abs(samples) >= CLIP_LEVEL)) > CLIP_SHARE


def duration_ms(samples: np.ndarray) -> int:
    return round(len(samples) * 1000 / SAMPLE_RATE)


def conditioning(samples: np.ndarray, options: EmotionOptions) -> tuple[str, ...]:
    """Flags for one segment: ``too_short`` (not scored), ``low_level``, ``clipped`` (scored, flagged)."""
    flags = []
    if duration_ms(samples) < options.min_duration_ms or frame_count(len(samples)) == 0:
        flags.append("too_short")
    if level_dbfs(samples) < options.min_level_dbfs:
        flags.append("low_level")
    if is_clipped(samples):
        flags.append("clipped")
    return tuple(flags)


def too_short_output(segment: SegmentAudio, options: EmotionOptions, flags: tuple[str, ...]) -> EmotionOutput:
    """The honest answer for a segment too short to judge: ``unknown`` with certainty, and why."""
    scores = tuple(1.0 if i == UNKNOWN_INDEX else 0.0 for i in range(len(EMOTION_NAMES)))
    windows: tuple[EmotionWindow, ...] = ()
    if options.granularity == "frame":
        end = segment.start_ms + duration_ms(segment.samples)
        windows = (EmotionWindow(segment.start_ms, end, scores),)
    return EmotionOutput(scores=scores, embedding=None, windows=windows, flags=flags, reason="too_short")


def build_output(frames: np.ndarray, head: Head, segment: SegmentAudio, options: EmotionOptions,
                 flags: tuple[str, ...] = ()) -> EmotionOutput:
    """Utterance scores, embedding and (frame granularity) timeline from ONE segment's frame features."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[0] == 0 or frames.shape[1] != head.dim:
        raise ModelFormatError(f"the model gave frame features of shape {frames.shape}; expected [T>0, {head.dim}]",
                               hint="the model and its head.npz do not belong together; export the model again")
    embedding = frames.mean(axis=0, dtype=np.float64)
    scores = to_model_order(head.scores(embedding, options.masked, options.weights), head.labels)
    windows: tuple[EmotionWindow, ...] = ()
    if options.granularity == "frame":
        spans = window_spans(duration_ms(segment.samples), options.window_ms, options.hop_ms)
        pooled = pool_windows(frames, spans)
        win_scores = head.scores(pooled, options.masked, options.weights)
        windows = tuple(
            EmotionWindow(segment.start_ms + s, segment.start_ms + e, to_model_order(ws, head.labels))
            for (s, e), ws in zip(spans, win_scores)
        )
    return EmotionOutput(scores=scores, embedding=embedding.astype(np.float32) if options.embeddings else None,
                         windows=windows, flags=flags)
