"""Model manager: where models are looked for, how they are pulled from the hubs, imported and listed.

Lookup order for ``(model, runtime)``:

1. every directory in ``CALLSENSE_MODEL_DIR`` (``os.pathsep``-separated): ``<dir>/<model>/<runtime>/``
2. the callsense cache: ``$CALLSENSE_HOME/models/<model>/<runtime>/`` (default: the user cache dir)
3. the hubs' own caches (ModelScope ``~/.cache/modelscope/hub/models/<repo>``, Hugging Face cache)

When nothing is found and downloads are allowed (not ``--offline`` / ``CALLSENSE_OFFLINE=1``), the
model is pulled into the callsense cache. Every failure is one :class:`ModelNotFoundError` naming the
model, the places looked at, and the command that fixes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from callsense.engines.catalog import CATALOG, HUBS, ModelSpec, RuntimeFormat, get_spec
from callsense.errors import ModelNotFoundError, UsageError

log = logging.getLogger("callsense")

MANIFEST = "callsense-manifest.json"


def callsense_home() -> Path:
    env = os.environ.get("CALLSENSE_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("callsense"))


def offline() -> bool:
    return os.environ.get("CALLSENSE_OFFLINE", "").lower() in {"1", "true", "yes"}


def missing_files(directory: Path, fmt: RuntimeFormat) -> list[str]:
    """Required files of ``fmt`` absent from ``directory`` (``"a|b"`` entries need one of them)."""
    missing = []
    for entry in fmt.required:
        if not any((directory / alt).is_file() for alt in entry.split("|")):
            missing.append(entry.replace("|", " or "))
    return missing


@dataclass(frozen=True)
class Located:
    name: str
    runtime: str
    path: Path
    origin: str  # "model_dir", "cache", "modelscope-cache", "huggingface-cache", "pulled", "exported"


class ModelManager:
    def __init__(self, home: Path | None = None, model_dirs: list[Path] | None = None,
                 allow_download: bool | None = None):
        self.home = home or callsense_home()
        if model_dirs is None:
            env = os.environ.get("CALLSENSE_MODEL_DIR", "")
            model_dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        self.model_dirs = model_dirs
        self.allow_download = (not offline()) if allow_download is None else allow_download

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    # ---- lookup -------------------------------------------------------------------------------
    def candidates(self, spec: ModelSpec, runtime: str) -> list[tuple[str, Path]]:
        out = [("model_dir", d / spec.name / runtime) for d in self.model_dirs]
        out.append(("cache", self.models_dir / spec.name / runtime))
        for src in spec.formats[runtime].sources:
            if src.hub == "modelscope":
                ms_root = Path(os.environ.get("MODELSCOPE_CACHE", Path.home() / ".cache" / "modelscope" / "hub"))
                out.append(("modelscope-cache", ms_root / "models" / src.repo_id))
                out.append(("modelscope-cache", ms_root / src.repo_id))
            else:
                snap = _hf_cached_snapshot(src.repo_id)
                if snap is not None:
                    out.append(("huggingface-cache", snap))
        return out

    def find(self, name: str, runtime: str | None = None) -> Located | None:
        spec = get_spec(name)
        runtime = self._runtime(spec, runtime)
        fmt = spec.formats[runtime]
        for origin, path in self.candidates(spec, runtime):
            if path.is_dir() and not missing_files(path, fmt):
                return Located(spec.name, runtime, path, origin)
        return None

    def locate(self, name: str, runtime: str | None = None, *, pull: bool | None = None) -> Located:
        """Find a model, pulling it when allowed; raise one actionable error otherwise."""
        spec = get_spec(name)
        runtime = self._runtime(spec, runtime)
        found = self.find(spec.name, runtime)
        if found:
            return found
        fmt = spec.formats[runtime]
        pull = self.allow_download if pull is None else pull
        if pull and fmt.sources:
            try:
                return self.pull(spec.name, runtime)
            except ModelNotFoundError as e:
                raise ModelNotFoundError(e.message, hint=e.hint) from e
        raise self.not_found(spec, runtime, None if pull is None or self.allow_download else "")

    def not_found(self, spec: ModelSpec, runtime: str, why: str | None = None) -> ModelNotFoundError:
        fmt = spec.formats[runtime]
        looked = []
        for _, path in self.candidates(spec, runtime):
            if path.is_dir():
                looked.append(f"{path} (missing {', '.join(missing_files(path, fmt))})")
            else:
                looked.append(str(path))
        if why is None:
            why = "no hub publishes this format" if not fmt.sources else (
                "downloads are off (--offline or CALLSENSE_OFFLINE=1)" if not self.allow_download else "")
        return ModelNotFoundError(
            f"model {spec.name} ({runtime} runtime) is not installed; looked in: {'; '.join(looked)}"
            + (f"; {why}" if why else ""),
            hint=self._hint(spec, runtime),
        )

    def _hint(self, spec: ModelSpec, runtime: str) -> str:
        fmt = spec.formats[runtime]
        if fmt.sources:
            return (f"run `callsense models pull {spec.name} --runtime {runtime}` (add --hub huggingface if "
                    f"ModelScope is unreachable), or `callsense models import DIR` for a copy made elsewhere")
        src_runtime = (fmt.export_from or "funasr").split(":")[0]
        return (f"run `pip install 'callsense[torch]'` then `callsense models pull {spec.name} --runtime "
                f"{src_runtime}` and `callsense models export {spec.name}`")

    @staticmethod
    def _runtime(spec: ModelSpec, runtime: str | None) -> str:
        runtime = runtime or spec.default_runtime
        if runtime not in spec.formats:
            raise UsageError(f"model {spec.name} has no {runtime!r} runtime; valid: {', '.join(spec.formats)}")
        return runtime

    # ---- pull / import --------------------------------------------------------------------------
    def pull(self, name: str, runtime: str | None = None, hub: str | None = None) -> Located:
        """Download a model from a hub into the callsense cache and record file checksums."""
        spec = get_spec(name)
        runtime = self._runtime(spec, runtime)
        fmt = spec.formats[runtime]
        if hub is not None and hub not in HUBS:
            raise UsageError(f"unknown hub {hub!r}; valid: {', '.join(HUBS)}")
        sources = [s for s in fmt.sources if hub is None or s.hub == hub]
        if not sources:
            raise self.not_found(spec, runtime)
        target = self.models_dir / spec.name / runtime
        errors = []
        for src in sources:
            tmp = target.with_name(target.name + ".partial")
            try:
                log.info("downloading %s from %s (%s)", spec.name, src.hub, src.repo_id)
                _download(src.hub, src.repo_id, tmp, src.allow_patterns, src.revision)
            except Exception as e:  # hub clients raise many types; every one means "not from here"
                errors.append(f"{src.hub} ({src.repo_id}): {_short(e)}")
                continue
            if missing_files(tmp, fmt):
                errors.append(f"{src.hub} ({src.repo_id}): download lacks {', '.join(missing_files(tmp, fmt))}")
                continue
            write_manifest(tmp, {"name": spec.name, "runtime": runtime, "hub": src.hub, "repo_id": src.repo_id})
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)  # a model appears whole or not at all
            return Located(spec.name, runtime, target, "pulled")
        raise ModelNotFoundError(
            f"could not download {spec.name} ({runtime}): {'; '.join(errors)}",
            hint="check the network or proxy (HTTPS_PROXY), try the other hub with --hub, or download the files on "
                 f"another machine and run `callsense models import DIR`; set CALLSENSE_MODEL_DIR to use a local copy")

    def import_dir(self, directory: Path, name: str | None = None, runtime: str | None = None,
                   *, link: bool = False) -> Located:
        """Copy (or symlink) a model directory made elsewhere into the cache, detecting its format."""
        directory = Path(directory).expanduser().resolve()
        if not directory.is_dir():
            raise UsageError(f"{directory}: not a directory")
        matches = detect_format(directory) if name is None else [
            (get_spec(name), self._runtime(get_spec(name), runtime))]
        if not matches:
            raise ModelNotFoundError(f"{directory}: not a model directory callsense recognises",
                                     hint="expected a sherpa-onnx SenseVoice export, a FunASR checkpoint "
                                          "(config.yaml + model.pt) or a callsense ONNX export")
        spec, runtime = matches[0]
        fmt = spec.formats[runtime]
        missing = missing_files(directory, fmt)
        if missing:
            raise ModelNotFoundError(f"{directory}: incomplete {spec.name} ({runtime}) model, missing {', '.join(missing)}")
        target = self.models_dir / spec.name / runtime
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        if link:
            target.symlink_to(directory, target_is_directory=True)
        else:
            shutil.copytree(directory, target)
            write_manifest(target, {"name": spec.name, "runtime": runtime, "imported_from": str(directory)})
        return Located(spec.name, runtime, target, "cache")

    def listing(self) -> list[dict[str, str]]:
        rows = []
        for spec in CATALOG.values():
            for runtime in spec.formats:
                found = self.find(spec.name, runtime)
                rows.append({
                    "name": spec.name,
                    "task": spec.task,
                    "runtime": runtime,
                    "installed": "yes" if found else "no",
                    "path": str(found.path) if found else "",
                    "description": spec.description,
                })
        return rows


def detect_format(directory: Path) -> list[tuple[ModelSpec, str]]:
    """Guess which catalogue model and runtime a directory holds."""
    out = []
    config = (directory / "config.yaml").read_text("utf-8", errors="replace") if (directory / "config.yaml").is_file() else ""
    for spec in CATALOG.values():
        for runtime, fmt in spec.formats.items():
            if missing_files(directory, fmt):
                continue
            if spec.task in ("segmentation", "speaker-embedding"):
                from callsense.engines.diarization.formats import directory_kind

                if directory_kind(directory) != spec.task:
                    continue
            if spec.task == "asr" and runtime == "onnx" and (directory / "head.npz").is_file():
                continue  # a callsense emotion2vec export (model.onnx + tokens.txt + head.npz)
            if runtime == "funasr":
                if spec.task == "asr" and "SenseVoice" not in config:
                    continue
                if spec.task == "emotion" and "motion2vec" not in config:
                    continue
            out.append((spec, runtime))
    manifest = read_manifest(directory)
    if manifest and len(out) > 1:
        out = [m for m in out if m[0].name == manifest.get("name")] or out
    return out


def file_digests(directory: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            h = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digests[str(path.relative_to(directory))] = h.hexdigest()
    return digests


def write_manifest(directory: Path, facts: dict[str, str]) -> None:
    data = dict(facts, files=file_digests(directory))
    (directory / MANIFEST).write_text(json.dumps(data, indent=2), encoding="utf-8")


def read_manifest(directory: Path) -> dict | None:
    try:
        return json.loads((directory / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def _download(hub: str, repo_id: str, target: Path, patterns: tuple[str, ...] | None, revision: str | None) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if hub == "huggingface":
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id, local_dir=target, allow_patterns=list(patterns) if patterns else None,
                          revision=revision, etag_timeout=10)
    else:
        from modelscope.hub.snapshot_download import snapshot_download as ms_download

        ms_download(repo_id, local_dir=str(target), allow_patterns=list(patterns) if patterns else None,
                    revision=revision)


def _hf_cached_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or hub library absent
        return None


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]
