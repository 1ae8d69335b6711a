"""The command-line adapter (Typer + Rich). Entry point: ``callsense.cli.app:main``."""
