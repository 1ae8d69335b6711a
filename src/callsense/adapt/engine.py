"""An emotion engine with a custom head: every scored segment also carries the head's label.

:class:`HeadedEngine` wraps any :class:`~callsense.engines.base.EmotionEngine`: the inner engine scores
the nine classes as always (one forward pass per segment), and the head runs on the same utterance
embedding (one small onnxruntime call per batch of segments). Segments the model did not score
(``too_short``) get no custom label. The head is checked against the inner model when wrapped: a head
trained on another emotion model's embeddings is refused (:meth:`CustomHead.check_engine`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from callsense.adapt.head import CustomHead, load_head, model_checksum
from callsense.engines.base import EmotionOptions, EmotionOutput, SegmentAudio
from callsense.result.emotion import CustomEmotion
from callsense.result.model import ModelInfo


class HeadedEngine:
    def __init__(self, inner: Any, head: CustomHead):
        head.check_engine(inner.info.name, model_checksum(inner))
        self.inner = inner
        self.custom_head = head

    @property
    def head(self) -> Any:  # the inner model's own classifier (what identifies the model)
        return self.inner.head

    @property
    def info(self) -> ModelInfo:
        info = self.inner.info
        return dataclasses.replace(info, options={**info.options, "head": self.custom_head.name,
                                                  "head_labels": list(self.custom_head.labels)})

    def score(self, segments: Sequence[SegmentAudio], options: EmotionOptions) -> list[EmotionOutput]:
        outs = self.inner.score(segments, dataclasses.replace(options, embeddings=True))
        idx = [i for i, o in enumerate(outs) if o.embedding is not None and o.reason is None]
        preds = self.custom_head.predict(np.stack([outs[i].embedding for i in idx])) if idx else []
        custom: dict[int, CustomEmotion] = {
            i: CustomEmotion(self.custom_head.name, p.label, p.confidence, p.distribution) for i, p in zip(idx, preds)}
        return [dataclasses.replace(o, custom=custom.get(i), embedding=o.embedding if options.embeddings else None)
                for i, o in enumerate(outs)]

    def __getattr__(self, name: str) -> Any:  # everything else is the inner engine's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def with_head(engine: Any, head: str | None) -> Any:
    """``engine`` wrapped with the head named ``head`` (unchanged for ``None`` or no engine)."""
    if not head or engine is None:
        return engine
    return HeadedEngine(engine, load_head(head))
