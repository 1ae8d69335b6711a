"""callsense.pipeline."""
