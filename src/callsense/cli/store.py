"""Store commands: batch, search, similar, failures, report, export, purge, db upgrade.

The store is ``--db URL``, else ``$CALLSENSE_DATABASE_URL``, else a SQLite file in the user data folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from callsense.cli.options import DB_HELP, DB_METAVAR, deprecated_option, prefer
from callsense.errors import UsageError

db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
    app.command("search")(search)
    app.command("similar")(similar)
    app.command("failures")(failures)
    app.command("report")(report)
    app.command("export")(export)
    app.command("purge")(purge)
    app.add_typer(db_app, name="db")


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _factory(spec: str) -> Any:
    import importlib

    module, sep, attr = spec.partition(":")
    if not sep:
        raise UsageError(f"--analyzer expects module:callable, got {spec!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"--analyzer {spec}: {e}") from e


# ---------------------------------------------------------------- batch


def batch(
    source: str | None = typer.Argument(None, help="A folder (recursive), a glob, an audio file, or a CSV/JSONL "
                                                      "manifest with a path column and metadata columns."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes (each loads the models once)."),
    force: bool = typer.Option(False, "--force", help="Re-analyse recordings already stored with this pipeline."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Re-attempt recordings that failed before (all recorded ones if no SOURCE)."),
    copy_audio: Path | None = typer.Option(None, "--copy-audio", help="Keep a copy of each recording here."),
    delete_audio_after: bool = typer.Option(False, "--delete-audio-after",
                                            help="Delete each source file once its result is stored."),
    redact: bool = typer.Option(False, "--redact", help="Store transcripts with phone/ID/card/email redacted."),
    ext: str = typer.Option(",".join(e.lstrip(".") for e in ("wav", "mp3", "m4a", "flac", "ogg", "opus", "amr",
                                                              "webm", "mp4")),
                            "--ext", help="Extensions to pick up in folders and globs."),
    path_column: str = typer.Option("path", "--path-column", help="Manifest column with the audio path."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    database_url: str | None = deprecated_option("--database-url", "--db"),
    language: str = typer.Option("auto", "--language", "-l", help="auto|zh|en|yue|ja|ko"),
    channels: str | None = typer.Option(None, "--channels", help="Stereo role map, e.g. customer,agent."),
    asr_runtime: str = typer.Option("onnx", "--asr-runtime", help="onnx (sherpa-onnx), ort (onnxruntime) or funasr (torch)."),
    emotion_model: str | None = typer.Option(None, "--emotion-model", help="emotion2vec-plus-large (default)..."),
    emotion_runtime: str = typer.Option("onnx", "--emotion-runtime", help="onnx or funasr (torch)."),
    emotion_head: str | None = typer.Option(None, "--emotion-head", metavar="NAME",
                                            help="A custom head (callsense adapt train): its labels per segment."),
    emotion_weights: str | None = typer.Option(None, "--emotion-weights", metavar="LABEL=W,...",
                                               help="Sensitivity per class, e.g. angry=1.3,neutral=0.8."),
    threads: int = typer.Option(2, "--threads", help="Threads per model in each worker."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (pip install 'callsense[gpu]')."),
    no_emotion: bool = typer.Option(False, "--no-emotion", help="Skip emotion2vec (SenseVoice tags only)."),
    no_qa: bool = typer.Option(False, "--no-qa", help="Skip metrics and QA rules."),
    rules: Path | None = typer.Option(None, "--rules", help="QA rule YAML (default: the shipped pack)."),
    agent_lexicon: Path | None = typer.Option(None, "--agent-lexicon", metavar="FILE",
                                              help="Mono calls: agent phrases, one per line, added to the built-in "
                                                   "ones (-PHRASE removes one); default $CALLSENSE_AGENT_LEXICON."),
    offline: bool = typer.Option(False, "--offline", help="Never download models."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (logs and summary only)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    use_ray: bool = typer.Option(False, "--ray", help="Run as a Ray Data job (pip install 'callsense[ray]')."),
    ray_address: str | None = typer.Option(None, "--ray-address",
                                           help="With --ray: an existing cluster (auto, ray://HOST:10001); "
                                                "default: a local Ray on this machine's cores."),
    actors: int = typer.Option(1, "--actors", help="With --ray: actors per model pool (each loads its model once)."),
    asr_actors: int | None = typer.Option(None, "--asr-actors", help="With --ray: SenseVoice actors (default --actors)."),
    emotion_actors: int | None = typer.Option(None, "--emotion-actors",
                                              help="With --ray: emotion2vec+ actors (default --actors)."),
    cpus_per_actor: float = typer.Option(1.0, "--cpus-per-actor", help="With --ray: CPUs reserved per actor."),
    gpus_per_actor: float = typer.Option(0.0, "--gpus-per-actor",
                                         help="With --ray: GPUs per actor (default 1 with --device cuda)."),
    analyzer: str | None = typer.Option(None, "--analyzer", hidden=True,
                                           help="module:callable building the analyzer (tests, plugins)."),
) -> None:
    """Analyse many recordings into the store: resumable, idempotent, failures recorded, N workers."""
    db = prefer(db, database_url, old="--database-url", new="--db")
    from functools import partial

    from callsense.batch import BatchOptions, collect, run_batch
    from callsense.batch.progress import BatchProgress, print_summary

    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if source is None and not retry_failed:
        raise UsageError("give a SOURCE (folder, glob, file or manifest), or --retry-failed alone")
    if copy_audio is not None:
        from callsense.cli.options import writable_folder

        writable_folder(copy_audio, option="--copy-audio")  # exit 3 before any worker starts
    if analyzer:
        factory = _factory(analyzer)
    else:
        from callsense.cli.analyze import build_options
        from callsense.pipeline import Analyzer

        options = build_options(language=language, channels=channels, asr_runtime=asr_runtime,
                                emotion_model=emotion_model, emotion_runtime=emotion_runtime, threads=threads,
                                device=device, no_emotion=no_emotion, no_qa=no_qa, rules=rules, offline=offline,
                                itn=True, both_itn=False, granularity="frame", mask=None, max_duration=None,
                                max_size=None, emotion_head=emotion_head, emotion_weights=emotion_weights,
                                agent_lexicon=agent_lexicon)
        factory = partial(Analyzer, options)
    exts = tuple("." + e.strip().lstrip(".").lower() for e in ext.split(",") if e.strip())
    items = collect(source, extensions=exts, path_column=path_column) if source else _failed_items(db)
    if source and not items:  # not a failure (tonight's folder may be empty), but never a silent "0 done"
        print(f"callsense: no recordings found in {source} (looked for {' '.join(exts)})", file=sys.stderr)
    opts = BatchOptions(workers=workers, force=force, retry_failed=retry_failed, copy_audio=copy_audio,
                        delete_audio_after=delete_audio_after, redact=redact)
    console = _console(stderr=as_json)
    with BatchProgress(console, len(items), enabled=not no_progress) as bar:
        if use_ray:  # Ray is imported only here
            from callsense.batch.ray_runner import RayOptions, run_batch_ray

            for name, n in (("--actors", actors), ("--asr-actors", asr_actors), ("--emotion-actors", emotion_actors)):
                if n is not None and n < 1:
                    raise UsageError(f"{name} must be at least 1")
            gpus = gpus_per_actor or (1.0 if device.startswith("cuda") else 0.0)
            ropts = RayOptions(address=ray_address, actors=actors, asr_actors=asr_actors,
                               emotion_actors=emotion_actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus)
            summary = run_batch_ray(items, analyzer_factory=factory, db_url=db, options=opts, ray_options=ropts,
                                    source_label=source or "--retry-failed", on_outcome=bar.update)
        else:
            summary = run_batch(items, analyzer_factory=factory, db_url=db, options=opts,
                                source_label=source or "--retry-failed", on_outcome=bar.update)
    if as_json:
        sys.stdout.write(json.dumps({
            "total": summary.total, "done": summary.done, "skipped": summary.skipped, "busy": summary.busy,
            "failed": summary.failed, "audio_hours": summary.audio_hours, "wall_s": summary.wall_s,
            "rtf": summary.rtf, "throughput": summary.throughput, "stopped": summary.stopped,
            "run_id": summary.run_id, "peak_rss_mb": summary.peak_rss_mb,
            "failures": [{"path": f.path, "key": f.key, "code": f.error_code, "reason": f.reason}
                         for f in summary.failures],
        }, ensure_ascii=False) + "\n")
    print_summary(console, summary)
    if summary.stopped:
        raise typer.Exit(5)


def _failed_items(db: str | None) -> list[Any]:
    from callsense.batch import WorkItem
    from callsense.store.db import open_store
    from callsense.store.work import list_failures

    store = open_store(db)
    try:
        return [WorkItem(key=f.source_key, path=f.source_path, metadata=f.metadata, manifest=f.manifest, row=f.row)
                for f in list_failures(store, limit=1_000_000) if f.source_path]
    finally:
        store.close()


# ---------------------------------------------------------------- search


def search(
    text: str | None = typer.Argument(None, help="Words that must all occur in a segment (Chinese works "
                                                    "without spaces); \"quote\" phrases."),
    role: str | None = typer.Option(None, "--role", help="agent|customer|unknown"),
    emotion: str | None = typer.Option(None, "--emotion", help="Emotion label, e.g. angry."),
    min_score: float | None = typer.Option(None, "--min-score", help="With --emotion: that label's score ≥ this."),
    asr_emotion: str | None = typer.Option(None, "--asr-emotion", help="SenseVoice emotion tag, e.g. ANGRY."),
    event: str | None = typer.Option(None, "--event", help="SenseVoice event tag, e.g. Cough, BGM."),
    rule: str | None = typer.Option(None, "--rule", help="Calls with a hit of this rule id."),
    severity: str | None = typer.Option(None, "--severity", help="Calls with a hit of at least this severity."),
    meta: list[str] = typer.Option([], "--meta", help="Metadata KEY=VALUE (repeatable), e.g. queue=vip."),
    agent: str | None = typer.Option(None, "--agent", help="Agent id."),
    since: str | None = typer.Option(None, "--since", help="Call time ≥ (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Call time < (ISO 8601)."),
    min_seconds: float | None = typer.Option(None, "--min-seconds", metavar="SECONDS",
                                             help="Calls at least this long."),
    max_seconds: float | None = typer.Option(None, "--max-seconds", metavar="SECONDS",
                                             help="Calls at most this long."),
    min_duration: float | None = deprecated_option("--min-duration", "--min-seconds"),
    max_duration: float | None = deprecated_option("--max-duration", "--max-seconds"),
    min_qa: float | None = typer.Option(None, "--min-qa", help="QA score ≥ this (0-100, as shown).", min=0, max=100),
    max_qa: float | None = typer.Option(None, "--max-qa", help="QA score ≤ this (0-100, as shown).", min=0, max=100),
    invalid: bool = typer.Option(False, "--invalid", help="The discard view: invalid calls (no speech, too "
                                 "little, mostly music or tones), left not scored."),
    outliers: bool = typer.Option(False, "--outliers", help="Segments their latest outlier score flagged "
                                  "(`callsense clusters outliers`), with the score."),
    min_outlier: float | None = typer.Option(None, "--min-outlier", metavar="SCORE",
                                             help="Segments whose latest outlier score is ≥ SCORE (0-2)."),
    limit: int = typer.Option(50, "--limit", "-n"),
    after: str | None = typer.Option(None, "--after", metavar="CURSOR",
                                     help="The page after this hit: the `cursor` of the last hit in --json."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    database_url: str | None = deprecated_option("--database-url", "--db"),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as one JSON array on stdout."),
) -> None:
    """Search transcripts and filter calls: text, role, emotion, tags, rule hits, metadata, time, duration, score."""
    db = prefer(db, database_url, old="--database-url", new="--db")
    from callsense.cli.analyze import parse_metadata
    from callsense.store.db import open_store
    from callsense.store.search import SearchQuery
    from callsense.store.search import search as run_search

    min_seconds = prefer(min_seconds, min_duration, old="--min-duration", new="--min-seconds")
    max_seconds = prefer(max_seconds, max_duration, old="--max-duration", new="--max-seconds")
    meta_filters = parse_metadata(meta)
    if agent:
        meta_filters["agent_id"] = agent
    query = SearchQuery(text=text, role=role, emotion=emotion, min_score=min_score, asr_emotion=asr_emotion,
                        event=event, rule_id=rule, severity=severity, meta=meta_filters, since=since, until=until,
                        min_duration_ms=int(min_seconds * 1000) if min_seconds is not None else None,
                        max_duration_ms=int(max_seconds * 1000) if max_seconds is not None else None,
                        min_qa_score=min_qa, max_qa_score=max_qa, invalid=invalid, outliers=outliers,
                        min_outlier=min_outlier, limit=limit, after=after or None)
    store = open_store(db)
    try:
        hits = run_search(store, query)
        if invalid and hits:  # the discard view says why each call was not scored
            from callsense.store.search import with_reasons

            hits = with_reasons(store, hits)
    finally:
        store.close()
    if as_json:
        _print_json([h.to_dict() for h in hits])
        return
    from rich.table import Table
    from rich.text import Text

    from callsense.cli.render import clock

    console = _console()
    if not hits:
        console.print("no matches")
        return
    t = Table(show_lines=False)
    if query.invalid and not query.segment_level:  # the discard view: each call with why it was not scored
        for col in ("call", "file", "time", "why not scored"):
            t.add_column(col, overflow="fold")
        for h in hits:
            t.add_row(h.call_id, h.source_name, clock(h.duration_ms), h.reason or "")
        console.print(t)
        return
    for col in ("call", "segment", "time", "role", "", *(("outlier",) if query.by_outlier else ()), "text",
                *(("why not scored",) if query.invalid else ())):
        t.add_column(col, overflow="fold")
    for h in hits:
        text_cell = Text(h.text)
        for a, b in h.spans:
            text_cell.stylize("bold reverse", a, b)
        when = f"{clock(h.start_ms)}–{clock(h.end_ms)}" if h.segment_id else clock(h.duration_ms)
        score = (f"{h.outlier_score:.3f}" + (" ⚑" if h.outlier_flagged else ""),) if query.by_outlier else ()
        why = (h.reason or "",) if query.invalid else ()
        t.add_row(h.call_id, h.segment_id or "", when, h.role or "", h.emoji, *score, text_cell, *why)
    console.print(t)


def _print_json(doc: Any) -> None:
    """One JSON document on stdout (``--json`` of every store command)."""
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")


# ---------------------------------------------------------------- similar


def similar(
    target: str = typer.Argument(..., help="CALL_ID (pooled call embedding) or CALL_ID:SEGMENT_ID."),
    k: int = typer.Option(10, "-k", help="How many."),
    role: str | None = typer.Option(None, "--role", help="Compare this role's pooled embedding (calls), or "
                                                            "only segments of this role."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    database_url: str | None = deprecated_option("--database-url", "--db"),
    as_json: bool = typer.Option(False, "--json", help="Print the matches as one JSON array on stdout."),
) -> None:
    """Calls or segments whose emotion embeddings are closest (cosine) to the given one."""
    db = prefer(db, database_url, old="--database-url", new="--db")
    from callsense.store.db import open_store
    from callsense.store.similar import similar as find

    call_id, _, segment_id = target.partition(":")
    store = open_store(db)
    try:
        hits = find(store, call_id, segment_id or None, k=k, role=role)
    finally:
        store.close()
    if as_json:
        _print_json([dict(h.__dict__) for h in hits])
        return
    from rich.table import Table

    t = Table()
    for col in ("score", "call", "segment", "role", "source", "text"):
        t.add_column(col, overflow="fold")
    for h in hits:
        t.add_row(f"{h.score:.3f}", h.call_id, h.segment_id or "", h.role or "", h.source_name, h.text or "")
    _console().print(t)


# ---------------------------------------------------------------- failures


def failures(
    limit: int = typer.Option(100, "--limit", "-n"),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    database_url: str | None = deprecated_option("--database-url", "--db"),
    as_json: bool = typer.Option(False, "--json", help="Print the failures as one JSON array on stdout."),
) -> None:
    """Recordings and manifest rows that could not be analysed, with the reason."""
    db = prefer(db, database_url, old="--database-url", new="--db")
    from callsense.store.db import open_store
    from callsense.store.work import list_failures

    store = open_store(db)
    try:
        rows = list_failures(store, limit=limit)
    finally:
        store.close()
    if as_json:
        _print_json([dict(f.__dict__, failed_at=f.failed_at.isoformat() + "Z") for f in rows])
        return
    console = _console()
    if not rows:
        console.print("no failures recorded")
        return
    from rich.table import Table

    t = Table()
    for col in ("when (UTC)", "source", "stage", "code", "attempts", "reason"):
        t.add_column(col, overflow="fold")
    for f in rows:
        where = f.source_path or f.source_key
        if f.manifest and f.row:
            where += f" ({Path(f.manifest).name} row {f.row})"
        t.add_row(f.failed_at.strftime("%Y-%m-%d %H:%M"), where, f.stage, f.error_code, str(f.attempts), f.message)
    console.print(t)


# ---------------------------------------------------------------- report


def report(
    call: str | None = typer.Argument(None, help="One call (stored call id, or a result.json / call folder): "
                                                    "write its HTML report. Without it: tables across calls."),
    html: bool = typer.Option(True, "--html/--no-html", help="With CALL: write the one-page HTML report."),
    output: Path | None = typer.Option(None, "--out", "-o", metavar="FILE",
                                       help="With CALL: file to write (default: <call-id>.html)."),
    old_output: Path | None = deprecated_option("--output", "--out"),
    since: str | None = typer.Option(None, "--since", help="Call time ≥ (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Call time < (ISO 8601)."),
    by: str = typer.Option("category", "--by", help="Heatmap rows: category|queue|team|agent_id|direction."),
    role: str = typer.Option("customer", "--role", help="Whose emotion the heatmap shows."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    database_url: str | None = deprecated_option("--database-url", "--db"),
    as_json: bool = typer.Option(False, "--json", help="The tables as JSON on stdout."),
) -> None:
    """Tables across calls (emotion heatmap, agent scorecards, rule hits, daily trends), or one call's HTML report."""
    db = prefer(db, database_url, old="--database-url", new="--db")
    output = prefer(output, old_output, old="--output", new="--out")
    from callsense.store import aggregates
    from callsense.store.db import open_store

    if call is not None:
        _call_html(call, output, db, html)
        return
    store = open_store(db)
    try:
        tables = [
            aggregates.emotion_heatmap(store, by=by, role=role, since=since, until=until),
            aggregates.agent_scorecards(store, since=since, until=until),
            aggregates.rule_hit_counts(store, since=since, until=until),
            aggregates.daily_trends(store, since=since, until=until),
        ]
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps({t.title: t.to_dicts() for t in tables}, ensure_ascii=False, indent=2) + "\n")
        return
    from rich.table import Table

    console = _console()
    for tab in tables:
        t = Table(title=tab.title)
        for col in tab.columns:
            t.add_column(col)
        for row in tab.rows:
            t.add_row(*("" if v is None else str(v) for v in row))
        console.print(t if tab.rows else f"{tab.title}: no data")


def _call_html(call: str, output: Path | None, db: str | None, html: bool) -> None:
    """One call's HTML report, rendered by the service's ``callsense.report.render_html``."""
    if not html:
        raise UsageError("with a CALL, report writes its HTML report; drop --no-html (or the CALL for tables)")
    from callsense.cli.clip import locate_call
    from callsense.report import render_html

    # the review clips are embedded when the call's audio is at hand (its folder, or a batch call's recording)
    result, audio, tmp = locate_call(call, db, need_audio=False)
    out = output or Path(f"{result.call_id}.html")
    try:
        out.write_text(render_html(result, audio=audio), encoding="utf-8")
    finally:
        if tmp is not None:
            tmp.cleanup()
    typer.echo(str(out))


# ---------------------------------------------------------------- export / purge / db


def export(
    out: str = typer.Option("-", "--out", "-o", help="Output file (- for stdout; parquet needs a file)."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv|jsonl|json (one array)|parquet"),
    what: str = typer.Option("calls", "--what", help="calls|segments|rule_hits|qc (the seeds' QC list)|corrections (reviewers' labels)"),
    since: str | None = typer.Option(None, "--since", help="Call time ≥ (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Call time < (ISO 8601)."),
    no_redact: bool = typer.Option(False, "--no-redact", help="Keep phone/ID/card/email numbers in texts."),
    db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
    database_url: str | None = deprecated_option("--database-url", "--db"),
) -> None:
    """Export calls, segments or rule hits for BI tools (columns: docs/store.md)."""
    db = prefer(db, database_url, old="--database-url", new="--db")
    from callsense.store.db import open_store
    from callsense.store.export import export as run_export

    store = open_store(db)
    try:
        n = run_export(store, out, format=fmt, what=what, since=since, until=until,  # type: ignore[arg-type]
                       redact=not no_redact)
    finally:
        store.close()
    _console(stderr=True).print(f"exported {n} {what} rows" + (f" to {out}" if out != "-" else ""))


def purge(
    older_than: str = typer.Option(..., "--older-than", help="Retention age, e.g. 90d, 12w, 36h."),
    what: str = typer.Option("all", "--what", help="records|audio|all"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would go."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Delete records and/or kept audio copies of calls stored longer ago than --older-than."""
    from callsense.store.db import open_store
    from callsense.store.privacy import purge as run_purge

    store = open_store(db)
    try:
        r = run_purge(store, older_than, what=what, dry_run=dry_run)  # type: ignore[arg-type]
    finally:
        store.close()
    verb = "would delete" if dry_run else "deleted"
    _console().print(f"{verb}: {r.calls} call records, {r.audio_files} audio files, {r.failures} failure records, "
                     f"{r.mood} mood entries (stored before {r.cutoff:%Y-%m-%d %H:%M} UTC)")


@db_app.command("upgrade")
def db_upgrade(db: str | None = typer.Option(None, "--db", metavar=DB_METAVAR, help=DB_HELP),
               database_url: str | None = deprecated_option("--database-url", "--db")) -> None:
    """Create or upgrade the store's schema (also done automatically on every start)."""
    db = prefer(db, database_url, old="--database-url", new="--db")
    from callsense.store.db import open_store, redact_url
    from callsense.store.migrate import current_revision, head_revision, upgrade

    store = open_store(db, migrate=False)
    try:
        before = upgrade(store)
        now = current_revision(store)
    finally:
        store.close()
    state = "already at" if before == now else f"upgraded from {before or 'empty'} to"
    _console().print(f"{redact_url(store.url)}: {state} schema revision {now} (head {head_revision()})")
