"""API keys with roles, stored hashed in a JSON file (mode 0600).

A key looks like ``cs_<id>_<secret>``; only ``sha256(key)`` is stored, so a stolen key file does not
give access. Secrets are 32 random bytes, so a fast hash is enough (no password stretching needed).

Roles are ordered: ``viewer`` reads, ``analyst`` also analyses, ``admin`` also edits rules and purges.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from callsense.errors import UsageError

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
PREFIX = "cs_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: Role
    sha256: str
    created_at: str

    def allows(self, role: Role) -> bool:
        return role_allows(self.role, role)


def role_allows(have: str, need: str) -> bool:
    """True when role ``have`` may do what needs role ``need``."""
    return ROLES.index(have) >= ROLES.index(need)  # type: ignore[arg-type]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """The key file. Reads are cached and refreshed when the file changes (``keys create`` while serving)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[float, list[ApiKey]] | None = None

    def list(self) -> list[ApiKey]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return []
            if self._cache and self._cache[0] == mtime:
                return list(self._cache[1])
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                keys = [ApiKey(**k) for k in data.get("keys", [])]
            except (ValueError, TypeError) as e:
                raise UsageError(f"API key file is not valid: {e}", source=self.path,
                                 hint="delete it and create keys again with `callsense keys create`") from e
            self._cache = (mtime, keys)
            return list(keys)

    def create(self, role: str, name: str | None = None) -> tuple[ApiKey, str]:
        """Create a key; returns the record and the key itself (shown once, never stored)."""
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
        key_id = secrets.token_hex(4)
        token = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(id=key_id, name=name or f"{role}-{key_id}", role=role,  # type: ignore[arg-type]
                        sha256=_digest(token), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self._write([*self.list(), record])
        return record, token

    def revoke(self, key_id: str) -> bool:
        keys = self.list()
        kept = [k for k in keys if k.id != key_id and k.name != key_id]
        if len(kept) == len(keys):
            return False
        self._write(kept)
        return True

    def verify(self, token: str | None) -> ApiKey | None:
        """The key record for ``token``, or None. Constant-time comparison of digests."""
        if not token or not token.startswith(PREFIX):
            return None
        digest = _digest(token)
        found = None
        for k in self.list():
            if hmac.compare_digest(k.sha256, digest):
                found = k
        return found

    def _write(self, keys: list[ApiKey]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"keys": [asdict(k) for k in keys]}, f, indent=2)
            os.replace(tmp, self.path)
            self._cache = None
