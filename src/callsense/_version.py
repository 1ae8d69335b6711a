__version__ = "0.1.0"
PIPELINE_VERSION = "1"
"""Bumped whenever the pipeline's output for the same input and models changes (batch skips use it)."""
