"""Prometheus metrics of one service instance (its own registry, so several apps in a process — tests —
do not collide)."""

from __future__ import annotations

from typing import Any


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("callsense_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=r)
        self.latency = Histogram("callsense_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], registry=r,
                                 buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.queue_depth = Gauge("callsense_queue_depth", "Analyses running or waiting for a worker", registry=r)
        self.running = Gauge("callsense_analyses_running", "Analyses running now", registry=r)
        self.jobs = Gauge("callsense_jobs", "Jobs by status", ["status"], registry=r)
        self.audio_seconds = Counter("callsense_audio_seconds_processed_total", "Seconds of audio analysed",
                                     ["endpoint"], registry=r)
        self.analyses = Counter("callsense_analyses_total", "Analyses by outcome", ["endpoint", "outcome"],
                                registry=r)
        self.model_loaded = Gauge("callsense_model_loaded", "1 when the model is loaded", ["model"], registry=r)
        self.ready = Gauge("callsense_ready", "1 when the service is ready", registry=r)
        self.load_seconds = Gauge("callsense_model_load_seconds", "Time the models took to load", registry=r)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def refresh(self, service: Any) -> None:
        """Copy the gauges' current values from the service (called before each scrape)."""
        self.queue_depth.set(service.limiter.depth)
        self.running.set(service.limiter.running)
        for status in ("queued", "running", "done", "failed"):
            self.jobs.labels(status).set(0)
        try:
            for status, n in service.jobs.counts().items():
                self.jobs.labels(status).set(n)
        except Exception as e:  # noqa: BLE001 (the database may be down; the scrape still answers)
            import logging

            logging.getLogger("callsense").debug("metrics: job counts unavailable: %s", e)
        self.ready.set(1 if service.ready else 0)
        for model, loaded in service.engines.loaded.items():
            self.model_loaded.labels(model).set(1 if loaded else 0)
        if service.engines.load_seconds is not None:
            self.load_seconds.set(service.engines.load_seconds)
