"""callsense.api."""
