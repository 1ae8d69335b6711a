"""The one fingerprint of an analysis: what produced a result, so that a recording already stored with
the same fingerprint is not analysed again (``callsense batch`` skips it, whoever stored it).

The batch runner and the service both take it from :attr:`callsense.pipeline.Analyzer.fingerprint`,
which is this function. It covers what changes the result — pipeline and schema versions, the models
(name, runtime, files), the options that shape the output (channel map, VAD, ASR language and ITN,
emotion granularity, windows, masking, embeddings, which stages run), the *content* of the rule file and
what ``Analyzer._result_shaping_files`` adds (diarization models, enrolled voiceprints, emotion head bytes) —
and leaves out what does not: threads, device, size and duration limits, alert targets, download policy,
and where the rule file lies (the service keeps its versions under its data folder, a batch reads
``--rules qa.yaml``: the same rules are the same fingerprint).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callsense._version import PIPELINE_VERSION

if TYPE_CHECKING:
    from callsense.pipeline.options import AnalyzeOptions

# Options that never change what an analysis finds (only how fast, where, or what is refused / sent).
_IGNORED = frozenset({"num_threads", "device", "webhooks", "send_alerts", "allow_download", "rules"})
_IGNORED_AUDIO = frozenset({"max_duration_s", "max_file_mb"})


def analysis_fingerprint(options: AnalyzeOptions, models: Sequence[str | None]) -> str:
    """16 hex digits identifying an analysis by ``options`` with the ``models`` located for it
    (``"name/runtime@path"`` each, None when absent)."""
    from callsense.result.model import SCHEMA_VERSION, to_jsonable

    shaping = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in _IGNORED}
    shaping["audio"] = {k: v for k, v in to_jsonable(options.audio).items() if k not in _IGNORED_AUDIO}
    parts = [PIPELINE_VERSION, SCHEMA_VERSION, json.dumps(to_jsonable(shaping), sort_keys=True, default=str)]
    parts += [str(m) for m in models]
    if options.run_qa and options.rules:
        try:
            parts.append(hashlib.sha256(options.rules.read_bytes()).hexdigest())
        except OSError:
            parts.append(str(options.rules))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
