"""emotion2vec+ (9-class speech emotion, embeddings, a timeline) behind the emotion engine interface.

Runtimes, created by ``callsense.engines.registry``:

* ``onnx`` (default): :class:`~callsense.engines.emotion2vec.onnx.Emotion2vecOnnx`, onnxruntime only;
* ``funasr``: :class:`~callsense.engines.emotion2vec.funasr.Emotion2vecFunasr`, FunASR on torch.

No ONNX export of emotion2vec is published. :func:`ensure_onnx` makes the ONNX model once from the
FunASR checkpoint where torch is installed, and otherwise raises a
:class:`~callsense.errors.ModelNotFoundError` whose hint names the commands that enable it (the
pipeline then falls back to SenseVoice's emotion tags and says so in the result).

Nothing here imports torch or onnxruntime at import time.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from callsense.errors import ModelNotFoundError

log = logging.getLogger("callsense")

__all__ = ["ensure_onnx", "torch_available"]


def torch_available() -> bool:
    """True where the ``torch`` extra (torch and funasr) is importable."""
    return importlib.util.find_spec("torch") is not None and importlib.util.find_spec("funasr") is not None


def ensure_onnx(manager: Any, name: str, *, int8: bool = True) -> Path:
    """The ONNX directory of emotion2vec model ``name``, exporting it once from its checkpoint if needed.

    Order: an installed ONNX export (``manager.find``); else, where torch is installed, the FunASR
    checkpoint (found, or pulled when downloads are allowed) is exported to
    ``$CALLSENSE_HOME/models/<name>/onnx`` (fp32 and, with ``int8``, dynamic int8) and that is used from
    then on. Without torch: :class:`ModelNotFoundError` with the commands that fix it.
    """
    from callsense.engines.catalog import get_spec
    from callsense.engines.manager import write_manifest

    spec = get_spec(name)
    found = manager.find(spec.name, "onnx")
    if found is not None:
        return found.path
    if not torch_available():
        raise manager.not_found(spec, "onnx")
    try:
        ckpt = manager.locate(spec.name, "funasr")
    except ModelNotFoundError as e:
        raise ModelNotFoundError(
            f"model {spec.name} has no ONNX export and its FunASR checkpoint is not installed either ({e.message})",
            hint=f"run `callsense models pull {spec.name} --runtime funasr`; the ONNX model is then made on first use",
        ) from e
    from callsense.engines.emotion2vec.export import export_onnx

    target = manager.models_dir / spec.name / "onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s to ONNX once (from %s); later runs use %s", spec.name, ckpt.path, target)
    # Export beside the target and rename: a concurrent first use never sees half a model.
    with tempfile.TemporaryDirectory(prefix=".export-", dir=target.parent) as tmp:
        out = export_onnx(ckpt.path, Path(tmp) / "onnx", int8=int8)
        write_manifest(out, {"name": spec.name, "runtime": "onnx", "exported_from": str(ckpt.path)})
        if manager.find(spec.name, "onnx") is None:
            if target.exists():
                shutil.rmtree(target)
            out.rename(target)
    return target
