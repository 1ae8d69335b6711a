"""Model forge: random-weight models in the exact on-disk formats of the real ones.

    python -m callsense.testing.forge --size tiny OUTDIR       # seconds, a few MB: for tests
    python -m callsense.testing.forge --size full OUTDIR       # real sizes and compute: for benchmarks

writes ``OUTDIR/<model>/<runtime>/`` so that ``CALLSENSE_MODEL_DIR=OUTDIR callsense analyze ...`` runs
offline. Outputs of forged models are meaningless; their speed and memory are real (``full``).
Tiny models are steerable (forced tags, a biased classifier head) so tests can assert exact outputs.

Each (model, runtime) has a forger ``fn(out_dir: Path, size: str, **steer) -> None`` registered
below as a lazy ``"module:function"`` string. Forgers of the ``funasr`` runtime need torch; without
it they are skipped with a notice.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

FORGERS: dict[tuple[str, str], str] = {
    ("sensevoice-small", "onnx"): "callsense.testing.forge_sensevoice:forge_onnx",
    ("sensevoice-small", "funasr"): "callsense.testing.forge_sensevoice:forge_funasr",
    ("emotion2vec-plus-large", "onnx"): "callsense.testing.forge_emotion2vec:forge_onnx",
    ("emotion2vec-plus-large", "funasr"): "callsense.testing.forge_emotion2vec:forge_funasr",
    ("emotion2vec-plus-base", "onnx"): "callsense.testing.forge_emotion2vec:forge_onnx",
    ("emotion2vec-plus-base", "funasr"): "callsense.testing.forge_emotion2vec:forge_funasr",
    ("emotion2vec-plus-seed", "onnx"): "callsense.testing.forge_emotion2vec:forge_onnx",
    ("emotion2vec-plus-seed", "funasr"): "callsense.testing.forge_emotion2vec:forge_funasr",
    ("emotion2vec-base-finetuned", "onnx"): "callsense.testing.forge_emotion2vec:forge_onnx",
    ("emotion2vec-base-finetuned", "funasr"): "callsense.testing.forge_emotion2vec:forge_funasr",
    ("pyannote-segmentation-3-0", "onnx"): "callsense.testing.forge_diarization:forge_segmentation",
    ("eres2net-base-3dspeaker", "onnx"): "callsense.testing.forge_diarization:forge_embedding",
    # CAM++ in the same format (full size: the ERes2Net-shaped forgery, so its cost is ERes2Net's)
    ("campplus-zh-cn-3dspeaker", "onnx"): "callsense.testing.forge_diarization:forge_embedding",
}
TORCH_RUNTIMES = {"funasr"}
DEFAULT_MODELS = ("sensevoice-small", "emotion2vec-plus-large")
DIARIZATION_MODELS = ("pyannote-segmentation-3-0", "eres2net-base-3dspeaker")  # forged on request: --models


def has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def forge(out: Path, *, size: str = "tiny", models: tuple[str, ...] = DEFAULT_MODELS,
          runtimes: tuple[str, ...] = ("onnx", "funasr"), **steer: Any) -> list[Path]:
    """Forge ``models`` for ``runtimes`` under ``out``; returns the directories written."""
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be tiny or full, not {size!r}")
    written = []
    for (model, runtime), target in FORGERS.items():
        if model not in models or runtime not in runtimes:
            continue
        if runtime in TORCH_RUNTIMES and not has_torch():
            print(f"forge: skipping {model}/{runtime} (needs torch: pip install 'callsense[torch]')",
                  file=sys.stderr)
            continue
        module_name, _, fn_name = target.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), fn_name)
        except (ImportError, AttributeError) as e:
            print(f"forge: no forger for {model}/{runtime} yet ({e})", file=sys.stderr)
            continue
        directory = out / model / runtime
        directory.mkdir(parents=True, exist_ok=True)
        fn(directory, size, model=model, **steer)
        written.append(directory)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m callsense.testing.forge", description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names")
    p.add_argument("--runtimes", default="onnx,funasr", help="comma-separated runtimes")
    p.add_argument("--steer", action="append", default=[], metavar="KEY=VALUE",
                   help="steer tiny models' outputs, e.g. lang=zh emotion=ANGRY event=Cough label=angry")
    args = p.parse_args(argv)
    steer = {}
    for item in args.steer:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--steer expects KEY=VALUE, got {item!r}")
        steer[key] = value
    written = forge(args.outdir, size=args.size, models=tuple(args.models.split(",")),
                    runtimes=tuple(args.runtimes.split(",")), **steer)
    for d in written:
        print(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
