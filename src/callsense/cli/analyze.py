"""`callsense analyze FILE...`: analyse recordings and write one output folder per call."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from callsense.errors import CallsenseError, ModelError, UsageError


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)


def parse_metadata(items: list[str]) -> dict[str, str]:
    meta = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--meta expects KEY=VALUE, got {item!r}")
        meta[key.strip()] = value
    return meta


def build_options(*, language: str, channels: Optional[str], asr_runtime: str, emotion_model: Optional[str],
                  emotion_runtime: str, threads: int, device: str, no_emotion: bool, no_qa: bool,
                  rules: Optional[Path], offline: bool, itn: bool, both_itn: bool, granularity: str,
                  mask: Optional[str], max_duration: Optional[float], max_size: Optional[float]):
    """CLI flags -> AnalyzeOptions (shared by analyze and batch)."""
    from callsense.audio.types import AudioOptions
    from callsense.engines.base import AsrOptions, EmotionOptions
    from callsense.engines.catalog import DEFAULT_EMOTION_MODEL, get_spec
    from callsense.pipeline import AnalyzeOptions

    # the option types check language, granularity, mask, channel map and limits (UsageError)
    channel_map = tuple(channels.split(",")) if channels else None
    masked = tuple(m.strip() for m in mask.split(",") if m.strip()) if mask else ()
    audio = AudioOptions(channel_map=channel_map)  # type: ignore[arg-type]
    if max_duration is not None:
        audio = AudioOptions(channel_map=channel_map, max_duration_s=max_duration, max_file_mb=audio.max_file_mb)
    if max_size is not None:
        audio = AudioOptions(channel_map=channel_map, max_duration_s=audio.max_duration_s, max_file_mb=max_size)
    emodel = get_spec(emotion_model or DEFAULT_EMOTION_MODEL).name
    if rules is not None and not rules.is_file():
        raise UsageError(f"{rules}: rule file not found")
    return AnalyzeOptions(
        audio=audio,
        asr=AsrOptions(language=language, use_itn=itn, both_itn=both_itn),
        emotion=EmotionOptions(granularity=granularity, masked=masked),  # type: ignore[arg-type]
        asr_runtime=asr_runtime, emotion_model=emodel, emotion_runtime=emotion_runtime,
        run_emotion=not no_emotion, num_threads=threads, device=device, rules=rules, run_qa=not no_qa,
        allow_download=False if offline else None,
    )


def analyze(
    files: list[Path] = typer.Argument(..., help="Recordings: WAV, MP3, M4A, FLAC, OGG/Opus, AMR, WebM, video."),
    out: Path = typer.Option(Path("outputs"), "--out", "-o", help="Folder for the per-call output folders."),
    language: str = typer.Option("auto", "--language", "-l", help="auto|zh|en|yue|ja|ko"),
    channels: Optional[str] = typer.Option(None, "--channels", help="Stereo role map, e.g. agent,customer (default) "
                                                                     "or customer,agent."),
    as_json: bool = typer.Option(False, "--json", help="Print result JSON to stdout (one object, or an array)."),
    fmt: str = typer.Option("table", "--format", help="table|text|funasr: how segments are printed."),
    asr_runtime: str = typer.Option("onnx", "--asr-runtime", help="onnx (sherpa-onnx), ort (onnxruntime) or funasr (torch)."),
    emotion_model: Optional[str] = typer.Option(None, "--emotion-model",
                                                help="emotion2vec-plus-large (default), -base, -seed."),
    emotion_runtime: str = typer.Option("onnx", "--emotion-runtime", help="onnx or funasr (torch)."),
    threads: int = typer.Option(2, "--threads", help="Threads per model."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (pip install 'callsense[gpu]')."),
    no_emotion: bool = typer.Option(False, "--no-emotion", help="Skip emotion2vec (SenseVoice tags only)."),
    no_qa: bool = typer.Option(False, "--no-qa", help="Skip metrics and QA rules."),
    rules: Optional[Path] = typer.Option(None, "--rules", help="QA rule YAML (default: the shipped pack)."),
    meta: list[str] = typer.Option([], "--meta", help="Call metadata KEY=VALUE for rules (repeatable)."),
    webhook: list[str] = typer.Option([], "--webhook", help="Alert target [FORMAT:]URL, FORMAT one of generic, "
                                                            "wecom, dingtalk, feishu, slack (repeatable)."),
    offline: bool = typer.Option(False, "--offline", help="Never download models."),
    itn: bool = typer.Option(True, "--itn/--no-itn", help="Inverse text normalisation (numbers, punctuation)."),
    both_itn: bool = typer.Option(False, "--both-itn", help="Also store the text without ITN (second decode)."),
    granularity: str = typer.Option("frame", "--granularity", help="frame (emotion timeline) or utterance."),
    mask: Optional[str] = typer.Option(None, "--mask", help="Emotion labels to disable, e.g. other,unknown."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", help="Refuse longer audio (seconds)."),
    max_size: Optional[float] = typer.Option(None, "--max-size", help="Refuse larger files (MB)."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not write the processed 16 kHz audio."),
) -> None:
    """Analyse call recordings: transcript, language, emotion, events, metrics and QA rule hits per call."""
    from rich.console import Console

    from callsense.cli.render import print_call, progress_hook
    from callsense.pipeline import Analyzer
    from callsense.pipeline.outputs import write_call_folder

    if fmt not in ("table", "text", "funasr"):
        raise UsageError(f"--format must be table, text or funasr, not {fmt!r}")
    options = build_options(language=language, channels=channels, asr_runtime=asr_runtime,
                            emotion_model=emotion_model, emotion_runtime=emotion_runtime, threads=threads,
                            device=device, no_emotion=no_emotion, no_qa=no_qa, rules=rules, offline=offline,
                            itn=itn, both_itn=both_itn, granularity=granularity, mask=mask,
                            max_duration=max_duration, max_size=max_size)
    if webhook:
        from callsense.pipeline.analyzer import parse_webhooks

        parse_webhooks(webhook)  # validate before any audio is touched
        options = options.replace(webhooks=tuple(webhook))
    metadata = parse_metadata(meta)
    console = Console(stderr=as_json, highlight=False)
    err_console = Console(stderr=True, highlight=False)
    analyzer = Analyzer(options)
    results: list[dict[str, Any]] = []
    first_failure: CallsenseError | None = None
    failed = 0
    for path in files:
        try:
            with progress_hook(console, path.name) as hook:
                run = analyzer.run(path, metadata=metadata, hooks=[hook])
            folder = write_call_folder(run, out, audio=not no_audio)
        except ModelError:
            raise  # every later file would fail the same way: stop with exit 4
        except CallsenseError as e:
            from callsense.cli.app import debug_enabled

            if debug_enabled():
                err_console.print_exception()
            err_console.print(f"[bold red]error:[/] {e}", soft_wrap=True)
            first_failure = first_failure or e
            failed += 1
            continue
        if as_json:
            results.append(run.result.to_dict())
        else:
            print_call(console, run.result, folder, fmt=fmt)
    if as_json:
        payload = results[0] if len(files) == 1 and results else results
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    if first_failure is not None:
        if len(files) > 1:
            err_console.print(f"{failed} of {len(files)} files failed")
        raise typer.Exit(first_failure.exit_code)
