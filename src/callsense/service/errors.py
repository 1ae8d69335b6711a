"""The service's errors, defined in the one tree (``callsense.errors``) and named here for its modules."""

from __future__ import annotations

from callsense.errors import (
    AuthError,
    BadRequestError,
    BusyError,
    ForbiddenError,
    NotFoundError,
    ServiceError,
    UnavailableError,
    UploadTooLargeError,
)

__all__ = ["AuthError", "BadRequestError", "BusyError", "ForbiddenError", "NotFoundError", "ServiceError",
           "UnavailableError", "UploadTooLargeError"]
