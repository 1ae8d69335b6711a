"""callsense.rules."""
