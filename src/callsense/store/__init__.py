"""The store of analysed calls (SQLite by default, PostgreSQL for production).

    from callsense.store import open_store, save_result, search_calls, SearchQuery

    store = open_store()                       # $CALLSENSE_DATABASE_URL or the user data dir
    save_result(store, run.result, embeddings=run.embeddings, fingerprint=analyzer.fingerprint)
    hits = search_calls(store, SearchQuery(text="退款", role="customer", emotion="angry", min_score=0.5))

Submodules are imported lazily: ``import callsense.store`` does not import SQLAlchemy. (The functions of
the ``search``, ``similar`` and ``export`` modules are exported as ``search_calls``, ``find_similar`` and
``export_calls``: a package attribute cannot share its name with a submodule.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Store": "db", "open_store": "db", "database_url": "db", "DiskFullError": "db", "is_disk_full": "db",
    "save_result": "repo", "get_result": "repo", "get_embeddings": "repo", "list_calls": "repo",
    "keep_identity": "repo", "call_analyses": "repo", "AnalysisRecord": "repo",
    "count_calls": "repo", "CallRecord": "repo", "CallNotFoundError": "repo", "result_fingerprint": "repo",
    "search_calls": "search:search", "SearchQuery": "search", "SearchHit": "search",
    "find_similar": "similar:similar", "SimilarHit": "similar",
    "Table": "aggregates", "emotion_heatmap": "aggregates", "agent_scorecards": "aggregates",
    "rule_hit_counts": "aggregates", "daily_trends": "aggregates", "event_heatmap": "aggregates",
    "emotion_event_heatmap": "aggregates", "script_effectiveness": "aggregates", "agent_before_after": "aggregates",
    "export_calls": "export:export", "EXPORT_COLUMNS": "export",
    "redact_text": "privacy", "redact_result": "privacy", "RedactionConfig": "privacy", "purge": "privacy",
    "PurgeReport": "privacy", "parse_age": "privacy",
    "call_history": "history",
    "normalize_metadata": "metadata",
    "list_failures": "work", "FailureRecord": "work",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - the lazy exports above


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'callsense.store' has no attribute {name!r}")
    module, _, attr = module.partition(":")
    return getattr(importlib.import_module(f"callsense.store.{module}"), attr or name)
