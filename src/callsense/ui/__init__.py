"""callsense.ui."""
