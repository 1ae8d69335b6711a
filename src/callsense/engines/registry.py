"""Registry of engine runtimes: ``(task, runtime) -> factory``, imported lazily.

Factories are given as ``"module:attribute"`` strings so that choosing the ``onnx`` runtime never
imports torch or FunASR. A factory is called as ``factory(model_dir: Path, **options)``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

from callsense.errors import UsageError

Task = Literal["asr", "emotion"]

_FACTORIES: dict[tuple[str, str], str] = {
    ("asr", "onnx"): "callsense.engines.sensevoice.onnx:SenseVoiceOnnx",
    ("asr", "ort"): "callsense.engines.sensevoice.ort:SenseVoiceOrt",  # onnxruntime directly: GPUs
    ("asr", "funasr"): "callsense.engines.sensevoice.funasr:SenseVoiceFunasr",
    ("emotion", "onnx"): "callsense.engines.emotion2vec.onnx:Emotion2vecOnnx",
    ("emotion", "funasr"): "callsense.engines.emotion2vec.funasr:Emotion2vecFunasr",
}


# Runtimes that read another runtime's model files: ``ort`` runs sherpa-onnx's SenseVoice directory.
_MODEL_FORMATS: dict[tuple[str, str], str] = {("asr", "ort"): "onnx"}


def model_format(task: Task, runtime: str) -> str:
    """The model format (a key of the catalog's ``formats``) a runtime loads; usually its own name."""
    return _MODEL_FORMATS.get((task, runtime), runtime)


def register(task: Task, runtime: str, factory: str) -> None:
    """Register (or replace) a runtime, e.g. ``register("asr", "mine", "pkg.mod:Engine")``."""
    _FACTORIES[(task, runtime)] = factory


def runtimes(task: Task) -> list[str]:
    return sorted(r for t, r in _FACTORIES if t == task)


def create(task: Task, runtime: str, model_dir: Path, **options: Any) -> Any:
    key = (task, runtime)
    if key not in _FACTORIES:
        raise UsageError(f"unknown {task} runtime {runtime!r}; valid: {', '.join(runtimes(task))}")
    module_name, _, attr = _FACTORIES[key].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(model_dir, **options)
