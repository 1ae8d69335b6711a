"""Audio at the edge: decode anything, resample to 16 kHz, split channels into role tracks, VAD."""

from callsense.audio.types import (
    DEFAULT_CHANNEL_MAP,
    AudioOptions,
    DecodedAudio,
    SpeechSpan,
    Track,
    VadOptions,
    parse_channel_map,
)

__all__ = [
    "DEFAULT_CHANNEL_MAP",
    "AudioOptions",
    "DecodedAudio",
    "SpeechSpan",
    "Track",
    "VadOptions",
    "load_audio",
    "parse_channel_map",
    "detect_speech",
]


def __getattr__(name: str):  # decoding pulls in PyAV, VAD pulls in onnxruntime: import on first use
    if name == "load_audio":
        from callsense.audio import decode

        return getattr(decode, name)
    if name == "detect_speech":
        from callsense.audio import vad

        return vad.detect_speech
    raise AttributeError(name)
