"""SenseVoice as a plain onnxruntime session of the sherpa-onnx file: the runtime for GPUs.

sherpa-onnx's PyPI wheels are CPU-only, so on ``--device cuda`` SenseVoice runs here: the same
``model.onnx`` / ``model.int8.onnx`` and ``tokens.txt`` as the ``onnx`` runtime, with sherpa-onnx's
front-end and decoding redone in Python (read from its ``offline-recognizer-sense-voice-impl.h``):

* Kaldi fbank with ``kaldi-native-fbank`` (80 bins, 25/10 ms, Hamming window, ``high_freq=0``,
  ``snip_edges``, pre-emphasis 0.97, DC removal, no dither); samples scaled to the int16 range unless
  the metadata says ``normalize_samples=1``.
* LFR from the metadata (``lfr_window_size`` 7, ``lfr_window_shift`` 6) the way sherpa-onnx 2 does it
  (and FunASR): ``ceil(frames / 6)`` output frames, the first frame repeated 3 times on the left, the last
  one on the right (older sherpa-onnx sources drop the edges instead), then CMVN ``(x + neg_mean) * inv_stddev`` from the metadata.
* Inputs ``x [N, T, 560]`` (zero-padded), ``x_length [N]``, ``language [N]`` (``lang_<code>`` from the
  metadata, 0 for auto), ``text_norm [N]`` (``with_itn`` / ``without_itn``), all int32.
* CTC greedy decoding over the first ``x_length + 4`` frames (the four query frames), blanks and
  repeats dropped; tokens 0-2 are language, emotion and event, text starts at token 4; a token at
  frame ``t`` starts at ``0.06 * (t - 4)`` s.

The result goes through the same code as the ``onnx`` runtime (tag rebuilding, word merging,
``parse_rich``), so the two runtimes agree (tests/test_sensevoice_ort.py). Segments are sorted by
length and batched with padding; on a GPU a batch closes at ``batch_size`` (32) segments or
``batch_seconds`` (240 s) of padded audio, on the CPU at 8 / 15 s like the ``onnx`` runtime.
Unlike sherpa-onnx, ``ban_emo_unk`` works here: ``EMO_UNKNOWN``'s logit is masked before the argmax.

Precision: on CUDA the fp32 ``model.onnx`` is preferred (onnxruntime's dynamically quantised int8 ops
run on the CPU, so an int8 graph would shuttle every MatMul between devices); on the CPU int8.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.base import AsrOptions, SegmentAudio, Transcription
from callsense.engines.device import ort_providers, parse_device, require_provider
from callsense.engines.sensevoice.formats import FEATURE_DIM, read_tokens
from callsense.engines.sensevoice.onnx import SenseVoiceOnnx
from callsense.engines.sensevoice.tags import KNOWN_TOKEN_IDS, validate_language
from callsense.engines.sensevoice.validate import onnx_model_file
from callsense.errors import DependencyError, ModelFormatError
from callsense.labels import SAMPLE_RATE

log = logging.getLogger("callsense")

QUERY_FRAMES = 4  # language, emotion, event, ITN: prepended inside the graph
FRAME_SHIFT_S = 0.010


@dataclass(frozen=True)
class Decoded:
    """One segment's decode, with the fields of sherpa-onnx's ``OfflineRecognitionResult`` it uses."""

    lang: str
    emotion: str
    event: str
    text: str
    tokens: tuple[str, ...] = ()
    timestamps: tuple[float, ...] = ()  # seconds from the segment's start
    ids: tuple[int, ...] = field(default=(), repr=False)


class SenseVoiceOrt(SenseVoiceOnnx):
    """``AsrEngine`` on onnxruntime directly; ``device="cuda[:N]"`` runs it on a GPU."""

    runtime = "ort"

    def __init__(self, model_dir: Path, *, num_threads: int = 2, batch_size: int | None = None,
                 precision: str | None = None, name: str = "sensevoice-small", device: str | None = "cpu",
                 batch_seconds: float | None = None, **_: Any):
        self.device = parse_device(device)
        cuda = self.device.is_cuda
        if precision is None:  # on a GPU the fp32 graph where it exists (see the module docstring)
            precision = "fp32" if cuda and onnx_model_file(Path(model_dir), "fp32").name == "model.onnx" else "int8"
        super().__init__(model_dir, num_threads=num_threads, batch_size=batch_size or (32 if cuda else 8),
                         precision=precision, name=name, batch_seconds=batch_seconds or (240.0 if cuda else 15.0))
        meta = self._meta
        self.window = int(meta["lfr_window_size"])
        self.shift = int(meta["lfr_window_shift"])
        self.normalize_samples = int(meta["normalize_samples"]) != 0
        self.blank_id = int(meta.get("blank_id", 0))
        self.with_itn_id, self.without_itn_id = int(meta["with_itn"]), int(meta["without_itn"])
        self.lang_ids = {k[len("lang_"):]: int(v) for k, v in meta.items() if k.startswith("lang_")}
        self.neg_mean = np.array([float(v) for v in meta["neg_mean"].split(",")], np.float32)
        self.inv_stddev = np.array([float(v) for v in meta["inv_stddev"].split(",")], np.float32)
        try:
            self.symbols = read_tokens(self.tokens_file)
        except ValueError as e:
            raise ModelFormatError(f"tokens.txt: {e}", source=self.tokens_file) from e
        self._emo_unk = KNOWN_TOKEN_IDS["<|EMO_UNKNOWN|>"]
        self._ban = False
        self._session: Any = None
        self.forward_calls = 0  # session runs (one per batch); tests count them

    def _info_options(self) -> dict[str, Any]:
        return {"device": str(self.device)}

    # ---- session -----------------------------------------------------------------------------
    def _get_session(self) -> Any:
        if self._session is None:
            try:
                import onnxruntime as ort
            except ImportError as e:  # pragma: no cover - a core dependency
                raise DependencyError("onnxruntime is not installed", hint="pip install onnxruntime") from e
            from callsense.engines.memory import cpu_session_options, release_free_memory

            so = cpu_session_options(ort.SessionOptions())  # no CPU arena (engines/memory.py)
            so.intra_op_num_threads = self.num_threads
            so.inter_op_num_threads = 1
            providers = ort_providers(self.device)  # no CUDA provider: DependencyError (exit 4), here
            try:
                sess = ort.InferenceSession(str(self.model_file), so, providers=providers)
            except Exception as e:  # onnxruntime raises its own types for unloadable files
                raise ModelFormatError(f"onnxruntime cannot load the model: {e}", source=self.model_file) from e
            require_provider(sess, self.device, source=self.model_file)
            release_free_memory()
            self._inputs = [i.name for i in sess.get_inputs()]
            self._session = sess
        return self._session

    def _recognizer(self, language: str, itn: bool) -> Any:  # the parent's hook for "load now"
        return self._get_session()

    # ---- front-end ---------------------------------------------------------------------------
    def _fbank_options(self) -> Any:
        try:
            import kaldi_native_fbank as knf
        except ImportError as e:
            raise DependencyError("the ort runtime needs kaldi-native-fbank",
                                  hint="pip install 'callsense[gpu]' (or: pip install kaldi-native-fbank)") from e
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = SAMPLE_RATE
        opts.frame_opts.dither = 0.0
        opts.frame_opts.window_type = "hamming"
        opts.frame_opts.snip_edges = True
        opts.frame_opts.remove_dc_offset = True
        opts.frame_opts.preemph_coeff = 0.97
        opts.mel_opts.num_bins = FEATURE_DIM
        opts.mel_opts.low_freq = 20.0
        opts.mel_opts.high_freq = 0.0
        return knf, opts

    def features(self, samples: np.ndarray) -> np.ndarray:
        """LFR + CMVN features ``[T, 80 * window]`` of one segment (what sherpa-onnx feeds the model)."""
        knf, opts = self._fbank_options()
        fb = knf.OnlineFbank(opts)
        x = np.asarray(samples, np.float32)
        fb.accept_waveform(SAMPLE_RATE, x if self.normalize_samples else x * 32768.0)
        fb.input_finished()
        n = fb.num_frames_ready
        frames = np.array([fb.get_frame(i) for i in range(n)], np.float32).reshape(n, FEATURE_DIM)
        if n == 0:
            return np.zeros((0, FEATURE_DIM * self.window), np.float32)
        # LFR as FunASR and sherpa-onnx >= 2 stack it: ceil(n / shift) output frames, centred on every
        # shift-th fbank frame, edges padded by repeating the first / last frame (verified against
        # sherpa-onnx 2.0.1 on a probe graph whose tokens are the argmax of a projection of x).
        out_n = -(-n // self.shift)
        left = (self.window - 1) // 2
        idx = np.clip(np.arange(out_n)[:, None] * self.shift + np.arange(self.window)[None, :] - left, 0, n - 1)
        lfr = frames[idx].reshape(out_n, self.window * FEATURE_DIM)
        return ((lfr + self.neg_mean) * self.inv_stddev).astype(np.float32)

    # ---- decoding ----------------------------------------------------------------------------
    def _decode(self, segments: Sequence[SegmentAudio], language: str, itn: bool) -> list[Any]:
        sess = self._get_session()
        lang_id = 0 if language == "auto" else self.lang_ids.get(language, 0)
        norm_id = self.with_itn_id if itn else self.without_itn_id
        results: list[Any] = [None] * len(segments)
        for idx in self.plan_batches([len(s.samples) for s in segments]):
            feats = [self.features(segments[i].samples) for i in idx]
            lens = np.array([len(f) for f in feats], np.int32)
            x = np.zeros((len(idx), int(lens.max()), feats[0].shape[1]), np.float32)  # zeros, as sherpa pads
            for k, f in enumerate(feats):
                x[k, : len(f)] = f
            n = len(idx)
            feeds = dict(zip(self._inputs, (x, lens, np.full(n, lang_id, np.int32), np.full(n, norm_id, np.int32))))
            self.forward_calls += 1
            logits = sess.run(None, feeds)[0]
            if self._ban:
                logits[:, :, self._emo_unk] = -np.inf
            best = logits.argmax(axis=-1)  # [N, T + 4]
            del logits  # the largest buffer of a batch (25 055 floats a frame)
            for k, i in enumerate(idx):
                results[i] = self._greedy(best[k, : int(lens[k]) + QUERY_FRAMES])
        return results

    def _greedy(self, best: np.ndarray) -> Decoded:
        """CTC greedy search exactly as sherpa-onnx's ``OfflineCtcGreedySearchDecoder``."""
        ids: list[int] = []
        frames: list[int] = []
        prev = -1
        for t, y in enumerate(best.tolist()):
            if y != self.blank_id and y != prev:
                ids.append(y)
                frames.append(t)
            prev = y
        sym = self.symbols
        pieces = tuple(sym[i] for i in ids[QUERY_FRAMES:])
        shift = FRAME_SHIFT_S * self.shift
        stamps = tuple(shift * (t - QUERY_FRAMES) for t in frames[QUERY_FRAMES:])
        lang, emo, event = (sym[ids[0]], sym[ids[1]], sym[ids[2]]) if len(ids) >= 3 else ("", "", "")
        return Decoded(lang=lang, emotion=emo, event=event, text="".join(pieces), tokens=pieces,
                       timestamps=stamps, ids=tuple(ids))

    def transcribe(self, segments: Sequence[SegmentAudio], options: AsrOptions) -> list[Transcription]:
        validate_language(options.language)
        self._ban = options.ban_emo_unk
        self._warned_ban = True  # supported here: nothing to warn about
        return super().transcribe(segments, options)

