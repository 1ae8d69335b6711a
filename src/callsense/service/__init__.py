"""callsense.service."""
