"""Errors as RFC 9457 problem details: ``application/problem+json`` with callsense's code and hint.

Every :class:`~callsense.errors.CallsenseError` maps to its own HTTP status and code, so bad input is
a 4xx with the reason; only a bug is a 500 (and its details stay in the log, under the request id).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from callsense.api.request_id import request_id
from callsense.errors import CallsenseError

log = logging.getLogger("callsense")

MEDIA_TYPE = "application/problem+json"


def problem_body(status: int, code: str, detail: str, *, hint: str | None = None, source: str | None = None,
                 request_id: str | None = None, **extra: Any) -> dict[str, Any]:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {"type": f"urn:callsense:error:{code}", "title": title, "status": status, "code": code,
            "detail": detail, "hint": hint, "source": source, "request_id": request_id}
    body.update(extra)
    return body


def problem_response(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **kw: Any):
    from fastapi.responses import JSONResponse

    return JSONResponse(problem_body(status, code, detail, **kw), status_code=status, media_type=MEDIA_TYPE,
                        headers=headers)


def install(app: Any) -> None:
    """Register the exception handlers on a FastAPI app."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def on_callsense(_request, exc: CallsenseError):
        headers = {}
        retry = getattr(exc, "retry_after", None)
        if retry is None and exc.status in (429, 503):
            retry = 10
        if retry is not None:
            headers["Retry-After"] = str(int(retry))
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="callsense"'
        level = logging.WARNING if exc.status >= 500 else logging.INFO
        log.log(level, "%s %s: %s", exc.status, exc.code, exc)
        return problem_response(exc.status, exc.code, exc.message, hint=exc.hint, source=exc.source,
                                request_id=request_id(), headers=headers or None)

    async def on_validation(_request, exc: RequestValidationError):
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc'][1:] or first['loc'])}: {first['msg']}"
        return problem_response(422, "validation", detail, hint="see /docs for the expected fields",
                                request_id=request_id(), errors=errors)

    async def on_http(_request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "upload_too_large"}.get(exc.status_code, "http")
        return problem_response(exc.status_code, code, str(exc.detail), request_id=request_id(),
                                headers=getattr(exc, "headers", None))

    async def on_unexpected(_request, exc: Exception):
        log.exception("unexpected error (request %s)", request_id())
        return problem_response(500, "internal", "internal error; the server log has the details",
                                request_id=request_id())

    app.add_exception_handler(CallsenseError, on_callsense)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
