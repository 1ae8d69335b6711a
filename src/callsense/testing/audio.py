"""Test audio made on the fly: tones, tone bursts, and files in every format callsense reads.

Everything is generated with numpy and PyAV's bundled ffmpeg, so tests need no sox, no ffmpeg binary and
no committed recordings. Samples are float32 in [-1, 1], shaped ``[n]`` (mono) or ``[n, channels]``.

    x = stereo_tones(8000, 2.0, freqs=(440.0, 1000.0))       # channel 0 at 440 Hz, channel 1 at 1 kHz
    write_audio(tmp / "call.wav", x, 8000, preset="wav-mulaw")
    for name, spec in FORMATS.items(): ...                    # one entry per supported format

Two formats have no encoder in PyAV's ffmpeg and are built by hand: AMR-WB (:func:`write_amr_wb`, frames
with random payload bits: decodable, exact duration, no meaningful content) and WAV files with a chosen
(possibly lying) header (:func:`wav_bytes`, :func:`write_long_wav`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "FORMATS",
    "FormatSpec",
    "dominant_frequency",
    "stereo_tones",
    "tone",
    "tone_bursts",
    "wav_bytes",
    "write_amr_wb",
    "write_audio",
    "write_long_wav",
]


def tone(freq_hz: float, duration_s: float, rate: int, *, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """A sine of ``duration_s`` seconds at ``rate`` Hz, float32."""
    t = np.arange(round(duration_s * rate), dtype=np.float64) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t + phase)).astype(np.float32)


def tone_bursts(
    rate: int,
    duration_s: float,
    *,
    freq_hz: float = 440.0,
    on_s: float = 0.5,
    off_s: float = 0.5,
    offset_s: float = 0.0,
    amplitude: float = 0.5,
) -> np.ndarray:
    """Bursts of a tone (``on_s`` on, ``off_s`` silent), the first starting at ``offset_s``; a stand-in for turns.

    Each burst has 5 ms raised-cosine edges so it has no clicks (clicks would smear the spectrum).
    """
    n = round(duration_s * rate)
    out = np.zeros(n, dtype=np.float32)
    burst = tone(freq_hz, on_s, rate, amplitude=amplitude)
    ramp = min(int(0.005 * rate), len(burst) // 2)
    if ramp:
        edge = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))).astype(np.float32)
        burst[:ramp] *= edge
        burst[-ramp:] *= edge[::-1]
    start = offset_s
    while start < duration_s:
        i = round(start * rate)
        seg = burst[: max(0, n - i)]
        out[i : i + len(seg)] = seg
        start += on_s + off_s
    return out


def stereo_tones(rate: int, duration_s: float, *, freqs: tuple[float, ...] = (440.0, 1000.0),
                 amplitude: float = 0.5) -> np.ndarray:
    """One steady tone per channel, shaped ``[n, len(freqs)]``: channel ``i`` is at ``freqs[i]``."""
    return np.stack([tone(f, duration_s, rate, amplitude=amplitude) for f in freqs], axis=1)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of a mono signal (Hann-windowed), for checking content."""
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * rate / len(x))


@dataclass(frozen=True)
class FormatSpec:
    """How to write one test format with :func:`write_audio`."""

    suffix: str  # file name suffix; also picks the container when ``container`` is None
    codec: str  # PyAV encoder name
    rate: int | None = None  # force this sample rate (the codec accepts no other); None: keep the input rate
    channels: int | None = None  # force mono (1) where the codec is mono-only
    container: str | None = None  # ffmpeg muxer name where the suffix is ambiguous
    bit_rate: int | None = None
    video: bool = False  # add a small video stream (the audio track of a video file)
    options: tuple[tuple[str, str], ...] = ()  # encoder options


FORMATS: dict[str, FormatSpec] = {
    "wav-s16": FormatSpec(".wav", "pcm_s16le"),
    "wav-u8": FormatSpec(".wav", "pcm_u8"),
    "wav-s24": FormatSpec(".wav", "pcm_s24le"),
    "wav-s32": FormatSpec(".wav", "pcm_s32le"),
    "wav-f32": FormatSpec(".wav", "pcm_f32le"),
    "wav-mulaw": FormatSpec(".wav", "pcm_mulaw"),
    "wav-alaw": FormatSpec(".wav", "pcm_alaw"),
    "wav-ima-adpcm": FormatSpec(".wav", "adpcm_ima_wav"),
    "wav-ms-adpcm": FormatSpec(".wav", "adpcm_ms"),
    "mp3": FormatSpec(".mp3", "libmp3lame", bit_rate=64_000),
    "m4a-aac": FormatSpec(".m4a", "aac", bit_rate=64_000),
    "flac": FormatSpec(".flac", "flac"),
    "ogg-vorbis": FormatSpec(".ogg", "vorbis", options=(("strict", "experimental"),)),
    "ogg-opus": FormatSpec(".opus", "libopus", rate=48000, container="ogg", bit_rate=48_000),
    "webm-opus": FormatSpec(".webm", "libopus", rate=48000, bit_rate=48_000),
    "amr-nb": FormatSpec(".amr", "libopencore_amrnb", rate=8000, channels=1, bit_rate=12_200),
    "mp4-video": FormatSpec(".mp4", "aac", bit_rate=64_000, video=True),
}
"""Every encoded format the decoder must read, by name. AMR-WB is separate: :func:`write_amr_wb`."""

_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1"}


def _as_frames(samples: np.ndarray) -> np.ndarray:
    """``[n]`` or ``[n, ch]`` -> float32 ``[ch, n]``."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    return np.ascontiguousarray(x.T)


def write_audio(
    path: str | Path,
    samples: np.ndarray,
    rate: int,
    *,
    preset: str | FormatSpec = "wav-s16",
) -> Path:
    """Encode ``samples`` (``[n]`` or ``[n, channels]`` float in [-1, 1] at ``rate`` Hz) into ``path``.

    ``preset`` is a name of :data:`FORMATS` or a :class:`FormatSpec`. Where the codec needs another sample
    rate or mono (Opus: 48 kHz, AMR-NB: 8 kHz mono), the signal is converted first, so durations stay.
    """
    import av

    spec = FORMATS[preset] if isinstance(preset, str) else preset
    path = Path(path)
    x = _as_frames(samples)
    if spec.channels == 1 and x.shape[0] > 1:
        x = x.mean(axis=0, keepdims=True)
    if spec.rate is not None and spec.rate != rate:
        import soxr

        x = np.ascontiguousarray(soxr.resample(x.T, rate, spec.rate, quality="HQ").T.astype(np.float32))
        rate = spec.rate
    channels = x.shape[0]
    layout = _LAYOUTS[channels]

    with av.open(str(path), "w", format=spec.container) as out:
        stream = out.add_stream(spec.codec, rate=rate, options=dict(spec.options))
        stream.layout = layout
        if spec.bit_rate:
            stream.bit_rate = spec.bit_rate
        vstream = None
        if spec.video:
            vstream = out.add_stream("mpeg4", rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.open()  # opened now so frame_size is known
        frame_size = stream.codec_context.frame_size or 1024
        fmt = stream.codec_context.format.name
        resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate, frame_size=frame_size)
        n = x.shape[1]
        step = 4096
        pts_video = 0
        for start in range(0, n, step):
            chunk = np.ascontiguousarray(x[:, start : start + step])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for f in resampler.resample(frame):
                out.mux(stream.encode(f))
            if vstream is not None:
                while pts_video / 5 <= (start + step) / rate:
                    out.mux(vstream.encode(_video_frame(pts_video)))
                    pts_video += 1
        for f in resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
        if vstream is not None:
            out.mux(vstream.encode(None))
    return path


def _video_frame(i: int):
    import av

    img = np.full((48, 64, 3), (i * 37) % 256, dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    frame.pts = i
    return frame


# --- hand-made files ---------------------------------------------------------------------------------------

_WAV_TAGS = {"pcm": 1, "float": 3, "alaw": 6, "mulaw": 7}


def wav_bytes(
    data: bytes,
    *,
    rate: int = 8000,
    channels: int = 1,
    bits: int = 16,
    encoding: str = "pcm",
    data_size: int | None = None,
) -> bytes:
    """A RIFF/WAVE file around raw sample ``data``; ``data_size`` overrides the data chunk's size field.

    Use it for headers that lie (``data_size`` larger or smaller than ``len(data)``, or ``0xFFFFFFFF`` as
    written by streaming recorders) and for a valid header with no samples (``data=b""``).
    """
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", _WAV_TAGS[encoding], channels, rate, rate * block, block, bits)
    size = len(data) if data_size is None else data_size
    riff_size = min(0xFFFFFFFF, 4 + (8 + len(fmt)) + 8 + size)
    return (
        b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", size) + data
    )


def write_long_wav(path: str | Path, hours: float, *, rate: int = 8000, channels: int = 1) -> Path:
    """A real, complete μ-law WAV of ``hours`` hours, written as a sparse file (instant, no disk used).

    Its samples are all the μ-law byte 0xFF (silence); the header is honest. 5 hours at 8 kHz mono is
    144 MB of apparent size.
    """
    path = Path(path)
    n_bytes = int(hours * 3600 * rate) * channels
    # μ-law 0xFF is zero amplitude, but a sparse file reads as 0x00; both are valid samples, and only the
    # length matters here. The size field must fit 32 bits (max ~74 h at 8 kHz mono).
    header = wav_bytes(b"", rate=rate, channels=channels, bits=8, encoding="mulaw", data_size=n_bytes)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + n_bytes)
    return path


# AMR-WB (3GPP TS 26.201 storage format): "#!AMR-WB\n", then per 20 ms frame a ToC byte (frame type in
# bits 6..3, quality bit 2) and the speech bits of that mode. Payload sizes in bytes for modes 0..8.
_AMR_WB_BYTES = (17, 23, 32, 36, 40, 46, 50, 58, 60)


def write_amr_wb(path: str | Path, duration_s: float, *, mode: int = 2, seed: int = 0) -> Path:
    """An AMR-WB (16 kHz) file of ``duration_s`` s whose frames carry random bits.

    No AMR-WB encoder ships with PyAV's ffmpeg (nor with Debian's sox), so frames are built by hand: any
    bit pattern is a valid AMR-WB speech frame, so the file decodes to ``duration_s`` of noise-like audio.
    """
    rng = np.random.default_rng(seed)
    n_frames = round(duration_s / 0.020)
    toc = bytes([(mode << 3) | 0x04])
    payload = rng.integers(0, 256, size=(n_frames, _AMR_WB_BYTES[mode]), dtype=np.uint8)
    path = Path(path)
    with open(path, "wb") as f:
        f.write(b"#!AMR-WB\n")
        f.writelines(toc + row.tobytes() for row in payload)
    return path
