"""The per-call HTML report: ``render_html(result) -> str`` (one self-contained file)."""

from callsense.report.html import emotion_headline, main_emotion, overall_emotion, render_html, segment_tags
from callsense.report.svg import distribution_bars, timeline_svg

__all__ = ["distribution_bars", "emotion_headline", "main_emotion", "overall_emotion", "render_html",
           "segment_tags", "timeline_svg"]
