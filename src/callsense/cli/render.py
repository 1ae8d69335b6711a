"""Rich rendering shared by CLI commands: a progress hook and the per-call summary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from callsense.labels import TAG_EMOJI
from callsense.result.model import CallAnalysis, Segment

STEP_LABELS = {"decode": "decoding", "vad": "finding speech", "asr": "transcribing", "emotion": "scoring emotion",
               "qa": "applying QA rules"}


@contextlib.contextmanager
def progress_hook(console: Console, name: str) -> Iterator[Any]:
    """A pipeline hook showing a Rich progress bar (transient: it disappears when the call is done)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=not console.is_terminal)
    task = progress.add_task(name, total=None)

    def hook(step: str, artifact: Any = None, *, total: int | None = None, completed: int | None = None) -> None:
        if total is not None:
            progress.update(task, total=total, completed=completed or 0)
        elif artifact is None:
            progress.update(task, description=f"{name}: {STEP_LABELS.get(step, step)}", total=None, completed=0)

    with progress:
        yield hook


def clock(ms: int | None) -> str:
    """``MM:SS.t`` for a time in ms, the one format of every command (tenths truncated: 19652 -> 00:19.6)."""
    if ms is None:
        return ""
    s, ms = divmod(max(int(ms), 0), 1000)
    m, s = divmod(s, 60)
    return f"{m:02d}:{s:02d}.{ms // 100}"


def emotion_cell(seg: Segment) -> str:
    e = seg.emotion
    if e is None:
        return ""
    conf = f" {e.confidence:.0%}" if e.source == "emotion2vec" else ""
    return f"{e.emoji} {e.label_zh} ({e.label.capitalize()}){conf}"


def tagged_text(seg: Segment) -> str:
    """Text with event emoji in front (display only: the stored data keeps raw tags)."""
    prefix = "".join(TAG_EMOJI.get(ev, f"[{ev}]") for ev in seg.asr_events)
    return f"{prefix}{seg.text}"


def funasr_text(seg: Segment) -> str:
    """The exact text FunASR's rich_transcription_postprocess gives for this segment's raw output."""
    from callsense.engines.sensevoice.tags import funasr_postprocess

    return funasr_postprocess(seg.raw_tags + seg.text)


def print_call(console: Console, result: CallAnalysis, folder: Path | None, *, fmt: str = "table") -> None:
    from rich.markup import escape

    from callsense.report.breakdown import evidence_text

    src = result.source
    console.print(f"[bold]{src.name}[/]  {src.duration_ms / 1000:.1f} s, {src.channels} ch, "
                  f"{src.sample_rate} Hz {src.codec or ''}  →  call [cyan]{result.call_id}[/]")
    if fmt in ("text", "funasr"):
        for seg in result.segments:
            text = funasr_text(seg) if fmt == "funasr" else tagged_text(seg)
            console.print(f"[{clock(seg.start_ms)}-{clock(seg.end_ms)}] {seg.role}: {text}", soft_wrap=True)
    else:
        table = Table(show_lines=False, pad_edge=False)
        for col in ("time", "role", "lang", "emotion", "text"):
            table.add_column(col, overflow="fold")
        for seg in result.segments:
            table.add_row(f"{clock(seg.start_ms)}–{clock(seg.end_ms)}", seg.role, seg.language or "",
                          emotion_cell(seg), tagged_text(seg))
        console.print(table)
    for hit in result.rule_hits:
        colour = {"critical": "red", "warning": "yellow"}.get(hit.severity, "blue")
        where = evidence_text(hit, limit=3)  # times, segment and what matched or was measured, as in the report
        console.print(f"[{colour}]{hit.severity.upper()}[/] {hit.rule_id} {hit.name}  {escape(where)}", soft_wrap=True)
        if hit.suggestion is not None:
            console.print(f"  [dim]建议话术 suggested reply:[/] {hit.suggestion.zh} / {hit.suggestion.en}", soft_wrap=True)
    for rec in result.alerts:
        state = "[green]delivered[/]" if rec.delivered else f"[red]not delivered[/] ({rec.error})"
        console.print(f"alert → {rec.target} ({rec.format}): {state}", soft_wrap=True)
    if result.score is not None:
        print_breakdown(console, result)
    for sk in result.processing.skipped:
        console.print(f"[yellow]skipped {sk.feature}:[/] {sk.reason}" + (f" — {sk.hint}" if sk.hint else ""),
                      soft_wrap=True)
    if folder is not None:
        console.print(f"[dim]written to {folder}[/]")


def print_breakdown(console: Console, result: CallAnalysis) -> None:
    """The QA score with the scorecard breakdown: every item's points won or lost and why."""
    from callsense.report.breakdown import STATUS_LABEL, breakdown, verdict

    sc = result.score
    if sc is None:
        return
    if not sc.scored:
        console.print(f"QA score: [yellow]not scored[/] — {sc.reason}", soft_wrap=True)
        return
    table = Table(title=f"QA score {verdict(result)}", show_lines=False, pad_edge=False, title_justify="left")
    for col in ("section", "item", "status", "points", "why"):
        table.add_column(col, overflow="fold")
    for row in breakdown(result):
        colour = {"lost": "red", "na": "dim"}.get(row.status, "green")
        table.add_row(row.section, row.item, f"[{colour}]{STATUS_LABEL[row.status]}[/]",
                      f"{row.points:g}/{row.potential:g}" if row.status != "na" else "–", row.reason)
    console.print(table)
    console.print(f"QA score: {sc.normalized:.0f}/100 ({sc.verdict})")
