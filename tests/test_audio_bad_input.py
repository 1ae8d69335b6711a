"""load_audio on bad input: one clear error per problem (naming the file), or audio plus a warning."""

from __future__ import annotations

import io
import time

import av
import numpy as np
import pytest

from callsense.audio import AudioOptions, load_audio
from callsense.errors import (
    AudioDecodeError,
    AudioLimitError,
    AudioNotFoundError,
    ChannelLayoutError,
    InputError,
    UsageError,
)
from callsense.testing.audio import FORMATS, stereo_tones, tone, wav_bytes, write_audio, write_long_wav


def _pcm16(seconds: float, rate: int = 8000) -> bytes:
    return (tone(440, seconds, rate) * 32767).astype("<i2").tobytes()


def _raises(exc: type[Exception], source, *args, **kwargs) -> str:
    """load_audio must raise ``exc`` (never a raw PyAV error) with a one-line message; returns it."""
    with pytest.raises(exc) as err:
        load_audio(source, *args, **kwargs)
    assert not isinstance(err.value, av.FFmpegError)
    text = str(err.value)
    assert "\n" not in text
    return text


class Pipe:
    """A non-seekable byte stream (stdin, a socket) that counts what was read from it."""

    def __init__(self, data: bytes):
        self._b = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        out = self._b.read(n)
        self.read_bytes += len(out)
        return out


def test_missing_path_and_directory(tmp_path):
    msg = _raises(AudioNotFoundError, tmp_path / "nope.wav")
    assert "nope.wav" in msg and "no such file" in msg
    msg = _raises(AudioNotFoundError, tmp_path)
    assert str(tmp_path) in msg and "directory" in msg


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    msg = _raises(AudioDecodeError, tmp_path / "empty.wav")
    assert "empty.wav" in msg and "empty (0 bytes)" in msg
    assert "<bytes>" in _raises(AudioDecodeError, b"")


def test_valid_wav_header_without_samples(tmp_path):
    (tmp_path / "silent.wav").write_bytes(wav_bytes(b""))
    msg = _raises(AudioDecodeError, tmp_path / "silent.wav")
    assert "silent.wav" in msg and "no audio samples" in msg


@pytest.mark.parametrize("content", ["random", "text"])
def test_not_audio(tmp_path, content):
    data = (np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8).tobytes() if content == "random"
            else "通话记录 call notes: customer asked for a refund\n".encode() * 200)
    (tmp_path / "call.wav").write_bytes(data)
    msg = _raises(AudioDecodeError, tmp_path / "call.wav")
    assert "call.wav" in msg and "not a readable audio file" in msg
    assert "upload.wav" in _raises(AudioDecodeError, data, name="upload.wav")


def test_video_without_audio_track(tmp_path):
    path = tmp_path / "screen.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=5)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    msg = _raises(AudioDecodeError, path)
    assert "screen.mp4" in msg and "no audio track" in msg and "video" in msg


def test_unsupported_codec(tmp_path):
    data = bytearray(wav_bytes(_pcm16(1.0)))
    data[20:22] = (0x1234).to_bytes(2, "little")  # a WAVE format tag no decoder knows
    (tmp_path / "odd.wav").write_bytes(bytes(data))
    msg = _raises(AudioDecodeError, tmp_path / "odd.wav")
    assert "odd.wav" in msg and "not supported" in msg


def test_truncated_mp3_keeps_what_decodes_and_warns(tmp_path):
    full = write_audio(tmp_path / "full.mp3", stereo_tones(16000, 4.0), 16000, preset="mp3")
    data = full.read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    audio = load_audio(tmp_path / "cut.mp3")
    assert 1500 <= audio.duration_ms <= 2500
    assert len(audio.tracks) == 2 and np.max(np.abs(audio.tracks[0].samples)) > 0.3
    assert any("truncated" in w for w in audio.warnings)
    assert load_audio(full).warnings == ()


def test_corrupt_packets_are_skipped_with_a_warning(tmp_path):
    data = bytearray(write_audio(tmp_path / "ok.mp3", stereo_tones(16000, 4.0), 16000, preset="mp3").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 2000] = np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    audio = load_audio(bytes(data), name="damaged.mp3")
    assert audio.duration_ms > 2500  # audio after the damage is kept too
    assert audio.warnings and all(isinstance(w, str) for w in audio.warnings)


def test_wav_header_declares_more_than_the_file_holds(tmp_path):
    path = tmp_path / "short.wav"
    path.write_bytes(wav_bytes(_pcm16(1.0), data_size=10 * 16000))  # says 10 s, holds 1 s
    t0 = time.perf_counter()
    audio = load_audio(path)
    assert time.perf_counter() - t0 < 5  # does not wait for data that never comes
    assert audio.duration_ms == 1000
    assert any("declares 10.0 s" in w and "1.0 s" in w for w in audio.warnings)


def test_wav_header_declares_less_than_the_file_holds(tmp_path):
    path = tmp_path / "long.wav"
    path.write_bytes(wav_bytes(_pcm16(3.0), data_size=16000))  # says 1 s, holds 3 s, nothing after data
    audio = load_audio(path)
    assert audio.duration_ms == 3000
    assert any("declares 1.0 s" in w and "3.0 s" in w for w in audio.warnings)


def test_wav_data_followed_by_a_real_chunk_is_honest(tmp_path):
    info = b"INFOISFT" + (14).to_bytes(4, "little") + b"callsense-test"
    list_chunk = b"LIST" + len(info).to_bytes(4, "little") + info
    path = tmp_path / "tagged.wav"
    path.write_bytes(wav_bytes(_pcm16(1.0)) + list_chunk)
    audio = load_audio(path)
    assert audio.duration_ms == 1000 and audio.warnings == ()


def test_streaming_wav_with_unknown_length(tmp_path):
    audio = load_audio(wav_bytes(_pcm16(2.0), data_size=0xFFFFFFFF), name="live.wav")
    assert audio.duration_ms == 2000 and audio.warnings == ()


def test_five_hour_file_is_refused_before_decoding(tmp_path):
    path = write_long_wav(tmp_path / "5h.wav", 5.0)  # sparse: 144 MB apparent, no disk used
    t0 = time.perf_counter()
    msg = _raises(AudioLimitError, path)
    assert time.perf_counter() - t0 < 5
    assert "5h.wav" in msg and "5:00:00" in msg and "4:00:00" in msg and "--max-duration" in msg


def test_duration_limit_is_enforced_while_decoding():
    """No duration up front (an unseekable stream of a streaming WAV): decoding stops at the limit."""
    data = wav_bytes(_pcm16(60.0), data_size=0xFFFFFFFF)
    pipe = Pipe(data)
    msg = _raises(AudioLimitError, pipe, AudioOptions(max_duration_s=5), name="live.wav")
    assert "live.wav" in msg and "5.0 s" in msg and "max_duration_s" in msg
    assert pipe.read_bytes < len(data) * 0.25  # stopped near 5 s of 60, did not read it all


def test_file_size_limit_is_checked_first(tmp_path):
    path = write_audio(tmp_path / "big.wav", tone(440, 2.0, 16000), 16000)
    opts = AudioOptions(max_file_mb=0.01)
    msg = _raises(AudioLimitError, path, opts)
    assert "big.wav" in msg and "MB" in msg and "max_file_mb" in msg
    _raises(AudioLimitError, path.read_bytes(), opts)
    _raises(AudioLimitError, Pipe(path.read_bytes()), opts)
    _raises(AudioLimitError, tone(440, 2.0, 16000), opts, sample_rate=16000)


@pytest.mark.parametrize("channels", [3, 4, 6])
def test_unsupported_channel_layout(tmp_path, channels):
    path = write_audio(tmp_path / f"ch{channels}.wav", stereo_tones(8000, 0.5, freqs=(300.0,) * channels), 8000)
    msg = _raises(ChannelLayoutError, path)
    assert f"ch{channels}.wav" in msg and f"{channels} channels" in msg and "--channels" in msg
    msg = _raises(ChannelLayoutError, path, AudioOptions(channel_map=("agent", "customer")))
    assert f"exactly {channels} roles" in msg


def test_stereo_with_a_longer_map_is_an_error(tmp_path):
    path = write_audio(tmp_path / "st.wav", stereo_tones(8000, 0.5), 8000)
    _raises(ChannelLayoutError, path, AudioOptions(channel_map=("agent", "customer", "unknown")))


def test_usage_errors():
    x = tone(440, 0.5, 8000)
    assert "sample_rate" in _raises(UsageError, x)
    assert "sample_rate" in _raises(UsageError, b"RIFF", sample_rate=8000)
    assert "[-1, 1]" in _raises(UsageError, x * 32767, sample_rate=8000)
    _raises(UsageError, np.zeros((2, 2, 100)), sample_rate=8000)
    _raises(UsageError, np.zeros((4, 4)), sample_rate=8000)
    _raises(UsageError, 42)
    _raises(AudioDecodeError, np.array([0.0, np.nan]), sample_rate=8000)
    _raises(AudioDecodeError, np.zeros(0, np.float32), sample_rate=8000)


def test_text_mode_file_object(tmp_path):
    path = write_audio(tmp_path / "t.wav", tone(440, 0.2, 8000), 8000)
    with open(path) as fh:
        assert "t.wav" in _raises(UsageError, fh)


@pytest.mark.parametrize("name", ["wav-mulaw", "mp3", "m4a-aac", "flac", "ogg-opus", "webm-opus", "amr-nb"])
def test_any_truncation_gives_audio_or_a_decode_error(tmp_path, name):
    """Cut a file anywhere: the result is audio (maybe with warnings) or AudioDecodeError, nothing else."""
    spec = FORMATS[name]
    data = write_audio(tmp_path / f"x{spec.suffix}", stereo_tones(16000, 2.0), 16000, preset=name).read_bytes()
    for cut in (1, 7, 44, 100, 300, len(data) // 3, len(data) // 2, len(data) - 200, len(data) - 1):
        try:
            audio = load_audio(data[:cut], name=f"cut{cut}{spec.suffix}")
        except AudioDecodeError as e:
            assert f"cut{cut}{spec.suffix}" in str(e)
        else:
            assert all(len(t.samples) > 0 and np.all(np.abs(t.samples) <= 1.0) for t in audio.tracks)


def test_every_input_error_is_an_input_error():
    for exc in (AudioNotFoundError, AudioDecodeError, AudioLimitError, ChannelLayoutError):
        assert issubclass(exc, InputError)
