"""Decode a recording into 16 kHz float32 tracks, one per channel, each with its role.

    audio = load_audio("call.wav")                              # path, bytes, binary file object
    audio = load_audio(samples, sample_rate=8000)               # numpy array
    audio = load_audio("call.mp3", AudioOptions(channel_map=parse_channel_map("customer,agent")))
    for track in audio.tracks: track.role, track.samples        # float32 [-1, 1] at 16 kHz

Everything PyAV's bundled ffmpeg reads is accepted (WAV PCM/float/μ-law/A-law/ADPCM, MP3, M4A/AAC, FLAC,
Ogg Vorbis/Opus, AMR-NB/WB, WebM, the audio track of video files). Decoding streams packet by packet
and resamples chunk by chunk, so memory is about the size of the output; the duration limit is checked
against the header and the packet count before decoding (demuxing only: a compressed "bomb" that hides
its length costs no memory) and again while decoding, so an over-long file is refused early.
Every failure is a :class:`~callsense.errors.InputError` whose message names the file; problems that
still leave usable audio (a truncated file, corrupt packets, a WAV header that lies about its length)
become ``DecodedAudio.warnings``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, get_args

import numpy as np

from callsense.audio.resample import TARGET_RATE, StreamResampler, resample
from callsense.audio.types import DEFAULT_CHANNEL_MAP, AudioOptions, DecodedAudio, Track
from callsense.errors import (
    AudioDecodeError,
    AudioLimitError,
    AudioNotFoundError,
    ChannelLayoutError,
    UsageError,
)
from callsense.result.model import Role, SourceInfo

log = logging.getLogger("callsense")

ROLES: tuple[Role, ...] = get_args(Role)
NARROWBAND_MAX_RATE = 8000  # telephony: at or below this the models see upsampled, band-limited audio

AudioSource = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes] | np.ndarray
"""What :func:`load_audio` accepts."""

_MAX_CONSECUTIVE_BAD_PACKETS = 50  # then the rest of the stream is taken as unreadable
_HASH_CHUNK = 1 << 20
_LIMIT_HINT = "raise the limit with --max-duration SECONDS or AudioOptions(max_duration_s=...)"
_SIZE_HINT = "raise the limit with --max-size MB or AudioOptions(max_file_mb=...)"
_NOT_AUDIO_HINT = "expected an audio or video file, e.g. WAV, MP3, M4A, FLAC, OGG, OPUS, AMR, WEBM, MP4"


def load_audio(
    source: AudioSource,
    options: AudioOptions | None = None,
    *,
    sample_rate: int | None = None,
    name: str | None = None,
) -> DecodedAudio:
    """Decode ``source`` into 16 kHz float32 tracks, one per channel, with roles from the channel map.

    ``source`` is a path (``str`` / ``Path``), the file's bytes, a binary file object (read from its
    start; a non-seekable stream is decoded as it is read, so formats that need seeking, like MP4 with
    its index at the end, need a path or bytes), or a numpy array of samples with ``sample_rate=``.
    Arrays are ``[n]`` (mono) or 2-D; in 2-D the shorter axis is the channel axis (``[n, channels]``
    and ``[channels, n]`` are both fine). Integer arrays are scaled from their type's full range
    (int16 / 32768 ...); float arrays must already be in [-1, 1].

    ``name`` labels bytes, file objects and arrays in results and error messages (e.g. an upload's file
    name). Mono gives one track of role ``unknown``; stereo uses ``options.channel_map`` or
    :data:`DEFAULT_CHANNEL_MAP`; 3+ channels need a map with one role per channel.
    """
    options = options or AudioOptions()
    requested = options.channel_map  # checked and normalised by AudioOptions
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise UsageError("a numpy array needs sample_rate=", hint="e.g. load_audio(samples, sample_rate=8000)")
        return _load_array(source, int(sample_rate), options, requested, name or "<array>")
    if sample_rate is not None:
        raise UsageError("sample_rate= is only for numpy arrays; files carry their own rate")
    src = _open_source(source, options, name)
    try:
        return _decode(src, options, requested)
    finally:
        src.close()


# --- sources -----------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """A byte source ready for ``av.open``, with the facts known before decoding."""

    name: str  # SourceInfo.name: the file name, or the caller's label
    label: str  # names the source in error messages: the path as given, or the caller's label
    path: str | None
    av_input: Any  # a path string or a binary file object
    size: int | None  # None for a non-seekable stream until it is read
    sha256: str | None  # None for a non-seekable stream until it is read
    wav_ignore_length: bool = False
    warnings: list[str] = field(default_factory=list)
    reader: _HashingReader | None = None
    owned: IO[bytes] | None = None  # closed after decoding

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()


class _HashingReader:
    """Wraps a non-seekable stream: hashes and counts what ffmpeg reads, ends it at the size limit."""

    def __init__(self, raw: IO[bytes], max_bytes: int):
        self._raw = raw
        self._max = max_bytes
        self.hash = hashlib.sha256()
        self.size = 0
        self.over_limit = False

    def read(self, n: int = -1) -> bytes:
        if self.over_limit:
            return b""
        data = self._raw.read(n if n and n > 0 else _HASH_CHUNK) or b""
        self.size += len(data)
        if self.size > self._max:
            self.over_limit = True  # returning EOF (not raising) lets ffmpeg unwind cleanly
            return b""
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_HASH_CHUNK):
            pass


def _open_source(source: Any, options: AudioOptions, name: str | None) -> _Source:
    max_bytes = int(options.max_file_mb * 1024 * 1024)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise AudioNotFoundError("no such file", hint="check the path", source=label) from None
        except OSError as e:
            raise AudioNotFoundError(f"cannot access the file ({e.strerror})", source=label) from e
        if path.is_dir():
            raise AudioNotFoundError("is a directory, not an audio file",
                                     hint="pass one recording, or use batch mode for a folder", source=label)
        _check_size(st.st_size, max_bytes, label)
        try:
            with open(path, "rb") as fh:
                digest = _sha256(fh)
                ignore, warning = _inspect_wav(fh, st.st_size)
        except OSError as e:
            raise AudioNotFoundError(f"cannot read the file ({e.strerror})", source=label) from e
        src = _Source(name or path.name, label, str(path), str(path), st.st_size, digest, ignore)
        src.warnings += [warning] if warning else []
        return src
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "<bytes>"
        _check_size(len(data), max_bytes, label)
        fh = io.BytesIO(data)
        ignore, warning = _inspect_wav(fh, len(data))
        fh.seek(0)
        src = _Source(label, label, None, fh, len(data), hashlib.sha256(data).hexdigest(), ignore, owned=fh)
        src.warnings += [warning] if warning else []
        return src
    if hasattr(source, "read"):
        label = name or _file_label(source)
        if isinstance(source.read(0), str):
            raise UsageError(f"{label} is open in text mode", hint="open audio files with open(path, 'rb')")
        seekable = bool(getattr(source, "seekable", lambda: False)())
        if seekable:
            size = source.seek(0, io.SEEK_END)
            _check_size(size, max_bytes, label)
            source.seek(0)
            digest = _sha256(source)
            ignore, warning = _inspect_wav(source, size)
            source.seek(0)
            src = _Source(label, label, None, source, size, digest, ignore)
            src.warnings += [warning] if warning else []
            return src
        reader = _HashingReader(source, max_bytes)
        return _Source(label, label, None, reader, None, None, reader=reader)
    raise UsageError(
        f"cannot read audio from a {type(source).__name__}",
        hint="pass a path, bytes, a binary file object, or a numpy array with sample_rate=",
    )


def _file_label(fileobj: Any) -> str:
    n = getattr(fileobj, "name", None)
    return os.path.basename(n) if isinstance(n, str) and n else "<file>"


def _check_size(size: int, max_bytes: int, label: str) -> None:
    if size > max_bytes:
        raise AudioLimitError(f"file is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:g} MB limit",
                              hint=_SIZE_HINT, source=label)
    if size == 0:
        raise AudioDecodeError("file is empty (0 bytes)", hint="the recording was not written; check the source",
                               source=label)


def _sha256(fh: IO[bytes]) -> str:
    h = hashlib.sha256()
    while chunk := fh.read(_HASH_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _inspect_wav(fh: IO[bytes], size: int) -> tuple[bool, str | None]:
    """For a RIFF/WAVE file, compare the data chunk's declared size with the bytes really there.

    ffmpeg already stops at the end of the file when the header declares too much; when it declares too
    little and nothing follows the data chunk (a recorder that died before fixing its header), the rest
    would be silently dropped, so we return ``ignore_length=True`` to decode it all. A real chunk after
    the data (LIST, id3 ...) means the size is honest. Returns (ignore_length, warning).
    """
    fh.seek(0)
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False, None
    pos, byte_rate = 12, 0
    for _ in range(64):  # real files have a handful of chunks; this bounds a malicious one
        fh.seek(pos)
        hdr = fh.read(8)
        if len(hdr) < 8:
            return False, None
        cid, csize = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if cid == b"fmt " and csize >= 12:
            fmt = fh.read(12)
            if len(fmt) < 12:  # header cut inside the fmt chunk: leave the verdict to the decoder
                return False, None
            byte_rate = struct.unpack("<I", fmt[8:12])[0]
        if cid == b"data":
            start = pos + 8
            if csize in (0, 0xFFFFFFFF):  # "length unknown" placeholders of streaming writers: ffmpeg reads to EOF
                return False, None
            have = size - start
            secs = _byte_duration(byte_rate)
            if csize > have:
                return False, (f"WAV header declares {secs(csize)} of audio but the file holds {secs(have)} "
                               "(truncated, or still being written); decoded what is there")
            end = start + csize + (csize & 1)
            if size - end < 8:
                return False, None
            fh.seek(end)
            nxt = fh.read(8)
            nid, nsize = nxt[:4], struct.unpack("<I", nxt[4:])[0]
            if all(32 <= b < 127 for b in nid) and end + 8 + nsize <= size + 1:
                return False, None  # a real chunk follows: the data size is honest
            return True, (f"WAV header declares {secs(csize)} of audio but the file holds {secs(have)}; "
                          "decoded all of it")
        pos += 8 + csize + (csize & 1)
    return False, None


# --- decoding ----------------------------------------------------------------------------------------------


def probe_duration(path: str | os.PathLike, *, stop_after_s: float | None = None) -> float | None:
    """Seconds of audio in the file at ``path`` without decoding it, or None when it cannot be told.

    The packets are counted (demuxing only: a 5-hour FLAC takes milliseconds and no memory), so a file
    whose header is missing or lies about its length is measured truthfully; the header is the fallback
    for containers whose packets carry no durations. Counting stops once ``stop_after_s`` is passed.
    """
    import av

    try:
        with av.open(str(path), "r", metadata_errors="ignore") as container:
            stream = container.streams.best("audio")
            if stream is None:
                return None
            counted = _count_seconds(container, stream, stop_after_s)
            return counted if counted is not None else _declared_seconds(container, stream)
    except (av.FFmpegError, OSError, ValueError):
        return None  # not readable here: decoding will say why


def _count_seconds(container: Any, stream: Any, stop_after_s: float | None) -> float | None:
    """The audio's length from its packets' durations, or None when the packets do not carry them."""
    import av

    if not stream.time_base:
        return None
    base = float(stream.time_base)
    ticks, stop = 0, None if stop_after_s is None else stop_after_s / base
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the flush packet at the end
            if not packet.duration:
                return None  # e.g. some raw streams: the count would be wrong, so do not guess
            ticks += packet.duration
            if stop is not None and ticks > stop:
                break
    except av.FFmpegError:
        pass  # a broken tail: what was counted is the length decoding can reach
    return ticks * base


def _pre_count(src: _Source, fmt_options: dict[str, str], limit_s: float) -> float | None:
    """Count the packets of a seekable source before decoding it (see :func:`probe_duration`).

    This is what keeps a decompression bomb cheap: a small compressed file whose header hides its
    length is refused from its packet count, before a sample is decoded or a buffer allocated.
    Non-seekable streams cannot be read twice; for them the limit is enforced while decoding.
    """
    import av

    if src.path is not None:
        target: Any = src.path
    elif src.reader is None and hasattr(src.av_input, "seek"):
        target = src.av_input
        target.seek(0)
    else:
        return None
    try:
        with av.open(target, "r", options=fmt_options, metadata_errors="ignore") as container:
            stream = container.streams.best("audio")
            if stream is None or (stream.codec_context is not None
                                  and str(stream.codec_context.name).startswith("pcm_")):
                return None  # PCM is never larger than the file, which the size limit already bounds
            return _count_seconds(container, stream, limit_s)
    except av.FFmpegError:
        return None  # the real open below reports why
    finally:
        if target is not src.path:
            target.seek(0)


def _decode(src: _Source, options: AudioOptions, requested: tuple[Role, ...] | None) -> DecodedAudio:
    import av

    fmt_options = {"ignore_length": "1"} if src.wav_ignore_length else {}
    counted_s = _pre_count(src, fmt_options, options.max_duration_s)
    if counted_s is not None and counted_s > options.max_duration_s:
        raise AudioLimitError(f"recording is longer than the {_fmt_duration(options.max_duration_s)} limit "
                              "(counted before decoding)", hint=_LIMIT_HINT, source=src.label)
    try:
        container = av.open(src.av_input, "r", options=fmt_options, metadata_errors="ignore")
    except av.FFmpegError as e:
        if src.reader is not None and src.reader.over_limit:
            raise _size_error(src, options) from e
        raise AudioDecodeError(f"not a readable audio file ({_reason(e)})", hint=_NOT_AUDIO_HINT,
                               source=src.label) from e
    warnings = list(src.warnings)
    with container:
        stream = container.streams.best("audio")
        if stream is None or stream.codec_context is None:  # no stream, or ffmpeg has no decoder for it
            stream = next((s for s in container.streams.audio if s.codec_context is not None), None)
        if stream is None and container.streams.audio:
            raise AudioDecodeError("audio codec is not supported (no decoder for it in PyAV's ffmpeg)",
                                   hint="convert it to WAV, FLAC or MP3 first", source=src.label)
        if stream is None:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise AudioDecodeError(f"has no audio track (streams: {', '.join(kinds)})", hint=_NOT_AUDIO_HINT,
                                   source=src.label)
        cc = stream.codec_context
        rate = int(cc.sample_rate or 0)
        channels = int(cc.channels or 0)
        if rate <= 0 or channels <= 0:
            raise AudioDecodeError(f"audio track has no usable format ({channels} channels at {rate} Hz)",
                                   source=src.label)
        roles = _resolve_roles(channels, requested, src.label)
        declared_s = _declared_seconds(container, stream)
        if declared_s is not None and declared_s > options.max_duration_s:
            raise AudioLimitError(f"recording is {_fmt_duration(declared_s)} long (per its header), over the "
                                  f"{_fmt_duration(options.max_duration_s)} limit", hint=_LIMIT_HINT, source=src.label)
        capacity_s = min(counted_s or declared_s or 60.0, options.max_duration_s) + 1.0
        buf = _TrackBuffer(channels, int(capacity_s * TARGET_RATE))
        resampler = StreamResampler(rate, channels)
        decoded_s, bad, consecutive = 0.0, 0, 0
        first_error: Exception | None = None
        stopped: str | None = None
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as e:
                    bad, consecutive = bad + 1, consecutive + 1
                    first_error = first_error or e
                    if consecutive >= _MAX_CONSECUTIVE_BAD_PACKETS:
                        stopped = f"{consecutive} unreadable packets in a row ({_reason(e)})"
                        break
                    continue
                consecutive = 0
                for frame in frames:
                    if frame.layout.nb_channels != channels:
                        stopped = f"the channel count changes from {channels} to {frame.layout.nb_channels}"
                        break
                    if frame.sample_rate != resampler.in_rate:  # e.g. MP3 or HE-AAC switching rates
                        buf.append(resampler.flush())
                        resampler = StreamResampler(frame.sample_rate, channels)
                    decoded_s += frame.samples / frame.sample_rate
                    if decoded_s > options.max_duration_s:
                        raise AudioLimitError(f"recording is longer than the {_fmt_duration(options.max_duration_s)} "
                                              "limit (stopped decoding there)", hint=_LIMIT_HINT, source=src.label)
                    buf.append(resampler.process(_frame_to_float(frame)))
                if stopped:
                    break
        except av.FFmpegError as e:  # the demuxer gave up (truncated container, broken index ...)
            first_error = first_error or e
            stopped = _reason(e)
        buf.append(resampler.flush())
        if src.reader is not None and src.reader.over_limit:
            raise _size_error(src, options)
        container_name = container.format.name
        codec_name = cc.codec.canonical_name if cc.codec else None

    if buf.n == 0:
        if first_error is not None:
            raise AudioDecodeError(f"no audio could be decoded ({_reason(first_error)})", hint=_NOT_AUDIO_HINT,
                                   source=src.label) from first_error
        raise AudioDecodeError("contains no audio samples (0 s)", hint="the recording is empty", source=src.label)
    if bad:
        warnings.append(f"skipped {bad} corrupt packet(s) ({_reason(first_error)})")
    if stopped:
        warnings.append(f"decoding stopped at {_fmt_duration(decoded_s)}: {stopped}; kept the audio before it")
    elif declared_s and not src.warnings and decoded_s < declared_s - max(0.5, 0.02 * declared_s):
        warnings.append(f"header declares {_fmt_duration(declared_s)} but only {_fmt_duration(decoded_s)} "
                        "could be decoded (truncated file?)")
    if src.reader is not None:
        src.reader.drain()  # hash the whole stream, not just what ffmpeg needed
        src.size, src.sha256 = src.reader.size, src.reader.hash.hexdigest()
        if src.reader.over_limit:
            raise _size_error(src, options)
    for w in warnings:
        log.warning("%s: %s", src.label, w)

    samples = buf.tracks()
    info = SourceInfo(
        name=src.name,
        path=src.path,
        sha256=src.sha256 or "",
        size_bytes=src.size or 0,
        container=container_name,
        codec=codec_name,
        sample_rate=rate,
        channels=channels,
        duration_ms=_ms(buf.n),
        narrowband=rate <= NARROWBAND_MAX_RATE,
    )
    tracks = tuple(Track(channel=i, role=roles[i], samples=s) for i, s in enumerate(samples))
    return DecodedAudio(source=info, tracks=tracks, channel_map=roles, warnings=tuple(warnings))


def _size_error(src: _Source, options: AudioOptions) -> AudioLimitError:
    return AudioLimitError(f"stream is over the {options.max_file_mb:g} MB limit", hint=_SIZE_HINT, source=src.label)


def _resolve_roles(channels: int, requested: tuple[Role, ...] | None, label: str) -> tuple[Role, ...]:
    """Roles of the file's channels. Mono is a mix of both sides, so it is ``unknown`` unless a 1-role map
    says otherwise (a stereo map given for a whole batch does not apply to its mono files)."""
    if channels == 1:
        return requested if requested is not None and len(requested) == 1 else ("unknown",)
    if requested is None:
        if channels == 2:
            return DEFAULT_CHANNEL_MAP
        raise ChannelLayoutError(
            f"has {channels} channels; without a channel map only mono and stereo are read",
            hint=f"give one role per channel, e.g. --channels {','.join(['agent', 'customer'] + ['unknown'] * (channels - 2))}",
            source=label,
        )
    if len(requested) != channels:
        raise ChannelLayoutError(
            f"has {channels} channels but the channel map {','.join(requested)} names {len(requested)}",
            hint=f"give exactly {channels} roles (from {', '.join(ROLES)})",
            source=label,
        )
    return requested


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """The duration the container claims for the audio stream (ffmpeg's header or size-based estimate)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


# Scale of each ffmpeg sample format (planar or packed) to [-1, 1]; (dtype offset, 1 / full scale).
_SCALE = {"u8": (128.0, 1 / 128), "s16": (0.0, 1 / 32768), "s32": (0.0, 1 / 2**31), "s64": (0.0, 1 / 2**63),
          "flt": (0.0, 1.0), "dbl": (0.0, 1.0)}


def _frame_to_float(frame: Any) -> np.ndarray:
    """A decoded frame -> float32 ``[n, channels]``."""
    a = frame.to_ndarray()
    channels = frame.layout.nb_channels
    fmt = frame.format.name.rstrip("p")
    a = a.T if frame.format.is_planar else a.reshape(-1, channels)
    offset, scale = _SCALE[fmt]
    x = a.astype(np.float32)
    if offset:
        x -= offset
    if scale != 1.0:
        x *= scale
    return x


class _TrackBuffer:
    """Output samples ``[channels, n]``, written chunk by chunk with no second copy at the end.

    Capacity comes from the header's duration; ``np.empty`` pages that are never written cost no memory,
    so an overestimate is free and an underestimate grows the buffer by half.
    """

    def __init__(self, channels: int, capacity: int):
        self._buf = np.empty((channels, max(capacity, TARGET_RATE)), dtype=np.float32)
        self.n = 0

    def append(self, chunk: np.ndarray) -> None:
        m = len(chunk)
        if not m:
            return
        if self.n + m > self._buf.shape[1]:
            grown = np.empty((self._buf.shape[0], int((self.n + m) * 1.5)), dtype=np.float32)
            grown[:, : self.n] = self._buf[:, : self.n]
            self._buf = grown
        dest = self._buf[:, self.n : self.n + m]
        np.clip(chunk.T, -1.0, 1.0, out=dest)  # lossy codecs and the resampler overshoot full scale a little
        self.n += m

    def tracks(self) -> list[np.ndarray]:
        return [self._buf[c, : self.n] for c in range(self._buf.shape[0])]


# --- arrays ------------------------------------------------------------------------------------------------


def _load_array(
    arr: np.ndarray, rate: int, options: AudioOptions, requested: tuple[Role, ...] | None, label: str
) -> DecodedAudio:
    if rate <= 0:
        raise UsageError(f"sample_rate must be positive, got {rate}")
    a = np.asarray(arr)
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim == 2:
        if a.shape[0] == a.shape[1] and a.shape[0] > 1:
            raise UsageError(f"{label}: cannot tell channels from samples in a {a.shape} array",
                             hint="pass [n] or [n, channels] with more samples than channels")
        if a.shape[0] < a.shape[1]:
            a = a.T  # [channels, n] -> [n, channels]: the shorter axis is the channel axis
    else:
        raise UsageError(f"{label}: audio arrays are [n] or [n, channels], got {a.ndim} dimensions")
    warnings: list[str] = []
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        offset = (int(info.max) + 1) // 2 if a.dtype.kind == "u" else 0
        x = (a.astype(np.float32) - offset) / float(int(info.max) + 1 - offset)
    elif a.dtype.kind == "f":
        x = a.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise AudioDecodeError("samples contain NaN or infinity", source=label)
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > 2.0:
            raise UsageError(f"{label}: float samples must be in [-1, 1], peak is {peak:g}",
                             hint="scale integer PCM first (e.g. int16 / 32768) or pass the integer array")
        if peak > 1.0:
            warnings.append(f"samples up to {peak:.3g} clipped to [-1, 1]")
    else:
        raise UsageError(f"{label}: audio arrays must be integer or float, got {a.dtype}")
    x = np.ascontiguousarray(x)
    n, channels = x.shape
    if n == 0:
        raise AudioDecodeError("contains no audio samples (0 s)", source=label)
    if n / rate > options.max_duration_s:
        raise AudioLimitError(f"recording is {_fmt_duration(n / rate)} long, over the "
                              f"{_fmt_duration(options.max_duration_s)} limit", hint=_LIMIT_HINT, source=label)
    _check_size(a.nbytes, int(options.max_file_mb * 2**20), label)
    roles = _resolve_roles(channels, requested, label)
    y = resample(x, rate)
    if y.ndim == 1:
        y = y[:, None]
    buf = _TrackBuffer(channels, len(y))
    buf.append(y)
    info = SourceInfo(
        name=label,
        path=None,
        sha256=hashlib.sha256(x.tobytes()).hexdigest(),
        size_bytes=int(a.nbytes),
        container=None,
        codec=None,
        sample_rate=rate,
        channels=channels,
        duration_ms=_ms(buf.n),
        narrowband=rate <= NARROWBAND_MAX_RATE,
    )
    for w in warnings:
        log.warning("%s: %s", label, w)
    tracks = tuple(Track(channel=i, role=roles[i], samples=s) for i, s in enumerate(buf.tracks()))
    return DecodedAudio(source=info, tracks=tracks, channel_map=roles, warnings=tuple(warnings))


# --- small helpers -----------------------------------------------------------------------------------------


def _ms(n_samples: int) -> int:
    return round(n_samples * 1000 / TARGET_RATE)


def _byte_duration(byte_rate: int):
    """A formatter of PCM byte counts as durations (as bytes when the rate is unknown)."""
    return lambda n: _fmt_duration(n / byte_rate) if byte_rate else f"{n} bytes"


def _fmt_duration(seconds: float) -> str:
    """``3.2 s``, ``12:05`` or ``5:00:00``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _reason(e: BaseException | None) -> str:
    """ffmpeg's reason without the errno and the internal function name PyAV appends."""
    if e is None:
        return "unknown error"
    text = getattr(e, "strerror", None) or str(e)
    return str(text).rstrip(".")
