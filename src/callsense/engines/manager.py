"""Model manager: where models are looked for, how they are pulled from the hubs, imported and listed.

Lookup order for ``(model, runtime)``:

1. every directory in ``CALLSENSE_MODEL_DIR`` (``os.pathsep``-separated): ``<dir>/<model>/<runtime>/``
2. the callsense cache: ``$CALLSENSE_HOME/models/<model>/<runtime>/`` (default: the user cache dir)
3. the hubs' own caches (ModelScope ``~/.cache/modelscope/hub/models/<repo>``, Hugging Face cache)

A format made by conversion (emotion2vec's ONNX model, from its FunASR checkpoint) is converted from an
installed checkpoint. When nothing is found and downloads are allowed (not ``--offline`` /
``CALLSENSE_OFFLINE=1``), the model is pulled into the callsense cache from ModelScope, then Hugging Face;
a hub that does not answer a quick probe is skipped (:mod:`callsense.engines.hubs`), so without network
the answer comes in seconds. Every failure is one :class:`ModelNotFoundError` naming the model, the
places looked at, and the ways forward (:class:`HubUnreachableError` when no hub could be reached).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from callsense.engines import hubs
from callsense.engines.catalog import CATALOG, HUB_NAMES, HUBS, ModelSpec, RuntimeFormat, get_spec
from callsense.errors import HubUnreachableError, ModelNotFoundError, UsageError

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
    origin: str  # "model_dir", "cache", "modelscope-cache", "huggingface-cache", "pulled", "converted"


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
        """Find a model, converting or pulling it when allowed; raise one actionable error otherwise.

        A format made by conversion (emotion2vec's ONNX model) is converted from an installed source
        checkpoint first; only when that is missing too is the source pulled.
        """
        spec = get_spec(name)
        runtime = self._runtime(spec, runtime)
        found = self.find(spec.name, runtime)
        if found:
            return found
        fmt = spec.formats[runtime]
        if fmt.convert_from:
            source = self.find(spec.name, fmt.convert_from.split(":")[0])
            if source is not None:
                return self.convert(spec.name, runtime, source.path)
        if (self.allow_download if pull is None else pull) and (fmt.sources or fmt.convert_from):
            return self.pull(spec.name, runtime)
        # pull=False is a caller's choice (e.g. `models path`), not the user's --offline: no reason then
        raise self.not_found(spec, runtime, None if pull is None else "")

    def _looked(self, spec: ModelSpec, runtime: str) -> list[str]:
        fmt = spec.formats[runtime]
        looked = []
        for _, path in self.candidates(spec, runtime):
            if path.is_dir():
                looked.append(f"{path} (missing {', '.join(missing_files(path, fmt))})")
            else:
                looked.append(str(path))
        return looked

    def not_found(self, spec: ModelSpec, runtime: str, why: str | None = None) -> ModelNotFoundError:
        fmt = spec.formats[runtime]
        looked = self._looked(spec, runtime)
        if why is None:
            why = "no hub publishes this format" if not (fmt.sources or fmt.convert_from) else (
                "downloads are off (--offline or CALLSENSE_OFFLINE=1)" if not self.allow_download else "")
        return ModelNotFoundError(
            f"model {spec.name} ({runtime} runtime) is not installed; looked in: {'; '.join(looked)}"
            + (f"; {why}" if why else ""),
            hint=self._hint(spec, runtime),
        )

    def _hint(self, spec: ModelSpec, runtime: str) -> str:
        fmt = spec.formats[runtime]
        if fmt.sources or fmt.convert_from:
            opt = "" if runtime == spec.default_runtime else f" --runtime {runtime}"
            return (f"on a machine with network: `callsense models pull {spec.name}{opt}`; on an air-gapped one: "
                    f"copy the model folder pulled elsewhere and run `callsense models import DIR`; to try callsense "
                    f"without any download see README, \"Try it without any download\"")
        src_runtime = (fmt.export_from or "funasr").split(":")[0]
        return (f"run `pip install 'callsense[torch]'` then `callsense models pull {spec.name} --runtime "
                f"{src_runtime}` and `callsense models export {spec.name}`")

    @staticmethod
    def _runtime(spec: ModelSpec, runtime: str | None) -> str:
        runtime = runtime or spec.default_runtime
        if runtime not in spec.formats:
            raise UsageError(f"model {spec.name} has no {runtime!r} runtime; valid: {', '.join(spec.formats)}")
        return runtime

    # ---- pull / import / convert ----------------------------------------------------------------
    def pull(self, name: str, runtime: str | None = None, hub: str | None = None) -> Located:
        """Download a model from the hubs (ModelScope first) into the callsense cache.

        A format no hub publishes but that converts from another (emotion2vec's ONNX model from its
        FunASR checkpoint) is made by pulling that one and converting it; the checkpoint is kept.
        """
        spec = get_spec(name)
        runtime = self._runtime(spec, runtime)
        fmt = spec.formats[runtime]
        if hub is not None and hub not in HUBS:
            raise UsageError(f"unknown hub {hub!r}; valid: {', '.join(HUBS)}")
        if not fmt.sources and fmt.convert_from:
            src_runtime = fmt.convert_from.split(":")[0]
            source = self.find(spec.name, src_runtime) or self.pull(spec.name, src_runtime, hub)
            return self.convert(spec.name, runtime, source.path)
        sources = [s for s in fmt.sources if hub is None or s.hub == hub]
        if not sources:
            raise self.not_found(spec, runtime)
        target = self.models_dir / spec.name / runtime
        errors, offline_only = [], True
        for src in sources:
            where = f"{HUB_NAMES[src.hub]} ({src.repo_id})"
            reason = hubs.unreachable(src.hub)
            if reason is not None:
                errors.append(f"{where}: {reason}")
                continue
            offline_only = False
            tmp = target.with_name(target.name + ".partial")
            try:
                log.info("downloading %s from %s (%s, about %d MB)", spec.name, HUB_NAMES[src.hub], src.repo_id,
                         spec.download_mb)
                hubs.download(src.hub, src.repo_id, tmp, src.allow_patterns, src.revision)
            except Exception as e:  # hub clients raise many types; every one means "not from here"
                errors.append(f"{where}: {_short(e)}")
                continue
            if missing_files(tmp, fmt):
                errors.append(f"{where}: download lacks {', '.join(missing_files(tmp, fmt))}")
                continue
            write_manifest(tmp, {"name": spec.name, "runtime": runtime, "hub": src.hub, "repo_id": src.repo_id})
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)  # a model appears whole or not at all
            return Located(spec.name, runtime, target, "pulled")
        tried = ", then ".join(errors)
        if offline_only:
            raise HubUnreachableError(
                f"model {spec.name} is not installed and no model hub is reachable; looked in: "
                f"{'; '.join(self._looked(spec, runtime))}; tried {tried}",
                hint=self._hint(spec, runtime) + "; behind a proxy set HTTPS_PROXY")
        others = [h for h in HUBS if h not in {s.hub for s in sources} and any(s.hub == h for s in fmt.sources)]
        return_hint = (f"try {HUB_NAMES[others[0]]} with --hub {others[0]}; " if others else "")
        raise ModelNotFoundError(
            f"could not download {spec.name} ({runtime}): tried {tried}",
            hint=return_hint + "check the network or proxy (HTTPS_PROXY), or download the model on another machine "
                 "and run `callsense models import DIR`; set CALLSENSE_MODEL_DIR to use a local copy")

    def convert(self, name: str, runtime: str, source: Path, *, int8: bool = True) -> Located:
        """Make ``runtime``'s format of ``name`` from a source directory with its ``convert_from`` function."""
        spec = get_spec(name)
        fmt = spec.formats[runtime]
        if not fmt.convert_from:
            raise UsageError(f"{spec.name} ({runtime}) is not made by conversion")
        _, module_name, fn_name = fmt.convert_from.split(":")
        fn = getattr(importlib.import_module(module_name), fn_name)
        target = self.models_dir / spec.name / runtime
        target.parent.mkdir(parents=True, exist_ok=True)
        log.info("converting %s from %s to the %s format (once; later runs use %s)", spec.name, source, runtime,
                 target)
        # Convert beside the target and rename: a concurrent first use never sees half a model.
        with tempfile.TemporaryDirectory(prefix=".convert-", dir=target.parent) as tmp:
            out = fn(Path(source), Path(tmp) / runtime, int8=int8)
            write_manifest(out, {"name": spec.name, "runtime": runtime, "converted_from": str(source)})
            if not (target.is_dir() and not missing_files(target, fmt)):  # another process may have won
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.exists():
                    shutil.rmtree(target)
                out.rename(target)
        return Located(spec.name, runtime, target, "converted")

    def import_dir(self, directory: Path, name: str | None = None, runtime: str | None = None,
                   *, link: bool = False) -> Located:
        """Import a model directory made elsewhere into the cache, detecting its format.

        A FunASR emotion2vec checkpoint (``config.yaml``, ``model.pt``, ``tokens.txt``) is converted to the
        ONNX format the default runtime uses (no torch needed); ``runtime="funasr"`` copies it as is.
        """
        directory = Path(directory).expanduser().resolve()
        if not directory.is_dir():
            raise UsageError(f"{directory}: not a directory")
        matches = detect_format(directory, name)
        if name is not None and not matches:
            spec = get_spec(name)
            matches = [(spec, self._runtime(spec, runtime))]
        if runtime is not None:
            matches = [m for m in matches if m[1] == runtime] or matches
        if not matches:
            raise ModelNotFoundError(f"{directory}: not a model directory callsense recognises",
                                     hint="expected a sherpa-onnx SenseVoice export, a FunASR checkpoint "
                                          "(config.yaml + model.pt [+ tokens.txt for emotion2vec]) or a callsense "
                                          "ONNX export")
        spec, found_runtime = matches[0]
        fmt = spec.formats[found_runtime]
        missing = missing_files(directory, fmt)
        if missing:
            raise ModelNotFoundError(f"{directory}: incomplete {spec.name} ({found_runtime}) model, missing {', '.join(missing)}")
        wanted = runtime or spec.default_runtime
        convert = (wanted != found_runtime and spec.formats.get(wanted) is not None
                   and (spec.formats[wanted].convert_from or "").split(":")[0] == found_runtime)
        if convert:
            return self.convert(spec.name, wanted, directory)
        target = self.models_dir / spec.name / found_runtime
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)
        if link:
            target.symlink_to(directory, target_is_directory=True)
        else:
            shutil.copytree(directory, target)
            write_manifest(target, {"name": spec.name, "runtime": found_runtime, "imported_from": str(directory)})
        return Located(spec.name, found_runtime, target, "cache")

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


def detect_format(directory: Path, name: str | None = None) -> list[tuple[ModelSpec, str]]:
    """Guess which catalogue model (``name``, when given) and runtime a directory holds."""
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
    if name is not None:
        out = [m for m in out if m[0].name == get_spec(name).name]
    manifest = read_manifest(directory)
    if manifest and len(out) > 1:
        out = [m for m in out if m[0].name == manifest.get("name")] or out
    if len({m[0].name for m in out}) > 1 and all(m[0].task == "emotion" for m in out):
        out = _emotion2vec_by_size(directory, out)
    return out


def _emotion2vec_by_size(directory: Path, matches: list[tuple[ModelSpec, str]]) -> list[tuple[ModelSpec, str]]:
    """Which emotion2vec a checkpoint is: large is the only 1024-dim one; the 768-dim ones need --name."""
    import yaml

    try:
        conf = yaml.safe_load((directory / "config.yaml").read_text("utf-8")).get("model_conf", {})
        dim = int(conf.get("embed_dim", 0))
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):
        dim = 0
    if dim == 1024:
        return [m for m in matches if m[0].name == "emotion2vec-plus-large"] or matches
    names = sorted({m[0].name for m in matches if m[0].name != "emotion2vec-plus-large"})
    raise UsageError(f"{directory}: an emotion2vec checkpoint ({dim or 'unknown'}-dim) that could be any of "
                     f"{', '.join(names)}; say which with --name")


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


def _hf_cached_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or hub library absent
        return None


def _short(e: BaseException) -> str:
    # The first line only (clients append tracebacks and URLs on later lines), never cut mid-word.
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
