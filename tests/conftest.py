"""Shared fixtures: every test runs with its own empty callsense home and downloads switched off."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("callsense-home")
    monkeypatch.setenv("CALLSENSE_HOME", str(home))
    monkeypatch.setenv("CALLSENSE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CALLSENSE_DATABASE_URL", f"sqlite:///{home / 'store.db'}")
    monkeypatch.delenv("CALLSENSE_MODEL_DIR", raising=False)
    yield home


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Tiny random-weight models in the real formats, forged once per test session."""
    from callsense.testing.forge import forge

    out = tmp_path_factory.mktemp("forge-tiny")
    forge(out, size="tiny")
    return out


@pytest.fixture
def with_models(tiny_models, monkeypatch) -> Path:
    monkeypatch.setenv("CALLSENSE_MODEL_DIR", str(tiny_models))
    return tiny_models
