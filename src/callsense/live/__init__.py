"""Live calls: VAD-chunked analysis of a call while it is on the line (docs/live.md).

``protocol`` (messages and their JSON Schemas), ``codec`` (PCM, μ-law, A-law), ``segmenter`` (the
online VAD post-processing), ``rules`` (which rules can fire mid-call), ``session`` (one call's state
machine) and ``manager`` (the service's live calls: limits, storing, the UI's snapshot). The
WebSocket adapters are in ``callsense.api.live``.
"""
