"""`callsense models list | path | pull | import | export`: the model cache."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer

from callsense.errors import DependencyError, UsageError

models_app = typer.Typer(help="List, download, import and export models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@models_app.command("list")
def list_models() -> None:
    """Every known model and runtime, and where it is installed."""
    from rich.console import Console
    from rich.table import Table

    from callsense.engines.manager import ModelManager

    mm = ModelManager(allow_download=False)
    table = Table(title=f"models (cache: {mm.models_dir})")
    for col in ("name", "task", "runtime", "installed", "path"):
        table.add_column(col, overflow="fold")
    for row in mm.listing():
        table.add_row(row["name"], row["task"], row["runtime"], row["installed"], row["path"])
    Console().print(table)


@models_app.command("path")
def path(name: str, runtime: Optional[str] = typer.Option(None, "--runtime")) -> None:
    """Print the directory of an installed model (exit 4 when it is not installed)."""
    from callsense.engines.manager import ModelManager

    mm = ModelManager(allow_download=False)
    typer.echo(str(mm.locate(name, runtime, pull=False).path))


@models_app.command("pull")
def pull(
    name: str,
    runtime: Optional[str] = typer.Option(None, "--runtime", help="onnx (default) or funasr."),
    hub: Optional[str] = typer.Option(None, "--hub", help="Only this hub: modelscope or huggingface "
                                      "(default: ModelScope first, then Hugging Face)."),
) -> None:
    """Download a model into the callsense cache (ModelScope first, then Hugging Face).

    emotion2vec models are published as FunASR checkpoints: the checkpoint is downloaded and converted to
    the ONNX format of the default runtime (no torch needed).
    """
    from callsense.engines.manager import ModelManager

    located = ModelManager(allow_download=True).pull(name, runtime, hub)
    typer.echo(f"{located.name} ({located.runtime}) -> {located.path}")


@models_app.command("import")
def import_dir(
    directory: Path,
    name: Optional[str] = typer.Option(None, "--name", help="Model name (default: detected)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="Install as this runtime (default: the "
                                          "model's default; a FunASR emotion2vec checkpoint is converted to onnx)."),
    link: bool = typer.Option(False, "--link", help="Symlink instead of copying."),
) -> None:
    """Import a model folder downloaded or made elsewhere (air-gapped machines).

    Accepts a sherpa-onnx SenseVoice folder, a FunASR checkpoint folder (config.yaml, model.pt, and for
    emotion2vec tokens.txt; emotion2vec is converted to ONNX without torch) or a callsense ONNX export.
    """
    from callsense.engines.manager import ModelManager

    located = ModelManager(allow_download=False).import_dir(directory, name, runtime, link=link)
    typer.echo(f"{located.name} ({located.runtime}) -> {located.path}")


@models_app.command("export")
def export(
    name: str,
    int8: bool = typer.Option(True, "--int8/--fp32", help="Also write the dynamic-int8 model."),
    source: Optional[Path] = typer.Option(None, "--from", help="FunASR checkpoint dir (default: installed one)."),
    use_torch: bool = typer.Option(False, "--torch", help="Trace FunASR's model with torch (the reference; "
                                   "needs the torch extra) instead of the torch-free conversion."),
) -> None:
    """Make the ONNX format of a model from its FunASR checkpoint."""
    from callsense.engines.catalog import get_spec
    from callsense.engines.manager import ModelManager, write_manifest

    spec = get_spec(name)
    fmt = spec.formats.get("onnx")
    if fmt is None or not (fmt.export_from or fmt.convert_from):
        raise UsageError(f"{spec.name} has no ONNX export")
    mm = ModelManager()
    if fmt.convert_from and not use_torch:
        src = source or mm.locate(spec.name, fmt.convert_from.split(":")[0]).path
        located = mm.convert(spec.name, "onnx", Path(src), int8=int8)
        typer.echo(f"{spec.name} (onnx) -> {located.path}")
        return
    if importlib.util.find_spec("torch") is None:
        raise DependencyError("exporting with torch needs the torch extra", hint="pip install 'callsense[torch]'")
    src_runtime, module_name, fn_name = fmt.export_from.split(":")
    src = source or mm.locate(spec.name, src_runtime).path
    out = mm.models_dir / spec.name / "onnx"
    fn = getattr(importlib.import_module(module_name), fn_name)
    fn(Path(src), out, int8=int8)
    write_manifest(out, {"name": spec.name, "runtime": "onnx", "exported_from": str(src)})
    typer.echo(f"{spec.name} (onnx) -> {out}")
