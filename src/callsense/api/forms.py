"""Upload forms, received as they stream: the file part goes straight into the service's private
``uploads/`` folder (never a temporary file elsewhere), the byte limit is enforced chunk by chunk, and
nothing is read before the route's authentication has passed (handlers call :func:`receive_form`
after their dependencies ran).

Form fields are validated by pydantic models; a bad field is a 422 naming it, like any FastAPI field.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from callsense.service.errors import BadRequestError, UploadTooLargeError
from callsense.service.uploads import Upload, UploadSpool, UploadWriter

M = TypeVar("M", bound=BaseModel)

FILE_FIELD = "file"
MAX_FIELDS = 32
MAX_FIELD_BYTES = 64 * 1024  # a form value (metadata JSON included); files have their own limit
FRAMING_SLACK = 1 << 20  # multipart headers and boundaries around the file


class FormModel(BaseModel):
    """Form fields: unknown fields are ignored (as FastAPI does), values arrive as text."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


@dataclass
class ReceivedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    upload: Upload | None = None

    def parse(self, model: type[M]) -> M:
        """The fields as ``model``; a bad or missing one is a 422 (``errors[].loc`` = body, field)."""
        values: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            key = info.alias or name
            got = self.fields.get(key)
            if got is None:
                continue
            is_list = typing.get_origin(info.annotation) is list or list in typing.get_args(info.annotation)
            values[key] = got if is_list or len(got) > 1 else got[0]
        try:
            return model.model_validate(values)
        except ValidationError as e:
            raise RequestValidationError(
                [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False, include_context=False)]
            ) from None

    def discard(self) -> None:
        """Remove the received file (the request was refused)."""
        if self.upload is not None:
            self.upload.path.unlink(missing_ok=True)

    def require_upload(self) -> Upload:
        if self.upload is None:
            raise RequestValidationError([{"type": "missing", "loc": ("body", FILE_FIELD), "msg": "Field required",
                                           "input": None}])
        return self.upload


async def receive_form(request: Request, spool: UploadSpool) -> ReceivedForm:
    """Read a ``multipart/form-data`` body: the ``file`` part into ``spool``, other parts as text.

    The whole body may be at most the upload limit plus framing; past that it stops reading and
    answers 413, whether or not the client sent a Content-Length (chunked bodies included).
    """
    form = ReceivedForm()
    ctype, params = parse_options_header(request.headers.get("content-type") or "")
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        # a url-encoded or empty body cannot carry a file: say which field is missing
        form.require_upload()
    receiver = _Receiver(spool, form)
    parser = MultipartParser(params[b"boundary"], receiver.callbacks())
    limit = spool.max_bytes + FRAMING_SLACK
    read = 0
    try:
        async for chunk in request.stream():
            read += len(chunk)
            if read > limit:
                raise UploadTooLargeError(f"request body larger than the upload limit of {spool.max_mb:g} MB",
                                          hint="send a shorter recording or raise --max-upload-mb")
            parser.write(chunk)
        parser.finalize()
        if receiver.writer is not None:  # a part that never ended: a truncated body
            raise BadRequestError("the multipart body ended inside a part (truncated upload)",
                                  hint="send the whole file")
    except MultipartParseError as e:
        receiver.abort()
        raise BadRequestError(f"the multipart body is malformed ({e})", hint="send multipart/form-data") from None
    except BaseException:
        receiver.abort()
        raise
    return form


class _Receiver:
    """python-multipart callbacks: collect field text, stream the file part into the upload folder."""

    def __init__(self, spool: UploadSpool, form: ReceivedForm):
        self.spool = spool
        self.form = form
        self.writer: UploadWriter | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._value = bytearray()
        self._name = ""
        self._fields = 0

    def callbacks(self) -> Any:
        return {"on_part_begin": self._part_begin, "on_part_data": self._part_data, "on_part_end": self._part_end,
                "on_header_field": self._header_field, "on_header_value": self._header_val,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_finished}

    def _part_begin(self) -> None:
        self._disposition, self._header_name, self._header_value = b"", b"", b""
        self._value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_val(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", errors="replace")
        self._fields += 1
        if self._fields > MAX_FIELDS:
            raise BadRequestError(f"the form has more than {MAX_FIELDS} parts")
        if self._name == FILE_FIELD and b"filename" in options:
            if self.form.upload is not None:
                raise BadRequestError("send one file per request (the form has two file parts)")
            self.writer = self.spool.open(options[b"filename"].decode("utf-8", errors="replace"))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.writer is not None:
            self.writer.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise BadRequestError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES // 1024} KB")

    def _part_end(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            self.form.upload = writer.finish()
            return
        self.form.fields.setdefault(self._name, []).append(self._value.decode("utf-8", errors="replace"))

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        if self.form.upload is not None:
            self.form.upload.path.unlink(missing_ok=True)


def form_openapi(model: type[BaseModel], *, file_description: str) -> dict[str, Any]:
    """``openapi_extra`` documenting a streamed multipart body: the file plus the model's fields."""
    schema = model.model_json_schema(by_alias=True)
    schema["properties"] = {FILE_FIELD: {"type": "string", "format": "binary", "description": file_description},
                            **schema.get("properties", {})}
    schema["required"] = [FILE_FIELD, *schema.get("required", [])]
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}
