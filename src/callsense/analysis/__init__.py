"""callsense.analysis."""
