"""load_audio on every supported format and input kind: duration, rate, channels, roles, content, facts."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from callsense.audio import DEFAULT_CHANNEL_MAP, AudioOptions, load_audio, parse_channel_map
from callsense.errors import UsageError
from callsense.testing.audio import (
    FORMATS,
    dominant_frequency,
    stereo_tones,
    tone,
    write_amr_wb,
    write_audio,
)

DURATION_S = 1.5
FREQS = (440.0, 1000.0)  # channel 0 (agent by default) and channel 1 (customer)

# The rate each test file is generated at (codecs with a fixed rate convert it): a spread of telephony
# and wideband rates, so 8k -> 16k, 22.05k/44.1k/48k -> 16k and 16k pass-through all run.
SOURCE_RATE = {"mp3": 44100, "m4a-aac": 48000, "flac": 48000, "ogg-vorbis": 22050, "mp4-video": 48000,
               "webm-opus": 16000, "wav-f32": 16000}
# What SourceInfo must say: (codec, original rate as decoded).
EXPECTED = {
    "wav-s16": ("pcm_s16le", None), "wav-u8": ("pcm_u8", None), "wav-s24": ("pcm_s24le", None),
    "wav-s32": ("pcm_s32le", None), "wav-f32": ("pcm_f32le", None), "wav-mulaw": ("pcm_mulaw", None),
    "wav-alaw": ("pcm_alaw", None), "wav-ima-adpcm": ("adpcm_ima_wav", None), "wav-ms-adpcm": ("adpcm_ms", None),
    "mp3": ("mp3", None), "m4a-aac": ("aac", None), "flac": ("flac", None), "ogg-vorbis": ("vorbis", None),
    "ogg-opus": ("opus", 48000), "webm-opus": ("opus", 48000), "amr-nb": ("amr_nb", 8000),
    "mp4-video": ("aac", None),
}
CONTAINER = {"wav": "wav", "mp3": "mp3", "m4a": "mp4", "mp4": "mp4", "flac": "flac", "ogg": "ogg", "opus": "ogg",
             "webm": "webm", "amr": "amr"}
# ffmpeg's native Vorbis encoder (the only one bundled) is experimental and smears a 1 kHz tone by ~1%.
FREQ_TOLERANCE_HZ = {"ogg-vorbis": 20.0}
# Codec framing pads the end (AAC 1024-sample frames, ADPCM blocks, AMR 20 ms frames): allowed slack.
DURATION_TOLERANCE_MS = 80


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """Every format of FORMATS, written once for this module: name -> path."""
    root = tmp_path_factory.mktemp("formats")
    paths = {}
    for name, spec in FORMATS.items():
        rate = SOURCE_RATE.get(name, 8000)
        paths[name] = write_audio(root / f"{name}{spec.suffix}", stereo_tones(rate, DURATION_S, freqs=FREQS), rate,
                                  preset=name)
    return paths


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_decodes_to_16k_float_tracks_with_content_kept(encoded, name):
    path = encoded[name]
    audio = load_audio(path)
    src = audio.source
    codec, rate = EXPECTED[name]
    mono = FORMATS[name].channels == 1
    assert src.codec == codec
    assert CONTAINER[path.suffix[1:]] in src.container
    assert src.sample_rate == (rate or SOURCE_RATE.get(name, 8000))
    assert src.narrowband == (src.sample_rate <= 8000)
    assert src.channels == (1 if mono else 2)
    assert src.name == path.name and src.path == str(path)
    assert src.size_bytes == path.stat().st_size
    assert src.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert abs(src.duration_ms - DURATION_S * 1000) <= DURATION_TOLERANCE_MS
    assert audio.warnings == ()

    assert [t.role for t in audio.tracks] == (["unknown"] if mono else list(DEFAULT_CHANNEL_MAP))
    assert audio.channel_map == tuple(t.role for t in audio.tracks)
    for i, track in enumerate(audio.tracks):
        x = track.samples
        assert track.channel == i
        assert x.dtype == np.float32 and x.ndim == 1
        assert len(x) == round(src.duration_ms * 16) or abs(len(x) - src.duration_ms * 16) <= 8
        assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0
        body = x[1600:-1600]  # skip codec start-up and tail
        f = dominant_frequency(body, 16000)
        if mono:  # the two channels were mixed down for the mono-only codec: either tone may dominate
            assert min(abs(f - g) for g in FREQS) < 10
        else:
            assert abs(f - FREQS[i]) < FREQ_TOLERANCE_HZ.get(name, 5.0), f"channel {i} peak at {f:.1f} Hz"
            # amplitude 0.5 sine: -9 dBFS RMS; lossy codecs at 48-64 kbit/s keep it within 2 dB
            assert abs(_rms_db(body) - _rms_db(np.full(1, 0.5 / np.sqrt(2)))) < 2.0


def test_amr_wb_decodes_at_16k_mono(tmp_path):
    path = write_amr_wb(tmp_path / "call.awb", 2.0)
    audio = load_audio(path)
    assert (audio.source.codec, audio.source.container) == ("amr_wb", "amr")
    assert audio.source.sample_rate == 16000 and not audio.source.narrowband
    assert audio.source.duration_ms == 2000
    (track,) = audio.tracks
    assert track.role == "unknown" and len(track.samples) == 32000
    assert np.max(np.abs(track.samples)) > 0.01  # random frames decode to noise, not silence


def test_upsampling_8k_is_band_limited(tmp_path):
    """8k -> 16k: a 1 kHz tone must not leave its image at 7 kHz (a naive zero-stuffer would)."""
    path = write_audio(tmp_path / "t.wav", tone(1000, 2.0, 8000), 8000, preset="wav-f32")
    x = load_audio(path).tracks[0].samples[800:-800].astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    hz = np.fft.rfftfreq(len(x), 1 / 16000)
    peak = spec[np.abs(hz - 1000) < 20].max()
    image = spec[np.abs(hz - 7000) < 20].max()
    assert 20 * np.log10(image / peak) < -80


def test_downsampling_48k_removes_content_above_8k(tmp_path):
    """48k -> 16k: a 10 kHz tone is above the new Nyquist; it must vanish, not alias to 6 kHz."""
    x = tone(440, 2.0, 48000) + tone(10_000, 2.0, 48000, amplitude=0.4)
    path = write_audio(tmp_path / "t.wav", x, 48000, preset="wav-f32")
    y = load_audio(path).tracks[0].samples[1600:-1600].astype(np.float64)
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    hz = np.fft.rfftfreq(len(y), 1 / 16000)
    assert abs(dominant_frequency(y, 16000) - 440) < 2
    alias = spec[np.abs(hz - 6000) < 30].max()
    assert 20 * np.log10(alias / spec.max()) < -80


def test_channel_map_swaps_roles_not_samples(encoded):
    path = encoded["wav-mulaw"]
    audio = load_audio(path, AudioOptions(channel_map=parse_channel_map("customer,agent")))
    assert audio.channel_map == ("customer", "agent")
    assert [(t.channel, t.role) for t in audio.tracks] == [(0, "customer"), (1, "agent")]
    assert abs(dominant_frequency(audio.tracks[0].samples, 16000) - FREQS[0]) < 5  # channel 0 is still channel 0


def test_more_than_two_channels_with_a_full_map_and_repeated_roles(tmp_path):
    freqs = (300.0, 500.0, 700.0, 900.0)
    path = write_audio(tmp_path / "bridge.wav", stereo_tones(8000, 1.0, freqs=freqs), 8000)
    audio = load_audio(path, AudioOptions(channel_map=("agent", "customer", "unknown", "agent")))
    assert [t.role for t in audio.tracks] == ["agent", "customer", "unknown", "agent"]
    assert [round(dominant_frequency(t.samples, 16000)) for t in audio.tracks] == [300, 500, 700, 900]


def test_mono_file_is_unknown_even_with_a_stereo_map(tmp_path):
    path = write_audio(tmp_path / "mono.wav", tone(440, 1.0, 8000), 8000)
    assert [t.role for t in load_audio(path, AudioOptions(channel_map=("customer", "agent"))).tracks] == ["unknown"]
    assert [t.role for t in load_audio(path, AudioOptions(channel_map=("customer",))).tracks] == ["customer"]


def test_bytes_and_file_objects_match_the_path(encoded):
    path = encoded["mp3"]
    ref = load_audio(path)
    data = path.read_bytes()
    from_bytes = load_audio(data)
    with open(path, "rb") as fh:
        from_file = load_audio(fh)

    class Pipe:  # a non-seekable stream (a socket, stdin)
        def __init__(self, b: bytes):
            self._b = io.BytesIO(b)

        def read(self, n: int = -1) -> bytes:
            return self._b.read(n)

    from_pipe = load_audio(Pipe(data), name="upload.mp3")
    assert from_bytes.source.name == "<bytes>" and from_bytes.source.path is None
    assert from_file.source.name == path.name
    assert from_pipe.source.name == "upload.mp3"
    for other in (from_bytes, from_file, from_pipe):
        assert other.source.sha256 == ref.source.sha256
        assert other.source.size_bytes == len(data)
        assert (other.source.codec, other.source.sample_rate) == (ref.source.codec, ref.source.sample_rate)
    for other in (from_bytes, from_file):
        assert other.source.duration_ms == ref.source.duration_ms
        for a, b in zip(other.tracks, ref.tracks):
            np.testing.assert_array_equal(a.samples, b.samples)
    # Unseekable, ffmpeg cannot trim the MP3 encoder's end padding (a few ms more); the audio is the same.
    assert 0 <= from_pipe.source.duration_ms - ref.source.duration_ms <= 30
    for a, b in zip(from_pipe.tracks, ref.tracks):
        np.testing.assert_allclose(a.samples[: len(b.samples) - 800], b.samples[:-800], atol=1e-4)


def test_arrays_any_orientation_and_integer_types():
    x = stereo_tones(8000, 1.0, freqs=FREQS)  # [n, 2] float32
    a = load_audio(x, sample_rate=8000)
    b = load_audio(np.ascontiguousarray(x.T), sample_rate=8000)  # [2, n]
    c = load_audio(np.round(x * 32767).astype(np.int16), sample_rate=8000)
    d = load_audio((np.round(x * 127) + 128).astype(np.uint8), sample_rate=8000)
    assert a.source.sha256 == b.source.sha256 and a.source.name == "<array>"
    assert a.source.sample_rate == 8000 and a.source.narrowband and a.source.container is None
    assert a.source.duration_ms == 1000 and a.channel_map == DEFAULT_CHANNEL_MAP
    for audio in (a, b, c, d):
        assert [t.role for t in audio.tracks] == ["agent", "customer"]
        for track, f in zip(audio.tracks, FREQS):
            assert len(track.samples) == 16000 and track.samples.dtype == np.float32
            assert abs(dominant_frequency(track.samples, 16000) - f) < 2
            np.testing.assert_allclose(track.samples, a.tracks[track.channel].samples, atol=0.02)
    mono = load_audio(tone(440, 0.5, 16000), sample_rate=16000, name="clip")
    assert mono.source.name == "clip" and [t.role for t in mono.tracks] == ["unknown"]
    np.testing.assert_array_equal(mono.tracks[0].samples, tone(440, 0.5, 16000))  # 16 kHz passes through


def test_slightly_hot_float_array_is_clipped_with_a_warning():
    audio = load_audio(tone(440, 0.5, 16000, amplitude=1.2), sample_rate=16000)
    assert np.max(np.abs(audio.tracks[0].samples)) == 1.0
    assert any("clipped" in w for w in audio.warnings)


def test_parse_channel_map():
    assert parse_channel_map("agent,customer") == ("agent", "customer")
    assert parse_channel_map(" Customer , AGENT ") == ("customer", "agent")
    assert parse_channel_map(["unknown", "agent", "agent"]) == ("unknown", "agent", "agent")
    for bad in ("agent,caller", "", "agent,,customer"):
        with pytest.raises(UsageError) as err:
            parse_channel_map(bad)
        assert "agent, customer, unknown" in str(err.value)
    with pytest.raises(UsageError, match="'caller'"):
        load_audio(np.zeros(16000, np.float32), AudioOptions(channel_map=("agent", "caller")),  # type: ignore[arg-type]
                   sample_rate=16000)


def test_long_telephony_file_streams_with_output_sized_buffers(tmp_path):
    """2 min of 8 kHz μ-law stereo: exact output length, tracks are views of one output buffer."""
    path = write_audio(tmp_path / "long.wav", stereo_tones(8000, 120.0, freqs=FREQS), 8000, preset="wav-mulaw")
    audio = load_audio(path)
    assert audio.duration_ms == 120_000
    assert all(len(t.samples) == 120 * 16000 for t in audio.tracks)
    base = audio.tracks[0].samples.base
    assert base is not None and base is audio.tracks[1].samples.base
    assert base.nbytes <= 2 * 4 * 16000 * (120 + 2)  # sized from the header: no growth, no spare minutes
