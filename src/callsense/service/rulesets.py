"""Versioned rule sets of the service: ``rules/v0001.yaml``, ``v0002.yaml``, ... the highest is active.

``PUT /v1/rules`` validates a YAML text with the rules package's own loader and, only when it loads,
writes it as the next version; nothing is ever overwritten, so every stored result's rule version
can be looked up again. Without any version the rules package's default pack is active.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from callsense.errors import RuleError

_VERSION = re.compile(r"^v(\d{4,})\.yaml$")


@dataclass(frozen=True)
class RulesVersion:
    version: int  # 0: the built-in default pack
    yaml: str | None
    path: Path | None
    sha256: str | None
    updated_at: str | None
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "source": "default" if self.version == 0 else "custom",
                "yaml": self.yaml, "sha256": self.sha256, "updated_at": self.updated_at, **self.summary}


def summarize(ruleset: Any) -> dict[str, Any]:
    """Ids, names and severities of a loaded rule set, whatever its exact class looks like."""
    rules = getattr(ruleset, "rules", None) or ()
    out = []
    for r in rules:
        out.append({k: getattr(r, k, None) for k in ("id", "name", "category", "severity", "version")
                    if getattr(r, k, None) is not None})
    info: dict[str, Any] = {"rules": out}
    for attr in ("id", "version", "name"):
        value = getattr(ruleset, attr, None)
        if isinstance(value, (str, int, float)):
            info[f"ruleset_{attr}"] = value
    return info


def default_yaml() -> str | None:
    """The YAML text of the default pack when the rules package ships it as a file."""
    try:
        from callsense import rules

        fn = getattr(rules, "default_ruleset_path", None)
        if callable(fn):
            return Path(fn()).read_text(encoding="utf-8")
        from importlib import resources

        for name in ("default.yaml", "packs/default.yaml", "default_rules.yaml"):
            f = resources.files("callsense.rules").joinpath(name)
            if f.is_file():
                return f.read_text(encoding="utf-8")
    except (ImportError, OSError):
        return None
    return None


class RuleVersions:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self._lock = threading.Lock()

    def versions(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _VERSION.match(p.name)))

    def active_path(self) -> Path | None:
        v = self.versions()
        return self.dir / f"v{v[-1]:04d}.yaml" if v else None

    def get(self, version: int | None = None) -> RulesVersion:
        from callsense import rules

        versions = self.versions()
        if version is None:
            version = versions[-1] if versions else 0
        if version == 0:
            return RulesVersion(0, default_yaml(), None, None, None, summarize(rules.default_ruleset()))
        if version not in versions:
            from callsense.service.errors import NotFoundError

            raise NotFoundError(f"rule set version {version} does not exist",
                                hint=f"versions: {', '.join(map(str, versions)) or 'none (default pack)'}")
        path = self.dir / f"v{version:04d}.yaml"
        text = path.read_text(encoding="utf-8")
        return RulesVersion(version, text, path, hashlib.sha256(text.encode()).hexdigest(),
                            datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds"),
                            summarize(rules.load_ruleset(path)))

    def validate(self, text: str) -> Any:
        """Load ``text`` with the rules package; raises :class:`RuleError` (422) naming the problem."""
        import tempfile

        from callsense import rules

        if not text.strip():
            raise RuleError("the rule set is empty", hint="send a YAML rule file (see docs/rules.md)")
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".yaml", dir=self.dir, prefix=".check-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            try:
                return rules.load_ruleset(Path(tmp))
            except RuleError as e:
                e.source = "rules.yaml"  # not the temporary path
                raise
        finally:
            Path(tmp).unlink(missing_ok=True)

    def put(self, text: str) -> RulesVersion:
        self.validate(text)
        with self._lock:
            versions = self.versions()
            version = (versions[-1] if versions else 0) + 1
            path = self.dir / f"v{version:04d}.yaml"
            tmp = path.with_suffix(".partial")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        return self.get(version)
