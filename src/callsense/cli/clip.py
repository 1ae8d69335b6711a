"""``callsense clip``: write the review clip of a rule hit (or of a time range) as a WAV file.

    callsense clip CALL_ID --hit emotion.turn -o turn.wav      # a stored call (--db)
    callsense clip out/outputs_c-1/ --hit risk.complaint        # a call folder written by analyze
    callsense clip CALL_ID --start-ms 40000 --end-ms 70000 -o x.wav

The clip is cut from the call's processed audio (``audio_16k.wav``) on demand; nothing is stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from callsense.cli.options import DB_HELP, DB_METAVAR
from callsense.errors import AudioNotFoundError, UsageError


def register(app: typer.Typer) -> None:
    app.command("clip")(clip)


def clip(
    call: str = typer.Argument(..., help="A stored call id, or a call folder / its result.json."),
    hit: str | None = typer.Option(None, "--hit", help="Rule id of a hit of the call: its review window."),
    start_ms: int | None = typer.Option(None, "--start-ms", help="Clip start (ms), instead of --hit."),
    end_ms: int | None = typer.Option(None, "--end-ms", help="Clip end (ms), instead of --hit."),
    output: Path | None = typer.Option(None, "-o", "--output", help="WAV file to write [CALL_RULE.wav]."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
) -> None:
    """Write the review clip of a rule hit (the 30 s around an emotion turn, ...) as a 16 kHz WAV."""
    from callsense.report.clips import MAX_CLIP_MS, check_range, cut_clip

    if (hit is None) == (start_ms is None and end_ms is None):
        raise UsageError("give --hit RULE_ID, or --start-ms and --end-ms")
    if hit is None and (start_ms is None or end_ms is None):
        raise UsageError("--start-ms and --end-ms go together")
    result, audio = _locate(call, db)
    if hit is not None:
        found = next((h for h in result.rule_hits if h.rule_id == hit), None)
        if found is None:
            hits = ", ".join(h.rule_id for h in result.rule_hits) or "none"
            raise UsageError(f"call {result.call_id} has no hit of rule {hit!r} (its hits: {hits})")
        window = found.window(MAX_CLIP_MS)
        if window is None:
            raise UsageError(f"the hit of {hit} has no time window to cut")
        start_ms, end_ms = window
    assert start_ms is not None and end_ms is not None
    check_range(start_ms, end_ms, result.duration_ms)
    out = output or Path(f"{result.call_id}_{hit or f'{start_ms}-{end_ms}'}.wav")
    out.write_bytes(cut_clip(audio, start_ms, end_ms))
    typer.echo(f"{out}  ({start_ms / 1000:.1f}–{end_ms / 1000:.1f} s)")


def _locate(call: str, db: str | None) -> tuple[Any, Path]:
    """The call's result and the path of its processed audio."""
    from callsense.pipeline.outputs import AUDIO_FILE
    from callsense.result.io import read_result

    p = Path(call)
    if p.exists():
        folder = p if p.is_dir() else p.parent
        result = read_result(folder / "result.json" if p.is_dir() else p)
        audio = folder / AUDIO_FILE
    else:
        from sqlalchemy import select

        from callsense.store.db import open_store
        from callsense.store.models import Call
        from callsense.store.repo import get_result

        store = open_store(db)
        try:
            result = get_result(store, call)
            with store.session() as s:
                out_dir = s.execute(select(Call.output_dir).where(Call.call_id == call)).scalar_one_or_none()
        finally:
            store.close()
        audio = Path(out_dir) / AUDIO_FILE if out_dir else Path(f"<no folder for {call}>")
    if not audio.is_file():
        raise AudioNotFoundError(f"call {result.call_id} has no processed audio", source=str(audio),
                                 hint="analyse it again without --no-audio (and with the audio kept)")
    return result, audio
