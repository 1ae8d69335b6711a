"""SenseVoice-Small: text, language, emotion and audio-event tags per segment.

Runtimes (created through :mod:`callsense.engines.registry`, imported only when chosen):

* ``onnx``   — :class:`callsense.engines.sensevoice.onnx.SenseVoiceOnnx` (sherpa-onnx, no torch)
* ``funasr`` — :class:`callsense.engines.sensevoice.funasr.SenseVoiceFunasr` (torch extra)

``export.export_onnx`` converts a FunASR checkpoint into the onnx format (torch extra). The names
re-exported here are torch-free and cheap to import.
"""

from callsense.engines.sensevoice.tags import (
    MAX_SEGMENT_S,
    MIN_SAMPLES,
    RichText,
    display_text,
    funasr_format,
    parse_rich,
    render_emoji,
    validate_language,
)
from callsense.engines.sensevoice.validate import validate_funasr_dir, validate_onnx_dir

__all__ = [
    "MAX_SEGMENT_S",
    "MIN_SAMPLES",
    "RichText",
    "display_text",
    "funasr_format",
    "parse_rich",
    "render_emoji",
    "validate_funasr_dir",
    "validate_language",
    "validate_onnx_dir",
]
