"""The analysis pipeline: :class:`Analyzer` turns a recording into a :class:`~callsense.result.CallAnalysis`."""

from callsense.pipeline.analyzer import Analyzer, CallRun, make_call_id
from callsense.pipeline.hooks import Hook, Hooks, StageTimer
from callsense.pipeline.options import AnalyzeOptions

__all__ = ["AnalyzeOptions", "Analyzer", "CallRun", "Hook", "Hooks", "StageTimer", "make_call_id"]
