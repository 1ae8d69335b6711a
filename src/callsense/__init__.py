"""callsense: analysis of customer-service call recordings (SenseVoice-Small + emotion2vec+).

The library in three lines (see docs/library.md)::

    import callsense

    result = callsense.analyze("call.wav", language="zh")
    for seg in result.segments:
        print(seg.start_ms, seg.role, seg.emotion.label if seg.emotion else "", seg.text)

For many calls, load the models once with :class:`Analyzer`::

    analyzer = callsense.Analyzer(callsense.AnalyzeOptions(num_threads=4))
    for path in paths:
        result = analyzer.run(path).result

Every error a caller can cause is a :class:`CallsenseError` (one line, with a hint). Importing this
package is cheap: the names below load their modules (numpy, PyAV, onnxruntime) on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from callsense._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from callsense.audio.decode import load_audio
    from callsense.errors import CallsenseError
    from callsense.pipeline import AnalyzeOptions, Analyzer
    from callsense.result.model import CallAnalysis

_LAZY = {
    "Analyzer": "callsense.pipeline",
    "AnalyzeOptions": "callsense.pipeline",
    "CallAnalysis": "callsense.result.model",
    "load_audio": "callsense.audio.decode",
    "CallsenseError": "callsense.errors",
}

__all__ = ["AnalyzeOptions", "Analyzer", "CallAnalysis", "CallsenseError", "__version__", "analyze", "load_audio"]

# keyword shortcuts of analyze() that live in a nested option object
_NESTED = {"language": ("asr", "language"), "use_itn": ("asr", "use_itn"), "channel_map": ("audio", "channel_map"),
           "max_duration_s": ("audio", "max_duration_s"), "max_file_mb": ("audio", "max_file_mb"),
           "granularity": ("emotion", "granularity")}


def __getattr__(name: str) -> Any:  # PEP 562: the heavy modules load on first use
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'callsense' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def analyze(path: Any, *, metadata: dict[str, Any] | None = None, **options: Any) -> CallAnalysis:
    """Analyse one recording with default models and return its :class:`CallAnalysis`.

    ``path`` is a file path (or what :func:`load_audio` accepts). ``options`` are
    :class:`AnalyzeOptions` fields (``emotion_model="emotion2vec-plus-base"``, ``run_qa=False``, ...)
    or the shortcuts ``language``, ``use_itn``, ``channel_map``, ``max_duration_s``, ``max_file_mb``
    and ``granularity``. Loads the models each call: use :class:`Analyzer` for many files.
    """
    import dataclasses

    from callsense.errors import UsageError
    from callsense.pipeline import AnalyzeOptions, Analyzer

    fields = {f.name for f in dataclasses.fields(AnalyzeOptions)}
    direct = {k: v for k, v in options.items() if k in fields}
    unknown = sorted(set(options) - fields - set(_NESTED))
    if unknown:
        raise UsageError(f"analyze(): unknown option {', '.join(unknown)}",
                         hint=f"valid: {', '.join(sorted(fields | set(_NESTED)))}")
    if isinstance(options.get("channel_map"), str):  # "customer,agent", as on the command line
        from callsense.audio.types import parse_channel_map

        options["channel_map"] = parse_channel_map(options["channel_map"])
    opts = AnalyzeOptions(**direct)
    for key, (group, attr) in _NESTED.items():
        if key in options:
            opts = opts.replace(**{group: dataclasses.replace(getattr(opts, group), **{attr: options[key]})})
    return Analyzer(opts).run(path, metadata=metadata).result
