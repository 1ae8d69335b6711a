"""What models callsense knows: names, tasks, on-disk formats per runtime, and hub sources.

A model is stored per runtime in ``<models dir>/<name>/<runtime>/``. ``required`` lists the files a
runtime needs; an entry ``"a|b"`` means either file will do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from callsense.errors import UsageError

Hub = Literal["modelscope", "huggingface"]
HUBS: tuple[Hub, ...] = ("modelscope", "huggingface")
"""Every model lists its ModelScope source first: hubs are tried in this order."""
HUB_NAMES: dict[str, str] = {"modelscope": "ModelScope", "huggingface": "Hugging Face"}


@dataclass(frozen=True)
class HubSource:
    hub: Hub
    repo_id: str
    allow_patterns: tuple[str, ...] | None = None  # None: the whole repository
    revision: str | None = None


@dataclass(frozen=True)
class RuntimeFormat:
    runtime: str
    required: tuple[str, ...]
    sources: tuple[HubSource, ...] = ()
    # How to make this format when no hub publishes it, as "runtime:module:function" of a converter from
    # another runtime's directory. ``convert_from`` needs nothing beyond the base install and runs by
    # itself (after a pull, an import, or on first use); ``export_from`` is the torch export that
    # ``callsense models export`` runs (the reference for the conversion, or the only way).
    convert_from: str | None = None
    export_from: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: Literal["asr", "emotion", "segmentation", "speaker-embedding"]
    description: str
    download_mb: int
    formats: dict[str, RuntimeFormat]
    default_runtime: str = "onnx"
    aliases: tuple[str, ...] = field(default_factory=tuple)


def _e2v(size: str, mb: int, desc: str, ms_repo: str, hf_repo: str) -> ModelSpec:
    name = f"emotion2vec-{size}".replace("_", "-")
    return ModelSpec(
        name=name,
        task="emotion",
        description=desc,
        download_mb=mb,
        aliases=(name.replace("-", "_"),),
        formats={
            "funasr": RuntimeFormat(
                "funasr",
                required=("config.yaml", "model.pt", "tokens.txt"),
                sources=(HubSource("modelscope", ms_repo), HubSource("huggingface", hf_repo)),
            ),
            "onnx": RuntimeFormat(
                "onnx",
                required=("model.onnx|model.int8.onnx", "head.npz", "tokens.txt"),
                convert_from="funasr:callsense.engines.emotion2vec.convert:convert_checkpoint",
                export_from="funasr:callsense.engines.emotion2vec.export:export_onnx",
                note="no ONNX export is published: converted from the funasr checkpoint (no torch needed)",
            ),
        },
    )


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="sensevoice-small",
            task="asr",
            description="SenseVoice-Small: text, language, emotion and audio-event tags (234 M params)",
            download_mb=240,  # model.int8.onnx 239 MB + tokens.txt (Hugging Face listing)
            aliases=("sensevoice", "SenseVoiceSmall", "sensevoice_small"),
            formats={
                "onnx": RuntimeFormat(
                    "onnx",
                    required=("model.int8.onnx|model.onnx", "tokens.txt"),
                    sources=(
                        HubSource(
                            "modelscope",
                            "pengzhendong/sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17",
                            allow_patterns=("model.int8.onnx", "tokens.txt"),
                        ),
                        HubSource(
                            "huggingface",
                            "csukuangfj/sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17",
                            allow_patterns=("model.int8.onnx", "tokens.txt"),
                        ),
                    ),
                    export_from="funasr:callsense.engines.sensevoice.export:export_onnx",
                ),
                "funasr": RuntimeFormat(
                    "funasr",
                    required=("config.yaml", "model.pt", "am.mvn"),
                    sources=(
                        HubSource("modelscope", "iic/SenseVoiceSmall"),
                        HubSource("huggingface", "FunAudioLLM/SenseVoiceSmall"),
                    ),
                ),
            },
        ),
        _e2v("plus-large", 1950, "emotion2vec+ large (313 M params, 1024-dim): most accurate",
             "iic/emotion2vec_plus_large", "emotion2vec/emotion2vec_plus_large"),
        _e2v("plus-base", 370, "emotion2vec+ base (94 M params, 768-dim): ~2.5x cheaper on CPU",
             "iic/emotion2vec_plus_base", "emotion2vec/emotion2vec_plus_base"),
        _e2v("plus-seed", 370, "emotion2vec+ seed (94 M params, 768-dim)",
             "iic/emotion2vec_plus_seed", "emotion2vec/emotion2vec_plus_seed"),
        _e2v("base-finetuned", 370, "emotion2vec base fine-tuned (94 M params, 768-dim)",
             "iic/emotion2vec_base_finetuned", "emotion2vec/emotion2vec_base_finetuned"),
        # Speaker diarization of mono calls (docs/diarization.md): both as sherpa-onnx publishes them.
        ModelSpec(
            name="pyannote-segmentation-3-0",
            task="segmentation",
            description="pyannote segmentation-3.0 (ONNX, 1.5 M params): speech, speaker turns and overlap",
            download_mb=6,
            aliases=("pyannote-segmentation", "segmentation-3.0"),
            formats={"onnx": RuntimeFormat(
                "onnx", required=("model.onnx|model.int8.onnx",),
                sources=(HubSource("huggingface", "csukuangfj/sherpa-onnx-pyannote-segmentation-3-0",
                                   allow_patterns=("model.onnx", "model.int8.onnx", "LICENSE", "README.md")),),
            )},
        ),
        ModelSpec(
            name="eres2net-base-3dspeaker",
            task="speaker-embedding",
            description="3D-Speaker ERes2Net-base speaker embedding (ONNX, zh-cn): who is speaking",
            download_mb=38,
            aliases=("3dspeaker", "speaker-embedding", "eres2net"),
            formats={"onnx": RuntimeFormat(
                "onnx", required=("model.onnx|3dspeaker_speech_eres2net_base_sv_zh-cn_3dspeaker_16k.onnx",),
                sources=(HubSource("huggingface", "csukuangfj/speaker-embedding-models",
                                   allow_patterns=("3dspeaker_speech_eres2net_base_sv_zh-cn_3dspeaker_16k.onnx",)),),
            )},
        ),
        ModelSpec(
            name="campplus-zh-cn-3dspeaker",
            task="speaker-embedding",
            description="3D-Speaker CAM++ speaker embedding (ONNX, zh-cn, 7.2 M params): lighter than ERes2Net",
            download_mb=28,  # 7.2 M fp32 parameters
            aliases=("campplus", "cam++"),
            formats={"onnx": RuntimeFormat(
                "onnx", required=("model.onnx|3dspeaker_speech_campplus_sv_zh-cn_16k-common.onnx",),
                # the file sherpa-onnx's speaker-identification examples download (its
                # speaker-recongition-models release), mirrored in this Hugging Face repository
                sources=(HubSource("huggingface", "csukuangfj/speaker-embedding-models",
                                   allow_patterns=("3dspeaker_speech_campplus_sv_zh-cn_16k-common.onnx",)),),
            )},
        ),
    )
}

DEFAULT_ASR_MODEL = "sensevoice-small"
DEFAULT_EMOTION_MODEL = "emotion2vec-plus-large"
DEFAULT_SEGMENTATION_MODEL = "pyannote-segmentation-3-0"
DEFAULT_EMBEDDING_MODEL = "eres2net-base-3dspeaker"
"""large is the most accurate emotion2vec+ (EmoBox 4-class UA 81.4 vs 80.0 base); base is ~2.5x cheaper."""


def get_spec(name: str) -> ModelSpec:
    key = name.strip()
    if key in CATALOG:
        return CATALOG[key]
    norm = key.lower().replace("_", "-")
    for spec in CATALOG.values():
        if norm == spec.name or key in spec.aliases or norm in (a.lower().replace("_", "-") for a in spec.aliases):
            return spec
    raise UsageError(f"unknown model {name!r}; known models: {', '.join(CATALOG)}")
