"""emotion2vec+ (9-class speech emotion, embeddings, a timeline) behind the emotion engine interface.

Runtimes, created by ``callsense.engines.registry``:

* ``onnx`` (default): :class:`~callsense.engines.emotion2vec.onnx.Emotion2vecOnnx`, onnxruntime only;
* ``funasr``: :class:`~callsense.engines.emotion2vec.funasr.Emotion2vecFunasr`, FunASR on torch.

No ONNX export of emotion2vec is published. :func:`ensure_onnx` makes the ONNX model once from the
published FunASR checkpoint (found, or pulled when downloads are allowed) with the torch-free converter
(:mod:`~callsense.engines.emotion2vec.convert`); when neither is possible it raises a
:class:`~callsense.errors.ModelNotFoundError` whose hint names the ways forward (the pipeline then falls
back to SenseVoice's emotion tags and says so in the result).

Nothing here imports torch or onnxruntime at import time.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("callsense")

__all__ = ["ensure_onnx", "torch_available"]


def torch_available() -> bool:
    """True where the ``torch`` extra (torch and funasr) is importable."""
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("funasr") is not None


def ensure_onnx(manager: Any, name: str, *, int8: bool = True) -> Path:
    """The ONNX directory of emotion2vec model ``name``, converting it once from its checkpoint if needed.

    Order: an installed ONNX model (``manager.find``); else the FunASR checkpoint, installed or pulled
    when downloads are allowed, converted to ``$CALLSENSE_HOME/models/<name>/onnx`` (fp32 and dynamic
    int8) and used from then on. No torch is needed.
    """
    return manager.locate(name, "onnx").path
