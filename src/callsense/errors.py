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
    │   └── ResultFormatError                   result.json of another schema version
    ├── ModelError                      exit 4  (models)
    │   ├── ModelNotFoundError                  not installed, hub unreachable
    │   │   └── HubUnreachableError             not installed and no hub could be reached
    │   ├── ModelFormatError                    corrupt or incomplete model directory
    │   └── DependencyError                     an optional extra is not installed
    ├── RuleError                       exit 2  (rule files: location + expectation)
    └── StoreError                      exit 5  (database unreachable, disk full)

Third-party exceptions are wrapped with ``raise ... from e`` so ``--debug`` still shows the cause.
"""

from __future__ import annotations

from pathlib import Path


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


__all__ = [
    "AudioDecodeError",
    "AudioLimitError",
    "AudioNotFoundError",
    "CallsenseError",
    "ChannelLayoutError",
    "DependencyError",
    "HubUnreachableError",
    "InputError",
    "ModelError",
    "ModelFormatError",
    "ModelNotFoundError",
    "ResultFormatError",
    "RuleError",
    "StoreError",
    "UsageError",
]
