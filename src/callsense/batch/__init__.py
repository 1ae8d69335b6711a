"""Batch processing of many recordings into the store (``callsense batch``).

    from callsense.batch import collect, run_batch, BatchOptions

    summary = run_batch(collect("recordings/"), analyzer_factory=partial(Analyzer, AnalyzeOptions()),
                        options=BatchOptions(workers=2))
"""

from callsense.batch.runner import BatchOptions, BatchStopped, BatchSummary, ItemOutcome, file_sha256, run_batch
from callsense.batch.sources import AUDIO_EXTENSIONS, WorkItem, collect, read_manifest

__all__ = [
    "AUDIO_EXTENSIONS",
    "BatchOptions",
    "BatchStopped",
    "BatchSummary",
    "ItemOutcome",
    "WorkItem",
    "collect",
    "file_sha256",
    "read_manifest",
    "run_batch",
]
