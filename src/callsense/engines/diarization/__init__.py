"""Speaker diarization of mono calls with sherpa-onnx (pyannote segmentation-3.0 + a speaker embedding).

``Diarizer(segmentation_path, embedding_path).process(samples)`` → :class:`Diarization` (speaker turns
in integer ms, overlapped speech, one embedding per speaker). The models are validated first
(:mod:`.formats`) because sherpa-onnx exits the process on a malformed one. See docs/diarization.md.
"""

from callsense.engines.diarization.formats import validate_embedding, validate_segmentation
from callsense.engines.diarization.sherpa import Diarization, Diarizer, SpeakerTurn, VoiceEmbedder

__all__ = ["Diarization", "Diarizer", "SpeakerTurn", "VoiceEmbedder", "validate_embedding", "validate_segmentation"]
