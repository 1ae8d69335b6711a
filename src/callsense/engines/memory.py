"""Keeping the engines' memory low between stages (issue 18: peak RSS of a 10-minute call under 1 GB).

Two things keep a process's resident memory above what it still uses:

* onnxruntime's CPU **arena** keeps the high-water mark of every session's activations for the life of
  the session, so emotion2vec's largest segment and SenseVoice's largest batch would stay resident side
  by side. Our own onnxruntime sessions therefore run without it (:func:`cpu_session_options`); the
  outputs are bit-identical (allocation only), measured on emotion2vec+ large.
* glibc's ``malloc`` keeps freed blocks of a few MB (the model proto onnxruntime parses while loading,
  a stage's activations) in its heaps instead of returning them: after a dynamic ``mmap`` threshold
  rises, later blocks below 32 MB come from the heap. :func:`release_free_memory` (``malloc_trim(0)``)
  hands those pages back; it is called once a model is loaded, after each emotion2vec run (runs of
  different lengths otherwise leave free holes that grew by 150-200 MB over a 10-minute call, under
  its longest run) and at the end of SenseVoice's stage. Elsewhere than glibc it does nothing.

What is left per run is cut in the graph itself: emotion2vec's convolutional front-end runs over 2 s
time chunks (``engines/emotion2vec/split.py``), so its per-sample buffers no longer set the run's peak.

Measured on the 10-minute benchmark call (bench/RESULTS.md "Speed levers", 5. Memory): peak RSS of
``callsense analyze`` 1519 -> 1069 MB with emotion2vec+ large, 1227 -> 901 MB with base, outputs unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and other libcs have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``); True when something was released.
    ``CALLSENSE_MALLOC_TRIM=0`` turns it off."""
    import os

    if os.environ.get("CALLSENSE_MALLOC_TRIM", "1").strip() == "0":
        return False
    trim = _malloc_trim()
    if trim is None:
        return False
    return bool(trim(0))


def cpu_session_options(so: Any) -> Any:
    """``so`` (an ``onnxruntime.SessionOptions``) set to release activations after each run: no CPU arena.
    Memory patterns stay on (they plan one block per run and go with it). ``CALLSENSE_ORT_ARENA=1`` keeps
    the arena (more resident memory, somewhat less allocation work per run: a long-running live server
    measured final p95 4.9 instead of 5.7 s at 4 concurrent calls, bench/RESULTS.md "Live calls").

    ``CALLSENSE_ORT_SPIN=0`` stops the intra-op pool's threads spinning while they wait for work (outputs
    unchanged, scheduling only). Spinning buys a little latency on an idle machine and burns a core on a
    busy one: emotion2vec+ large int8 at 2 threads on a loaded 2-core machine, 1.24 -> 0.93 CPU-seconds per
    ~4 s utterance (bench/RESULTS.md "Live calls"). With one thread per model there is no pool to spin."""
    import os

    so.enable_cpu_mem_arena = os.environ.get("CALLSENSE_ORT_ARENA", "0").strip() == "1"
    if os.environ.get("CALLSENSE_ORT_SPIN", "1").strip() == "0":
        for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
            so.add_session_config_entry(key, "0")
    return so
