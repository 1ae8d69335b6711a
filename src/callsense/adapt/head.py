"""A saved custom head: one ONNX file under ``$CALLSENSE_HOME/heads/NAME.onnx``, loaded with onnxruntime.

The file is a scikit-learn classifier (over the emotion model's utterance embedding) converted by
skl2onnx; its metadata (ONNX ``metadata_props``, key ``callsense.head``, a JSON object) says what it is:

* ``emotion_model`` and ``emotion_model_checksum``: the model whose embeddings it was trained on. The
  checksum is the sha256 of that model's own 9-class classifier (weight and bias, float32): it is the
  same for the onnx and funasr runtimes of one checkpoint and differs between checkpoints, so a head is
  never applied to another model's embeddings (:meth:`CustomHead.check_engine`);
* ``dim``, ``labels`` (in output order), ``kind`` (``logreg`` / ``mlp``);
* ``training``: clip count, the sha256 of the training set (sorted audio hashes and labels), label counts;
* ``metrics``: the grouped cross-validation's UA, WA, macro-F1 and confusion matrix.

Nothing here unpickles anything: a head is data, run by onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from callsense.errors import ModelFormatError, ModelNotFoundError, UsageError

META_KEY = "callsense.head"
FORMAT_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def heads_dir() -> Path:
    from callsense.engines.manager import callsense_home

    return callsense_home() / "heads"


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(f"head name {name!r} is not valid: letters, digits, '.', '_' and '-', up to 64")
    return name


def head_path(name: str) -> Path:
    """``NAME`` -> ``$CALLSENSE_HOME/heads/NAME.onnx``; a path to an ``.onnx`` file is taken as it is."""
    p = Path(name)
    if p.suffix == ".onnx" and (p.is_file() or len(p.parts) > 1):
        return p
    return heads_dir() / f"{check_name(name)}.onnx"


def model_checksum(engine: Any) -> str:
    """sha256 of an emotion engine's 9-class classifier (see the module doc)."""
    head = getattr(engine, "head", None)
    if head is None:
        raise ModelFormatError(f"the emotion engine {type(engine).__name__} exposes no classifier to identify it",
                               hint="use the onnx or funasr runtime")
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(head.weight, np.float32).tobytes())
    h.update(np.ascontiguousarray(head.bias, np.float32).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class HeadOutput:
    label: str
    confidence: float
    distribution: dict[str, float]


class CustomHead:
    """A head loaded from its ONNX file; :meth:`predict` maps embeddings ``[N, D]`` to distributions."""

    def __init__(self, path: Path, *, name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.stem
        if not self.path.is_file():
            known = ", ".join(list_heads()) or "none yet"
            raise ModelNotFoundError(f"no emotion head named {self.name!r} (looked for {self.path})",
                                     hint=f"train one: callsense adapt train CLIPS.csv --out {self.name}; "
                                          f"heads here: {known}")
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
            raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        except Exception as e:  # onnxruntime has its own exception types for bad files
            raise ModelFormatError(f"not an ONNX emotion head: {e}", source=self.path,
                                   hint="train it again with callsense adapt train") from e
        try:
            self.meta: dict[str, Any] = json.loads(raw or "")
            self.labels: tuple[str, ...] = tuple(self.meta["labels"])
            self.dim = int(self.meta["dim"])
            self.emotion_model = str(self.meta["emotion_model"])
            self.checksum = str(self.meta["emotion_model_checksum"])
        except (ValueError, KeyError, TypeError) as e:
            raise ModelFormatError(f"the head's metadata ({META_KEY}) is missing or incomplete: {e}",
                                   source=self.path, hint="train it again with callsense adapt train") from e
        outputs = [o.name for o in self.session.get_outputs()]
        self._prob_output = "probabilities" if "probabilities" in outputs else outputs[-1]
        self._input = self.session.get_inputs()[0].name

    def check_engine(self, model_name: str, checksum: str) -> None:
        """Refuse to run on another emotion model's embeddings."""
        if checksum != self.checksum:
            raise ModelFormatError(
                f"emotion head {self.name!r} was trained on {self.emotion_model} "
                f"(checksum {self.checksum[:12]}), not on the configured {model_name} (checksum {checksum[:12]}); "
                "its labels would be meaningless on these embeddings",
                source=self.path, hint=f"use --emotion-model {self.emotion_model}, or retrain the head on "
                                       f"{model_name}: callsense adapt train CLIPS --out {self.name}")

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, np.float32).reshape(-1, self.dim) if np.size(embeddings) else np.zeros(
            (0, self.dim), np.float32)
        if x.shape[1] != self.dim:
            raise ModelFormatError(f"embeddings of dim {x.shape[1]}, the head expects {self.dim}", source=self.path)
        if not len(x):
            return np.zeros((0, len(self.labels)))
        probs = np.asarray(self.session.run([self._prob_output], {self._input: x})[0], np.float64)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, embeddings: np.ndarray) -> list[HeadOutput]:
        out = []
        for row in self.predict_proba(embeddings):
            k = int(np.argmax(row))
            out.append(HeadOutput(self.labels[k], round(float(row[k]), 6),
                                  {lab: round(float(p), 6) for lab, p in zip(self.labels, row)}))
        return out

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), **self.meta}


def load_head(name: str) -> CustomHead:
    path = head_path(name)
    return CustomHead(path, name=path.stem)


def list_heads() -> list[str]:
    d = heads_dir()
    return sorted(p.stem for p in d.glob("*.onnx")) if d.is_dir() else []


def save_head(onnx_model: Any, meta: dict[str, Any], name: str) -> Path:
    """Write the ONNX model with ``meta`` under ``heads/NAME.onnx`` (atomically: temp file, then rename)."""
    import onnx

    path = head_path(name)
    del onnx_model.metadata_props[:]
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps({"format_version": FORMAT_VERSION, **meta}, ensure_ascii=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    onnx.save_model(onnx_model, str(tmp))
    tmp.replace(path)
    return path
