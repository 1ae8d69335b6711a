"""Authentication (API keys as ``Authorization: Bearer`` or ``X-API-Key``) and role checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from callsense.service.errors import AuthError, ForbiddenError
from callsense.service.keys import Role, role_allows


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    key_id: str | None = None  # None when authentication is off


def token_from_headers(headers: Any) -> str | None:
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def authenticate(service: Any, token: str | None) -> Principal:
    """The caller; with authentication off every caller is a local admin."""
    if not service.settings.auth_required:
        key = service.keys.verify(token) if token else None
        return Principal(key.name, key.role, key.id) if key else Principal("local", "admin")
    if not token:
        raise AuthError("an API key is required", hint="send `Authorization: Bearer <key>`; create keys with "
                                                       "`callsense keys create --role analyst`")
    key = service.keys.verify(token)
    if key is None:
        raise AuthError("the API key is not valid (unknown or revoked)",
                        hint="create one with `callsense keys create --role analyst`")
    return Principal(key.name, key.role, key.id)


def require(role: Role):
    """A FastAPI dependency: the authenticated principal, which must have at least ``role``."""
    def dependency(request: Request) -> Principal:
        service = request.app.state.service
        principal = authenticate(service, token_from_headers(request.headers))
        if not role_allows(principal.role, role):
            raise ForbiddenError(f"this needs the {role} role; your key has {principal.role}",
                                 hint="ask an admin for a key with that role")
        request.state.principal = principal
        return principal

    return dependency
