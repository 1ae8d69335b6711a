"""Generate the synthetic benchmark call: a stereo conversation with ground-truth speech intervals.

    python bench/gen_call.py --seed 7 --duration 600 --out bench/data/call_600s_seed7.wav
    python bench/gen_call.py --seed 7 --duration 20 --out /tmp/call.wav --voice espeak

Writes ``<out>`` (16 kHz PCM16 stereo WAV: agent left, customer right) and ``<out>.truth.json`` (every
speech interval per channel in ms, its turn, language and voice; overlaps; long pauses; speech ratio).

Two voices (agent: higher F0, customer: lower F0), two "languages", alternating turns, overlapping
turn starts, hesitation pauses inside turns and long silences (hold music without the music). The
content is deterministic from ``--seed``: same seed, same numpy, same bytes.

Voices (``--voice``):

* ``synth`` (default; needs only numpy): speech-like audio made by additive synthesis. Syllables are
  a consonant (a shaped noise burst) followed by a voiced vowel: harmonics of a moving F0, each
  weighted by a three-formant envelope of one of five vowels, under a syllable-rate raised-cosine
  envelope. "zh" phrases use per-syllable tone contours (level/rising/dipping/falling) and even
  syllable durations; "en" phrases a declining F0 with stressed syllables and uneven durations.
  Silero VAD detects it as speech (bench/README.md shows the check). It is not speech: only timing,
  energy and spectral shape resemble it, which is all a speed benchmark needs.
* ``espeak``: each phrase rendered by espeak-ng (must be on PATH) from a small seeded word list
  in Mandarin or English. Closer to speech, but bytes depend on the espeak-ng version.
* ``auto``: espeak when espeak-ng is on PATH, else synth. The truth JSON says which one was used.

Truth intervals are the exact sample ranges where a phrase was placed (espeak output trimmed of its
own leading/trailing silence first), so a perfect VAD matches them up to its padding. Inner pauses of
a phrase are at most 90 ms (syllable gaps); pauses between phrases of a turn are 180-700 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
NOISE_DBFS = -60.0  # faint line hiss so silence is not digital zero
PEAK = 0.6  # headroom after normalisation
LONG_PAUSE_S = 5.0  # what the truth file calls a long pause (neither side speaks)

# Three formants (Hz) and bandwidths of five vowels, roughly /a e i o u/.
VOWELS = (
    ((800, 1200, 2500), (80, 90, 120)),
    ((500, 1800, 2500), (60, 100, 120)),
    ((300, 2300, 3000), (50, 100, 150)),
    ((500, 900, 2400), (60, 80, 120)),
    ((320, 800, 2300), (50, 80, 120)),
)
ESPEAK_WORDS = {
    "zh": ("你好", "请问", "订单", "退款", "快递", "已经", "发货", "没有", "收到", "谢谢", "地址", "电话",
           "我们", "马上", "处理", "投诉", "问题", "可以", "今天", "明天"),
    "en": ("hello", "order", "refund", "delivery", "please", "account", "number", "thank", "you", "check",
           "problem", "today", "address", "phone", "waiting", "sorry", "again", "payment", "card", "help"),
}


@dataclass(frozen=True)
class Voice:
    name: str
    f0_hz: float  # median fundamental frequency
    espeak: str  # espeak-ng voice variant suffix
    gain: float


VOICES = (Voice("agent-f", 205.0, "+f2", 0.9), Voice("customer-m", 118.0, "", 1.0))
ROLES = ("agent", "customer")


@dataclass(frozen=True)
class Interval:
    channel: int
    start_ms: int
    end_ms: int
    turn: int
    language: str


# ------------------------------------------------------------------------------------------ synthesis


def _smooth_noise(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Slowly varying noise in about [-1, 1] (for jitter/shimmer), ``rate_hz`` knots per second."""
    knots = max(2, int(n / SAMPLE_RATE * rate_hz) + 2)
    return np.interp(np.arange(n), np.linspace(0, n - 1, knots), rng.uniform(-1, 1, knots))


def _vowel(rng: np.random.Generator, f0: np.ndarray, vowel: int) -> np.ndarray:
    """Harmonics of the F0 track ``f0`` (Hz per sample) shaped by the vowel's formant envelope."""
    n = len(f0)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    freqs, bands = VOWELS[vowel]
    out = np.zeros(n)
    fmean = float(f0.mean())
    for h in range(1, int(3800 // fmean) + 1):
        fh = h * fmean  # envelope at the mean harmonic frequency: cheap and smooth enough
        amp = sum(1.0 / (1.0 + ((fh - F) / B) ** 2) for F, B in zip(freqs, bands)) / h ** 0.6
        out += amp * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    return out * (1.0 + 0.08 * _smooth_noise(rng, n, 30.0))  # shimmer


def _consonant(rng: np.random.Generator, n: int) -> np.ndarray:
    """A fricative-like noise burst: white noise through a random first-order high/band shape."""
    noise = rng.standard_normal(n)
    a = rng.uniform(0.3, 0.9)
    hp = np.empty(n)
    hp[0] = noise[0]
    hp[1:] = noise[1:] - a * noise[:-1]  # pre-emphasis: energy moves up to 2-6 kHz
    env = np.sin(np.linspace(0, np.pi, n)) ** 0.5
    return hp * env * 0.25


def _syllable_f0(rng, n: int, base: float, language: str, position: float) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    if language == "zh":  # lexical tones
        tone = rng.integers(4)
        shape = (np.zeros(n), 0.25 * t - 0.1, 0.2 * (2 * t - 1) ** 2 - 0.12, -0.3 * t + 0.12)[tone]
    else:  # declination over the phrase, a rise on stressed syllables
        stress = 0.15 if rng.random() < 0.3 else 0.0
        shape = stress * np.sin(np.pi * t) - 0.15 * position
    return base * np.exp(shape) * (1.0 + 0.01 * _smooth_noise(rng, n, 40.0))


def synth_phrase(rng: np.random.Generator, voice: Voice, language: str, duration_s: float) -> np.ndarray:
    """About ``duration_s`` of one speech-like phrase (float64, peak ~1), no silence at either end."""
    parts: list[np.ndarray] = []
    total = 0
    target = int(duration_s * SAMPLE_RATE)
    base = voice.f0_hz * np.exp(rng.normal(0, 0.05))
    while total < target:
        if language == "zh":
            syl_ms = rng.uniform(170, 240)
        else:
            syl_ms = rng.uniform(110, 300)
        n = int(syl_ms * SAMPLE_RATE / 1000)
        n_cons = int(n * rng.uniform(0.12, 0.3)) if rng.random() < 0.75 else 0
        n_vow = n - n_cons
        f0 = _syllable_f0(rng, n_vow, base, language, total / max(target, 1))
        vow = _vowel(rng, f0, int(rng.integers(len(VOWELS))))
        env = np.sin(np.linspace(0, np.pi, n_vow)) ** 0.7
        vow = vow / (np.abs(vow).max() + 1e-9) * env * rng.uniform(0.6, 1.0)
        syl = np.concatenate([_consonant(rng, n_cons), vow]) if n_cons else vow
        parts.append(syl)
        total += len(syl)
        gap = int(rng.uniform(0, 90) * SAMPLE_RATE / 1000) if rng.random() < 0.35 else 0
        if gap and total < target:
            parts.append(np.zeros(gap))
            total += gap
    audio = np.concatenate(parts)
    return audio / (np.abs(audio).max() + 1e-9)


def espeak_phrase(rng: np.random.Generator, voice: Voice, language: str, duration_s: float,
                  espeak: str) -> np.ndarray:
    """A phrase of random words rendered by espeak-ng, trimmed; roughly ``duration_s`` long."""
    words_per_s = 3.0 if language == "zh" else 2.5
    count = max(1, round(duration_s * words_per_s))
    text = ("" if language == "zh" else " ").join(rng.choice(ESPEAK_WORDS[language], count))
    name = ("cmn" if language == "zh" else "en-us") + voice.espeak
    pitch = 60 if voice.f0_hz > 160 else 35
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.wav"
        subprocess.run([espeak, "-v", name, "-s", "175", "-p", str(pitch), "-w", str(path), text],
                       check=True, capture_output=True)
        with wave.open(str(path), "rb") as f:
            rate = f.getframerate()
            pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float64) / 32768
    if rate != SAMPLE_RATE:  # espeak-ng writes 22050 Hz
        n_out = int(len(pcm) * SAMPLE_RATE / rate)
        pcm = np.interp(np.arange(n_out) * rate / SAMPLE_RATE, np.arange(len(pcm)), pcm)
    loud = np.flatnonzero(np.abs(pcm) > 1e-3)
    pcm = pcm[loud[0]: loud[-1] + 1] if loud.size else pcm
    return pcm / (np.abs(pcm).max() + 1e-9)


# ------------------------------------------------------------------------------------------ the call


@dataclass(frozen=True)
class CallPlan:
    """Timing of every phrase, before any audio is made (cheap; the tests check it)."""

    duration_ms: int
    intervals: tuple[Interval, ...]
    turns: tuple[dict, ...]


def plan_call(seed: int, duration_s: float) -> CallPlan:
    """Alternating turns with overlaps and long pauses; phrases within turns; all times in ms."""
    rng = np.random.default_rng([seed, 1])
    total_ms = round(duration_s * 1000)
    intervals: list[Interval] = []
    turns: list[dict] = []
    cursor = int(rng.uniform(300, 900))
    channel = 0
    turn = 0
    next_long_pause = rng.uniform(60_000, 120_000)
    language = {0: "zh", 1: "zh"}
    while True:
        # The call switches language now and then (a bilingual agent answering in the customer's one).
        if rng.random() < 0.2:
            language[channel] = "en" if language[channel] == "zh" else "zh"
        turn_ms = rng.uniform(2_500, 16_000)
        start = cursor
        t = start
        phrases = []
        while t - start < turn_ms:
            phrase_ms = int(rng.uniform(700, 3_800))
            if t + phrase_ms > total_ms - 200:
                break
            phrases.append(Interval(channel, t, t + phrase_ms, turn, language[channel]))
            t += phrase_ms + int(rng.uniform(180, 600))
        if not phrases:
            break
        intervals += phrases
        end = phrases[-1].end_ms
        turns.append({"turn": turn, "channel": channel, "role": ROLES[channel], "language": language[channel],
                      "start_ms": start, "end_ms": end})
        # Next turn: mostly a short gap, often an overlap (interruption or early start), sometimes dead air.
        r = rng.random()
        if end > next_long_pause:
            gap = int(rng.uniform(6_000, 12_000))
            next_long_pause = end + rng.uniform(90_000, 180_000)
        elif r < 0.6:
            gap = -int(rng.uniform(300, 2_500))
        else:
            gap = int(rng.uniform(80, 700))
        cursor = max(end + gap, start + 300)
        channel = 1 - channel
        turn += 1
    return CallPlan(total_ms, tuple(intervals), tuple(turns))


def render(plan: CallPlan, seed: int, voice_kind: str = "synth") -> tuple[np.ndarray, str]:
    """Audio for ``plan``: float32 [2, n] in [-PEAK, PEAK] and the voice kind actually used."""
    espeak = shutil.which("espeak-ng") if voice_kind in ("espeak", "auto") else None
    if voice_kind == "espeak" and espeak is None:
        raise SystemExit("--voice espeak: espeak-ng is not on PATH (apt-get install espeak-ng), use --voice synth")
    used = "espeak" if espeak else "synth"
    n = plan.duration_ms * SAMPLE_RATE // 1000
    call = np.zeros((2, n))
    for i, iv in enumerate(plan.intervals):
        rng = np.random.default_rng([seed, 2, i])
        voice = VOICES[iv.channel]
        dur = (iv.end_ms - iv.start_ms) / 1000
        if espeak:
            audio = espeak_phrase(rng, voice, iv.language, dur, espeak)
        else:
            audio = synth_phrase(rng, voice, iv.language, dur)
        want = (iv.end_ms - iv.start_ms) * SAMPLE_RATE // 1000
        audio = _fit(audio, want)
        a = iv.start_ms * SAMPLE_RATE // 1000
        call[iv.channel, a: a + want] += audio * voice.gain * rng.uniform(0.5, 1.0)
    call *= PEAK / (np.abs(call).max() + 1e-9)
    noise = np.random.default_rng([seed, 3]).standard_normal(call.shape) * 10 ** (NOISE_DBFS / 20)
    return (call + noise).astype(np.float32), used


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """Exactly ``n`` samples: time-stretch espeak output by resampling (pitch shifts a little, fine)."""
    if len(audio) == n:
        return audio
    if len(audio) > n and len(audio) - n < n // 20:  # synth overshoot: cut and fade out 10 ms
        out = audio[:n].copy()
        fade = min(160, n)
        out[-fade:] *= np.linspace(1, 0, fade)
        return out
    return np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio)


def truth_document(plan: CallPlan, seed: int, voice_kind: str) -> dict:
    channels = []
    for c in range(2):
        ivs = [iv for iv in plan.intervals if iv.channel == c]
        speech = sum(iv.end_ms - iv.start_ms for iv in ivs)
        channels.append({
            "channel": c, "role": ROLES[c], "voice": VOICES[c].name,
            "speech_ms": speech, "speech_ratio": round(speech / plan.duration_ms, 4),
            "intervals": [{k: v for k, v in asdict(iv).items() if k != "channel"} for iv in ivs],
        })
    return {
        "description": "Synthetic benchmark call from bench/gen_call.py; not real speech.",
        "seed": seed, "voice": voice_kind, "sample_rate": SAMPLE_RATE, "duration_ms": plan.duration_ms,
        "channels": channels, "turns": list(plan.turns),
        "overlaps": overlaps(plan), "long_pauses": long_pauses(plan),
    }


def overlaps(plan: CallPlan) -> list[dict]:
    a = [(i.start_ms, i.end_ms) for i in plan.intervals if i.channel == 0]
    b = [(i.start_ms, i.end_ms) for i in plan.intervals if i.channel == 1]
    return [{"start_ms": max(s1, s2), "end_ms": min(e1, e2)}
            for s1, e1 in a for s2, e2 in b if max(s1, s2) < min(e1, e2)]


def long_pauses(plan: CallPlan, min_ms: int = int(LONG_PAUSE_S * 1000)) -> list[dict]:
    out, end = [], 0
    for s, e in sorted((i.start_ms, i.end_ms) for i in plan.intervals):
        if s - end >= min_ms:
            out.append({"start_ms": end, "end_ms": s})
        end = max(end, e)
    if plan.duration_ms - end >= min_ms:
        out.append({"start_ms": end, "end_ms": plan.duration_ms})
    return out


def write_wav(path: Path, audio: np.ndarray) -> None:
    """[channels, n] float32 -> PCM16 WAV."""
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(audio.shape[0])
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(pcm.T.tobytes())


def truth_path(wav: Path) -> Path:
    return wav.with_name(wav.name + ".truth.json") if wav.suffix != ".wav" else wav.with_suffix(".truth.json")


def generate(out: Path, *, seed: int = 7, duration_s: float = 600.0, voice: str = "synth") -> dict:
    """Write the call and its truth file; returns the truth document."""
    plan = plan_call(seed, duration_s)
    audio, used = render(plan, seed, voice)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_wav(out, audio)
    truth = truth_document(plan, seed, used)
    truth_path(out).write_text(json.dumps(truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return truth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    p.add_argument("--voice", choices=("synth", "espeak", "auto"), default="synth")
    p.add_argument("--out", type=Path, default=Path("bench/data/call.wav"))
    args = p.parse_args(argv)
    truth = generate(args.out, seed=args.seed, duration_s=args.duration, voice=args.voice)
    ratios = ", ".join(f"{c['role']} {c['speech_ratio']:.1%}" for c in truth["channels"])
    print(f"{args.out}: {truth['duration_ms'] / 1000:.0f} s, voice {truth['voice']}, speech {ratios}, "
          f"{len(truth['overlaps'])} overlaps, {len(truth['long_pauses'])} long pauses")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
