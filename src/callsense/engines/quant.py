"""Dynamic int8 quantisation of an ONNX model's MatMul weights, shared by the model converters.

onnxruntime quantises the activations of a dynamically quantised MatMul to uint8 on the fly; the
weights can be stored as uint8 (``QUInt8``, a u8 x u8 GEMM) or int8 (``QInt8``, u8 x s8), the
faster kernel (the issue-18 VNNI machine: 1.39x for emotion2vec+ large, 1.65x for SenseVoice).
Where x86 has no VNNI dot product, onnxruntime's u8 x s8 kernel adds pairs of products in 16 bits and
**saturates** (onnxruntime's quantisation guide; measured on an AVX2-only EPYC: SenseVoice's greedy
tokens agreed with fp32 on 45 % of frames and the tags changed). 7-bit weights (``reduce_range``)
cannot saturate there and stay fast (measured 1.30x over uint8 at fp32 parity within the tests'
tolerances). So: int8 weights, 7-bit where x86 lacks VNNI (:func:`int8_scheme`). The choice is made on
the machine that converts the model, which is the machine that runs it (pull, import, first use);
bench/RESULTS.md "Speed levers" has the measurements.
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
def int8_scheme() -> tuple[str, bool]:
    """``(weight_type, reduce_range)`` for this CPU: int8 weights everywhere, 7-bit on x86 without VNNI."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "x86") and not _cpu_flags() & VNNI_FLAGS:
        return ("QInt8", True)
    return ("QInt8", False)  # VNNI's 32-bit dot product, or arm64's sdot: no 16-bit intermediate


def describe(scheme: tuple[str, bool]) -> str:
    """The scheme in words, for a model's facts file."""
    weight_type, reduce_range = scheme
    return f"dynamic, MatMul weights, {weight_type}" + (" (7-bit, reduce_range)" if reduce_range else "")


def quantize_matmuls(src: Path, dst: Path, *, weight_type: str | None = None,
                     nodes_to_exclude: Sequence[str] = (), reduce_range: bool | None = None) -> tuple[str, bool]:
    """Write ``dst``: ``src`` with its MatMul weights quantised (dynamic); returns the scheme used.

    ``weight_type`` (``"QInt8"``/``"QUInt8"``) and ``reduce_range`` default to :func:`int8_scheme`.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    default_type, default_reduce = int8_scheme()
    wtype = weight_type or default_type
    reduce = (default_reduce if weight_type is None else False) if reduce_range is None else bool(reduce_range)
    # The quantiser logs every tensor at INFO on the root logger; keep the user's console readable.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        quantize_dynamic(str(src), str(dst), weight_type=getattr(QuantType, wtype), op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=list(nodes_to_exclude), reduce_range=reduce,
                         # weights of contrib ops (fused graphs) defeat shape inference; ours are float
                         extra_options={"DefaultTensorType": 1})  # onnx.TensorProto.FLOAT
    finally:
        root.setLevel(level)
    return (wtype, reduce)


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


def fast_int8_file(model_file: Path, cache_dir: Path | None = None) -> Path:
    """The file to run for ``model_file`` on this CPU: where the u8 x s8 kernel is exact and fastest (VNNI
    x86, arm64: :func:`int8_scheme` without ``reduce_range``), a dynamically quantised model with **uint8**
    MatMul weights — the published sherpa-onnx SenseVoice ``model.int8.onnx`` — is run as its lossless
    int8 twin (:func:`signed_weights`: every integer product, hence every output, unchanged), written
    once as ``<stem>.s8.onnx`` beside it (or under ``cache_dir`` when the model's folder is read-only)
    and reused while the original keeps its size and time. Elsewhere, for a model without uint8 weights,
    or with ``CALLSENSE_SIGNED_INT8=0``: ``model_file`` itself. bench/RESULTS.md "Speed levers" has the
    measurement (2.35x for SenseVoice through sherpa-onnx on an AMX/VNNI Xeon, tokens identical)."""
    import json
    import os
    import tempfile

    model_file = Path(model_file)
    if os.environ.get("CALLSENSE_SIGNED_INT8", "1").strip() == "0" or int8_scheme() != ("QInt8", False):
        return model_file
    st = model_file.stat()
    key = {"source": str(model_file.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    places = [model_file.parent]
    if cache_dir is not None:
        import hashlib

        places.append(Path(cache_dir) / hashlib.sha256(key["source"].encode()).hexdigest()[:16])
    for folder in places:  # an earlier conversion (or the finding that there is nothing to convert)
        marker = folder / f"{model_file.name}.s8.json"
        try:
            known = json.loads(marker.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        target = folder / f"{model_file.stem}.s8.onnx"
        if {k: known.get(k) for k in key} == key:
            return target if known.get("converted") and target.is_file() else model_file
    for folder in places:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{model_file.stem}.", suffix=".onnx")
            os.close(fd)
        except OSError:
            continue  # read-only: the next place
        target = folder / f"{model_file.stem}.s8.onnx"
        try:
            n = signed_weights(model_file, Path(tmp))
            if n:
                os.replace(tmp, target)
            (folder / f"{model_file.name}.s8.json").write_text(json.dumps({**key, "converted": bool(n),
                                                                           "matmuls": n}), "utf-8")
        except (OSError, ValueError) as e:
            logging.getLogger("callsense").warning("int8 weights of %s not converted (%s); running it as it is",
                                                   model_file, e)
            return model_file
        finally:
            Path(tmp).unlink(missing_ok=True)
        if n:
            logging.getLogger("callsense").info("%s: %d MatMul weights shifted to int8 for this CPU's kernel -> %s",
                                                model_file.name, n, target)
            return target
        return model_file
    return model_file
