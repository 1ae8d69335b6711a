"""callsense.store."""
