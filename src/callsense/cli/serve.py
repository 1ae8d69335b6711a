"""``callsense serve`` (REST API + web UI), ``callsense keys`` (API keys) and ``callsense report`` (HTML)."""

from __future__ import annotations

from pathlib import Path

import typer

keys_app = typer.Typer(help="API keys of the service (stored hashed; each key has a role).", no_args_is_help=True)


def _settings(**kw):
    from callsense.service import ServiceSettings

    return ServiceSettings(**{k: v for k, v in kw.items() if v is not None})


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on. Non-loopback addresses require API keys."),
    port: int = typer.Option(7860, help="TCP port."),
    workers: int = typer.Option(1, help="Analyses running at the same time."),
    max_queue: int = typer.Option(8, help="Analyses waiting for a worker before requests get 429."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Disable API keys even on a public address (every "
                                                          "client becomes admin)."),
    auth: bool = typer.Option(False, "--auth", help="Require API keys even on loopback."),
    data_dir: Path | None = typer.Option(None, help="Uploads, call folders, jobs, keys and rule versions "
                                                    "(default: $CALLSENSE_HOME/service)."),
    database_url: str | None = typer.Option(None, help="Store URL (default: $CALLSENSE_DATABASE_URL or SQLite)."),
    max_upload_mb: float = typer.Option(200.0, help="Largest accepted upload."),
    max_duration_s: float = typer.Option(4 * 3600.0, help="Longest accepted recording."),
    sync_max_s: float = typer.Option(60.0, help="Recordings up to this long are answered inline; longer ones "
                                                "become jobs."),
    threads: int = typer.Option(2, help="Intra-op threads per model."),
    runtime: str = typer.Option("onnx", help="Model runtime: onnx or funasr."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (pip install 'callsense[gpu]')."),
    emotion_model: str | None = typer.Option(None, help="emotion2vec model (default: the catalogue's)."),
    cors: list[str] = typer.Option([], help="Allowed CORS origin (repeatable); CORS is off by default."),
    no_ui: bool = typer.Option(False, "--no-ui", help="Serve only the REST API."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Start the service: the REST API (docs at /docs) and the web UI at http://HOST:PORT/."""
    import logging

    import uvicorn

    from callsense.api import create_app

    if no_auth and auth:
        from callsense.errors import UsageError

        raise UsageError("--auth and --no-auth contradict each other")
    settings = _settings(host=host, port=port, workers=workers, max_queue=max_queue,
                         auth="off" if no_auth else ("on" if auth else "auto"), data_dir=data_dir,
                         database_url=database_url, max_upload_mb=max_upload_mb, max_duration_s=max_duration_s,
                         sync_max_s=sync_max_s, num_threads=threads, asr_runtime=runtime, emotion_runtime=runtime, device=device,
                         emotion_model=emotion_model, cors_origins=tuple(cors), ui=not no_ui).validate()
    fmt = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
    root = logging.getLogger()
    for h in root.handlers:
        h.setFormatter(logging.Formatter(fmt))
    app = create_app(settings)  # refuses a public address without keys
    typer.echo(f"callsense: serving on http://{host}:{port}/ (API docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., help="viewer (read), analyst (analyse and read) or admin (rules, purge)."),
    name: str | None = typer.Option(None, help="A name to recognise the key by."),
    data_dir: Path | None = typer.Option(None, help="The service's data folder (as given to serve)."),
) -> None:
    """Create an API key; it is printed once (only its hash is stored)."""
    from callsense.service.keys import KeyStore

    settings = _settings(data_dir=data_dir)
    record, token = KeyStore(settings.keys_path).create(role, name)
    typer.echo(f"created key {record.id} ({record.name}, role {record.role}); store it now, it is not shown again:",
               err=True)
    typer.echo(token)


@keys_app.command("list")
def keys_list(data_dir: Path | None = typer.Option(None, help="The service's data folder.")) -> None:
    """List keys (id, name, role, creation time; never the keys)."""
    from callsense.service.keys import KeyStore

    for k in KeyStore(_settings(data_dir=data_dir).keys_path).list():
        typer.echo(f"{k.id}\t{k.role}\t{k.name}\t{k.created_at}")


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="Key id or name."),
                data_dir: Path | None = typer.Option(None, help="The service's data folder.")) -> None:
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
