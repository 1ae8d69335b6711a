"""`callsense adapt`: heads trained on a call centre's own labelled clips (docs/adapt.md).

``train SOURCE --out NAME`` embeds the clips with the configured emotion2vec+ model (cached by audio
hash), cross-validates a head grouped by speaker, prints UA / WA / macro-F1 and the confusion matrix and
saves the head as ONNX under ``$CALLSENSE_HOME/heads/NAME.onnx``; ``list``, ``show NAME``,
``eval NAME SOURCE`` and ``calibrate SOURCE`` (sensitivity weights for the nine classes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

adapt_app = typer.Typer(help="Custom emotion heads from your own labelled clips (docs/adapt.md).",
                        no_args_is_help=True)

SOURCE_HELP = ("CSV (header path,label[,speaker]) or JSONL of labelled clips; paths relative to the file; or "
               "store:corrections (reviewers' labels of stored segments, $CALLSENSE_DATABASE_URL).")


def register(app: typer.Typer) -> None:
    app.add_typer(adapt_app, name="adapt")


def _engine(emotion_model: str | None, runtime: str, offline: bool, threads: int) -> Any:
    from callsense.cli.emotion import _locate
    from callsense.engines import registry
    from callsense.engines.catalog import DEFAULT_EMOTION_MODEL, get_spec
    from callsense.errors import UsageError

    spec = get_spec(emotion_model or DEFAULT_EMOTION_MODEL)
    if spec.task != "emotion":
        raise UsageError(f"{spec.name} is not an emotion model")
    return registry.create("emotion", runtime, _locate(spec.name, runtime, offline), num_threads=threads,
                           name=spec.name)


def _embed(load_engine: Callable[[], Any], source: Path, console: Any, show_progress: bool) -> tuple[Any, Any]:
    """The engine and the embeddings of SOURCE's clips. SOURCE is read before ``load_engine`` runs, so a
    missing or malformed file is reported (exit 3) before any model is looked for."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from callsense.adapt.embed import embed_clips, embed_store, is_store_source
    from callsense.adapt.sources import read_source

    clips = None if is_store_source(source) else read_source(source)
    engine = load_engine()
    if clips is None:
        data = embed_store(engine, str(source))
        for path, reason in data.failed:
            console.print(f"[yellow]skipped[/] {path}: {reason}")
        return engine, data
    with Progress(TextColumn("embedding clips"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=not show_progress, transient=True) as bar:
        task = bar.add_task("embed", total=len(clips))
        data = embed_clips(engine, clips, advance=lambda: bar.advance(task))
    for path, reason in data.failed:
        console.print(f"[yellow]skipped[/] {path}: {reason}")
    return engine, data


def print_metrics(console: Any, m: Any) -> None:
    from rich.table import Table

    console.print(f"[bold]UA[/] {m.ua:.3f}   [bold]WA[/] {m.wa:.3f}   [bold]macro-F1[/] {m.macro_f1:.3f}   "
                  f"[dim]{m.n} clips, {m.folds}-fold grouped cross-validation[/]" if m.folds else
                  f"[bold]UA[/] {m.ua:.3f}   [bold]WA[/] {m.wa:.3f}   [bold]macro-F1[/] {m.macro_f1:.3f}   "
                  f"[dim]{m.n} clips[/]")
    table = Table(title="confusion (rows: true, columns: predicted)", title_justify="left")
    table.add_column("")
    for lab in m.labels:
        table.add_column(lab, justify="right")
    for lab, row in zip(m.labels, m.confusion):
        table.add_row(lab, *(str(v) for v in row))
    console.print(table)


@adapt_app.command("train")
def train(
    source: Path = typer.Argument(..., metavar="SOURCE", help=SOURCE_HELP),
    out: str = typer.Option(..., "--out", metavar="NAME", help="Head name (saved as $CALLSENSE_HOME/heads/NAME.onnx)."),
    kind: str = typer.Option("logreg", "--kind", metavar="logreg|mlp",
                             help="logreg (balanced logistic regression, default) or mlp (one hidden layer)."),
    emotion_model: str | None = typer.Option(None, "--emotion-model", metavar="NAME",
                                             help="The emotion2vec+ model whose embeddings the head reads."),
    emotion_runtime: str = typer.Option("onnx", "--emotion-runtime", metavar="onnx|funasr"),
    threads: int = typer.Option(2, "--threads", metavar="N"),
    offline: bool = typer.Option(False, "--offline", help="Never download models."),
    force: bool = typer.Option(False, "--force", help="Replace an existing head of that name."),
    as_json: bool = typer.Option(False, "--json", help="Print the head's metadata as one JSON document."),
) -> None:
    """Train a head on labelled clips and save it as ONNX with its metrics."""
    from rich.console import Console

    from callsense.adapt.head import check_name, head_path, model_checksum, save_head
    from callsense.adapt.train import KINDS, train_head, training_hash
    from callsense.errors import InputError, UsageError

    check_name(out)
    if kind not in KINDS:
        raise UsageError(f"--kind must be {' or '.join(KINDS)}, not {kind!r}")
    if head_path(out).exists() and not force:
        raise UsageError(f"a head named {out!r} exists ({head_path(out)})", hint="pass --force to replace it")
    console = Console(stderr=True, highlight=False)
    engine, data = _embed(lambda: _engine(emotion_model, emotion_runtime, offline, threads), source, console,
                          not as_json)
    if not len(data.labels):
        raise InputError("no clip could be used", source=source, hint="see the skipped clips above")
    trained = train_head(data.embeddings, data.labels, data.groups, kind)
    counts = {lab: data.labels.count(lab) for lab in trained.labels}
    meta = {
        "emotion_model": engine.info.name, "emotion_model_checksum": model_checksum(engine),
        "dim": int(data.embeddings.shape[1]), "labels": list(trained.labels), "kind": kind,
        "training": {"clips": len(data.labels), "sha256": training_hash(data.hashes, data.labels),
                     "label_counts": counts, "speakers": len(set(data.groups)), "skipped": len(data.failed),
                     "source": str(source)},
        "metrics": trained.metrics.to_dict(),
    }
    path = save_head(trained.onnx_model, meta, out)
    if as_json:
        typer.echo(json.dumps({"name": out, "path": str(path), **meta}, ensure_ascii=False, indent=2))
        return
    print_metrics(console, trained.metrics)
    console.print(f"saved head [bold]{out}[/] ({', '.join(trained.labels)}) to {path}")
    console.print(f"[dim]use it: callsense analyze CALL.wav --emotion-head {out}[/]")


@adapt_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="One JSON document.")) -> None:
    """The installed heads with their labels, model and cross-validated UA."""
    from rich.console import Console
    from rich.table import Table

    from callsense.adapt.head import heads_dir, list_heads, load_head

    rows = []
    for name in list_heads():
        h = load_head(name)
        rows.append({"name": name, "labels": list(h.labels), "emotion_model": h.emotion_model,
                     "clips": h.meta.get("training", {}).get("clips"), "ua": h.meta.get("metrics", {}).get("ua")})
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    console = Console(highlight=False)
    if not rows:
        console.print(f"no heads in {heads_dir()} (train one: callsense adapt train CLIPS.csv --out NAME)")
        return
    table = Table("name", "labels", "emotion model", "clips", "UA")
    for r in rows:
        table.add_row(r["name"], ", ".join(r["labels"]), r["emotion_model"], str(r["clips"]), f"{r['ua']:.3f}")
    console.print(table)


@adapt_app.command("show")
def show(name: str = typer.Argument(..., metavar="NAME")) -> None:
    """A head's metadata as JSON (model and checksum, labels, training set, metrics)."""
    from callsense.adapt.head import load_head

    typer.echo(json.dumps(load_head(name).summary(), ensure_ascii=False, indent=2))


@adapt_app.command("eval")
def eval_cmd(
    name: str = typer.Argument(..., metavar="NAME"),
    source: Path = typer.Argument(..., metavar="SOURCE", help=SOURCE_HELP),
    emotion_model: str | None = typer.Option(None, "--emotion-model", metavar="NAME"),
    emotion_runtime: str = typer.Option("onnx", "--emotion-runtime", metavar="onnx|funasr"),
    threads: int = typer.Option(2, "--threads", metavar="N"),
    offline: bool = typer.Option(False, "--offline"),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON document."),
) -> None:
    """Score a head on other labelled clips: UA, WA, macro-F1, confusion matrix."""
    from rich.console import Console

    from callsense.adapt.head import load_head, model_checksum
    from callsense.adapt.train import metrics_of
    from callsense.errors import InputError

    head = load_head(name)

    def checked_engine() -> Any:
        engine = _engine(emotion_model or head.emotion_model, emotion_runtime, offline, threads)
        head.check_engine(engine.info.name, model_checksum(engine))
        return engine

    console = Console(stderr=True, highlight=False)
    _, data = _embed(checked_engine, source, console, not as_json)
    if not len(data.labels):
        raise InputError("no clip could be used", source=source)
    unknown = sorted(set(data.labels) - set(head.labels))
    if unknown:
        raise InputError(f"labels the head does not know: {', '.join(unknown)} (it knows {', '.join(head.labels)})",
                         source=source)
    pred = [p.label for p in head.predict(data.embeddings)]
    m = metrics_of(list(data.labels), pred, head.labels)
    if as_json:
        typer.echo(json.dumps({"head": name, **m.to_dict(), "skipped": len(data.failed)}, ensure_ascii=False, indent=2))
        return
    print_metrics(console, m)


@adapt_app.command("calibrate")
def calibrate_cmd(
    source: Path = typer.Argument(..., metavar="SOURCE", help=SOURCE_HELP + " Labels among the nine classes."),
    emotion_model: str | None = typer.Option(None, "--emotion-model", metavar="NAME"),
    emotion_runtime: str = typer.Option("onnx", "--emotion-runtime", metavar="onnx|funasr"),
    threads: int = typer.Option(2, "--threads", metavar="N"),
    offline: bool = typer.Option(False, "--offline"),
    as_json: bool = typer.Option(False, "--json", help="Print the weights as one JSON document."),
) -> None:
    """Fit sensitivity weights for the nine classes from labelled clips (prints --emotion-weights)."""
    from rich.console import Console

    from callsense.adapt.weights import calibrate

    console = Console(stderr=True, highlight=False)
    _, data = _embed(lambda: _engine(emotion_model, emotion_runtime, offline, threads), source, console,
                     not as_json)
    weights, before, after = calibrate(data.scores, data.labels)
    flag = ",".join(f"{k}={v:g}" for k, v in weights.items())
    if as_json:
        typer.echo(json.dumps({"weights": weights, "ua_before": before, "ua_after": after,
                               "emotion_weights": flag}, ensure_ascii=False, indent=2))
        return
    console.print(f"UA {before:.3f} -> {after:.3f} on {len(data.labels)} clips")
    typer.echo(f"--emotion-weights {flag}" if flag else "no weights improve on these clips (all 1)")
