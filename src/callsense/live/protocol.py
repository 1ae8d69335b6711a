"""The ``/v1/live`` protocol's messages (docs/live.md): the start message checked, the answers built.

Every message has a JSON Schema shipped in ``callsense/live/schemas/`` (:func:`schema`,
:func:`validator`); the server builds its answers only here, so the tests validate what it sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from callsense.errors import LiveProtocolError
from callsense.labels import LANGUAGES, ROLES
from callsense.live.codec import ENCODINGS
from callsense.result.model import Segment, to_jsonable
from callsense.result.qa import RuleHit

SAMPLE_RATES = (8000, 16000)
START_FIELDS = ("type", "call_id", "sample_rate", "encoding", "channels", "roles", "language", "metadata")
MESSAGES = ("start", "stop", "started", "partial", "final", "alert", "stopped", "error")
MAX_CALL_ID = 64


@dataclass(frozen=True)
class StartMessage:
    sample_rate: int
    encoding: str
    channels: int
    roles: tuple[str, ...]
    language: str = "auto"
    call_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one interleaved sample frame (every channel once)."""
        return (2 if self.encoding == "pcm_s16le" else 1) * self.channels


def _bad(message: str, hint: str | None = None) -> LiveProtocolError:
    return LiveProtocolError("bad_start", message, hint=hint or "see docs/live.md for the start message")


def parse_text(text: str) -> dict[str, Any]:
    """A client text message as a JSON object with a ``type``; a protocol error otherwise."""
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as e:
        raise LiveProtocolError("bad_message", f"not JSON: {e.msg} at position {e.pos}",
                                hint="send text messages as JSON objects") from e
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise LiveProtocolError("bad_message", "a text message must be a JSON object with a string \"type\"",
                                hint='send {"type": "start", ...} or {"type": "stop"}')
    return msg


def parse_start(msg: dict[str, Any]) -> StartMessage:
    """The checked start message; unknown fields and values outside the protocol are refused by name."""
    unknown = sorted(set(msg) - set(START_FIELDS))
    if unknown:
        raise _bad(f"unknown field(s) in start: {', '.join(unknown)}", f"allowed: {', '.join(START_FIELDS)}")
    rate = msg.get("sample_rate")
    if rate not in SAMPLE_RATES or isinstance(rate, bool):
        raise LiveProtocolError("bad_sample_rate", f"sample_rate must be 8000 or 16000, not {rate!r}",
                                hint="resample to 8 or 16 kHz before streaming")
    encoding = msg.get("encoding")
    if encoding not in ENCODINGS:
        raise LiveProtocolError("unsupported_encoding", f"encoding {encoding!r} is not supported",
                                hint=f"use one of {', '.join(ENCODINGS)}")
    channels = msg.get("channels")
    if channels not in (1, 2) or isinstance(channels, bool):
        raise _bad(f"channels must be 1 or 2, not {channels!r}")
    roles = msg.get("roles")
    if roles is None:
        roles = ["agent", "customer"][:channels] if channels == 2 else ["unknown"]
    if (not isinstance(roles, list) or len(roles) != channels
            or any(r not in ROLES for r in roles)):
        raise _bad(f"roles must list one role per channel ({channels}) from {', '.join(ROLES)}, not {roles!r}")
    language = msg.get("language", "auto")
    if language not in LANGUAGES:
        raise _bad(f"language {language!r} is not supported", f"use one of {', '.join(LANGUAGES)}")
    call_id = msg.get("call_id")
    if call_id is not None and (not isinstance(call_id, str) or not _sane_id(call_id)):
        raise _bad(f"call_id must be 1-{MAX_CALL_ID} characters of letters, digits, '_', '-', '.'",
                   "leave it out and the server makes one")
    metadata = msg.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _bad("metadata must be a JSON object")
    return StartMessage(sample_rate=rate, encoding=encoding, channels=channels, roles=tuple(roles),
                        language=language, call_id=call_id, metadata=dict(metadata))


def _sane_id(call_id: str) -> bool:
    return 0 < len(call_id) <= MAX_CALL_ID and all(c.isascii() and (c.isalnum() or c in "_-.") for c in call_id) \
        and not call_id.startswith(".")


# ---------------------------------------------------------------------------------- server -> client
def started(call_id: str) -> dict[str, Any]:
    return {"type": "started", "call_id": call_id}


def partial(channel: int, role: str, segment_id: str, start_ms: int, text: str) -> dict[str, Any]:
    return {"type": "partial", "channel": channel, "role": role, "segment_id": segment_id, "start_ms": start_ms,
            "text": text}


def final(segment: Segment) -> dict[str, Any]:
    return {"type": "final", "segment": to_jsonable(segment)}


def alert(hit: RuleHit) -> dict[str, Any]:
    return {"type": "alert", "rule_id": hit.rule_id, "severity": hit.severity, "message": hit.name,
            "evidence": [to_jsonable(e) for e in hit.evidence]}


def stopped(call_id: str, result_url: str, status: str = "complete") -> dict[str, Any]:
    return {"type": "stopped", "call_id": call_id, "result_url": result_url, "status": status}


def error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


# ------------------------------------------------------------------------------------------- schemas
@lru_cache(maxsize=None)
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one message type (``start``, ``partial``, ...)."""
    if name not in MESSAGES:
        raise KeyError(name)
    return json.loads(resources.files("callsense.live").joinpath("schemas", f"{name}.json").read_text("utf-8"))


def validator(name: str) -> Any:
    """A ``jsonschema`` validator of one message type; ``final`` resolves the result schema's Segment."""
    import jsonschema
    from referencing import Registry, Resource

    from callsense.result.schema import load_schema

    result = load_schema()
    registry = Registry().with_resource(result["$id"], Resource.from_contents(result))
    return jsonschema.Draft202012Validator(schema(name), registry=registry)
