"""callsense.engines."""
