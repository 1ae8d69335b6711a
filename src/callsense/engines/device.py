"""Where the models run: the one place that turns ``--device`` into onnxruntime providers.

``cpu`` (default) or ``cuda`` / ``cuda:N``. On ``cuda`` emotion2vec+ runs on onnxruntime's
``CUDAExecutionProvider`` and SenseVoice on the ``ort`` runtime (an onnxruntime session of the
sherpa-onnx file, because sherpa-onnx's PyPI wheels are CPU-only). Both come from the ``gpu`` extra
(``pip install 'callsense[gpu]'`` = ``onnxruntime-gpu`` 1.31, built for CUDA 13 and cuDNN 9, whose
``cuda``/``cudnn`` extras bring those libraries from PyPI; the NVIDIA driver must be >= 580).

Without a usable CUDA provider ``--device cuda`` fails at start with a :class:`DependencyError`
(exit 4) that names what is missing, never by silently running on the CPU.

Tests: ``CALLSENSE_CUDA_ON_CPU=1`` makes a ``cuda`` device resolve to the CPU provider, so the whole
CUDA code path (runtime choice, batching by length, provider options) runs on a machine without a GPU.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from callsense.errors import DependencyError, UsageError

log = logging.getLogger("callsense")

_preloaded = False
_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
CUDA_ON_CPU_ENV = "CALLSENSE_CUDA_ON_CPU"
GPU_HINT = ("install the GPU build: pip uninstall onnxruntime && pip install 'callsense[gpu]' (onnxruntime-gpu "
            "for CUDA 13 + cuDNN 9, NVIDIA driver >= 580), or run with --device cpu")


@dataclass(frozen=True)
class Device:
    kind: str = "cpu"  # "cpu" or "cuda"
    index: int = 0  # the CUDA device ordinal

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.is_cuda else "cpu"


def parse_device(text: str | None) -> Device:
    """``cpu``, ``cuda`` or ``cuda:N`` (case-insensitive); anything else is a :class:`UsageError`."""
    value = (text or "cpu").strip().lower()
    m = _DEVICE_RE.match(value)
    if not m or (m.group(1) == "cpu" and m.group(2)):
        raise UsageError(f"unknown device {text!r}", hint="valid: cpu, cuda, cuda:N (N = the GPU's index)")
    return Device(m.group(1), int(m.group(2) or 0))


def asr_runtime_for(runtime: str, device: str | Device | None) -> str:
    """The SenseVoice runtime that runs on ``device``: sherpa-onnx (``onnx``) is CPU-only, so on CUDA
    the ``ort`` runtime runs the same model file. Other runtimes (``funasr``, plug-ins) are kept."""
    dev = device if isinstance(device, Device) else parse_device(device)
    return "ort" if dev.is_cuda and runtime == "onnx" else runtime


def cuda_on_cpu() -> bool:
    return os.environ.get(CUDA_ON_CPU_ENV, "") not in ("", "0")


def ort_providers(device: str | Device | None) -> list[Any]:
    """The ``providers`` list for ``onnxruntime.InferenceSession`` on ``device``.

    For CUDA, raises :class:`DependencyError` when onnxruntime has no CUDA provider (the CPU wheel is
    installed) -- checked here, once, rather than left to onnxruntime's fall-back to the CPU.
    """
    dev = device if isinstance(device, Device) else parse_device(device)
    if not dev.is_cuda:
        return ["CPUExecutionProvider"]
    if cuda_on_cpu():
        log.debug("device %s: %s is set, running the CUDA path on the CPU provider", dev, CUDA_ON_CPU_ENV)
        return ["CPUExecutionProvider"]
    check_cuda(dev)
    # Arena grows only as far as needed: several actors may share one GPU.
    return [("CUDAExecutionProvider", {"device_id": dev.index, "arena_extend_strategy": "kSameAsRequested"}),
            "CPUExecutionProvider"]


def check_cuda(dev: Device) -> None:
    """Raise :class:`DependencyError` unless onnxruntime can run on CUDA device ``dev``."""
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - a core dependency
        raise DependencyError("onnxruntime is not installed", hint=GPU_HINT) from e
    global _preloaded
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime-gpu >= 1.21: the CUDA/cuDNN wheels' libraries
    if preload is not None and not _preloaded and "CUDAExecutionProvider" in ort.get_available_providers():
        _preloaded = True
        try:
            preload()
        except Exception as e:  # noqa: BLE001 - a missing library is reported by require_provider below
            log.debug("onnxruntime.preload_dlls: %s", e)
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise DependencyError(f"--device {dev}: onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                              f"(available: {', '.join(available)})", hint=GPU_HINT)


def session_providers(session: Any) -> list[str]:
    """What a session actually runs on (onnxruntime may drop CUDA if the CUDA libraries fail to load)."""
    return list(session.get_providers())


def require_provider(session: Any, device: str | Device | None, source: Any = None) -> None:
    """After building a session for CUDA: fail loudly if onnxruntime quietly fell back to the CPU
    (a CUDA or cuDNN library that does not load, a device index that does not exist)."""
    dev = device if isinstance(device, Device) else parse_device(device)
    if dev.is_cuda and not cuda_on_cpu() and "CUDAExecutionProvider" not in session_providers(session):
        raise DependencyError(f"--device {dev}: onnxruntime could not start CUDA (it fell back to "
                              f"{', '.join(session_providers(session))}); the CUDA 13 / cuDNN 9 libraries "
                              "or the GPU are missing", hint=GPU_HINT, source=source)
