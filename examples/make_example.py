"""Generate the committed example call (synthetic, deterministic) with espeak-ng.

    python examples/make_example.py            # writes next to this script
    python examples/make_example.py --out DIR

Writes:

* ``call_stereo.wav``            16 kHz PCM16 stereo: agent on the left channel, customer on the right
* ``call_stereo.truth.json``     per channel: every turn's speech interval (ms), text and language
* ``call_stereo_8k_mulaw.wav``   the same call as telephony audio: 8 kHz G.711 mu-law stereo
* ``clip_angry_zh.wav``          5 s mono clip of the (synthetic) angry customer, for ``callsense emotion``
* ``src/callsense/examples/call_{zh,en,yue,ja,ko}.wav``  five short calls (10-20 s), one per language,
  agent left / customer right, 8 kHz G.711 mu-law stereo, with their truth in ``examples.json``: these
  ship in the wheel and are what the web UI's example picker offers (``python examples/make_example.py
  --package-out DIR`` writes them elsewhere)

The voices are espeak-ng's formant synthesis: they sound robotic and carry no real emotion. The call
is for exercising decoding, channel handling, VAD, timing metrics and rules — never for judging ASR or
emotion accuracy. The script is deterministic: same espeak-ng version, same bytes (the background
noise comes from a seeded generator). It needs espeak-ng on PATH, numpy, soxr and PyAV.

The truth intervals are where the generator placed the *audible* part of each turn: espeak's leading
and trailing silence is trimmed before placement, and the script refuses to write a turn containing an
inner pause that a VAD would (rightly) split on, so the truth is something a correct VAD can match.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
TELEPHONY_RATE = 8_000
NOISE_SEED = 20_260_101
NOISE_RMS = 10 ** (-62 / 20)  # a faint line hiss, so that silence is not digital zero
SILENCE_FLOOR = 1e-3  # |sample| below this counts as silence when trimming espeak output
MAX_INNER_PAUSE_MS = 200  # inner pauses above this would be split by a VAD (min_silence_ms 300)
PHRASE_GAP_MS = 80  # gap between the phrases of one turn
ANGRY_CLIP_MS = 5_000


@dataclass(frozen=True)
class Voice:
    espeak: str  # espeak-ng voice name (+variant)
    speed: int  # words per minute
    pitch: int  # 0..99
    amplitude: int  # 0..200
    language: str  # SenseVoice language code of what it says


AGENT_ZH = Voice("cmn+f2", 215, 55, 110, "zh")
AGENT_EN = Voice("en-us+f2", 180, 55, 110, "en")
# "Angry" customer: faster, higher, louder. espeak cannot act; this only shifts the prosody.
CUSTOMER_ZH = Voice("cmn", 235, 80, 190, "zh")
CUSTOMER_EN = Voice("en-us", 190, 80, 190, "en")


@dataclass(frozen=True)
class Turn:
    channel: int  # 0 = agent (left), 1 = customer (right)
    voice: Voice
    phrases: tuple[str, ...]  # synthesised separately, joined with PHRASE_GAP_MS
    gap_ms: int  # from the end of the previous turn (negative: overlap, large: dead air)


ROLES = ("agent", "customer")

SCRIPT: tuple[Turn, ...] = (
    Turn(0, AGENT_ZH, ("您好", "很高兴为您服务"), 400),
    Turn(1, CUSTOMER_ZH, ("我要投诉", "快递一直不发货"), 350),
    Turn(0, AGENT_EN, ("I understand", "let me check your order"), 450),
    # The customer cuts in before the agent has finished: the one overlap of the call.
    Turn(1, CUSTOMER_ZH, ("我要退款",), -700),
    # Dead air while the agent "checks the order": the long pause of the call.
    Turn(0, AGENT_EN, ("Thank you for waiting", "your refund is approved"), 5_400),
    Turn(1, CUSTOMER_EN, ("OK", "thank you"), 400),
    Turn(0, AGENT_ZH, ("还有什么可以帮您",), 400),
)
TAIL_MS = 600


def _voices(code: str, language: str, speed: int) -> tuple[Voice, Voice]:
    """(agent, customer) voices of one espeak-ng language: a calm agent, a faster, louder customer."""
    return Voice(f"{code}+f2", speed, 55, 110, language), Voice(code, speed + 20, 80, 190, language)


def _short_call(code: str, language: str, lines: tuple[tuple[str, ...], ...], speed: int = 175) -> tuple[Turn, ...]:
    """Five turns, agent and customer alternating, normal gaps: a 10-20 s call."""
    agent, customer = _voices(code, language, speed)
    return tuple(Turn(i % 2, agent if i % 2 == 0 else customer, phrases, 450) for i, phrases in enumerate(lines))


# The packaged examples (src/callsense/examples/, shipped in the wheel and offered by the web UI): one
# short call per SenseVoice language, greeting -> complaint -> apology -> thanks -> closing. Japanese is
# written in kana (espeak-ng reads kanji as Chinese characters).
LANGUAGE_CALLS: dict[str, tuple[Turn, ...]] = {
    "zh": _short_call("cmn", "zh", (
        ("您好", "这里是客服中心", "请问有什么可以帮您"),
        ("我要投诉", "快递一直不发货"),
        ("非常抱歉", "我马上为您查询订单"),
        ("好的", "谢谢"),
        ("还有什么可以帮您的吗",),
    ), speed=260),
    "en": _short_call("en-us", "en", (
        ("Hello", "thank you for calling", "how can I help you"),
        ("I want to complain", "my parcel has not arrived"),
        ("I am sorry", "let me check your order"),
        ("OK", "thank you"),
        ("Is there anything else I can help with",),
    )),
    "yue": _short_call("yue", "yue", (
        ("你好", "呢度係客服中心", "有咩可以幫到你"),
        ("我要投訴", "速遞一直冇送到"),
        ("唔好意思", "我即刻幫你查下訂單"),
        ("好呀", "唔該"),
        ("仲有冇其他可以幫到你",),
    )),
    "ja": _short_call("ja", "ja", (
        ("おでんわありがとうございます", "ごようけんをおうかがいします"),
        ("にもつがまだとどきません", "へんきんしてください"),
        ("もうしわけございません", "すぐにかくにんいたします"),
        ("はい", "おねがいします"),
        ("ほかにごようけんはございますか",),
    )),
    "ko": _short_call("ko", "ko", (
        ("안녕하세요", "고객센터입니다", "무엇을 도와드릴까요"),
        ("택배가 아직 안 왔어요", "환불해 주세요"),
        ("죄송합니다", "바로 확인해 드리겠습니다"),
        ("네", "감사합니다"),
        ("더 도와드릴 일이 있을까요",),
    )),
}
PACKAGE_EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "callsense" / "examples"


def synthesize(text: str, voice: Voice, espeak: str) -> np.ndarray:
    """One phrase as float32 16 kHz, leading/trailing silence trimmed."""
    import soxr

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phrase.wav"
        subprocess.run(
            [
                espeak,
                "-v",
                voice.espeak,
                "-s",
                str(voice.speed),
                "-p",
                str(voice.pitch),
                "-a",
                str(voice.amplitude),
                "-w",
                str(path),
                text,
            ],
            check=True,
            capture_output=True,
        )
        with wave.open(str(path), "rb") as f:
            rate = f.getframerate()
            pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) > SILENCE_FLOOR)
    if loud.size == 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r}")
    audio = audio[loud[0] : loud[-1] + 1]
    pause = longest_pause_ms(audio)
    if pause > MAX_INNER_PAUSE_MS:
        raise RuntimeError(f"{text!r} has a {pause} ms inner pause; split it into phrases")
    return audio


def longest_pause_ms(audio: np.ndarray, frame: int = 160) -> int:
    """Longest run of silent 10 ms frames."""
    n = len(audio) // frame
    silent = np.abs(audio[: n * frame]).reshape(n, frame).max(axis=1) <= SILENCE_FLOOR
    best = run = 0
    for s in silent:
        run = run + 1 if s else 0
        best = max(best, run)
    return best * 10


def ms_to_samples(ms: int) -> int:
    return ms * SAMPLE_RATE // 1000


def build(espeak: str, script: tuple[Turn, ...] = SCRIPT, seed: int = NOISE_SEED) -> tuple[np.ndarray, dict]:
    """The stereo call (2, n) float32 and its truth document."""
    gap = np.zeros(ms_to_samples(PHRASE_GAP_MS), dtype=np.float32)
    placed: list[tuple[Turn, int, np.ndarray]] = []
    cursor = 0  # end of the previous turn, in samples
    for turn in script:
        parts: list[np.ndarray] = []
        for i, phrase in enumerate(turn.phrases):
            if i:
                parts.append(gap)
            parts.append(synthesize(phrase, turn.voice, espeak))
        audio = np.concatenate(parts)
        start = cursor + ms_to_samples(turn.gap_ms)
        placed.append((turn, start, audio))
        cursor = start + len(audio)
    total = cursor + ms_to_samples(TAIL_MS)
    total += -total % (SAMPLE_RATE // 100)  # whole 10 ms, so durations in ms are exact

    call = np.zeros((2, total), dtype=np.float32)
    channels: list[dict] = [{"channel": c, "role": ROLES[c], "turns": []} for c in range(2)]
    for turn, start, audio in placed:
        call[turn.channel, start : start + len(audio)] += audio
        channels[turn.channel]["turns"].append(
            {
                "start_ms": round(start * 1000 / SAMPLE_RATE),
                "end_ms": round((start + len(audio)) * 1000 / SAMPLE_RATE),
                "text": _join(turn.phrases, turn.voice.language),
                "language": turn.voice.language,
                "voice": turn.voice.espeak,
            }
        )
    rng = np.random.default_rng(seed)
    call += (rng.standard_normal(call.shape) * NOISE_RMS).astype(np.float32)
    call *= 0.7 / float(np.abs(call).max())  # same headroom on every espeak version

    truth = {
        "description": "Synthetic espeak-ng call generated by examples/make_example.py; not real speech.",
        "sample_rate": SAMPLE_RATE,
        "duration_ms": total * 1000 // SAMPLE_RATE,
        "channels": channels,
        "overlaps": _overlaps(channels),
        "long_pauses": _pauses(channels, total * 1000 // SAMPLE_RATE, min_ms=5_000),
    }
    return call, truth


def _join(phrases: tuple[str, ...], language: str) -> str:
    return {"zh": "，", "yue": "，", "ja": "、", "ko": ", "}.get(language, ", ").join(phrases)


def _intervals(channels: list[dict]) -> list[tuple[int, int]]:
    return sorted((t["start_ms"], t["end_ms"]) for c in channels for t in c["turns"])


def _overlaps(channels: list[dict]) -> list[dict]:
    a = [(t["start_ms"], t["end_ms"]) for t in channels[0]["turns"]]
    b = [(t["start_ms"], t["end_ms"]) for t in channels[1]["turns"]]
    return [
        {"start_ms": max(s1, s2), "end_ms": min(e1, e2)} for s1, e1 in a for s2, e2 in b if max(s1, s2) < min(e1, e2)
    ]


def _pauses(channels: list[dict], duration_ms: int, min_ms: int) -> list[dict]:
    """Stretches where neither side speaks, at least ``min_ms`` long."""
    out, end = [], 0
    for s, e in _intervals(channels):
        if s - end >= min_ms:
            out.append({"start_ms": end, "end_ms": s})
        end = max(end, e)
    if duration_ms - end >= min_ms:
        out.append({"start_ms": end, "end_ms": duration_ms})
    return out


def write_pcm16(path: Path, audio: np.ndarray, rate: int) -> None:
    """(channels, n) float32 -> interleaved PCM16 WAV."""
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(audio.shape[0])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.T.tobytes())


def write_mulaw(path: Path, audio: np.ndarray) -> None:
    """(2, n) float32 16 kHz -> 8 kHz G.711 mu-law stereo WAV (PyAV's pcm_mulaw encoder)."""
    import av
    import soxr

    low = soxr.resample(audio.T, SAMPLE_RATE, TELEPHONY_RATE, quality="HQ").astype(np.float32)
    pcm = np.clip(np.round(low * 32767.0), -32768, 32767).astype("<i2")
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_mulaw", rate=TELEPHONY_RATE, layout="stereo")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = TELEPHONY_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def angry_clip(espeak: str) -> np.ndarray:
    """5 s mono: the customer's complaint, padded with quiet line noise."""
    phrases = ("我要投诉", "快递一直不发货", "我要退款")
    gap = np.zeros(ms_to_samples(250), dtype=np.float32)
    parts = [np.zeros(ms_to_samples(200), dtype=np.float32)]
    for phrase in phrases:
        parts += [synthesize(phrase, CUSTOMER_ZH, espeak), gap]
    audio = np.concatenate(parts)[: ms_to_samples(ANGRY_CLIP_MS)]
    clip = np.zeros(ms_to_samples(ANGRY_CLIP_MS), dtype=np.float32)
    clip[: len(audio)] = audio
    clip += (np.random.default_rng(NOISE_SEED + 1).standard_normal(len(clip)) * NOISE_RMS).astype(np.float32)
    return clip * (0.7 / float(np.abs(clip).max()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--package-out", type=Path, default=PACKAGE_EXAMPLES,
                        help="where the five packaged language calls go (default: src/callsense/examples)")
    args = parser.parse_args(argv)
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng is not on PATH (Debian/Ubuntu: apt-get install espeak-ng)")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    call, truth = build(espeak)
    write_pcm16(out / "call_stereo.wav", call, SAMPLE_RATE)
    (out / "call_stereo.truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    write_mulaw(out / "call_stereo_8k_mulaw.wav", call)
    write_pcm16(out / "clip_angry_zh.wav", angry_clip(espeak)[None, :], SAMPLE_RATE)
    for name in ("call_stereo.wav", "call_stereo.truth.json", "call_stereo_8k_mulaw.wav", "clip_angry_zh.wav"):
        print(f"{out / name}  {(out / name).stat().st_size / 1e6:.2f} MB")

    pkg: Path = args.package_out
    pkg.mkdir(parents=True, exist_ok=True)
    truths = {}
    for i, (lang, script) in enumerate(LANGUAGE_CALLS.items()):
        call, truth = build(espeak, script, seed=NOISE_SEED + 10 + i)
        name = f"call_{lang}.wav"
        write_mulaw(pkg / name, call)  # 8 kHz G.711 mu-law stereo: telephony audio, 16 kB/s
        truths[name] = {"language": lang, **truth, "sample_rate": TELEPHONY_RATE, "codec": "pcm_mulaw",
                        "description": "Synthetic espeak-ng call generated by examples/make_example.py; not real speech."}
        print(f"{pkg / name}  {truth['duration_ms'] / 1000:.1f} s  {(pkg / name).stat().st_size / 1e6:.2f} MB")
    (pkg / "examples.json").write_text(json.dumps(truths, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
