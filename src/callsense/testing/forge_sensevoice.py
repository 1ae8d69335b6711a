"""Forge SenseVoice-Small models with random weights in both real on-disk formats.

``onnx``  : ``model.int8.onnx`` (+ ``model.onnx`` for full size) and ``tokens.txt``, the sherpa-onnx
            contract (4 inputs by position, logits ``[N, T+4, 25055]``, every metadata key).
``funasr``: ``config.yaml``, ``model.pt`` (a state dict of FunASR's own ``SenseVoiceSmall`` class),
            ``bpe.model`` (sentencepiece with the special tokens at their real ids), ``am.mvn``,
            ``configuration.json``.

Tiny models are steerable so tests can assert exact outputs:

* ``lang``/``emotion``/``event`` choose the first decoded tags (``lang`` is what ``auto`` detects;
  a forced language always decodes as itself); the ITN tag follows the requested ITN mode;
* tiny onnx only: ``text`` (with ITN) and ``text_no_itn`` pin the text: piece ``k`` of the text is
  emitted at LFR frame ``2k`` (so at ``120 * k`` ms), blanks elsewhere. Without ``text`` the text is
  a deterministic function of the audio (random CJK characters).

The tiny funasr model is the real architecture with small random weights plus a steering path:
16 input dimensions are reserved for the query embeddings (their CMVN scale is 0 for audio), and the
CTC head reads the query channels, so the tags are steered while the text still comes from the audio
through every layer. ``size="full"`` builds the real 234 M-parameter configuration (random init);
its onnx format is made by :func:`callsense.engines.sensevoice.export.export_onnx`.

Outputs of forged models are meaningless as transcriptions; only their format, speed and memory are real.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from callsense.engines.sensevoice.formats import (
    INPUT_DIM,
    sherpa_metadata,
    write_am_mvn,
    write_tokens,
)
from callsense.engines.sensevoice.tags import (
    BLANK_ID,
    KNOWN_TOKEN_IDS,
    LANGUAGE_QUERY,
    VOCAB_SIZE,
    WITH_ITN_QUERY,
    WITHOUT_ITN_QUERY,
)

# Ids not published anywhere we could check are placed in the gaps around the verified ones
# (model-formats.md lists which are verified); tests never depend on them being the real ones.
FORGE_TAG_IDS: dict[str, int] = {
    **KNOWN_TOKEN_IDS,
    "<|Speech|>": 24993, "<|BGM|>": 24994, "<|Applause|>": 24995, "<|Laughter|>": 24996,
    "<|Cry|>": 24997, "<|Sneeze|>": 24998, "<|Breath|>": 24999, "<|Cough|>": 25000,
    "<|FEARFUL|>": 25005, "<|DISGUSTED|>": 25006, "<|SURPRISED|>": 25007,
    "<|Sing|>": 25010, "<|Speech_Noise|>": 25011, "<|Event_UNK|>": 25012, "<|GBG|>": 25013,
}
FIRST_SPECIAL = 24884
N_TEXT_CHARS = 300  # CJK characters the random text is drawn from (each is one piece, unambiguous)
STEER = 50.0  # logit margin of a steered token in the tiny onnx graph
MAX_STEER_FRAMES = 6000  # 6 minutes of LFR frames

_WORDS = ("hello", "world", "thank", "you", "for", "calling", "my", "order", "refund", "please", "the",
          "a", "i", "want", "to", "speak", "with", "manager", "is", "not", "ok", "yes", "no", "paid",
          "dollars", "twenty", "help", "sorry", "wait", "account", "number", "card", "bank", "call")
_PUNCT = ",.?!'$%-:，。？！、"


def vocabulary() -> list[str]:
    """The forge's 25055 pieces: ``<unk> <s> </s>``, ASCII and words, CJK characters, then the tags."""
    pieces = ["<unk>", "<s>", "</s>", "\u2581"]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    chars += [str(d) for d in range(10)] + list(_PUNCT)
    pieces += chars + ["\u2581" + c for c in chars]
    pieces += [p for p in ("\u2581" + w for w in _WORDS) if p not in pieces]
    seen = set(pieces)
    for block in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF)):
        for code in range(block[0], block[1] + 1):
            if len(pieces) >= FIRST_SPECIAL:
                break
            ch = chr(code)
            if ch not in seen:
                pieces.append(ch)
                seen.add(ch)
    assert len(pieces) == FIRST_SPECIAL, len(pieces)
    by_id = {i: t for t, i in FORGE_TAG_IDS.items()}
    pieces += [by_id.get(i, f"<|SPECIAL_{i}|>") for i in range(FIRST_SPECIAL, VOCAB_SIZE)]
    return pieces


def text_char_ids(pieces: Sequence[str]) -> list[int]:
    first = next(i for i, p in enumerate(pieces) if p == "\u4e00")
    return list(range(first, first + N_TEXT_CHARS))


def encode_text(text: str, pieces: Sequence[str]) -> list[int]:
    """Greedy longest-match piece ids for ``text`` (spaces become the ``▁`` word marker)."""
    index = {p: i for i, p in enumerate(pieces) if not p.startswith("<")}
    s = "\u2581" + "\u2581".join(text.split()) if text.strip() else ""
    ids: list[int] = []
    pos = 0
    while pos < len(s):
        for end in range(min(len(s), pos + 16), pos, -1):
            if s[pos:end] in index:
                ids.append(index[s[pos:end]])
                pos = end
                break
        else:
            raise ValueError(f"forge vocabulary cannot spell {s[pos]!r}")
    return ids


def _tag_id(kind: str, name: str | None, default: str) -> int:
    tag = f"<|{name or default}|>"
    if tag not in FORGE_TAG_IDS:
        raise ValueError(f"unknown {kind} tag {name!r}")
    return FORGE_TAG_IDS[tag]


def _cmvn(rng: np.random.Generator, reserve: int = 16) -> tuple[np.ndarray, np.ndarray]:
    # Log-mel energies of int16-scaled speech sit around 8-16; this brings them near N(0, 1).
    neg_mean = (-12.0 + rng.normal(0, 1.0, INPUT_DIM)).astype(np.float32)
    inv_std = (0.25 + rng.uniform(0, 0.05, INPUT_DIM)).astype(np.float32)
    # The first `reserve` LFR dims are zeroed for audio: the funasr forge steers the tags through
    # them (the query embeddings live there), so audio can never override a steered tag.
    inv_std[:reserve] = 0.0
    return neg_mean, inv_std


# ---- tiny onnx: a hand-built graph with the sherpa-onnx contract ---------------------------------

def build_tiny_onnx(*, lang: str = "en", emotion: str = "NEUTRAL", event: str = "Speech",
                    text: str | None = None, text_no_itn: str | None = None, seed: int = 0,
                    pieces: Sequence[str] | None = None):
    """The tiny steerable graph as an ``onnx.ModelProto`` (metadata included)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    pieces = list(pieces or vocabulary())
    rng = np.random.default_rng(seed)
    v, hidden = VOCAB_SIZE, 16
    w1 = (rng.normal(0, 1, (INPUT_DIM, hidden)) / np.sqrt(INPUT_DIM) * 3).astype(np.float32)
    w2 = np.zeros((hidden, v), np.float32)
    chars = text_char_ids(pieces)
    w2[:, chars] = rng.normal(0, 1.5, (hidden, len(chars)))
    b2 = np.full(v, -20.0, np.float32)
    b2[chars] = 0.0
    b2[BLANK_ID] = 1.5
    w2[:, BLANK_ID] = rng.normal(0, 0.5, hidden)

    none = v + 1  # out of range: OneHot gives an all-zero row, i.e. no steering at that frame
    table = np.full((2, MAX_STEER_FRAMES), none, np.int64)
    if text is not None:
        for row, t in ((0, text), (1, text if text_no_itn is None else text_no_itn)):
            ids = encode_text(t, pieces)
            table[row, :] = BLANK_ID
            table[row, 0:2 * len(ids):2] = ids[:MAX_STEER_FRAMES // 2]

    auto_lang = _tag_id("language", lang, "en")
    lang_tbl = np.full(16, auto_lang, np.int64)
    for code, q in LANGUAGE_QUERY.items():
        if code != "auto":
            lang_tbl[q] = KNOWN_TOKEN_IDS[f"<|{code}|>"]
    itn_tbl = np.full(16, KNOWN_TOKEN_IDS["<|woitn|>"], np.int64)
    itn_tbl[WITH_ITN_QUERY] = KNOWN_TOKEN_IDS["<|withitn|>"]
    itn_tbl[WITHOUT_ITN_QUERY] = KNOWN_TOKEN_IDS["<|woitn|>"]

    def const(name: str, arr: np.ndarray):
        return numpy_helper.from_array(np.asarray(arr), name)

    inits = [
        const("w1", w1), const("w2", w2), const("b2", b2), const("text_tbl", table),
        const("lang_tbl", lang_tbl), const("itn_tbl", itn_tbl),
        const("emo_id", np.array(_tag_id("emotion", emotion, "NEUTRAL"), np.int64)),
        const("event_id", np.array(_tag_id("event", event, "Speech"), np.int64)),
        const("depth", np.array(v, np.int64)), const("onoff", np.array([0.0, STEER], np.float32)),
        const("zero", np.array(0, np.int64)), const("one", np.array(1, np.int64)),
        const("one_1d", np.array([1], np.int64)), const("zero_1d", np.array([0], np.int64)),
        const("itn_q", np.array(WITH_ITN_QUERY, np.int32)), const("ax0", np.array([0], np.int64)),
        const("ax1", np.array([1], np.int64)), const("axm1", np.array([-1], np.int64)),
    ]
    n = helper.make_node
    nodes = [
        # audio frames: a per-frame random projection (no mixing across frames: batching is exact)
        n("MatMul", ["x", "w1"], ["h0"]), n("Tanh", ["h0"], ["h1"]),
        n("MatMul", ["h1", "w2"], ["a0"]), n("Add", ["a0", "b2"], ["a1"]),
        # zero the logits past x_length (the decoder stops there anyway; this consumes x_length)
        n("Shape", ["x"], ["xshape"]), n("Gather", ["xshape", "one"], ["t_len"], axis=0),
        n("Range", ["zero", "t_len", "one"], ["t_idx"]), n("Unsqueeze", ["t_idx", "ax0"], ["t_row"]),
        n("Cast", ["x_length"], ["len64"], to=TensorProto.INT64), n("Unsqueeze", ["len64", "ax1"], ["len_col"]),
        n("Less", ["t_row", "len_col"], ["valid"]), n("Cast", ["valid"], ["validf"], to=TensorProto.FLOAT),
        n("Unsqueeze", ["validf", "axm1"], ["valid3"]), n("Mul", ["a1", "valid3"], ["a2"]),
        # steered text: row 0 with ITN, row 1 without
        n("Equal", ["text_norm", "itn_q"], ["is_itn"]), n("Cast", ["is_itn"], ["is_itn64"], to=TensorProto.INT64),
        n("Sub", ["one", "is_itn64"], ["row"]), n("Gather", ["text_tbl", "row"], ["tbl"], axis=0),
        n("Unsqueeze", ["t_len", "ax0"], ["t_len1"]),
        n("Slice", ["tbl", "zero_1d", "t_len1", "one_1d"], ["tbl_t"]),
        n("OneHot", ["tbl_t", "depth", "onoff"], ["steer_t"], axis=-1),
        n("Add", ["a2", "steer_t"], ["audio_logits"]),
        # the four query frames: language, emotion, event, ITN
        n("Gather", ["lang_tbl", "language"], ["lang_tok"], axis=0),
        n("Gather", ["itn_tbl", "text_norm"], ["itn_tok"], axis=0),
        n("Mul", ["lang_tok", "zero"], ["zeros_n"]),
        n("Add", ["zeros_n", "emo_id"], ["emo_tok"]), n("Add", ["zeros_n", "event_id"], ["event_tok"]),
        n("Unsqueeze", ["lang_tok", "ax1"], ["q0"]), n("Unsqueeze", ["emo_tok", "ax1"], ["q1"]),
        n("Unsqueeze", ["event_tok", "ax1"], ["q2"]), n("Unsqueeze", ["itn_tok", "ax1"], ["q3"]),
        n("Concat", ["q0", "q1", "q2", "q3"], ["prefix_ids"], axis=1),
        n("OneHot", ["prefix_ids", "depth", "onoff"], ["prefix_logits"], axis=-1),
        n("Concat", ["prefix_logits", "audio_logits"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "sensevoice_forge_tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", INPUT_DIM]),
         helper.make_tensor_value_info("x_length", TensorProto.INT32, ["N"]),
         helper.make_tensor_value_info("language", TensorProto.INT32, ["N"]),
         helper.make_tensor_value_info("text_norm", TensorProto.INT32, ["N"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T4", v])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="callsense-forge")
    model.ir_version = 8
    neg_mean, inv_std = _cmvn(rng, reserve=0)
    for key, value in sherpa_metadata(neg_mean, inv_std, v, comment="callsense forge (random weights)").items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model


def forge_onnx(out_dir: Path, size: str = "tiny", model: str = "sensevoice-small", **steer: Any) -> None:
    """Write ``model.int8.onnx`` + ``tokens.txt`` (full size: also ``model.onnx``) into ``out_dir``."""
    import onnx

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pieces = vocabulary()
    if size == "tiny":
        # forge() passes one set of steering keywords to every model's forger: keep ours only
        known = ("lang", "emotion", "event", "text", "text_no_itn", "seed")
        proto = build_tiny_onnx(pieces=pieces, **{k: v for k, v in steer.items() if k in known})
        # The tiny graph has no MatMul worth quantising: the int8 name is what sherpa-onnx looks for.
        onnx.save(proto, str(out_dir / "model.int8.onnx"))
        write_tokens(out_dir / "tokens.txt", pieces)
        return
    if size != "full":
        raise ValueError(f"size must be tiny or full, not {size!r}")
    from callsense.engines.sensevoice.export import export_onnx

    with tempfile.TemporaryDirectory(prefix="callsense-forge-") as tmp:
        forge_funasr(Path(tmp), "full", model=model, **steer)
        # QUInt8 weights, as sherpa-onnx's exporter writes the published model.int8.onnx: the file users
        # install, so benchmarks measure what they run (callsense shifts it to int8 where that is faster).
        export_onnx(Path(tmp), out_dir, int8=True, weight_type="QUInt8")


# ---- funasr: the real model class with random weights ------------------------------------------

TINY_ENCODER = {"output_size": 64, "attention_heads": 4, "linear_units": 128, "num_blocks": 2,
                "tp_blocks": 1, "kernel_size": 11, "sanm_shfit": 0}
FULL_ENCODER = {"output_size": 512, "attention_heads": 4, "linear_units": 2048, "num_blocks": 50,
                "tp_blocks": 20, "kernel_size": 11, "sanm_shfit": 0}


def funasr_config(encoder: dict[str, int]) -> dict[str, Any]:
    """``config.yaml`` of SenseVoiceSmall with the given encoder dimensions."""
    return {
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": {**encoder, "dropout_rate": 0.1, "positional_dropout_rate": 0.1,
                         "attention_dropout_rate": 0.1, "input_layer": "pe",
                         "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True,
                         "selfattention_layer_type": "sanm"},
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        # dither 0: FunASR's default (1.0) adds random noise to every decode; sherpa-onnx adds none.
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25,
                          "frame_shift": 10, "lfr_m": 7, "lfr_n": 6, "cmvn_file": None, "dither": 0.0},
    }


def write_sentencepiece(path: Path, pieces: Sequence[str]) -> None:
    """A sentencepiece model whose id ``i`` is ``pieces[i]`` (tags as user-defined symbols)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    for i, p in enumerate(pieces):
        sp = m.pieces.add()
        sp.piece = p
        sp.score = 0.0 if p.startswith("<") else -1.0
        if i == 0:
            sp.type = pb.ModelProto.SentencePiece.UNKNOWN
        elif p in ("<s>", "</s>"):
            sp.type = pb.ModelProto.SentencePiece.CONTROL
        elif p.startswith("<|"):
            sp.type = pb.ModelProto.SentencePiece.USER_DEFINED
        else:
            sp.type = pb.ModelProto.SentencePiece.NORMAL
    ts = m.trainer_spec
    ts.model_type = pb.TrainerSpec.UNIGRAM
    ts.vocab_size = len(pieces)
    ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, 1, 2, -1
    ns = m.normalizer_spec
    ns.name = "identity"
    ns.add_dummy_prefix = False
    ns.remove_extra_whitespaces = False
    ns.escape_whitespaces = True
    path.write_bytes(m.SerializeToString())


def build_funasr_model(encoder: dict[str, int], *, steer_tags: bool, lang: str = "en",
                       emotion: str = "NEUTRAL", event: str = "Speech", seed: int = 0):
    """FunASR's own ``SenseVoiceSmall`` with random weights (steered tags when ``steer_tags``)."""
    import torch
    from funasr.models.sense_voice.model import SenseVoiceSmall

    cfg = funasr_config(encoder)
    torch.manual_seed(seed)
    model = SenseVoiceSmall(encoder=cfg["encoder"], encoder_conf=cfg["encoder_conf"], input_size=INPUT_DIM,
                            vocab_size=VOCAB_SIZE, **cfg["model_conf"])
    model.eval()
    if steer_tags:
        _steer_funasr(model, encoder["output_size"], lang=lang, emotion=emotion, event=event, seed=seed)
    return model


def _steer_funasr(model, d: int, *, lang: str, emotion: str, event: str, seed: int) -> None:
    """Weight surgery: query id ``q`` lights input dim ``q`` and output channel ``q``; the CTC head
    maps channel -> tag. All other weights stay random but small, so every layer still contributes."""
    import torch

    pieces = vocabulary()
    g = torch.Generator().manual_seed(seed + 1)
    n_q = 16
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                continue  # LayerNorms keep weight 1 / bias 0
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        emb = torch.zeros(n_q, INPUT_DIM)
        emb[torch.arange(n_q), torch.arange(n_q)] = 10.0
        model.embed.weight.copy_(emb)
        layer0 = model.encoder.encoders0[0].self_attn
        w = layer0.linear_q_k_v.weight  # [3d, 560]: q, k, v stacked
        v_rows = slice(2 * d, 3 * d)
        wv = torch.randn(d, INPUT_DIM, generator=g) / INPUT_DIM ** 0.5
        wv[:n_q, :] = 0.0
        wv[:, :n_q] = 0.0
        wv[torch.arange(n_q), torch.arange(n_q)] = 1.0
        w[v_rows].copy_(wv)
        layer0.linear_q_k_v.bias[v_rows].zero_()

        head = model.ctc.ctc_lo
        head.weight.zero_()
        head.bias.fill_(-30.0)
        chars = text_char_ids(pieces)
        head.weight[chars, n_q:] = torch.randn(len(chars), d - n_q, generator=g) * 1.5
        head.bias[chars] = 0.0
        head.weight[BLANK_ID, n_q:] = torch.randn(d - n_q, generator=g) * 0.5
        head.bias[BLANK_ID] = 2.0

        def light(token_id: int, channel: int, gain: float = 4.0) -> None:
            head.weight[token_id, channel] = gain
            head.bias[token_id] = -16.0

        light(_tag_id("language", lang, "en"), LANGUAGE_QUERY["auto"])
        for code, q in LANGUAGE_QUERY.items():
            if code != "auto":
                light(KNOWN_TOKEN_IDS[f"<|{code}|>"], q)
        emo_id = _tag_id("emotion", emotion, "NEUTRAL")
        if emotion == "EMO_UNKNOWN":  # with ban_emo_unk the runner-up must still be an emotion
            light(KNOWN_TOKEN_IDS["<|NEUTRAL|>"], 1, gain=3.0)
        light(emo_id, 1)
        light(_tag_id("event", event, "Speech"), 2)
        light(KNOWN_TOKEN_IDS["<|withitn|>"], WITH_ITN_QUERY)
        light(KNOWN_TOKEN_IDS["<|woitn|>"], WITHOUT_ITN_QUERY)


def forge_funasr(out_dir: Path, size: str = "tiny", model: str = "sensevoice-small", *, seed: int = 0,
                 lang: str = "en", emotion: str = "NEUTRAL", event: str = "Speech", **_: Any) -> None:
    """Write a FunASR ``SenseVoiceSmall`` directory that ``funasr.AutoModel(model=DIR)`` loads."""
    import torch
    import yaml

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be tiny or full, not {size!r}")
    encoder = TINY_ENCODER if size == "tiny" else FULL_ENCODER
    net = build_funasr_model(encoder, steer_tags=size == "tiny", lang=lang, emotion=emotion, event=event,
                             seed=seed)
    torch.save(net.state_dict(), out_dir / "model.pt")
    cfg = funasr_config(encoder)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    write_sentencepiece(out_dir / "bpe.model", vocabulary())
    rng = np.random.default_rng(seed)
    write_am_mvn(out_dir / "am.mvn", *_cmvn(rng, reserve=16 if size == "tiny" else 0))
    (out_dir / "configuration.json").write_text(json.dumps({
        "framework": "pytorch", "task": "auto-speech-recognition", "model": {"type": "funasr"},
        "pipeline": {"type": "funasr-pipeline"},
        "file_path_metas": {"init_param": "model.pt", "config": "config.yaml",
                            "tokenizer_conf": {"bpemodel": "bpe.model"},
                            "frontend_conf": {"cmvn_file": "am.mvn"}},
        "comment": "callsense forge: random weights",
    }, indent=2), encoding="utf-8")
