"""Voice activity detection: where in a channel someone speaks.

::

    from callsense.audio.vad import detect_speech
    spans = detect_speech(track.samples, offset_ms=0)   # [SpeechSpan(start_ms=400, end_ms=3360), ...]

The model is Silero VAD, run with onnxruntime alone (one intra-op thread, one session per process).
Its weights ship inside the ``silero-vad`` wheel; that package imports torch on import, so callsense
never imports it: it only asks the import system where the package lies and reads the ONNX file
from there. Install it with ``pip install --no-deps silero-vad`` (its metadata requires torch;
callsense does not). ``CALLSENSE_VAD_MODEL=/path/to/silero_vad.onnx`` points at a file elsewhere.

Two layouts of the same network are understood:

* ``silero_vad_16k_sequence.onnx`` (silero-vad >= 6.2): a block of windows per call, the LSTM loop
  inside the graph — preferred, about twice as fast, bit-identical probabilities;
* ``silero_vad.onnx`` (v5/v6): one 512-sample window (+64 samples of context) per call, the state
  ``[2, 1, 128]`` carried by the caller.

Post-processing is a chain of pure functions over the per-window probabilities
(:func:`hysteresis`, :func:`merge_gaps`, :func:`drop_short`, :func:`pad_spans`, :func:`split_long`),
all in integer milliseconds, so each is unit-testable without a model.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from callsense.audio.types import SpeechSpan, VadOptions
from callsense.errors import ModelFormatError, ModelNotFoundError, UsageError

logger = logging.getLogger("callsense")

SAMPLE_RATE = 16_000
WINDOW = 512  # samples per speech probability at 16 kHz (fixed by the model)
CONTEXT = 64  # samples of the previous window the v5+ model sees in front of each window
WINDOW_MS = WINDOW * 1000 // SAMPLE_RATE  # 32 ms
NEG_THRESHOLD_GAP = 0.15  # neg_threshold defaults to threshold - 0.15, as in silero's own utilities
MIN_PIECE_MS = 1_000  # split_long never cuts off a piece shorter than this (or max_segment_ms / 3)
SEQUENCE_BLOCK = 512  # windows per call of the sequence model (16 s; bounds transient memory)

ENV_MODEL = "CALLSENSE_VAD_MODEL"
INSTALL_HINT = "pip install --no-deps silero-vad"
MODEL_FILES = ("silero_vad_16k_sequence.onnx", "silero_vad.onnx")  # in order of preference

Span = tuple[int, int]  # (start_ms, end_ms), end exclusive


# --------------------------------------------------------------------------- model location and loading


def _silero_data_dir() -> Path | None:
    """``silero_vad/data`` of the installed wheel, found WITHOUT importing the package (it imports torch)."""
    try:
        spec = importlib.util.find_spec("silero_vad")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        data = Path(location) / "data"
        if data.is_dir():
            return data
    return None


def locate_model() -> Path:
    """Path of the Silero VAD ONNX file to use; raises :class:`ModelNotFoundError` with the install hint."""
    override = os.environ.get(ENV_MODEL)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(
                f"{ENV_MODEL} names no file", source=path, hint="unset it, or point it at silero_vad.onnx"
            )
        return path
    data = _silero_data_dir()
    if data is not None:
        for name in MODEL_FILES:
            if (data / name).is_file():
                return data / name
    raise ModelNotFoundError(
        "the Silero VAD model (silero_vad.onnx from the silero-vad wheel) is not installed",
        source=data,
        hint=f"{INSTALL_HINT}; or set {ENV_MODEL} to an ONNX file",
    )


class SileroVad:
    """A loaded Silero VAD ONNX model: :meth:`probabilities` gives one speech probability per 32 ms window.

    Thread-safe: the recurrent state lives in each call, the onnxruntime session is shared.
    """

    def __init__(self, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread: the windows are tiny, more threads only add synchronisation; and callers run
        # one VAD per channel/file in parallel themselves.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the sequence export has unused initialisers ORT warns about
        started = time.perf_counter()
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ModelFormatError(
                f"cannot load the Silero VAD model: {e}", source=path, hint=f"reinstall it: {INSTALL_HINT}"
            ) from e
        self.path = path
        names = {i.name for i in self._session.get_inputs()}
        if names == {"input", "h", "c"}:
            self.layout = "sequence"
        elif names == {"input", "state", "sr"}:
            self.layout = "stream"
        else:
            raise ModelFormatError(
                f"unexpected Silero VAD inputs {sorted(names)} (expected input/state/sr of v5+,"
                " or input/h/c of the 16k sequence export)",
                source=path,
                hint=f"install a current model: {INSTALL_HINT}",
            )
        logger.debug("loaded %s VAD model %s in %.2f s", self.layout, path, time.perf_counter() - started)

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Speech probability per 512-sample window of 16 kHz mono float32 (the last window zero-padded)."""
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        count = -(-len(samples) // WINDOW)
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        # One buffer: 64 zeros of context in front, the audio, zeros up to a whole window.
        padded = np.zeros(CONTEXT + count * WINDOW, dtype=np.float32)
        padded[CONTEXT : CONTEXT + len(samples)] = samples
        # Window i with its context is padded[i*512 : i*512 + 576]: a strided view, no copies.
        windows = np.lib.stride_tricks.sliding_window_view(padded, CONTEXT + WINDOW)[::WINDOW]
        if self.layout == "sequence":
            return self._run_sequence(windows)
        return self._run_stream(windows)

    def _run_sequence(self, windows: np.ndarray) -> np.ndarray:
        h = np.zeros((1, 1, 128), dtype=np.float32)
        c = np.zeros((1, 1, 128), dtype=np.float32)
        out = np.empty(len(windows), dtype=np.float32)
        run = self._session.run
        for first in range(0, len(windows), SEQUENCE_BLOCK):
            block = np.ascontiguousarray(windows[first : first + SEQUENCE_BLOCK])
            probs, h, c = run(["speech_probs", "hn", "cn"], {"input": block, "h": h, "c": c})
            out[first : first + len(block)] = probs.reshape(-1)
        return out

    def _run_stream(self, windows: np.ndarray) -> np.ndarray:
        # The state makes windows sequential, so this is one session call per 32 ms: keep the loop bare
        # (bound method, one reused feed dict, outputs by name, no per-window allocation but the view).
        out = np.empty(len(windows), dtype=np.float32)
        feed = {"state": np.zeros((2, 1, 128), dtype=np.float32), "sr": np.array(SAMPLE_RATE, dtype=np.int64)}
        run = self._session.run
        names = ["output", "stateN"]
        for i, window in enumerate(windows):
            feed["input"] = window[None, :]
            prob, feed["state"] = run(names, feed)
            out[i] = prob[0, 0]
        return out


    def stream(self) -> VadStream:
        """A stateful per-channel stream of probabilities over audio pushed chunk by chunk (live calls)."""
        return VadStream(self)

    def _step(self, windows: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """Probabilities of consecutive windows (with context), carrying the recurrent state in ``state``."""
        if self.layout == "sequence":
            h = state.get("h", np.zeros((1, 1, 128), dtype=np.float32))
            c = state.get("c", np.zeros((1, 1, 128), dtype=np.float32))
            probs, state["h"], state["c"] = self._session.run(["speech_probs", "hn", "cn"],
                                                              {"input": np.ascontiguousarray(windows), "h": h, "c": c})
            return probs.reshape(-1).astype(np.float32)
        feed = {"state": state.get("state", np.zeros((2, 1, 128), dtype=np.float32)),
                "sr": np.array(SAMPLE_RATE, dtype=np.int64)}
        out = np.empty(len(windows), dtype=np.float32)
        for i, window in enumerate(windows):
            feed["input"] = window[None, :]
            prob, feed["state"] = self._session.run(["output", "stateN"], feed)
            out[i] = prob[0, 0]
        state["state"] = feed["state"]
        return out


class VadStream:
    """Speech probabilities of one channel whose audio arrives in pieces of any length.

    The windows, their context and the recurrent state are exactly those of
    :meth:`SileroVad.probabilities` over the whole channel, so a live call's probabilities equal the
    offline ones (``flush`` zero-pads the last window as the offline pass does).
    """

    def __init__(self, model: SileroVad):
        self._model = model
        self._state: dict[str, np.ndarray] = {}
        self._buf = np.zeros(CONTEXT, dtype=np.float32)  # context + samples not yet in a window

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities of the windows completed by ``samples`` (16 kHz float32 mono)."""
        self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float32).reshape(-1)])
        count = (len(self._buf) - CONTEXT) // WINDOW
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        windows = np.lib.stride_tricks.sliding_window_view(self._buf[: CONTEXT + count * WINDOW],
                                                           CONTEXT + WINDOW)[::WINDOW]
        probs = self._model._step(windows, self._state)
        self._buf = self._buf[count * WINDOW:].copy()
        return probs

    def flush(self) -> np.ndarray:
        """The last, zero-padded window's probability (none when the audio ended on a window boundary)."""
        rest = len(self._buf) - CONTEXT
        if rest <= 0:
            return np.zeros(0, dtype=np.float32)
        return self.push(np.zeros(WINDOW - rest, dtype=np.float32))


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path) -> SileroVad:
    return SileroVad(path)


def load_vad_model(path: str | Path | None = None) -> SileroVad:
    """The Silero VAD model, loaded once per process and path (:func:`locate_model` when ``path`` is None)."""
    resolved = Path(path) if path is not None else locate_model()
    if not resolved.is_file():
        raise ModelNotFoundError("no such VAD model file", source=resolved, hint=INSTALL_HINT)
    return _load_cached(resolved.resolve())


# --------------------------------------------------------------------------- post-processing (pure)


def hysteresis(probs: Sequence[float] | np.ndarray, threshold: float, neg_threshold: float) -> list[Span]:
    """Runs of speech windows: opened at ``p >= threshold``, closed at the first ``p < neg_threshold``.

    A run ends after its last window with ``p >= threshold`` (dips that stay above ``neg_threshold``
    are bridged, but the decaying tail is not kept). Returns (start_ms, end_ms) with 32 ms resolution
    (window i covers [32 i, 32 i + 32)).
    """
    p = np.asarray(probs, dtype=np.float32)
    spans: list[Span] = []
    # Vectorised candidates keep this O(number of transitions), not a Python pass over every window.
    above = np.flatnonzero(p >= threshold)
    below = np.flatnonzero(p < neg_threshold)
    i = 0
    while True:
        k = np.searchsorted(above, i)
        if k == len(above):
            break
        start = int(above[k])
        j = np.searchsorted(below, start)
        close = int(below[j]) if j < len(below) else len(p)
        # The boundary goes where p last reached ``threshold``, symmetric with the opening: the model's
        # probability decays for ~100 ms after speech stops, and neg_threshold is there to bridge dips,
        # not to stretch the end.
        end = int(above[np.searchsorted(above, close) - 1]) + 1
        spans.append((start * WINDOW_MS, end * WINDOW_MS))
        i = close
    return spans


def merge_gaps(spans: Sequence[Span], min_silence_ms: int) -> list[Span]:
    """Join neighbours separated by less than ``min_silence_ms``."""
    out: list[Span] = []
    for start, end in spans:
        if out and start - out[-1][1] < min_silence_ms:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def drop_short(spans: Sequence[Span], min_speech_ms: int) -> list[Span]:
    """Remove bursts shorter than ``min_speech_ms`` (clicks, breaths, a cough)."""
    return [(s, e) for s, e in spans if e - s >= min_speech_ms]


def pad_spans(spans: Sequence[Span], pad_ms: int, duration_ms: int) -> list[Span]:
    """Widen each span by ``pad_ms`` on both sides, within [0, duration_ms].

    Where two neighbours are closer than two pads, the gap is shared at its middle, so padded spans
    never overlap (they may touch).
    """
    out: list[Span] = []
    for k, (start, end) in enumerate(spans):
        left = max(0, start - pad_ms)
        right = min(duration_ms, end + pad_ms)
        if k > 0:
            prev_end = spans[k - 1][1]
            left = max(left, prev_end + (start - prev_end + 1) // 2)
        if k + 1 < len(spans):
            right = min(right, end + (spans[k + 1][0] - end + 1) // 2)
        out.append((left, right))
    return out


def split_long(
    spans: Sequence[Span],
    max_ms: int,
    quietness: np.ndarray,
    *,
    min_piece_ms: int = MIN_PIECE_MS,
    frame_ms: int = WINDOW_MS,
) -> list[Span]:
    """Cut spans longer than ``max_ms`` at their quietest points, recursively.

    ``quietness[i]`` scores frame i (``frame_ms`` long, on the same time line as the spans; lower =
    quieter: short-term energy in dB, or speech probability). A cut never leaves a piece shorter than
    ``min_piece_ms`` (capped at ``max_ms / 3``), and is placed so that the span still ends up in the
    fewest pieces, ``ceil(length / max_ms)``: the left part must fit in ``pieces // 2`` pieces, the
    right part in the rest, and within that range the quietest frame wins.
    """
    q = np.asarray(quietness, dtype=np.float64)
    min_piece = max(1, min(min_piece_ms, max_ms // 3))
    out: list[Span] = []

    def cut(start: int, end: int) -> None:
        length = end - start
        if length <= max_ms:
            out.append((start, end))
            return
        pieces = -(-length // max_ms)
        left_quota = pieces // 2
        lo = max(length - (pieces - left_quota) * max_ms, min_piece)
        hi = min(left_quota * max_ms, length - min_piece)
        point = _quietest(q, start + lo, start + hi, frame_ms)
        cut(start, point)
        cut(point, end)

    for start, end in spans:
        cut(start, end)
    return out


def _quietest(q: np.ndarray, lo_ms: int, hi_ms: int, frame_ms: int) -> int:
    """The centre (ms) of the quietest frame whose centre lies in [lo_ms, hi_ms]; ties: nearest the middle.

    With no whole frame in range (or no scores there), the middle of the range.
    """
    half = frame_ms // 2
    first = max(0, -(-(lo_ms - half) // frame_ms))
    last = min(len(q) - 1, (hi_ms - half) // frame_ms)
    if first > last:
        return (lo_ms + hi_ms) // 2
    window = q[first : last + 1]
    candidates = np.flatnonzero(window <= window.min())
    middle = ((lo_ms + hi_ms) / 2 - half) / frame_ms - first
    pick = int(candidates[np.argmin(np.abs(candidates - middle))])
    return (first + pick) * frame_ms + half


def frame_energy_db(samples: np.ndarray, frame: int = WINDOW, smooth: int = 3) -> np.ndarray:
    """Short-term energy (dB) per ``frame`` samples, smoothed over ``smooth`` frames (~100 ms)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    count = -(-len(samples) // frame)
    if count == 0:
        return np.zeros(0)
    padded = np.zeros(count * frame, dtype=np.float32)
    padded[: len(samples)] = samples
    power = np.mean(padded.reshape(count, frame).astype(np.float64) ** 2, axis=1)
    db = 10.0 * np.log10(power + 1e-10)
    if smooth > 1 and count >= smooth:
        db = np.convolve(db, np.ones(smooth) / smooth, mode="same")
    return db


def spans_from_probabilities(
    probs: Sequence[float] | np.ndarray,
    options: VadOptions,
    duration_ms: int,
    quietness: np.ndarray | None = None,
) -> list[Span]:
    """The whole post-processing chain on per-window probabilities; times relative to the audio start."""
    _check_options(options)
    neg = (
        options.neg_threshold if options.neg_threshold is not None else max(0.01, options.threshold - NEG_THRESHOLD_GAP)
    )
    spans = hysteresis(probs, options.threshold, neg)
    spans = [(s, min(e, duration_ms)) for s, e in spans if s < duration_ms]
    spans = merge_gaps(spans, options.min_silence_ms)
    spans = drop_short(spans, options.min_speech_ms)
    spans = pad_spans(spans, options.speech_pad_ms, duration_ms)
    return split_long(spans, options.max_segment_ms, np.asarray(probs) if quietness is None else quietness)


def _check_options(options: VadOptions) -> None:
    if not 0.0 < options.threshold < 1.0:
        raise UsageError(f"VAD threshold must lie in (0, 1), got {options.threshold}")
    if options.neg_threshold is not None and not 0.0 <= options.neg_threshold <= options.threshold:
        raise UsageError(
            f"VAD neg_threshold must lie in [0, threshold={options.threshold}], got {options.neg_threshold}"
        )
    for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
        if getattr(options, name) < 0:
            raise UsageError(f"VAD {name} must not be negative, got {getattr(options, name)}")
    if options.max_segment_ms < 3 * WINDOW_MS:
        raise UsageError(f"VAD max_segment_ms must be at least {3 * WINDOW_MS}, got {options.max_segment_ms}")


# --------------------------------------------------------------------------- the entry point


def detect_speech(samples: np.ndarray, options: VadOptions | None = None, *, offset_ms: int = 0) -> list[SpeechSpan]:
    """Speech spans of one channel: 16 kHz mono float32 in, integer ms on the call's time line out.

    ``offset_ms`` is added to every span (for audio that starts later in the call). Spans are sorted,
    do not overlap, lie within the audio, and none is longer than ``options.max_segment_ms`` (long ones
    are cut at their quietest point). Raises :class:`ModelNotFoundError` when silero-vad is missing.
    """
    options = options or VadOptions()
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise UsageError(f"detect_speech takes one channel (a 1-D array), got shape {samples.shape}")
    _check_options(options)
    duration_ms = len(samples) * 1000 // SAMPLE_RATE
    model = load_vad_model()
    if len(samples) == 0:
        return []
    probs = model.probabilities(samples)
    spans = spans_from_probabilities(probs, options, duration_ms, quietness=frame_energy_db(samples))
    return [SpeechSpan(start_ms=s + offset_ms, end_ms=e + offset_ms) for s, e in spans]


__all__ = [
    "SileroVad",
    "VadStream",
    "detect_speech",
    "drop_short",
    "frame_energy_db",
    "hysteresis",
    "load_vad_model",
    "locate_model",
    "merge_gaps",
    "pad_spans",
    "spans_from_probabilities",
    "split_long",
]
