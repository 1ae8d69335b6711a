"""A ``/v1/live`` client: streams a recording at real-time pace (or faster) and yields what comes back.

Used by ``callsense live`` and ``bench/live.py``. A telephone recording (PCM16, μ-law or A-law at 8 or
16 kHz, one or two channels) is sent as it is stored; anything else is decoded to 16 kHz PCM16.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callsense.errors import AudioDecodeError, AudioNotFoundError, UsageError

NATIVE = {"pcm_s16le": "pcm_s16le", "pcm_mulaw": "mulaw", "pcm_alaw": "alaw"}


@dataclass(frozen=True)
class Recording:
    data: bytes  # interleaved samples in ``encoding``
    sample_rate: int
    encoding: str
    channels: int

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.channels * (2 if self.encoding == "pcm_s16le" else 1)

    def frames(self, frame_ms: int) -> list[bytes]:
        step = self.bytes_per_second * frame_ms // 1000
        return [self.data[i:i + step] for i in range(0, len(self.data), step)]


def read_recording(path: str | Path) -> Recording:
    """The recording's samples in a protocol encoding (as stored when it already is one)."""
    import av

    p = Path(path)
    if not p.is_file():
        raise AudioNotFoundError("no such file", source=p, hint="give the path of a recording")
    try:
        with av.open(str(p)) as container:
            stream = container.streams.audio[0]
            codec, rate, channels = stream.codec_context.name, stream.codec_context.sample_rate, stream.channels
            if codec in NATIVE and rate in (8000, 16000) and channels in (1, 2):
                data = b"".join(bytes(packet) for packet in container.demux(stream) if packet.size)
                return Recording(data, rate, NATIVE[codec], channels)
    except (av.error.FFmpegError, IndexError) as e:
        raise AudioDecodeError(f"cannot read audio: {e}", source=p) from e
    from callsense.audio.decode import load_audio

    audio = load_audio(p)
    if len(audio.tracks) > 2:
        raise UsageError(f"{p}: live calls have 1 or 2 channels, this recording has {len(audio.tracks)}")
    x = np.stack([t.samples for t in audio.tracks], axis=1)
    return Recording((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes(), 16000, "pcm_s16le", x.shape[1])


PING_TIMEOUT_S = 120.0


async def stream(url: str, recording: Recording, *, speed: float = 1.0, frame_ms: int = 20,
                 roles: Sequence[str] | None = None, key: str | None = None, call_id: str | None = None,
                 metadata: dict[str, Any] | None = None, language: str = "auto",
                 ) -> AsyncIterator[dict[str, Any]]:
    """Send ``recording`` to ``url`` (``ws://host:port/v1/live``) and yield every server message, each
    with ``_t`` (seconds since the first frame) added; ends after ``stopped`` or ``error``."""
    import websockets

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    start: dict[str, Any] = {"type": "start", "sample_rate": recording.sample_rate, "encoding": recording.encoding,
                             "channels": recording.channels, "language": language}
    if roles:
        start["roles"] = list(roles)
    if call_id:
        start["call_id"] = call_id
    if metadata:
        start["metadata"] = metadata
    # ping_timeout as the server's (cli/serve.py): the server reads the next frame only once the last one
    # is analysed, so its pong to our ping waits behind the audio we queued; websockets' default (20 s)
    # closed every call of a server that had fallen 20 s behind (bench/live.py on a loaded machine)
    async with websockets.connect(url, additional_headers=headers, max_size=None, ping_timeout=PING_TIMEOUT_S) as ws:
        await ws.send(json.dumps(start))
        t0 = time.monotonic()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        async def reader() -> None:
            try:
                async for text in ws:
                    msg = json.loads(text)
                    msg["_t"] = time.monotonic() - t0
                    await queue.put(msg)
            except websockets.ConnectionClosed:
                pass
            finally:
                await queue.put(None)

        async def writer() -> None:
            try:
                for i, frame in enumerate(recording.frames(frame_ms)):
                    if speed > 0:
                        delay = t0 + i * frame_ms / 1000 / speed - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    await ws.send(frame)
                await ws.send(json.dumps({"type": "stop"}))
            except websockets.ConnectionClosed:
                pass

        read_task = asyncio.create_task(reader())
        write_task = asyncio.create_task(writer())
        try:
            while (msg := await queue.get()) is not None:
                yield msg
                if msg["type"] in ("stopped", "error"):
                    break
        finally:
            write_task.cancel()
            read_task.cancel()
