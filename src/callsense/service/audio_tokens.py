"""Short-lived signed links for one call's audio, so a browser's ``<audio>`` element can fetch it
without the API key. The secret lives in memory only: links die with the process."""

from __future__ import annotations

import hashlib
import hmac
import os
import time

DEFAULT_TTL_S = 6 * 3600


class AudioTokens:
    def __init__(self, secret: bytes | None = None):
        self._secret = secret or os.urandom(32)

    def _mac(self, call_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{call_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def sign(self, call_id: str, ttl_s: int = DEFAULT_TTL_S) -> str:
        expires = int(time.time()) + ttl_s
        return f"{expires}.{self._mac(call_id, expires)}"

    def check(self, call_id: str, token: str) -> bool:
        expires, _, mac = token.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return False
        return hmac.compare_digest(self._mac(call_id, int(expires)), mac)
