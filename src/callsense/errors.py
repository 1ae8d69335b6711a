"""The one exception tree of callsense.

Every error a user can cause or meet is a :class:`CallsenseError`. Each carries an ``exit_code``
(used by the CLI), an HTTP ``status`` (used by the API) and a ``hint`` that says what to do next::

    CallsenseError                      exit 1
    ├── UsageError                      exit 2  (bad option, bad language code, bad channel map)
    ├── InputError                      exit 3  (the recording or input file is the problem)
    │   ├── AudioNotFoundError                  path does not exist / is a directory
    │   ├── AudioDecodeError                    empty, truncated, not audio, unsupported codec
    │   ├── AudioLimitError                     over the duration or size limit      (HTTP 413)
    │   ├── ChannelLayoutError                  more channels than the channel map covers
    │   ├── ResultFormatError                   result.json of another schema version
    │   ├── UploadTooLargeError                 an upload over the service's limit  (HTTP 413)
    │   ├── AudioTooQuietError                  a clip under the level it can be judged at (HTTP 422)
    │   ├── ClipRangeError                      a review clip outside the call or too long (HTTP 422)
    │   └── BadRequestError                     a request the service cannot use    (HTTP 400)
    │       └── LiveProtocolError               a live-call message breaks the protocol (its own code)
    ├── ModelError                      exit 4  (models)
    │   ├── ModelNotFoundError                  not installed, hub unreachable
    │   │   └── HubUnreachableError             not installed and no hub could be reached
    │   ├── ModelFormatError                    corrupt or incomplete model directory
    │   └── DependencyError                     a model runtime's package is not installed (torch, sherpa-onnx)
    ├── RuleError                       exit 2  (rule files: location + expectation)
    ├── StoreError                      exit 5  (database unreachable, disk full)
    │   ├── DiskFullError                       the disk or quota is full: the batch stops cleanly
    │   ├── CallNotFoundError           exit 3  no stored call with that id          (HTTP 404)
    │   │   └── SegmentNotFoundError            the call has no segment with that id (HTTP 404)
    │   └── BatchStopped                        a batch stopped early; re-run to resume
    ├── ServiceError                            the web service (HTTP status per class)
    │   ├── BusyError                           every worker busy, queue full        (HTTP 429)
    │   ├── UnavailableError                    models loading, or waited too long   (HTTP 503)
    │   ├── NotFoundError               exit 3  no such record (a run, a job, a user) (HTTP 404)
    │   ├── AuthError                           no or a wrong API key                (HTTP 401)
    │   └── ForbiddenError                      the key may not do this              (HTTP 403)
    └── MissingExtraError               exit 6  an optional extra a command needs is not installed
                                                (pyarrow for parquet export, psycopg for PostgreSQL)

Third-party exceptions are wrapped with ``raise ... from e`` so ``--debug`` still shows the cause.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CallsenseError(Exception):
    """Base class. ``str(err)`` is one line meant for users: what, where, why, what to do."""

    exit_code: int = 1
    status: int = 500
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, source: str | Path | None = None):
        self.message = message
        self.hint = hint
        self.source = str(source) if source is not None else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.source}: {self.message}" if self.source else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "hint": self.hint, "source": self.source}


class UsageError(CallsenseError):
    exit_code = 2
    status = 422
    code = "usage"


class InputError(CallsenseError):
    exit_code = 3
    status = 422
    code = "bad_input"


class AudioNotFoundError(InputError):
    status = 400
    code = "audio_not_found"


class AudioDecodeError(InputError):
    status = 415
    code = "audio_decode"


class AudioLimitError(InputError):
    status = 413
    code = "audio_limit"


class ChannelLayoutError(InputError):
    status = 422
    code = "channel_layout"


class ResultFormatError(InputError):
    code = "result_format"


class ModelError(CallsenseError):
    exit_code = 4
    status = 503
    code = "model"


class ModelNotFoundError(ModelError):
    code = "model_not_found"


class HubUnreachableError(ModelNotFoundError):
    code = "hub_unreachable"


class ModelFormatError(ModelError):
    code = "model_format"


class DependencyError(ModelError):
    code = "missing_dependency"


class RuleError(CallsenseError):
    exit_code = 2
    status = 422
    code = "rules"


class StoreError(CallsenseError):
    exit_code = 5
    status = 503
    code = "store"


class DiskFullError(StoreError):
    """The disk (or the database's quota) is full: the batch stops, nothing half-written stays."""

    code = "disk_full"


LIST_CALLS_HINT = "run `callsense search` with no arguments to list the stored calls"


class CallNotFoundError(StoreError):
    exit_code = 3
    status = 404
    code = "call_not_found"

    def __init__(self, message: str, *, hint: str | None = LIST_CALLS_HINT, source: str | Path | None = None):
        super().__init__(message, hint=hint, source=source)


class SegmentNotFoundError(CallNotFoundError):
    code = "segment_not_found"


class BatchStopped(StoreError):
    """The batch stopped early and cleanly (e.g. disk full); re-run the same command to resume."""

    code = "batch_stopped"


# ------------------------------------------------------------------- the web service
class ServiceError(CallsenseError):
    status = 500
    code = "service"
    retry_after: int | None = None


class BusyError(ServiceError):
    """Every worker is busy and the waiting line is full: try again later."""

    status = 429
    code = "busy"

    def __init__(self, message: str, *, retry_after: int = 5, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class UnavailableError(ServiceError):
    """Models are still loading, or an inline analysis waited too long for a worker."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class NotFoundError(ServiceError):
    """What the request (or the command line) names is not there: 404, and exit 3 like a missing call."""

    exit_code = 3
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


class AudioTooQuietError(InputError):
    status = 422
    code = "audio_too_quiet"


class BadRequestError(InputError):
    status = 400
    code = "bad_request"


class LiveProtocolError(BadRequestError):
    """A live call's client broke the protocol (docs/live.md); ``code`` says how, for the error message."""

    def __init__(self, code: str, message: str, *, hint: str | None = None):
        self.code = code
        super().__init__(message, hint=hint)


class ClipRangeError(InputError):
    status = 422
    code = "bad_clip_range"


class MissingExtraError(CallsenseError):
    """Not a model problem (exit 4 is for models): the hint names the ``pip install 'callsense[...]'``."""

    exit_code = 6
    status = 501
    code = "missing_extra"


__all__ = [
    "AudioDecodeError",
    "AudioLimitError",
    "AudioNotFoundError",
    "AudioTooQuietError",
    "AuthError",
    "BadRequestError",
    "BatchStopped",
    "BusyError",
    "CallNotFoundError",
    "CallsenseError",
    "ChannelLayoutError",
    "ClipRangeError",
    "DependencyError",
    "DiskFullError",
    "ForbiddenError",
    "HubUnreachableError",
    "InputError",
    "LIST_CALLS_HINT",
    "LiveProtocolError",
    "MissingExtraError",
    "ModelError",
    "ModelFormatError",
    "ModelNotFoundError",
    "NotFoundError",
    "ResultFormatError",
    "RuleError",
    "SegmentNotFoundError",
    "ServiceError",
    "StoreError",
    "UnavailableError",
    "UploadTooLargeError",
    "UsageError",
]
