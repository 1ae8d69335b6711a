"""Settings of the service (``callsense serve``): where it listens, its limits, where it keeps files."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from callsense.errors import UsageError

AuthMode = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    port: int = 7860
    data_dir: Path | None = None  # None: $CALLSENSE_HOME/service; uploads, call folders, jobs, keys, rules live here
    database_url: str | None = None  # None: the store's default ($CALLSENSE_DATABASE_URL or its SQLite file)
    auth: AuthMode = "auto"  # auto: API keys required unless the host is a loopback address
    keys_file: Path | None = None  # None: data_dir/api-keys.json
    workers: int = 1  # analyses running at the same time (each uses num_threads cores)
    max_queue: int = 8  # analyses waiting for a worker; beyond that requests get 429
    max_upload_mb: float = 200.0  # larger uploads get 413 while they stream in
    max_duration_s: float = 4 * 3600.0  # longer recordings get 413
    sync_max_s: float = 60.0  # /v1/analyze answers recordings up to this long inline; longer ones become jobs
    sync_wait_s: float = 300.0  # an inline analysis waiting longer than this for a worker gets 503
    num_threads: int = 2  # intra-op threads per model
    asr_runtime: str = "onnx"
    device: str = "cpu"  # "cuda[:N]": the models on a GPU (callsense.engines.device)
    emotion_runtime: str = "onnx"
    emotion_model: str | None = None  # None: the catalogue default
    run_emotion: bool = True
    emotion_head: str | None = None  # a custom head under $CALLSENSE_HOME/heads/ (docs/adapt.md)
    emotion_weights: tuple[tuple[str, float], ...] = ()  # sensitivity per class, e.g. (("angry", 1.3),)
    mood_history: int = 10  # /v1/emotion answers kept per user_id / session_id (and calls per customer)
    mood_alert: float = 0.35  # mood volatility (mean cosine distance of successive embeddings) that alerts
    reply_config: Path | None = None  # fallback texts and reply styles (docs/adapt.md); None: the defaults
    keep_audio: bool = True  # False: no audio is kept: uploads are deleted after analysis, none is written
    redact: bool = False  # True: results are PII-redacted before anything is stored or answered
    retention_s: float | None = None  # None: keep calls; else purge calls (and their files) older than this
    job_lease_s: float = 30.0  # a running job's lease; its owner renews it every third of this
    sweep_min_age_s: float = 3600.0  # files no call or job accounts for are removed once this old
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are listed
    ui: bool = True  # mount the Gradio web UI at "/"
    warm: bool = True  # load models at start (readiness waits for it)
    retry_after_s: int = 5  # Retry-After sent with 429/503
    examples_dir: Path | None = None  # example recordings offered by the UI (default: the repository's examples/)
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> ServiceSettings:
        return dataclasses.replace(self, **changes)

    @property
    def root(self) -> Path:
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser()
        from callsense.engines.manager import callsense_home

        return callsense_home() / "service"

    @property
    def uploads_dir(self) -> Path:
        return self.root / "uploads"

    @property
    def calls_dir(self) -> Path:
        return self.root / "calls"

    @property
    def rules_dir(self) -> Path:
        return self.root / "rules"

    @property
    def ui_temp_dir(self) -> Path:
        """The web UI's (Gradio's) upload and download cache: inside the data folder, swept and cleared."""
        return self.root / "ui-tmp"

    @property
    def keys_path(self) -> Path:
        return Path(self.keys_file).expanduser() if self.keys_file else self.root / "api-keys.json"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def auth_required(self) -> bool:
        if self.auth == "on":
            return True
        if self.auth == "off":
            return False
        return not is_loopback(self.host)

    def validate(self) -> ServiceSettings:
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, not {self.workers}")
        if self.max_queue < 0:
            raise UsageError(f"max_queue must be >= 0, not {self.max_queue}")
        if self.retention_s is not None and self.retention_s <= 0:
            raise UsageError(f"--retention must be positive, not {self.retention_s:g} s")
        if self.job_lease_s < 1:
            raise UsageError(f"job_lease_s must be at least 1 s, not {self.job_lease_s:g}")
        from callsense.engines.base import EmotionOptions

        EmotionOptions(weights=tuple(self.emotion_weights))  # bad labels or weights: a usage error at start
        if not 2 <= self.mood_history <= 1000:
            raise UsageError(f"--mood-history must be 2..1000 answers, not {self.mood_history}")
        if not 0 <= self.mood_alert <= 2:
            raise UsageError(f"--mood-alert must be a cosine distance 0..2, not {self.mood_alert:g}")
        if not 0 < self.port < 65536:
            raise UsageError(f"--port must be 1..65535, not {self.port}")
        return self


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere
