"""`callsense emotion FILE`: the standalone emotion2vec+ mode for short clips (the seeds' WebUI).

No VAD and no roles: the whole clip is one segment. Prints the emoji, the label in Chinese and
English and its confidence (with the runners-up when it is under 70 %), the full distribution as bars,
and in ``--granularity frame`` the timeline; writes ``result.json`` (and ``embeddings.npy``, as
``analyze`` names it, with
``--embeddings``, the processed 16 kHz audio as ``audio_16k.wav``) into
``<out>/outputs_YYYYMMDD_HHMMSS_<hash>/``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import wave
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import typer

from callsense.errors import UsageError

LONG_CLIP_S = 30.0  # over this, one distribution dilutes the emotion: point users at `analyze`
RUNNERS_UP_BELOW = 0.70  # under this confidence the 2nd and 3rd labels are what a reader should see
BAR_WIDTH = 30
EMBEDDINGS_FILE = "embeddings.npy"  # the name analyze's folders use; here one row ([1, D])


def register(app: typer.Typer) -> None:
    app.command("emotion")(emotion)


def emotion(
    file: Path = typer.Argument(..., metavar="FILE",
                                help="A short clip (3-10 s works best): WAV, MP3, M4A, FLAC, OGG ..."),
    granularity: str = typer.Option("utterance", "--granularity", "-g", metavar="utterance|frame",
                                    help="utterance (one distribution) or frame (also a timeline)."),
    embeddings: bool = typer.Option(False, "--embeddings",
                                    help="Write the utterance embedding to embeddings.npy (as analyze does)."),
    emotion_model: str | None = typer.Option(None, "--emotion-model", metavar="NAME",
                                             help="emotion2vec-plus-large (default), -base, -seed, "
                                                  "emotion2vec-base-finetuned."),
    emotion_runtime: str = typer.Option("onnx", "--emotion-runtime", metavar="onnx|funasr",
                                        help="onnx (default) or funasr (torch)."),
    out: Path = typer.Option(Path("outputs"), "--out", "-o", metavar="DIR", help="Folder for the output folder."),
    mask: str | None = typer.Option(None, "--mask", metavar="LABELS", help="Labels to disable, e.g. other,unknown."),
    window_ms: int = typer.Option(1000, "--window-ms", metavar="MS", help="Timeline window (frame granularity)."),
    hop_ms: int = typer.Option(250, "--hop-ms", metavar="MS", help="Timeline hop (frame granularity)."),
    emotion_head: str | None = typer.Option(None, "--emotion-head", metavar="NAME",
                                            help="A custom head (callsense adapt train): its label beside the nine."),
    emotion_weights: str | None = typer.Option(None, "--emotion-weights", metavar="LABEL=W,...",
                                               help="Sensitivity per class, e.g. angry=1.3,neutral=0.8."),
    trim: bool = typer.Option(True, "--trim/--no-trim", help="Cut leading and trailing silence (VAD) first."),
    threads: int = typer.Option(2, "--threads", metavar="N", help="Threads for the model."),
    device: str = typer.Option("cpu", "--device", metavar="cpu|cuda", help="Device (funasr runtime)."),
    offline: bool = typer.Option(False, "--offline", help="Never download models."),
    as_json: bool = typer.Option(False, "--json", help="Print result.json (one JSON document) to stdout instead of "
                                                        "the display."),
    embedding: bool | None = typer.Option(None, "--embedding", hidden=True, help="Deprecated: use --embeddings."),
    model: str | None = typer.Option(None, "--model", "-m", hidden=True, help="Deprecated: use --emotion-model."),
    runtime: str | None = typer.Option(None, "--runtime", hidden=True, help="Deprecated: use --emotion-runtime."),
) -> None:
    """Score the emotion of one short clip with emotion2vec+ (9 classes, confidence, optional timeline)."""
    from callsense.cli.options import prefer, writable_folder

    embedding = bool(prefer(embeddings or None, embedding, old="--embedding", new="--embeddings"))
    model = prefer(emotion_model, model, old="--model/-m", new="--emotion-model")
    runtime = prefer(emotion_runtime, runtime, old="--runtime", new="--emotion-runtime", default="onnx")
    from rich.console import Console

    from callsense.adapt.cli_options import check_head, parse_weights
    from callsense.adapt.clip import mono, prepare_clip
    from callsense.adapt.engine import with_head
    from callsense.adapt.reply import load_policy
    from callsense.audio.decode import load_audio
    from callsense.engines import registry
    from callsense.engines.base import EmotionOptions, SegmentAudio
    from callsense.engines.catalog import DEFAULT_EMOTION_MODEL, get_spec
    from callsense.engines.emotion2vec.head import level_dbfs
    from callsense.labels import SAMPLE_RATE

    masked = tuple(m.strip() for m in (mask or "").split(",") if m.strip())  # EmotionOptions checks them
    weights = parse_weights(emotion_weights)
    check_head(emotion_head)
    policy = load_policy()
    spec = get_spec(model or DEFAULT_EMOTION_MODEL)
    if spec.task != "emotion":
        raise UsageError(f"{spec.name} is not an emotion model")
    options = EmotionOptions(granularity=granularity, window_ms=window_ms, hop_ms=hop_ms, masked=masked,  # type: ignore[arg-type]
                             embeddings=True, weights=weights)
    writable_folder(out, option="--out")
    console = Console(stderr=as_json, highlight=False)
    timings: dict[str, float] = {}
    warnings: list[str] = []

    t0 = time.perf_counter()
    audio = load_audio(file)
    tracks = [t.samples for t in audio.tracks]
    prepared = prepare_clip(mono(tracks), trim=trim, source=file)  # too quiet: exit 3 before the model loads
    samples = prepared.samples
    if len(tracks) > 1:
        warnings.append(f"{len(tracks)} channels mixed to mono; for calls use `callsense analyze`")
    timings["decode"] = _ms_since(t0)
    seconds = len(samples) / SAMPLE_RATE
    if seconds > LONG_CLIP_S:
        warnings.append(f"the clip is {seconds:.0f} s long: one distribution over more than {LONG_CLIP_S:.0f} s "
                        "dilutes emotion; `callsense analyze` cuts speech into turns first")

    t0 = time.perf_counter()
    engine = with_head(registry.create("emotion", runtime, _locate(spec.name, runtime, offline),
                                       num_threads=threads, device=device, name=spec.name), emotion_head)
    timings["load"] = _ms_since(t0)
    t0 = time.perf_counter()
    result = engine.score([SegmentAudio(id="clip", samples=samples, start_ms=0)], options)[0]
    timings["emotion"] = _ms_since(t0)

    clip = _clip_result(audio, engine.info, options, samples, result, level_dbfs(samples), timings, warnings,
                        embedding_file=EMBEDDINGS_FILE if embedding and result.embedding is not None else None)
    clip = _with_answer(clip, prepared.trim, policy, options.weights)
    folder = _write_folder(out, audio.source.sha256, clip, samples, result.embedding if embedding else None)
    if as_json:
        typer.echo(json.dumps(_to_jsonable(clip), ensure_ascii=False, indent=2))
    else:
        print_clip(console, clip)
        for w in warnings:
            console.print(f"[yellow]warning:[/] {w}")
        console.print(f"[dim]wrote {folder}[/]")


def _locate(name: str, runtime: str, offline: bool) -> Path:
    from callsense.engines.manager import ModelManager

    manager = ModelManager(allow_download=False if offline else None)
    if runtime == "onnx":
        from callsense.engines.emotion2vec import ensure_onnx

        return ensure_onnx(manager, name)
    return manager.locate(name, runtime).path


def _ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def _clip_result(audio: Any, info: Any, options: Any, samples: np.ndarray, out: Any, level: float,
                 timings: dict[str, float], warnings: list[str], *, embedding_file: str | None):
    from callsense.analysis.emotion import segment_emotion, timeline_points
    from callsense.labels import EMOTION_NAMES
    from callsense.result.emotion import ClipEmotion

    return ClipEmotion(
        kind="clip-emotion", created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source=audio.source, model=info, granularity=options.granularity,
        duration_ms=round(len(samples) * 1000 / 16000), level_dbfs=round(level, 2),
        emotion=segment_emotion(out, 0 if embedding_file else None), labels=EMOTION_NAMES,
        window_ms=options.window_ms, hop_ms=options.hop_ms, timeline=timeline_points(out, segment_id="clip"),
        masked=options.masked, embedding_file=embedding_file, timings_ms=timings, warnings=tuple(warnings),
    )


def _with_answer(clip: Any, trim: Any, policy: Any, weights: Any) -> Any:
    """The clip result with its trim, weights, fallback and reply style (docs/adapt.md)."""
    from callsense.result.emotion import ClipTrimInfo

    em = clip.emotion
    answer = policy.answer(em.label, em.confidence, em.reason)
    return dataclasses.replace(clip, trim=ClipTrimInfo(trim.start_ms, trim.end_ms, trim.kept_ms),
                               weights=dict(weights), fallback=answer["fallback"],
                               reply_style=answer["reply_style"])


def _to_jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(obj), ensure_ascii=False, default=str))


def _write_folder(out_root: Path, sha256: str, clip: Any, samples: np.ndarray, embedding: np.ndarray | None) -> Path:
    """``<out>/outputs_YYYYMMDD_HHMMSS_<hash8>/`` written under a temporary name, then renamed."""
    out_root.mkdir(parents=True, exist_ok=True)
    base = f"outputs_{datetime.now().strftime('%Y%m%d_%H%M%S')}_{sha256[:8]}"
    target, k = out_root / base, 2
    while target.exists():
        target, k = out_root / f"{base}-{k}", k + 1
    tmp = out_root / f".{target.name}.partial"
    tmp.mkdir()
    (tmp / "result.json").write_text(json.dumps(_to_jsonable(clip), ensure_ascii=False, indent=2) + "\n", "utf-8")
    if embedding is not None:
        np.save(tmp / EMBEDDINGS_FILE, np.asarray(embedding, np.float32).reshape(1, -1))  # [1, D], as analyze: row per segment
    with wave.open(str(tmp / "audio_16k.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    tmp.rename(target)
    return target


# ---- display ---------------------------------------------------------------------------------------------
def headline(label: str, confidence: float) -> str:
    """``😠 愤怒 (Angry)  78.6%``: the seeds' display line."""
    from callsense.labels import EMOTION_BY_NAME

    e = EMOTION_BY_NAME[label]
    return f"{e.emoji} {e.zh} ({e.en})  {confidence * 100:.1f}%"


def print_clip(console: Any, clip: Any) -> None:
    from rich.table import Table

    from callsense.labels import EMOTIONS

    em = clip.emotion
    console.print(f"[bold]{headline(em.label, em.confidence)}[/]   [dim]{clip.model.name} ({clip.model.runtime}), "
                  f"{clip.duration_ms / 1000:.2f} s, {clip.level_dbfs:.1f} dBFS[/]")
    if em.reason:
        console.print(f"[yellow]label forced to unknown: {em.reason}[/] (clip shorter than the minimum to judge)")
    if em.flags:
        console.print(f"[yellow]flags:[/] {', '.join(em.flags)}")
    if em.custom is not None:
        console.print(f"[bold]{em.custom.head}:[/] {em.custom.label} {em.custom.confidence * 100:.1f}%  [dim]"
                      + ", ".join(f"{k} {v * 100:.0f}%" for k, v in em.custom.distribution.items()) + "[/]")
    if getattr(clip, "trim", None) is not None and (clip.trim.start_ms or clip.trim.end_ms):
        console.print(f"[dim]silence trimmed: {clip.trim.start_ms} ms at the start, {clip.trim.end_ms} ms at "
                      "the end[/]")
    if getattr(clip, "fallback", None):
        console.print(f"[yellow]unsure ({clip.fallback['reason']}):[/] {clip.fallback['suggested_response']}")
    ranked = sorted(range(len(em.scores)), key=lambda i: -em.scores[i])
    if em.confidence < RUNNERS_UP_BELOW and not em.reason:
        ups = ", ".join(headline(EMOTIONS[i].name, em.scores[i]) for i in ranked[1:3])
        console.print(f"[dim]low confidence; next:[/] {ups}")
    table = Table(show_header=False, box=None, pad_edge=False)
    for e in EMOTIONS:
        s = em.scores[e.index]
        bar = "█" * round(s * BAR_WIDTH)
        style = "bold" if e.name == em.label else ""
        table.add_row(e.emoji, f"{e.zh} {e.en}", f"[{style}]{bar}[/]" if style else bar, f"{s * 100:5.1f}%")
    console.print(table)
    if clip.granularity == "frame" and clip.timeline:
        console.print(f"[bold]timeline[/] [dim](windows of {clip.window_ms} ms every {clip.hop_ms} ms; runs of "
                      f"the same label merged)[/]")
        for start, end, label, mean in timeline_runs(clip.timeline):
            console.print(f"  {start / 1000:6.2f}–{end / 1000:6.2f} s  {headline(label, mean)}")


def timeline_runs(points: Any) -> list[tuple[int, int, str, float]]:
    """Consecutive windows with the same top label merged: ``(start_ms, end_ms, label, mean score)``."""
    from callsense.labels import EMOTION_NAMES

    runs: list[list[Any]] = []
    for p in points:
        score = p.scores[EMOTION_NAMES.index(p.label)]
        if runs and runs[-1][2] == p.label:
            runs[-1][1] = p.end_ms
            runs[-1][3].append(score)
        else:
            runs.append([p.start_ms, p.end_ms, p.label, [score]])
    return [(s, e, lab, float(np.mean(v))) for s, e, lab, v in runs]
