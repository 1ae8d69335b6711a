"""int8 quantisation shared by the SenseVoice and emotion2vec converters (engines/quant.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from callsense.engines import quant


def _matmul_model(path, k: int = 64, n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((k, n)) * 0.05 + 0.02).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _weights(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize(("machine", "flags", "expected"), [
    ("x86_64", {"avx2", "avx512_vnni"}, ("QInt8", False)),
    ("x86_64", {"avx2", "avx_vnni"}, ("QInt8", False)),
    ("x86_64", {"avx2", "fma"}, ("QInt8", True)),  # u8 x s8 sums pairs in 16 bits: 7-bit weights cannot saturate
    ("aarch64", set(), ("QInt8", False)),
])
def test_scheme_follows_the_cpu(monkeypatch, machine, flags, expected):
    monkeypatch.setattr(quant.platform, "machine", lambda: machine)
    monkeypatch.setattr(quant, "_cpu_flags", lambda: flags)
    quant.int8_scheme.cache_clear()
    try:
        assert quant.int8_scheme() == expected
    finally:
        quant.int8_scheme.cache_clear()


@pytest.mark.parametrize(("weight_type", "reduce_range"), [("QUInt8", False), ("QInt8", False), ("QInt8", True)])
def test_quantised_weights_have_the_asked_type_and_stay_close(tmp_path, weight_type, reduce_range):
    w = _matmul_model(tmp_path / "m.onnx")
    used = quant.quantize_matmuls(tmp_path / "m.onnx", tmp_path / "q.onnx", weight_type=weight_type,
                                  reduce_range=reduce_range)
    assert used == (weight_type, reduce_range)
    q = _weights(tmp_path / "q.onnx")["W_quantized"]
    assert q.dtype == (np.int8 if weight_type == "QInt8" else np.uint8)
    if reduce_range:
        assert int(np.abs(q.astype(np.int16)).max()) <= 64  # 7 bits
    x = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    ref = x @ w
    got = _run(tmp_path / "q.onnx", x)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.05


def test_signed_weights_are_the_same_numbers(tmp_path):
    _matmul_model(tmp_path / "m.onnx")
    quant.quantize_matmuls(tmp_path / "m.onnx", tmp_path / "u8.onnx", weight_type="QUInt8")
    assert quant.signed_weights(tmp_path / "u8.onnx", tmp_path / "s8.onnx") == 1
    u, s = _weights(tmp_path / "u8.onnx"), _weights(tmp_path / "s8.onnx")
    assert s["W_quantized"].dtype == np.int8 and s["W_zero_point"].dtype == np.int8
    # scale * (q - zero_point) is unchanged for every weight
    deq_u = u["W_scale"] * (u["W_quantized"].astype(np.float32) - u["W_zero_point"].astype(np.float32))
    deq_s = s["W_scale"] * (s["W_quantized"].astype(np.float32) - s["W_zero_point"].astype(np.float32))
    assert np.array_equal(deq_u, deq_s)
    x = np.random.default_rng(2).standard_normal((5, 64)).astype(np.float32)
    a, b = _run(tmp_path / "u8.onnx", x), _run(tmp_path / "s8.onnx", x)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.05


def test_signed_weights_leave_a_float_model_alone(tmp_path):
    _matmul_model(tmp_path / "m.onnx")
    assert quant.signed_weights(tmp_path / "m.onnx", tmp_path / "same.onnx") == 0
    assert _weights(tmp_path / "same.onnx")["W"].dtype == np.float32


@pytest.fixture
def vnni(monkeypatch):
    """A CPU whose u8 x s8 kernel is exact (VNNI): the published uint8 weights are run as int8."""
    monkeypatch.setattr(quant, "int8_scheme", lambda: ("QInt8", False))
    monkeypatch.delenv("CALLSENSE_SIGNED_INT8", raising=False)


def test_fast_int8_file_converts_once_and_gives_the_same_numbers(tmp_path, vnni):
    _matmul_model(tmp_path / "m.onnx")
    src = tmp_path / "model.int8.onnx"
    quant.quantize_matmuls(tmp_path / "m.onnx", src, weight_type="QUInt8")
    got = quant.fast_int8_file(src)
    assert got == tmp_path / "model.int8.s8.onnx" and got.is_file()
    assert _weights(got)["W_quantized"].dtype == np.int8
    x = np.random.default_rng(4).standard_normal((7, 64)).astype(np.float32)
    a, b = _run(src, x), _run(got, x)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.05  # exactly equal on a VNNI CPU
    made = got.stat().st_mtime_ns
    assert quant.fast_int8_file(src) == got and got.stat().st_mtime_ns == made  # reused, not rewritten
    # a new original (another size or time) is converted again
    quant.quantize_matmuls(tmp_path / "m.onnx", src, weight_type="QUInt8")
    import os

    os.utime(src, ns=(made + 10**9, made + 10**9))
    assert quant.fast_int8_file(src) == got and got.stat().st_mtime_ns != made


def test_fast_int8_file_leaves_what_it_should_alone(tmp_path, vnni, monkeypatch):
    _matmul_model(tmp_path / "m.onnx")
    signed = tmp_path / "signed.onnx"
    quant.quantize_matmuls(tmp_path / "m.onnx", signed, weight_type="QInt8")
    assert quant.fast_int8_file(signed) == signed  # already int8: nothing to do, remembered
    assert quant.fast_int8_file(tmp_path / "m.onnx") == tmp_path / "m.onnx"  # float
    u8 = tmp_path / "u8.onnx"
    quant.quantize_matmuls(tmp_path / "m.onnx", u8, weight_type="QUInt8")
    monkeypatch.setenv("CALLSENSE_SIGNED_INT8", "0")
    assert quant.fast_int8_file(u8) == u8
    monkeypatch.delenv("CALLSENSE_SIGNED_INT8")
    monkeypatch.setattr(quant, "int8_scheme", lambda: ("QInt8", True))  # AVX2 without VNNI: u8 x s8 saturates
    assert quant.fast_int8_file(u8) == u8
    assert not (tmp_path / "u8.s8.onnx").exists()


def test_fast_int8_file_uses_the_cache_when_the_model_folder_is_read_only(tmp_path, vnni, monkeypatch):
    import tempfile

    models = tmp_path / "ro"
    models.mkdir()
    _matmul_model(tmp_path / "m.onnx")
    src = models / "model.int8.onnx"
    quant.quantize_matmuls(tmp_path / "m.onnx", src, weight_type="QUInt8")
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kw):  # the model's folder refuses writes (as for root, chmod can't)
        if dir is not None and Path(dir) == models:
            raise PermissionError(13, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    got = quant.fast_int8_file(src, cache_dir=tmp_path / "cache")
    assert got.parent.parent == tmp_path / "cache" and got.is_file()
    assert list(models.iterdir()) == [src]
    assert quant.fast_int8_file(src, cache_dir=tmp_path / "cache") == got
