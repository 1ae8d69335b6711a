"""callsense.testing."""
