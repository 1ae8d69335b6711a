"""``callsense clip``: write the review clip of a rule hit (or of a time range) as a WAV file.

    callsense clip CALL_ID --hit emotion.turn -o turn.wav      # a stored call (--db)
    callsense clip out/outputs_c-1/ --hit risk.complaint        # a call folder written by analyze
    callsense clip CALL_ID --start-ms 40000 --end-ms 70000 -o x.wav

The clip is cut from the call's processed audio (``audio_16k.wav``) on demand; nothing is stored. A call
stored by ``callsense batch`` has no call folder: its clip is cut from the recording itself (the
``--copy-audio`` copy, else the source file), decoded to 16 kHz as the analysis did, once its SHA-256 is
checked against the stored call's (a changed or deleted recording is exit 3, not a wrong clip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from callsense.cli.options import DB_HELP, DB_METAVAR
from callsense.errors import AudioNotFoundError, InputError, UsageError


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
    result, audio, tmp = locate_call(call, db)
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
    try:
        out.write_bytes(cut_clip(audio, start_ms, end_ms))
    finally:
        if tmp is not None:
            tmp.cleanup()
    typer.echo(f"{out}  ({start_ms / 1000:.1f}–{end_ms / 1000:.1f} s)")


def locate_call(call: str, db: str | None, *, need_audio: bool = True) -> tuple[Any, Any, Any]:
    """The call's result, the path of its processed audio, and the temporary folder holding it (or None).
    Without ``need_audio`` a call whose audio cannot be had gives None for the path instead of exit 3."""
    try:
        return _locate(call, db)
    except InputError:  # no audio, a changed or unreadable recording
        if need_audio:
            raise
    result, _, _ = _locate(call, db, audio=False)
    return result, None, None


def _locate(call: str, db: str | None, *, audio: bool = True) -> tuple[Any, Path, Any]:
    from callsense.pipeline.outputs import AUDIO_FILE
    from callsense.result.io import read_result

    p = Path(call)
    if p.exists():
        folder = p if p.is_dir() else p.parent
        result = read_result(folder / "result.json" if p.is_dir() else p)
        wav = folder / AUDIO_FILE
    else:
        from sqlalchemy import select

        from callsense.store.db import open_store
        from callsense.store.models import Call
        from callsense.store.repo import get_result

        store = open_store(db)
        try:
            result = get_result(store, call)
            with store.session() as s:
                row = s.execute(select(Call.output_dir, Call.audio_path, Call.source_path, Call.content_sha256,
                                       Call.audio_deleted).where(Call.call_id == call)).one()
        finally:
            store.close()
        wav = Path(row.output_dir) / AUDIO_FILE if row.output_dir else Path(f"<no folder for {call}>")
        if not audio:
            return result, wav, None
        if not wav.is_file() and not row.audio_deleted:
            recordings = [Path(x) for x in (row.audio_path, row.source_path) if x]
            if recordings:
                return (result, *_from_recording(result, recordings, row.content_sha256))
    if audio and not wav.is_file():
        raise AudioNotFoundError(f"call {result.call_id} has no processed audio", source=str(wav),
                                 hint="analyse it again without --no-audio (and with the audio kept)")
    return result, wav, None


def _from_recording(result: Any, recordings: list[Path], sha256: str) -> tuple[Path, Any]:
    """A batch-stored call (no folder): its recording decoded to 16 kHz into a temporary WAV, provided it
    is still the recording that was analysed."""
    import tempfile

    from callsense.pipeline.outputs import AUDIO_FILE
    from callsense.report.clips import decode_recording

    channel_map = result.separation.channel_map if result.source.channels > 2 else None
    tmp = tempfile.TemporaryDirectory(prefix="callsense-clip-")
    try:
        return decode_recording(result.call_id, recordings, sha256, Path(tmp.name) / AUDIO_FILE,
                                channel_map=channel_map), tmp
    except BaseException:
        tmp.cleanup()
        raise
