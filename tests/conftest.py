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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """The URL of an empty database (no schema yet): a SQLite file or a fresh PostgreSQL database (a test
    fails, never skips, when PostgreSQL cannot be reached)."""
    from callsense.testing.store import fresh_postgres_database

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url
