"""Dynamic int8 quantisation of an ONNX model's MatMul weights, shared by the model converters.

onnxruntime quantises the activations of a dynamically quantised MatMul to uint8 on the fly; the
weights can be stored as uint8 (``QUInt8``, a u8 x u8 GEMM) or int8 (``QInt8``, u8 x s8). On x86 CPUs
with a VNNI dot product (``avx512_vnni``, ``avx_vnni``, AMX) the u8 x s8 kernel is the fast one:
measured 1.3-1.7x faster for emotion2vec+ and SenseVoice-Small at unchanged parity (bench/RESULTS.md,
"Speed levers"). Without VNNI, onnxruntime's AVX2/AVX512 u8 x s8 kernel sums pairs of products in
16 bits and can saturate (onnxruntime's quantisation guide), so there the weights stay uint8. ARM's
int8 dot products have no such limit. The choice is made on the machine that converts the model,
which is the machine that runs it (models are converted at pull or import time).
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text("utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


@lru_cache(maxsize=1)
def int8_weight_type() -> str:
    """``"QInt8"`` where onnxruntime's u8 x s8 kernel is exact and fast on this CPU, else ``"QUInt8"``."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        return "QInt8" if _cpu_flags() & VNNI_FLAGS else "QUInt8"
    return "QInt8"  # arm64: sdot/i8mm, no 16-bit intermediate


def quantize_matmuls(src: Path, dst: Path, *, weight_type: str | None = None,
                     nodes_to_exclude: Sequence[str] = (), reduce_range: bool = False) -> str:
    """Write ``dst``: ``src`` with its MatMul weights quantised (dynamic). Returns the weight type used."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    wtype = weight_type or int8_weight_type()
    # The quantiser logs every tensor at INFO on the root logger; keep the user's console readable.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        quantize_dynamic(str(src), str(dst), weight_type=getattr(QuantType, wtype), op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=list(nodes_to_exclude), reduce_range=reduce_range)
    finally:
        root.setLevel(level)
    return wtype


def signed_weights(src: Path, dst: Path) -> int:
    """Rewrite a dynamically quantised model's uint8 MatMul weights as int8, losslessly; returns how many.

    A uint8 weight ``q`` with zero point ``z`` stands for ``scale * (q - z)``; ``q - 128`` with zero point
    ``z - 128`` stands for the same value, so every integer product, and hence every output, is unchanged
    while onnxruntime can use its u8 x s8 kernel. This is how a published QUInt8 export (sherpa-onnx's
    SenseVoice ``model.int8.onnx``, which comes without its fp32 original) gets the faster kernel.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    other_uses = {name for n in model.graph.node if n.op_type != "MatMulInteger" for name in n.input}
    pairs = [(n.input[1], n.input[3]) for n in model.graph.node if n.op_type == "MatMulInteger" and len(n.input) >= 4]

    def convertible(name: str) -> bool:
        init = inits.get(name)
        return init is not None and init.data_type == onnx.TensorProto.UINT8 and name not in other_uses

    # a weight and its zero point change together or not at all (their types must match)
    chosen = {name for pair in pairs if all(convertible(x) for x in pair) for name in pair}
    if any((w in chosen) != (z in chosen) for w, z in pairs):
        raise ValueError(f"{src}: a MatMulInteger shares a weight or zero point with one that cannot change")
    for name in chosen:
        arr = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array((arr.astype(np.int16) - 128).astype(np.int8), name))
    onnx.save(model, str(dst))
    return len({w for w, _ in pairs if w in chosen})
