"""Telephone signal tones that SenseVoice has no tag for: ringback, busy tone, dial tone and DTMF keys.

Pure numpy, run on every track of a call (VAD does not see tones as speech, so SenseVoice never hears
them). A call that is mostly ringing is how an unanswered call looks; the default pack's
``call.invalid`` counts these events like music (docs/rules.md, "Invalid calls").

How it decides (every threshold is a module constant, documented in docs/rules.md):

1. Frames of 50 ms every 25 ms, Hann window, power at 10 Hz steps near the tone frequencies. A frame quieter than
   ``MIN_LEVEL_DBFS`` (-45 dBFS) is silence.
2. A frame is a *DTMF* frame when one DTMF row frequency (697/770/852/941 Hz) and one column
   frequency (1209/1336/1477/1633 Hz), within ``TOLERANCE_HZ`` (±20 Hz), each hold at least
   ``DTMF_MIN_EACH`` (20 %) of the frame's power and together at least ``TONE_MIN_SHARE`` (80 %).
   A key press is ``DTMF_MIN_MS`` (40 ms) or more of frames of the same key.
3. A frame is a *call-progress* frame when one of the national tone sets (450 Hz China; 425 Hz
   Europe; 400 Hz; 400+450 Hz UK; 440+480 Hz North-American ringback; 480+620 Hz busy; 350+440 Hz
   dial) holds at least ``TONE_MIN_SHARE`` of its power. Speech, with its spread harmonics, stays far
   below that; a sung or played note may not, which is why a single burst under ``MIN_BURST_MS``
   (150 ms) is ignored.
4. Runs of call-progress frames are *bursts*; bursts with gaps up to ``MAX_GAP_MS`` (5 s) form a
   cadence. Median burst ≤ ``BUSY_MAX_ON_MS`` (700 ms) with at least two bursts: ``BusyTone``; a
   single burst over ``DIAL_MIN_ON_MS`` (3 s): ``DialTone``; otherwise ``Ringback``. The event spans
   the cadence from its first burst's start to its last burst's end, silent gaps included (the phone
   is ringing during them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callsense.labels import SAMPLE_RATE, TONE_EVENTS

FRAME_MS = 50
HOP_MS = 25
MIN_LEVEL_DBFS = -45.0
TOLERANCE_HZ = 20.0
TONE_MIN_SHARE = 0.8
DTMF_MIN_EACH = 0.2
DTMF_MIN_MS = 40
MIN_BURST_MS = 150
MAX_GAP_MS = 5000
BUSY_MAX_ON_MS = 700
DIAL_MIN_ON_MS = 3000

DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
DTMF_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
PROGRESS_SETS: tuple[tuple[float, ...], ...] = (
    (450.0,), (425.0,), (400.0,), (400.0, 450.0), (440.0, 480.0), (480.0, 620.0), (350.0, 440.0))

TONE_TYPES = TONE_EVENTS  # event types this module produces

_CHUNK = 1024  # frames per batch: bounds memory on hour-long calls


@dataclass(frozen=True)
class Tone:
    type: str  # one of TONE_TYPES
    start_ms: int
    end_ms: int
    key: str | None = None  # the DTMF key ("5", "#"), None for call-progress tones


def detect_tones(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[Tone, ...]:
    """Ringback, busy, dial and DTMF tones in one channel of float32 samples in [-1, 1], by start time."""
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    frame = int(sample_rate * FRAME_MS / 1000)
    hop = int(sample_rate * HOP_MS / 1000)
    if frame <= 0 or x.size < frame:
        return ()
    runs = _runs(_frame_labels(x, sample_rate, frame, hop))
    return tuple(sorted(_dtmf(runs) + _progress(runs), key=lambda t: (t.start_ms, t.type)))


_CP = 16  # frame code of a call-progress tone; 0-15 are DTMF keys (row * 4 + column); -1 nothing


def _frame_labels(x: np.ndarray, sr: int, frame: int, hop: int) -> np.ndarray:
    """Per frame: the DTMF key code (0-15), ``_CP`` for a call-progress tone, or -1.

    Only the ~70 spectrum bins near the tone frequencies are computed (a small DFT matrix, not a full
    FFT); the frame's total power comes from Parseval, so a share is exact without the other bins."""
    n_frames = 1 + (x.size - frame) // hop
    step = 10.0  # Hz between the bins looked at
    centres = sorted({*DTMF_ROWS, *DTMF_COLS, *(f for s in PROGRESS_SETS for f in s)})
    bins = np.array(sorted({round(c + d, 1) for c in centres for d in np.arange(-TOLERANCE_HZ, TOLERANCE_HZ + 1, step)}))
    t = np.arange(frame) / sr
    window = np.hanning(frame)
    dft = (np.exp(-2j * np.pi * bins[None, :] * t[:, None]) * window[:, None]).astype(np.complex64)

    def near(fs: tuple[float, ...]) -> np.ndarray:
        return np.any(np.abs(bins[None, :] - np.array(fs)[:, None]) <= TOLERANCE_HZ, axis=0)

    # one-sided power density of bin f is 2|X(f)|^2 / (frame * sum(w^2)) per Hz of ``step``; Parseval gives the total
    scale = 2.0 * step / (sr * float(np.sum(window ** 2)))
    rows = np.stack([near((f,)) for f in DTMF_ROWS])
    cols = np.stack([near((f,)) for f in DTMF_COLS])
    sets = np.stack([near(s) for s in PROGRESS_SETS])
    floor = 10 ** (MIN_LEVEL_DBFS / 10)
    out = np.full(n_frames, -1, dtype=np.int8)
    for c0 in range(0, n_frames, _CHUNK):
        idx = np.arange(c0, min(n_frames, c0 + _CHUNK))[:, None] * hop + np.arange(frame)[None, :]
        frames = x[idx]
        centred = frames - frames.mean(axis=1, keepdims=True)  # DC is not a tone
        energy = np.mean(centred.astype(np.float64) ** 2, axis=1)
        loud = energy >= floor
        if not loud.any():
            continue
        power = (np.abs(centred[loud] @ dft) ** 2).astype(np.float64) * scale
        total = energy[loud] + 1e-20  # mean power = the integral of the one-sided density (Parseval)
        r_share, c_share = (power @ rows.T) / total[:, None], (power @ cols.T) / total[:, None]
        p_share = (power @ sets.T) / total[:, None]
        rb, cb = r_share.max(axis=1), c_share.max(axis=1)
        dtmf = (rb >= DTMF_MIN_EACH) & (cb >= DTMF_MIN_EACH) & (rb + cb >= TONE_MIN_SHARE)
        code = np.where(dtmf, r_share.argmax(axis=1) * 4 + c_share.argmax(axis=1),
                        np.where(p_share.max(axis=1) >= TONE_MIN_SHARE, _CP, -1))
        out[c0 + np.flatnonzero(loud)] = code
    return out


def _runs(codes: np.ndarray) -> list[tuple[int, int, int]]:
    """(code, first frame, last frame + 1) of each run of equal codes other than -1."""
    if codes.size == 0:
        return []
    edges = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [codes.size]])
    return [(int(codes[a]), int(a), int(b)) for a, b in zip(starts, ends) if codes[a] != -1]


def _span(a: int, b: int) -> tuple[int, int]:
    """Frames [a, b) -> milliseconds, from the first frame's centre less half a hop to the last's plus half
    a hop: a frame half filled by a tone still shows it (the share is relative), so frame edges overstate."""
    half = (FRAME_MS - HOP_MS) // 2
    return a * HOP_MS + half, (b - 1) * HOP_MS + FRAME_MS - half


def _dtmf(runs: list[tuple[int, int, int]]) -> list[Tone]:
    out = []
    for code, a, b in runs:
        s, e = _span(a, b)
        if code < _CP and e - s >= DTMF_MIN_MS:
            out.append(Tone("DTMF", s, e, key=DTMF_KEYS[code // 4][code % 4]))
    return out


def _progress(runs: list[tuple[int, int, int]]) -> list[Tone]:
    bursts = [_span(a, b) for code, a, b in runs if code == _CP]
    bursts = [(s, e) for s, e in bursts if e - s >= MIN_BURST_MS]
    out: list[Tone] = []
    group: list[tuple[int, int]] = []
    for burst in [*bursts, None]:
        if burst is not None and (not group or burst[0] - group[-1][1] <= MAX_GAP_MS):
            group.append(burst)
            continue
        if group:
            on = float(np.median([e - s for s, e in group]))
            if len(group) >= 2 and on <= BUSY_MAX_ON_MS:
                kind = "BusyTone"
            elif len(group) == 1 and on >= DIAL_MIN_ON_MS:
                kind = "DialTone"
            else:
                kind = "Ringback"
            out.append(Tone(kind, group[0][0], group[-1][1]))
        group = [burst] if burst is not None else []
    return out
