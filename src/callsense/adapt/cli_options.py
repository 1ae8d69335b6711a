"""The two flags every adapter shares: ``--emotion-head NAME`` and ``--emotion-weights LABEL=W,...``."""

from __future__ import annotations

from callsense.adapt.head import head_path
from callsense.adapt.weights import parse_weights
from callsense.errors import ModelNotFoundError

__all__ = ["check_head", "parse_weights"]


def check_head(name: str | None) -> str | None:
    """``name`` when a head of that name is installed (before any audio is touched), else exit 4."""
    if not name:
        return None
    path = head_path(name)
    if not path.is_file():
        from callsense.adapt.head import list_heads

        raise ModelNotFoundError(f"no emotion head named {name!r} (looked for {path})",
                                 hint=f"train one: callsense adapt train CLIPS.csv --out {name}; installed: "
                                      f"{', '.join(list_heads()) or 'none'}")
    return name
