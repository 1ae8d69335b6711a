"""Options of one analysis run, as one frozen dataclass (the CLI, API and batch build it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callsense.audio.types import AudioOptions, VadOptions
from callsense.engines.base import AsrOptions, EmotionOptions
from callsense.engines.catalog import DEFAULT_ASR_MODEL, DEFAULT_EMOTION_MODEL


@dataclass(frozen=True)
class AnalyzeOptions:
    audio: AudioOptions = field(default_factory=AudioOptions)  # channel map, size/duration limits
    vad: VadOptions = field(default_factory=VadOptions)  # thresholds, 30 s segment cap
    asr: AsrOptions = field(default_factory=AsrOptions)  # language, ITN
    emotion: EmotionOptions = field(default_factory=EmotionOptions)  # granularity, timeline windows, masking
    asr_model: str = DEFAULT_ASR_MODEL
    asr_runtime: str = "onnx"  # "onnx" (sherpa-onnx, default), "ort" (onnxruntime, GPUs) or "funasr" (torch)
    emotion_model: str = DEFAULT_EMOTION_MODEL
    emotion_runtime: str = "onnx"  # "onnx" (onnxruntime, default) or "funasr" (torch)
    emotion_head: str | None = None  # a custom head under $CALLSENSE_HOME/heads/ (docs/adapt.md)
    run_asr: bool = True
    run_emotion: bool = True  # False (or model absent): segments get SenseVoice's emotion tag instead
    num_threads: int = 2  # intra-op threads per model
    device: str = "cpu"  # "cuda" / "cuda:N": emotion2vec+ on onnxruntime's CUDA provider, SenseVoice on "ort"
    rules: Path | None = None  # YAML rule file; None: the default pack
    run_qa: bool = True  # metrics, rules and scorecard
    webhooks: tuple[str, ...] = ()  # extra alert targets "[FORMAT:]URL" (formats: generic, wecom, dingtalk, feishu, slack)
    send_alerts: bool = True  # deliver alerting hits to the rule file's and these webhooks
    allow_download: bool | None = None  # None: unless CALLSENSE_OFFLINE=1
    diarize: bool = True  # mono input: diarize when the diarization models are installed (docs/diarization.md)
    roles: tuple[str, ...] = ()  # --roles: role of diarized speaker 0, 1, ... (overrides inference)
    agent_lexicon: tuple[str, ...] | None = None  # --agent-lexicon: the phrases that mark the agent; None: built-in

    def __post_init__(self) -> None:  # the one check of the device, wherever the options come from
        from callsense.engines.device import parse_device

        parse_device(self.device)

    def to_log(self) -> dict[str, Any]:
        """The options as recorded in the result's processing log (JSON types only)."""
        from callsense.result.model import to_jsonable

        data = to_jsonable(self)
        data["rules"] = str(self.rules) if self.rules else None
        # a webhook URL carries its robot's key (WeCom ?key=, DingTalk access_token): keep host and path only
        data["webhooks"] = [_without_secrets(w) for w in self.webhooks]
        return data

    def replace(self, **changes: Any) -> AnalyzeOptions:
        return dataclasses.replace(self, **changes)


def _without_secrets(spec: str) -> str:
    """``[FORMAT:]URL`` with the URL's query and user info dropped (they hold webhook keys)."""
    from urllib.parse import urlsplit, urlunsplit

    fmt, sep, rest = spec.partition(":")
    url = rest if sep and not rest.startswith("//") else spec
    prefix = spec[: len(spec) - len(url)]
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return prefix + urlunsplit((parts.scheme, host, parts.path, "", ""))
