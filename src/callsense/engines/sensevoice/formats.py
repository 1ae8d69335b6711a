"""On-disk pieces of both SenseVoice formats: sherpa-onnx metadata, ``tokens.txt``, Kaldi ``am.mvn``.

Pure readers and writers without torch, shared by the validator, the export and the forge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from callsense.engines.sensevoice.tags import LANGUAGE_QUERY, WITH_ITN_QUERY, WITHOUT_ITN_QUERY

FEATURE_DIM = 80
LFR_M = 7
LFR_N = 6
INPUT_DIM = FEATURE_DIM * LFR_M  # 560

# Every key sherpa-onnx reads without a default: a missing one ends the process (no exception).
REQUIRED_METADATA: tuple[str, ...] = (
    "vocab_size", "lfr_window_size", "lfr_window_shift", "normalize_samples", "with_itn", "without_itn",
    "lang_auto", "lang_zh", "lang_en", "lang_ja", "lang_ko", "lang_yue", "neg_mean", "inv_stddev",
)
INT_METADATA = tuple(k for k in REQUIRED_METADATA if k not in ("neg_mean", "inv_stddev"))

ONNX_MODEL_FILES = ("model.int8.onnx", "model.onnx")
TOKENS = "tokens.txt"
FUNASR_TOKENIZER_FILES = ("bpe.model", "chn_jpn_yue_eng_ko_spectok.bpe.model")


def sherpa_metadata(neg_mean: Sequence[float], inv_stddev: Sequence[float], vocab_size: int, *,
                    comment: str = "SenseVoiceSmall export by callsense", **extra: str) -> dict[str, str]:
    """The metadata sherpa-onnx's SenseVoice loader needs, as strings.

    ``comment`` must never contain "Nano" (sherpa-onnx would treat the file as another model family).
    """
    if "Nano" in comment:
        raise ValueError("the comment of a SenseVoice export must not contain 'Nano'")
    meta = {
        "vocab_size": str(int(vocab_size)),
        "blank_id": "0",
        "lfr_window_size": str(LFR_M),
        "lfr_window_shift": str(LFR_N),
        "normalize_samples": "0",  # samples are scaled to int16 range before fbank, like FunASR
        "with_itn": str(WITH_ITN_QUERY),
        "without_itn": str(WITHOUT_ITN_QUERY),
        "neg_mean": ",".join(_fmt(v) for v in neg_mean),
        "inv_stddev": ",".join(_fmt(v) for v in inv_stddev),
        "model_type": "sense_voice_ctc",
        "version": "2",  # as sherpa-onnx's own SenseVoice exporter writes it
        "comment": comment,
    }
    for code in ("auto", "zh", "en", "ja", "ko", "yue", "nospeech"):
        meta[f"lang_{code}"] = str(LANGUAGE_QUERY[code])
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


def _fmt(v: float) -> str:
    return repr(float(np.float32(v)))


def write_tokens(path: Path, pieces: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{piece} {i}\n" for i, piece in enumerate(pieces))


def read_tokens(path: Path) -> list[str]:
    """Symbols by id from a sherpa-style ``tokens.txt``; raises ValueError on a malformed line."""
    table: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            sym, _, idx = line.rpartition(" ")
            if not sym or not idx.lstrip("-").isdigit():
                raise ValueError(f"line {lineno} is not 'symbol id': {line[:60]!r}")
            table[int(idx)] = sym
    if not table:
        raise ValueError("no tokens")
    n = max(table) + 1
    missing = [i for i in range(n) if i not in table]
    if missing:
        raise ValueError(f"ids missing, first {missing[0]}")
    return [table[i] for i in range(n)]


def write_am_mvn(path: Path, neg_mean: Sequence[float], inv_stddev: Sequence[float]) -> None:
    """Kaldi nnet text with AddShift (negative means) and Rescale (inverse std), as FunASR ships it."""
    dim = len(neg_mean)

    def vec(v: Sequence[float]) -> str:
        return " ".join(_fmt(x) for x in v)

    path.write_text(
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {vec(neg_mean)} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {vec(inv_stddev)} ]\n"
        "</Nnet>\n",
        encoding="utf-8",
    )


def read_am_mvn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(neg_mean, inv_stddev) from a Kaldi ``am.mvn`` (the lines after AddShift and Rescale)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: dict[str, np.ndarray] = {}
    for i, line in enumerate(lines[:-1]):
        head = line.split()[:1]
        if head and head[0] in ("<AddShift>", "<Rescale>"):
            nxt = lines[i + 1].split()
            if nxt[:1] == ["<LearnRateCoef>"]:
                found[head[0]] = np.array([float(v) for v in nxt[3:-1]], dtype=np.float32)
    if "<AddShift>" not in found or "<Rescale>" not in found:
        raise ValueError("no <AddShift>/<Rescale> vectors")
    return found["<AddShift>"], found["<Rescale>"]
