"""The REST API (FastAPI): ``create_app(settings) -> FastAPI``; ``callsense serve`` runs it with uvicorn."""

from callsense.api.app import create_app

__all__ = ["create_app"]
