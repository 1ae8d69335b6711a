"""`callsense analyze FILE...`: analyse recordings and write one output folder per call."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from callsense.errors import CallsenseError, InputError, ModelError, UsageError


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


def parse_roles(spec: Optional[str]) -> tuple[str, ...]:
    """``--roles agent,customer`` -> ("agent", "customer"); refuses anything but agent/customer/unknown."""
    if not spec:
        return ()
    roles = tuple(r.strip() for r in spec.split(","))
    bad = [r for r in roles if r not in ("agent", "customer", "unknown")]
    if bad:
        raise UsageError(f"--roles: unknown role {', '.join(bad)}; valid: agent, customer, unknown (e.g. customer,agent)")
    return roles


def build_options(*, language: str, channels: Optional[str], asr_runtime: str, emotion_model: Optional[str],
                  emotion_runtime: str, threads: int, device: str, no_emotion: bool, no_qa: bool,
                  rules: Optional[Path], offline: bool, itn: bool, both_itn: bool, granularity: str,
                  mask: Optional[str], max_duration: Optional[float], max_size: Optional[float],
                  emotion_head: Optional[str] = None, emotion_weights: Optional[str] = None,
                  agent_lexicon: Optional[Path] = None):
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
    from callsense.adapt.cli_options import check_head, parse_weights
    from callsense.pipeline.diarize import read_lexicon

    emodel = get_spec(emotion_model or DEFAULT_EMOTION_MODEL).name
    if rules is not None and not rules.is_file():
        raise UsageError(f"{rules}: rule file not found")
    return AnalyzeOptions(
        audio=audio,
        asr=AsrOptions(language=language, use_itn=itn, both_itn=both_itn),
        emotion=EmotionOptions(granularity=granularity, masked=masked,  # type: ignore[arg-type]
                               weights=parse_weights(emotion_weights)),
        asr_runtime=asr_runtime, emotion_model=emodel, emotion_runtime=emotion_runtime,
        emotion_head=check_head(emotion_head),
        run_emotion=not no_emotion, num_threads=threads, device=device, rules=rules, run_qa=not no_qa,
        allow_download=False if offline else None,
        agent_lexicon=read_lexicon(agent_lexicon),  # --agent-lexicon, else $CALLSENSE_AGENT_LEXICON
    )


def expand_sources(args: list[Path]) -> tuple[list[Path], list[tuple[str, CallsenseError]]]:
    """Files to analyse from FILE, DIR (recursive, audio extensions) and GLOB arguments, as ``batch`` reads them.

    A folder or glob that yields nothing is a failure of its own; a FILE is kept as given (a missing one
    fails when it is analysed, with the decoder's reason).
    """
    from callsense.batch.sources import AUDIO_EXTENSIONS, collect

    files: list[Path] = []
    failures: list[tuple[str, CallsenseError]] = []
    for arg in args:
        text = str(arg)
        p = arg.expanduser()
        if p.is_dir() or (not p.exists() and any(ch in text for ch in "*?[")):
            found = [Path(item.path) for item in collect(text) if item.path]
            if not found:
                exts = " ".join(AUDIO_EXTENSIONS)
                failures.append((text, InputError("no recordings found", source=text,
                                                  hint=f"looked for {exts}")))
            files.extend(found)
        else:
            files.append(p)
    return files, failures


def _send_alerts(run: Any, folder: Path, targets: Any) -> Any:
    """No store here, so no outbox: alerts go out in-process once the call's folder is written (a dead
    webhook cannot cost the result), and their delivery records are added to the folder's result.json."""
    import dataclasses

    from callsense.pipeline.outputs import RESULT_FILE
    from callsense.result.io import dump_result
    from callsense.rules.alerts import attach_alerts

    if not targets or not run.result.rule_hits:
        return run
    result = attach_alerts(run.result, targets)
    if result is run.result:
        return run
    tmp = folder / f".{RESULT_FILE}.tmp"
    tmp.write_text(dump_result(result) + "\n", encoding="utf-8")
    tmp.replace(folder / RESULT_FILE)
    return dataclasses.replace(run, result=result)


def analyze(
    files: list[Path] = typer.Argument(..., metavar="FILE|DIR|GLOB...",
                                       help="Recordings (WAV, MP3, M4A, FLAC, OGG/Opus, AMR, WebM, video), folders "
                                            "(searched recursively) or quoted globs such as 'calls/**/*.wav'."),
    out: Path = typer.Option(Path("outputs"), "--out", "-o", metavar="DIR",
                             help="Folder for the per-call output folders."),
    language: str = typer.Option("auto", "--language", "-l", metavar="auto|zh|en|yue|ja|ko", help="Spoken language."),
    channels: Optional[str] = typer.Option(None, "--channels", metavar="ROLES",
                                           help="Stereo role map, e.g. agent,customer (default) or customer,agent."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout: an object with calls (the results) "
                                                        "and failures (path, code and reason of each broken input)."),
    fmt: str = typer.Option("table", "--format", metavar="table|text|funasr", help="How segments are printed."),
    asr_runtime: str = typer.Option("onnx", "--asr-runtime", metavar="onnx|ort|funasr",
                                    help="SenseVoice runtime: onnx (sherpa-onnx), ort (onnxruntime) or funasr (torch)."),
    emotion_model: Optional[str] = typer.Option(None, "--emotion-model", metavar="NAME",
                                                help="emotion2vec-plus-large (default), -base, -seed."),
    emotion_runtime: str = typer.Option("onnx", "--emotion-runtime", metavar="onnx|funasr",
                                        help="emotion2vec runtime: onnx or funasr (torch)."),
    emotion_head: Optional[str] = typer.Option(None, "--emotion-head", metavar="NAME",
                                               help="A custom head (callsense adapt train): its labels per segment."),
    emotion_weights: Optional[str] = typer.Option(None, "--emotion-weights", metavar="LABEL=W,...",
                                                  help="Sensitivity per class, e.g. angry=1.3,neutral=0.8."),
    threads: int = typer.Option(2, "--threads", metavar="N", help="Threads per model."),
    device: str = typer.Option("cpu", "--device", metavar="cpu|cuda[:N]",
                              help="cpu, cuda or cuda:N (pip install 'callsense[gpu]')."),
    no_emotion: bool = typer.Option(False, "--no-emotion", help="Skip emotion2vec (SenseVoice tags only)."),
    no_qa: bool = typer.Option(False, "--no-qa", help="Skip metrics and QA rules."),
    rules: Optional[Path] = typer.Option(None, "--rules", metavar="FILE",
                                         help="QA rule YAML (default: the shipped pack)."),
    meta: list[str] = typer.Option([], "--meta", metavar="KEY=VALUE", help="Call metadata for rules (repeatable)."),
    webhook: list[str] = typer.Option([], "--webhook", metavar="[FORMAT:]URL",
                                      help="Alert target, FORMAT one of generic, wecom, dingtalk, feishu, slack "
                                           "(repeatable)."),
    offline: bool = typer.Option(False, "--offline", help="Never download models."),
    itn: bool = typer.Option(True, "--itn/--no-itn", help="Inverse text normalisation (numbers, punctuation)."),
    both_itn: bool = typer.Option(False, "--both-itn", help="Also store the text without ITN (second decode)."),
    granularity: str = typer.Option("frame", "--granularity", metavar="frame|utterance",
                                    help="frame (emotion timeline) or utterance."),
    mask: Optional[str] = typer.Option(None, "--mask", metavar="LABELS",
                                       help="Emotion labels to disable, e.g. other,unknown."),
    max_duration: Optional[float] = typer.Option(None, "--max-duration", metavar="SECONDS",
                                                 help="Refuse longer recordings."),
    max_size: Optional[float] = typer.Option(None, "--max-size", metavar="MB", help="Refuse larger files."),
    no_audio: bool = typer.Option(False, "--no-audio", help="Do not write the processed 16 kHz audio."),
    roles: Optional[str] = typer.Option(None, "--roles", help="Mono calls: roles of diarized speakers 0,1,... "
                                                             "in order of first speech, e.g. agent,customer."),
    no_diarize: bool = typer.Option(False, "--no-diarize", help="Mono calls: one unknown speaker, no diarization."),
    agent_lexicon: Optional[Path] = typer.Option(None, "--agent-lexicon", metavar="FILE",
                                                 help="Mono calls: agent phrases, one per line, added to the built-in "
                                                      "ones (-PHRASE removes one); default $CALLSENSE_AGENT_LEXICON."),
) -> None:
    """Analyse call recordings: transcript, language, emotion, events, metrics and QA rule hits per call.

    A run over several files (or a folder, or a glob) reports each broken file with its reason and
    carries on; it exits 3 when any failed. A missing model stops it at once (exit 4).
    """
    from rich.console import Console
    from rich.markup import escape

    from callsense.cli.options import writable_folder
    from callsense.cli.render import print_call, progress_hook
    from callsense.pipeline import Analyzer
    from callsense.pipeline.outputs import write_call_folder

    if fmt not in ("table", "text", "funasr"):
        raise UsageError(f"--format must be table, text or funasr, not {fmt!r}")
    options = build_options(language=language, channels=channels, asr_runtime=asr_runtime,
                            emotion_model=emotion_model, emotion_runtime=emotion_runtime, threads=threads,
                            device=device, no_emotion=no_emotion, no_qa=no_qa, rules=rules, offline=offline,
                            itn=itn, both_itn=both_itn, granularity=granularity, mask=mask,
                            max_duration=max_duration, max_size=max_size, emotion_head=emotion_head,
                            emotion_weights=emotion_weights, agent_lexicon=agent_lexicon)
    if webhook:
        from callsense.pipeline.analyzer import parse_webhooks

        parse_webhooks(webhook)  # validate before any audio is touched
        options = options.replace(webhooks=tuple(webhook))
    if roles or no_diarize:
        options = options.replace(roles=parse_roles(roles), diarize=not no_diarize)
    metadata = parse_metadata(meta)
    writable_folder(out, option="--out")  # before the models load: a bad --out costs nothing
    paths, source_failures = expand_sources(files)
    failures: list[tuple[str, CallsenseError]] = []
    console = Console(stderr=as_json, highlight=False)
    err_console = Console(stderr=True, highlight=False)

    def fail(where: str, err: CallsenseError) -> None:
        from callsense.cli.app import debug_enabled

        if debug_enabled():
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        failures.append((where, err))

    for where, err in source_failures:
        fail(where, err)
    analyzer = Analyzer(options) if paths else None
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            with progress_hook(console, path.name) as hook:
                run = analyzer.run(path, metadata=metadata, hooks=[hook])  # type: ignore[union-attr]
            try:
                folder = write_call_folder(run, out, audio=not no_audio)
                run = _send_alerts(run, folder, analyzer.alert_targets())  # type: ignore[union-attr]
            except OSError as e:
                raise InputError(f"cannot write the output folder: {e.strerror or e}", source=out,
                                 hint="check --out: free space and permissions") from e
        except ModelError:
            raise  # every later file would fail the same way: stop with exit 4
        except CallsenseError as e:
            fail(str(path), e)
            continue
        if as_json:
            results.append(run.result.to_dict())
        else:
            print_call(console, run.result, folder, fmt=fmt)
    if as_json:
        payload = {"calls": results,
                   "failures": [{"path": where, "code": e.code, "reason": str(e)} for where, e in failures]}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    if failures:
        total = len(paths) + len(source_failures)
        if total > 1:
            err_console.print(f"{len(failures)} of {total} inputs failed")
        raise typer.Exit(failures[0][1].exit_code)
