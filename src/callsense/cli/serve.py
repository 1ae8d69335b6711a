"""``callsense serve`` (REST API + web UI), ``callsense keys`` (API keys) and ``callsense report`` (HTML)."""

from __future__ import annotations

from pathlib import Path

import typer

from callsense.cli.options import DB_HELP, DB_METAVAR, deprecated_option, prefer

keys_app = typer.Typer(help="API keys of the service (stored hashed; each key has a role).", no_args_is_help=True)


def _settings(**kw):
    from callsense.service import ServiceSettings

    return ServiceSettings(**{k: v for k, v in kw.items() if v is not None})


def _head(name: str | None) -> str | None:
    from callsense.adapt.cli_options import check_head

    return check_head(name)


def _weights(text: str | None) -> tuple[tuple[str, float], ...] | None:
    from callsense.adapt.cli_options import parse_weights

    return parse_weights(text) or None


def serve(
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS",
                             help="Address to listen on. Non-loopback addresses require API keys."),
    port: int = typer.Option(7860, "--port", metavar="PORT", help="TCP port."),
    workers: int = typer.Option(1, "--workers", metavar="N", help="Analyses running at the same time."),
    max_queue: int = typer.Option(8, "--max-queue", metavar="N",
                                  help="Analyses waiting for a worker before requests get 429."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Disable API keys even on a public address (every "
                                                          "client becomes admin)."),
    auth: bool = typer.Option(False, "--auth", help="Require API keys even on loopback."),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR",
                                         help="Uploads, call folders, jobs, keys and rule versions "
                                              "(default: $CALLSENSE_HOME/service)."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    max_size: float = typer.Option(200.0, "--max-size", metavar="MB", help="Refuse larger uploads (413)."),
    max_duration: float = typer.Option(4 * 3600.0, "--max-duration", metavar="SECONDS",
                                       help="Refuse longer recordings (413)."),
    sync_max_s: float = typer.Option(60.0, "--sync-max-s", metavar="SECONDS",
                                     help="Recordings up to this long are answered inline; longer ones become jobs."),
    threads: int = typer.Option(2, "--threads", metavar="N", help="Intra-op threads per model."),
    asr_runtime: str = typer.Option("onnx", "--asr-runtime", metavar="onnx|ort|funasr",
                                    help="SenseVoice runtime: onnx (sherpa-onnx), ort (onnxruntime) or funasr (torch)."),
    emotion_runtime: str = typer.Option("onnx", "--emotion-runtime", metavar="onnx|funasr",
                                        help="emotion2vec runtime: onnx or funasr (torch)."),
    emotion_model: str | None = typer.Option(None, "--emotion-model", metavar="NAME",
                                             help="emotion2vec model (default: the catalogue's)."),
    emotion_head: str | None = typer.Option(None, "--emotion-head", metavar="NAME",
                                            help="A custom head (callsense adapt train) for every analysis."),
    emotion_weights: str | None = typer.Option(None, "--emotion-weights", metavar="LABEL=W,...",
                                               help="Sensitivity per class, e.g. angry=1.3,neutral=0.8."),
    mood_history: int = typer.Option(10, "--mood-history", metavar="N",
                                     help="/v1/emotion answers kept per user_id/session_id (mood history)."),
    mood_alert: float = typer.Option(0.35, "--mood-alert", metavar="DISTANCE",
                                     help="Mood volatility (mean cosine distance of successive embeddings) "
                                          "that raises an alert."),
    reply_config: Path | None = typer.Option(None, "--reply-config", metavar="FILE",
                                             help="Fallback texts and reply styles (JSON or YAML, docs/adapt.md)."),
    cors: list[str] = typer.Option([], "--cors", metavar="ORIGIN",
                                   help="Allowed CORS origin (repeatable); CORS is off by default."),
    device: str = typer.Option("cpu", "--device", metavar="cpu|cuda[:N]",
                               help="cpu, cuda or cuda:N (pip install 'callsense[gpu]')."),
    no_ui: bool = typer.Option(False, "--no-ui", help="Serve only the REST API."),
    keep_audio: bool = typer.Option(True, "--keep-audio/--no-keep-audio",
                                    help="Keep each call's processed audio (players, downloads); "
                                         "--no-keep-audio keeps no audio at all."),
    redact: bool = typer.Option(False, "--redact", help="Redact phone/ID/card/email numbers before anything is "
                                                        "stored or answered."),
    retention: str | None = typer.Option(None, "--retention", metavar="AGE", help="Delete calls (records, files, audio) older "
                                                                   "than this age, e.g. 90d (default: keep)."),
    job_lease_s: float = typer.Option(30.0, "--job-lease-s", metavar="SECONDS", help="Lease of a running job; another server sharing "
                                                                  "the store takes it over only once it expired."),
    log_level: str = typer.Option("info", "--log-level", metavar="LEVEL", help="uvicorn log level."),
    database_url: str | None = deprecated_option("--database-url", "--db"),
    max_upload_mb: float | None = deprecated_option("--max-upload-mb", "--max-size"),
    max_duration_s: float | None = deprecated_option("--max-duration-s", "--max-duration"),
    runtime: str | None = deprecated_option("--runtime", "--asr-runtime and --emotion-runtime"),
) -> None:
    """Start the service: the REST API (docs at /docs) and the web UI at http://HOST:PORT/."""
    import logging

    from callsense.cli.options import writable_folder
    from callsense.errors import UsageError

    db = prefer(db, database_url, old="--database-url", new="--db")
    max_size = prefer(max_size, max_upload_mb, old="--max-upload-mb", new="--max-size", default=200.0)
    max_duration = prefer(max_duration, max_duration_s, old="--max-duration-s", new="--max-duration",
                          default=4 * 3600.0)
    if runtime is not None:
        asr_runtime = prefer(asr_runtime, runtime, old="--runtime", new="--asr-runtime", default="onnx")
        emotion_runtime = runtime
    if no_auth and auth:
        raise UsageError("--auth and --no-auth contradict each other")
    settings = _settings(host=host, port=port, workers=workers, max_queue=max_queue,
                         auth="off" if no_auth else ("on" if auth else "auto"), data_dir=data_dir,
                         database_url=db, max_upload_mb=max_size, max_duration_s=max_duration,
                         sync_max_s=sync_max_s, num_threads=threads, asr_runtime=asr_runtime,
                         emotion_runtime=emotion_runtime, emotion_model=emotion_model, cors_origins=tuple(cors),
                         ui=not no_ui, keep_audio=keep_audio, redact=redact, retention_s=_age_s(retention),
                         job_lease_s=job_lease_s, emotion_head=_head(emotion_head),
                         emotion_weights=_weights(emotion_weights), reply_config=reply_config, device=device,
                         mood_history=mood_history, mood_alert=mood_alert).validate()
    if reply_config is not None:
        from callsense.adapt.reply import load_policy

        load_policy(reply_config)  # a bad file: exit 2 now
    writable_folder(settings.root, option="--data-dir")  # exit 3 before models and the store are touched
    from callsense.store.db import open_store

    open_store(settings.database_url).close()  # a store problem: one line and exit 5 here, not in uvicorn's startup
    import uvicorn

    from callsense.api import create_app

    fmt = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
    root = logging.getLogger()
    for h in root.handlers:
        h.setFormatter(logging.Formatter(fmt))
    app = create_app(settings)  # refuses a public address without keys
    typer.echo(f"callsense: serving on http://{host}:{port}/ (API docs at /docs)", err=True)
    # ws_ping_timeout: a live call (/v1/live) reads its next frame only when the last one is analysed
    # (back-pressure), so a client's pong can wait behind queued audio; uvicorn's default 20 s would
    # drop a call whose server fell briefly behind (seen in bench/live.py under load).
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, ws_ping_timeout=120.0)


def _age_s(text: str | None) -> float | None:
    if text is None:
        return None
    from callsense.store.privacy import parse_age

    return parse_age(text).total_seconds()


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", metavar="ROLE", help="viewer (read), analyst (analyse and read) or admin (rules, purge)."),
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="A name to recognise the key by."),
    data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR",
                                         help="The service's data folder (as given to serve)."),
) -> None:
    """Create an API key; it is printed once (only its hash is stored)."""
    from callsense.service.keys import KeyStore

    settings = _settings(data_dir=data_dir)
    record, token = KeyStore(settings.keys_path).create(role, name)
    typer.echo(f"created key {record.id} ({record.name}, role {record.role}); store it now, it is not shown again:",
               err=True)
    typer.echo(token)


@keys_app.command("list")
def keys_list(data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR",
                                                  help="The service's data folder.")) -> None:
    """List keys (id, name, role, creation time; never the keys)."""
    from callsense.service.keys import KeyStore

    for k in KeyStore(_settings(data_dir=data_dir).keys_path).list():
        typer.echo(f"{k.id}\t{k.role}\t{k.name}\t{k.created_at}")


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., metavar="KEY", help="Key id or name."),
                data_dir: Path | None = typer.Option(None, "--data-dir", metavar="DIR",
                                                     help="The service's data folder.")) -> None:
    """Revoke a key."""
    from callsense.errors import UsageError
    from callsense.service.keys import KeyStore

    if not KeyStore(_settings(data_dir=data_dir).keys_path).revoke(key_id):
        raise UsageError(f"no key {key_id!r}", hint="see `callsense keys list`")
    typer.echo(f"revoked {key_id}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``keys`` to the main app (``report`` lives in cli/store.py: tables or one call's HTML)."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
