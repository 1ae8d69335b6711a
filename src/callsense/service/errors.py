"""Errors only the service raises (overload, readiness, auth, missing records), in the one tree."""

from __future__ import annotations

from callsense.errors import CallsenseError, InputError


class ServiceError(CallsenseError):
    status = 500
    code = "service"
    retry_after: int | None = None


class BusyError(ServiceError):
    """Every worker is busy and the waiting line is full: try again later."""

    status = 429
    code = "busy"

    def __init__(self, message: str, *, retry_after: int = 5, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class UnavailableError(ServiceError):
    """Models are still loading, or an inline analysis waited too long for a worker."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class NotFoundError(ServiceError):
    status = 404
    code = "not_found"


class AuthError(ServiceError):
    status = 401
    code = "unauthorized"


class ForbiddenError(ServiceError):
    status = 403
    code = "forbidden"


class UploadTooLargeError(InputError):
    status = 413
    code = "upload_too_large"


class BadRequestError(InputError):
    status = 400
    code = "bad_request"
