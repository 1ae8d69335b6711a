"""Cheap decompression bombs for tests: silent FLAC compresses to almost nothing (5 hours ≈ 120 KB, 1 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def silent_flac(path: Path, seconds: float, *, rate: int = 8000, hide_length: bool = False) -> Path:
    """``seconds`` of silence as FLAC; ``hide_length`` zeroes STREAMINFO's total-samples field (legal:
    "unknown"), as a bomb would, so that only counting or decoding can tell the length."""
    import av

    block = rate * 600
    frame = av.AudioFrame.from_ndarray(np.zeros((1, block), dtype=np.int16), format="s16", layout="mono")
    frame.sample_rate = rate
    with av.open(str(path), "w", format="flac") as c:
        s = c.add_stream("flac", rate=rate, layout="mono")
        s.codec_context.options = {"compression_level": "0", "frame_size": "16384"}
        for i in range(int(seconds // 600)):
            frame.pts = i * block
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    if hide_length:
        b = bytearray(path.read_bytes())
        assert b[:4] == b"fLaC"
        off = 8 + 10  # "fLaC", the block header, then min/max block and frame sizes (10 bytes)
        v = int.from_bytes(b[off:off + 8], "big") & ~((1 << 36) - 1)  # rate, channels, bits, then 36-bit total
        b[off:off + 8] = v.to_bytes(8, "big")
        b[off + 8:off + 24] = bytes(16)  # the MD5 of an unknown stream is zero too
        path.write_bytes(bytes(b))
    return path


def reset_peak_rss(pid: int | str = "self") -> float:
    """Reset the kernel's peak-RSS mark of a process (Linux ``clear_refs`` 5) and return its RSS in MB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_rss_mb(pid)


def peak_rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/status")
