"""Request ids: one per request (the client's ``X-Request-ID`` when sane), in every log line and response."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from callsense.api.problems import problem_response
from callsense.api.request_id import REQUEST_ID, SANE_ID, install_log_filter, request_id

__all__ = ["RequestMiddleware", "install_log_filter", "request_id"]

log = logging.getLogger("callsense")


class RequestMiddleware:
    """Pure ASGI middleware: request id, the upload-size pre-check, metrics and one access log line.

    The size pre-check refuses a request whose Content-Length already exceeds the limit, before a
    byte of it is read (the upload copy enforces the limit again for chunked bodies).
    """

    def __init__(self, app: Any, *, service: Any):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        rid = headers.get("x-request-id", "")
        if not SANE_ID.match(rid):
            rid = uuid.uuid4().hex[:16]
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500}
        path = scope.get("path", "")

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        try:
            limit = self.service.settings.max_upload_bytes + (1 << 20)  # multipart framing slack
            length = headers.get("content-length")
            if scope.get("method") in ("POST", "PUT") and length and length.isdigit() and int(length) > limit:
                resp = problem_response(413, "upload_too_large",
                                        f"request body of {int(length)} bytes exceeds the upload limit of "
                                        f"{self.service.settings.max_upload_mb:g} MB", request_id=rid,
                                        hint="send a shorter recording or raise --max-upload-mb")
                await resp(scope, receive, send_with_id)
                return
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                # A bug, not bad input: answer a problem (with this request id) unless a response started.
                log.exception("unexpected error")
                if status_holder.get("started"):
                    raise
                resp = problem_response(500, "internal", "internal error; the server log has the details",
                                        request_id=rid)
                await resp(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope, path)
            if not route.startswith(("/gradio_api", "/assets", "/static", "/_app", "/theme", "/svelte")):
                m = self.service.metrics
                m.requests.labels(scope.get("method", ""), route, str(status_holder["status"])).inc()
                m.latency.labels(scope.get("method", ""), route).observe(elapsed)
                if path.startswith("/v1/"):
                    log.info("%s %s -> %d in %.0f ms", scope.get("method"), path, status_holder["status"],
                             elapsed * 1000)
            REQUEST_ID.reset(token)


def _route_template(scope: dict, path: str) -> str:
    """The matched route's template (``/v1/calls/{call_id}``), so metrics have bounded labels."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    if path.startswith("/v1/"):
        return "/v1/other"
    if path in ("/healthz", "/readyz", "/metrics"):
        return path
    return "/ui"
