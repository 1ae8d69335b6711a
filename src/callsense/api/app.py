"""The FastAPI application: REST API under ``/v1``, operations endpoints, and the web UI at ``/``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from callsense.errors import UsageError
from callsense.service import Service, ServiceSettings

log = logging.getLogger("callsense")

DOCS_FAVICON = "/static-offline-docs/favicon.png"


def check_auth_settings(settings: ServiceSettings, service: Service) -> None:
    """Refuse to serve a non-loopback address without keys, unless authentication is explicitly off."""
    if settings.auth_required and not service.keys.list():
        raise UsageError(
            f"refusing to listen on {settings.host} without API keys: anyone who can reach it could use it",
            hint="create a key with `callsense keys create --role admin`, or pass --no-auth to disable "
                 "authentication on purpose")
    if not settings.auth_required and settings.auth == "off":
        log.warning("authentication is OFF: every client is an admin (--no-auth)")


def create_app(settings: ServiceSettings | None = None, *, service: Service | None = None) -> Any:
    """Build the application. The service (models, job workers) starts with the app's lifespan."""
    from fastapi_offline import FastAPIOffline

    from callsense._version import __version__
    from callsense.api import problems
    from callsense.api.context import RequestMiddleware, install_log_filter
    from callsense.api.live import router as live_router
    from callsense.api.routes import router

    settings = settings or ServiceSettings()
    service = service or Service(settings)
    check_auth_settings(service.settings, service)
    install_log_filter()

    @asynccontextmanager
    async def lifespan(_app):
        service.start()
        try:
            yield
        finally:
            service.stop()

    # /docs (Swagger UI) and /redoc with their scripts served from the installed fastapi-offline
    # package: the docs work on a machine without internet, and the browser fetches nothing elsewhere.
    app = FastAPIOffline(
        title="callsense",
        version=__version__,
        description="Analyse customer-service call recordings: transcript, language, emotion, QA rules. "
                    "Errors are problem details (`application/problem+json`) with a `code` and a `hint`.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
        static_url="/static-offline-docs",
        favicon_url=DOCS_FAVICON,
    )
    app.state.service = service
    problems.install(app)
    app.include_router(router)
    app.include_router(live_router)
    if service.settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(service.settings.cors_origins),
                           allow_methods=["GET", "POST", "PUT", "DELETE"], allow_headers=["*"])
    app.add_middleware(RequestMiddleware, service=service)
    if service.settings.ui:
        from callsense.ui import mount_ui

        app = mount_ui(app, service)
    return app
