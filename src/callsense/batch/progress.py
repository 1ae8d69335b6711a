"""The batch progress bar (Rich: done/total, audio throughput, ETA) and the final summary."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from callsense.batch.runner import BatchSummary, ItemOutcome


class BatchProgress:
    """Context manager; ``update(outcome)`` is the runner's ``on_outcome`` callback."""

    def __init__(self, console: Console, total: int, *, enabled: bool = True):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.total = total
        self.audio_ms = 0
        self.counts = {"done": 0, "skipped": 0, "failed": 0, "busy": 0}
        self.t0 = time.perf_counter()
        self.progress = Progress(
            TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not enabled, transient=False,
        )
        self.task = self.progress.add_task("batch", total=total, stats="")

    def __enter__(self) -> BatchProgress:  # noqa: PYI034
        self.progress.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.__exit__(et, ev, tb)

    def update(self, outcome: ItemOutcome) -> None:
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if outcome.status == "done":
            self.audio_ms += outcome.audio_ms
        elif outcome.status == "failed":
            self.progress.console.print(f"[red]failed[/] {outcome.path or outcome.key}: {outcome.reason}",
                                        soft_wrap=True, highlight=False)
        wall = time.perf_counter() - self.t0
        speed = (self.audio_ms / 1000) / wall if wall > 0 else 0.0
        stats = (f"✓{self.counts['done']} ↷{self.counts['skipped'] + self.counts['busy']} ✗{self.counts['failed']} "
                 f"· {speed:.1f}× real time")
        self.progress.update(self.task, advance=1, stats=stats)


def print_summary(console: Console, summary: BatchSummary) -> None:
    from rich.table import Table

    t = Table(title="batch summary", show_header=False, box=None, padding=(0, 2))
    t.add_row("done", str(summary.done))
    t.add_row("skipped", str(summary.skipped + summary.busy) + (f" ({summary.busy} busy in another batch)"
                                                                 if summary.busy else ""))
    t.add_row("failed", f"[red]{summary.failed}[/]" if summary.failed else "0")
    t.add_row("audio", f"{summary.audio_hours:.3f} h")
    t.add_row("wall time", f"{summary.wall_s:.1f} s")
    t.add_row("real-time factor", f"{summary.rtf:.4f}" if summary.rtf is not None else "–")
    t.add_row("throughput", f"{summary.throughput:.1f} audio h / wall h" if summary.throughput else "–")
    console.print(t)
    if summary.failures:
        console.print(f"[red]{summary.failed} failed[/] (see `callsense failures`; re-attempt with --retry-failed)")
    if summary.stopped:
        console.print(f"[bold red]stopped early:[/] {summary.stopped}", soft_wrap=True)
