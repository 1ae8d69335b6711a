"""A FunASR runtime WebSocket client written to the protocol's published description
(modelscope/FunASR ``runtime/docs/websocket_protocol.md``), kept apart from the server code:
first a JSON configuration, then binary PCM16 chunks, then ``{"is_speaking": false}``; answers until
one has ``is_final: true``."""

from __future__ import annotations

import asyncio
import json

import websockets


async def funasr_recognize(url: str, pcm: bytes, *, wav_name: str = "demo", mode: str = "2pass",
                           audio_fs: int = 16000, chunk_size=(5, 10, 5), chunk_interval: int = 10,
                           timeout: float = 60.0) -> list[dict]:
    answers: list[dict] = []
    async with websockets.connect(url, subprotocols=["binary"]) as ws:
        await ws.send(json.dumps({"mode": mode, "chunk_size": list(chunk_size), "chunk_interval": chunk_interval,
                                  "wav_name": wav_name, "wav_format": "pcm", "audio_fs": audio_fs,
                                  "is_speaking": True, "hotwords": "", "itn": True}))
        # the published client's stride: 60 * chunk_size[1] / chunk_interval ms of audio per message
        stride = int(60 * chunk_size[1] / chunk_interval / 1000 * audio_fs * 2)

        async def send() -> None:
            for i in range(0, len(pcm), stride):
                await ws.send(pcm[i:i + stride])
            await ws.send(json.dumps({"is_speaking": False}))

        sender = asyncio.create_task(send())
        try:
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
                answers.append(msg)
                if msg.get("is_final"):
                    break
        finally:
            sender.cancel()
    return answers
