"""`callsense live FILE --url ws://host:port/v1/live`: stream a recording to a live endpoint as if the
call were happening now, printing partials, finals and alerts as they arrive; the last line of
standard output is the stored call's id (for scripts: ``id=$(callsense live call.wav | tail -1)``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from callsense.errors import BadRequestError, ServiceError, UsageError


def register(app: typer.Typer) -> None:
    app.command("live")(live)


def live(
    file: Path = typer.Argument(..., help="A recording: PCM16, μ-law or A-law WAV at 8/16 kHz is sent as is."),
    url: str = typer.Option("ws://127.0.0.1:7860/v1/live", "--url", help="The server's live endpoint."),
    speed: float = typer.Option(1.0, "--speed", help="1 = real time, 4 = four times faster, 0 = as fast as possible."),
    frame_ms: int = typer.Option(20, "--frame-ms", help="Audio per WebSocket frame (20-200 ms is typical)."),
    channels: str | None = typer.Option(None, "--channels", help="Role per channel, e.g. agent,customer."),
    key: str | None = typer.Option(None, "--key", envvar="CALLSENSE_API_KEY", help="API key (or $CALLSENSE_API_KEY)."),
    call_id: str | None = typer.Option(None, "--call-id", help="The id to store the call under."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the call id."),
) -> None:
    """Stream a recording to a live endpoint at real-time pace and print what comes back."""
    from callsense.live.client import read_recording, stream

    if speed < 0:
        raise UsageError(f"--speed must be >= 0, not {speed:g}")
    if not 10 <= frame_ms <= 2000:
        raise UsageError(f"--frame-ms must be 10-2000, not {frame_ms}")
    if not url.startswith(("ws://", "wss://")):
        raise UsageError(f"--url must start with ws:// or wss://, not {url!r}", hint="e.g. ws://127.0.0.1:7860/v1/live")
    roles = [r.strip() for r in channels.split(",")] if channels else None
    recording = read_recording(file)

    async def run() -> str:
        import websockets

        try:
            async for msg in stream(url, recording, speed=speed, frame_ms=frame_ms, roles=roles, key=key,
                                    call_id=call_id, metadata={"filename": file.name}):
                kind = msg["type"]
                if kind == "error":
                    raise BadRequestError(f"the server refused the call: {msg['code']}: {msg['message']}")
                if kind == "stopped":
                    return msg["call_id"]
                if not quiet:
                    _print(msg)
        except (OSError, websockets.InvalidURI, websockets.InvalidHandshake) as e:
            raise ServiceError(f"cannot reach {url}: {e}", hint="is `callsense serve` running there?") from e
        raise ServiceError(f"{url} closed the connection before the call was stored")

    call = asyncio.run(run())
    print(call)


def _print(msg: dict) -> None:
    t = f"[{msg['_t']:6.1f}s]"
    kind = msg["type"]
    if kind == "started":
        line = f"{t} started {msg['call_id']}"
    elif kind == "partial":
        line = f"{t} … {msg['role']:<8} {msg['text']}"
    elif kind == "final":
        s = msg["segment"]
        emo = (s.get("emotion") or {}).get("label", "")
        line = f"{t} ✓ {s['role']:<8} {s['start_ms'] / 1000:6.1f}-{s['end_ms'] / 1000:6.1f}s {emo:<9} {s.get('text') or ''}"
    elif kind == "alert":
        line = f"{t} ! {msg['severity'].upper()} {msg['rule_id']}: {msg['message']}"
    else:
        line = f"{t} {kind}"
    print(line, flush=True)
