"""WebSocket adapters of live calls: ``/v1/live`` (callsense's protocol, docs/live.md) and
``/v1/funasr`` (FunASR's runtime protocol, for its existing clients). Thin: authentication, the
message loop, and the engines' work handed to a thread; the call itself is ``callsense.live``."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from callsense.api.auth import authenticate, token_from_headers
from callsense.errors import CallsenseError, LiveProtocolError
from callsense.live import protocol
from callsense.live.manager import live_calls
from callsense.service.errors import ForbiddenError
from callsense.service.keys import role_allows

log = logging.getLogger("callsense")
router = APIRouter()

POLICY = 1008  # WebSocket close codes
INTERNAL = 1011


async def _send(ws: WebSocket, message: dict[str, Any]) -> None:
    if ws.client_state == WebSocketState.CONNECTED:
        await ws.send_text(json.dumps(message, ensure_ascii=False))


def _authorize(ws: WebSocket) -> None:
    service = ws.app.state.service
    principal = authenticate(service, token_from_headers(ws.headers) or ws.query_params.get("api_key"))
    if not role_allows(principal.role, "analyst"):
        raise ForbiddenError(f"live calls need the analyst role; your key has {principal.role}")


def _code(e: CallsenseError) -> str:
    return {"auth": "unauthorized", "forbidden": "forbidden", "unavailable": "not_ready"}.get(e.code, e.code)


async def _fail(ws: WebSocket, code: str, message: str, close: int = POLICY) -> None:
    try:
        await _send(ws, protocol.error(code, message))
        await ws.close(close)
    except (RuntimeError, WebSocketDisconnect):
        pass


class _Call:
    """One connection's live call: feeds frames on a worker thread and stores the call at the end."""

    def __init__(self, ws: WebSocket, session: Any):
        self.ws, self.session = ws, session
        self.registry = live_calls(ws.app.state.service)

    async def feed(self, data: bytes) -> list[dict[str, Any]]:
        return await anyio.to_thread.run_sync(self.session.feed, data)

    async def finish(self, *, interrupted: bool) -> tuple[list[dict[str, Any]], str]:
        def work() -> tuple[list[dict[str, Any]], str]:
            if self.session.closed:  # stored (or given up) already
                return [], f"/v1/calls/{self.session.call_id}"
            try:
                messages = self.session.finish()
            except Exception:  # storing what was heard matters more than the last utterance
                log.exception("live call %s: closing its last utterances failed", self.session.call_id)
                messages = []
            return messages, self.registry.close(self.session, interrupted=interrupted)

        return await anyio.to_thread.run_sync(work)

    def note(self, messages: list[dict[str, Any]]) -> None:
        for m in messages:
            if m["type"] == "alert":
                self.registry.note_alert(self.session, m)


async def _first_message(ws: WebSocket, what: str) -> str | None:
    """Accept, authenticate, and return the first message's text (None: refused or gone already)."""
    await ws.accept()
    try:
        _authorize(ws)
    except CallsenseError as e:
        await _fail(ws, _code(e), str(e))
        return None
    first = await ws.receive()
    if first["type"] == "websocket.disconnect":
        return None
    if first.get("text") is None:
        raise LiveProtocolError("frames_before_start", f"audio arrived before {what}",
                                hint='send {"type": "start", ...} first' if what == "the start message" else None)
    return first["text"]


async def _receive(ws: WebSocket) -> dict[str, Any]:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1006))
    return message


@router.websocket("/v1/live")
async def live(ws: WebSocket) -> None:
    call: _Call | None = None
    try:
        text = await _first_message(ws, "the start message")
        if text is None:
            return
        msg = protocol.parse_text(text)
        if msg["type"] != "start":
            raise LiveProtocolError("bad_message", f"the first message must be start, not {msg['type']!r}")
        start = protocol.parse_start(msg)
        session = await anyio.to_thread.run_sync(live_calls(ws.app.state.service).open, start)
        call = _Call(ws, session)
        await _send(ws, protocol.started(session.call_id))
        while True:
            message = await _receive(ws)
            if message.get("bytes") is not None:
                out = await call.feed(message["bytes"])
            else:
                msg = protocol.parse_text(message.get("text") or "")
                if msg["type"] != "stop":
                    raise LiveProtocolError("bad_message", f"expected audio frames or stop, not {msg['type']!r}")
                if set(msg) - {"type"}:
                    raise LiveProtocolError("bad_message", "stop takes no fields")
                out, url = await call.finish(interrupted=False)
                call.note(out)
                for m in out:
                    await _send(ws, m)
                await _send(ws, protocol.stopped(session.call_id, url))
                call = None
                await ws.close(1000)
                return
            call.note(out)
            for m in out:
                await _send(ws, m)
    except WebSocketDisconnect:
        if call is not None:
            log.warning("live call %s: the client went away before stop; storing it as interrupted",
                        call.session.call_id)
            await call.finish(interrupted=True)
    except CallsenseError as e:
        if call is not None:  # what was heard is kept: the call is stored, marked interrupted
            await call.finish(interrupted=True)
        await _fail(ws, _code(e), e.message + (f" ({e.hint})" if e.hint else ""))
    except Exception as e:  # a bug, not bad input: the client is told, other calls go on
        log.exception("live call failed")
        if call is not None:
            try:
                await call.finish(interrupted=True)
            except Exception:
                live_calls(ws.app.state.service).discard(call.session)
        await _fail(ws, "internal", f"internal error ({type(e).__name__}); the server log has the details", INTERNAL)


# ------------------------------------------------------------------------------------ FunASR runtime
FUNASR_FIELDS = ("mode", "wav_name", "wav_format", "audio_fs", "chunk_size", "chunk_interval", "itn", "hotwords",
                 "is_speaking", "svs_lang", "svs_itn", "encoder_chunk_look_back", "decoder_chunk_look_back")
FUNASR_MODES = ("2pass", "online", "offline")


def _funasr_start(msg: dict[str, Any]) -> tuple[str, str, protocol.StartMessage]:
    mode = msg.get("mode", "2pass")
    if mode not in FUNASR_MODES:
        raise LiveProtocolError("bad_start", f"mode must be one of {', '.join(FUNASR_MODES)}, not {mode!r}")
    fmt = msg.get("wav_format", "pcm")
    if fmt != "pcm":
        raise LiveProtocolError("unsupported_encoding", f"wav_format {fmt!r} is not supported; send pcm (16-bit)")
    language = msg.get("svs_lang", "auto")
    start = protocol.parse_start({"type": "start", "sample_rate": msg.get("audio_fs", 16000), "encoding": "pcm_s16le",
                                  "channels": 1, "language": language,
                                  "metadata": {"funasr_wav_name": str(msg.get("wav_name", ""))}})
    return mode, str(msg.get("wav_name", "")), start


def _funasr_answers(messages: list[dict[str, Any]], mode: str, wav_name: str) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        if m["type"] == "partial" and mode in ("2pass", "online"):
            out.append({"mode": "2pass-online" if mode == "2pass" else "online", "wav_name": wav_name,
                        "text": m["text"], "is_final": False})
        elif m["type"] == "final" and mode in ("2pass", "offline"):
            seg = m["segment"]
            emotion = seg.get("emotion") or {}
            out.append({"mode": "2pass-offline" if mode == "2pass" else "offline", "wav_name": wav_name,
                        "text": seg.get("text") or "", "is_final": False,
                        "timestamp": json.dumps([[seg["start_ms"], seg["end_ms"]]]),
                        "stamp_sents": [{"text_seg": seg.get("text") or "", "start": seg["start_ms"],
                                         "end": seg["end_ms"]}],
                        # callsense on top of FunASR's fields:
                        "emotion": emotion.get("label"), "emotion_confidence": emotion.get("confidence"),
                        "language": seg.get("language"), "events": list(seg.get("asr_events") or [])})
    return out


@router.websocket("/v1/funasr")
async def funasr(ws: WebSocket) -> None:
    call: _Call | None = None
    wav_name = ""
    try:
        text = await _first_message(ws, "the first JSON message")
        if text is None:
            return
        msg = json.loads(text)
        if not isinstance(msg, dict):
            raise LiveProtocolError("bad_message", "the first message must be a JSON object")
        unknown = sorted(set(msg) - set(FUNASR_FIELDS))
        if unknown:
            raise LiveProtocolError("bad_start", f"unknown field(s): {', '.join(unknown)}")
        mode, wav_name, start = _funasr_start(msg)
        session = await anyio.to_thread.run_sync(live_calls(ws.app.state.service).open, start)
        call = _Call(ws, session)
        while True:
            message = await _receive(ws)
            if message.get("bytes") is not None:
                out = await call.feed(message["bytes"])
            else:
                control = json.loads(message.get("text") or "{}")
                if not isinstance(control, dict) or control.get("is_speaking", True):
                    continue  # a repeated configuration message: nothing to do
                out, _url = await call.finish(interrupted=False)
                answers = _funasr_answers(out, mode, wav_name)
                if answers:
                    answers[-1]["is_final"] = True
                else:
                    answers = [{"mode": "2pass-offline" if mode == "2pass" else mode, "wav_name": wav_name,
                                "text": "", "is_final": True, "timestamp": "[]"}]
                for a in answers:
                    await _send(ws, a)
                call = None
                await ws.close(1000)
                return
            for a in _funasr_answers(out, mode, wav_name):
                await _send(ws, a)
    except WebSocketDisconnect:
        if call is not None:
            await call.finish(interrupted=True)
    except (CallsenseError, json.JSONDecodeError) as e:
        if call is not None:
            await call.finish(interrupted=True)
        text = e.message if isinstance(e, CallsenseError) else f"not a JSON object: {e}"
        await _fail(ws, _code(e) if isinstance(e, CallsenseError) else "bad_message", text)
    except Exception as e:
        log.exception("funasr call failed")
        if call is not None:
            live_calls(ws.app.state.service).discard(call.session)
        await _fail(ws, "internal", f"internal error ({type(e).__name__})", INTERNAL)
