"""A call centre's own emotions (docs/adapt.md): heads trained on its labelled clips.

* :mod:`~callsense.adapt.sources` — labelled clips (CSV/JSONL of ``path,label[,speaker]``);
* :mod:`~callsense.adapt.clip` — clip preprocessing: silence trimmed with the VAD, too-quiet refusal;
* :mod:`~callsense.adapt.embed` — utterance embeddings from the configured emotion2vec+ model, cached by
  audio hash;
* :mod:`~callsense.adapt.train` — scikit-learn heads, grouped cross-validation, metrics, ONNX export;
* :mod:`~callsense.adapt.head` — a saved head: ONNX + metadata, loaded with onnxruntime (never pickle);
* :mod:`~callsense.adapt.engine` — an emotion engine wrapped so each segment also carries the head's label;
* :mod:`~callsense.adapt.weights` — per-class sensitivity weights, parsed and calibrated;
* :mod:`~callsense.adapt.reply` — the fallback when unsure and the reply style per label.

scikit-learn and skl2onnx are the ``adapt`` extra; only training needs them (applying a head needs
onnxruntime, a core dependency).
"""
