"""engines/memory.py: freed C-heap pages go back to the OS, and our onnxruntime sessions run without the
CPU arena (which would keep each session's activation high-water mark resident for good)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from callsense.engines.memory import cpu_session_options, release_free_memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_release_free_memory_returns_freed_heap_pages():
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    m_trim_threshold, m_mmap_threshold = -1, -3
    mb = 1 << 20
    # As after a model load or a stage: freed blocks below the mmap threshold stay in the heap. Here the
    # thresholds are pinned so that 1 MB blocks come from the heap and free() never trims by itself.
    libc.mallopt(m_mmap_threshold, 64 * mb)
    libc.mallopt(m_trim_threshold, 1 << 30)
    try:
        blocks = [libc.malloc(mb) for _ in range(150)]
        for b in blocks:
            ctypes.memset(b, 1, mb)
        for b in blocks:
            libc.free(b)
        kept = _rss_mb()
        assert release_free_memory() is True
        released = kept - _rss_mb()
    finally:
        libc.mallopt(m_trim_threshold, 128 * 1024)
        libc.mallopt(m_mmap_threshold, 128 * 1024)
    assert released > 100, f"only {released:.0f} MB of 150 freed MB went back to the OS"


def test_cpu_session_options_turn_the_arena_off():
    import onnxruntime as ort

    so = ort.SessionOptions()
    assert so.enable_cpu_mem_arena
    assert cpu_session_options(so) is so and so.enable_cpu_mem_arena is False


@pytest.mark.parametrize("env", [None, "1", "0"])
def test_cpu_session_options_stop_spinning_only_on_request(monkeypatch, env):
    import onnxruntime as ort

    if env is None:
        monkeypatch.delenv("CALLSENSE_ORT_SPIN", raising=False)
    else:
        monkeypatch.setenv("CALLSENSE_ORT_SPIN", env)
    so = cpu_session_options(ort.SessionOptions())
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        if env == "0":
            assert so.get_session_config_entry(key) == "0"
        else:  # onnxruntime's default (spinning) is left alone: no entry is written
            with pytest.raises(Exception):  # noqa: B017 - onnxruntime raises its own type for a missing key
                so.get_session_config_entry(key)
