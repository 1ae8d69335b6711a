"""emotion2vec's front-end over time chunks (issue 18, memory): the parts, their cache, and parity with the
whole model, on tiny forged models (no torch)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from callsense.engines.base import EmotionOptions, SegmentAudio
from callsense.engines.emotion2vec import split
from callsense.engines.emotion2vec.head import CONV_SPEC, frame_count
from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx
from callsense.engines.emotion2vec.split import FrontGeometry, SplitSession, split_files
from callsense.engines.onnx_parts import Part, cut
from callsense.testing.forge_emotion2vec import forge_onnx

SR = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return forge_onnx(tmp_path_factory.mktemp("e2v-split") / "onnx", "tiny", seed=11, int8=True)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(t.size) * 0.05 + 0.1 * np.sin(2 * np.pi * 150 * t)) * (1 + np.sin(3 * t))
            ).astype(np.float32)


def seg(x: np.ndarray, sid: str = "s") -> SegmentAudio:
    return SegmentAudio(id=sid, samples=x, start_ms=0, role="customer", channel=1)


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


class Counting:
    def __init__(self, inner):
        self.inner, self.runs = inner, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.inner.run(*args, **kwargs)


def test_front_geometry_is_derived_from_the_conv_spec():
    g = FrontGeometry.of(CONV_SPEC)
    assert (g.stride, g.field) == (320, 400)
    assert FrontGeometry.of([(3, 1), (2, 2)]) == FrontGeometry(2, 4)
    for n in [*range(0, 2000, 7), 16000, 163_201]:
        assert g.frames(n) == frame_count(n), n
    for n, chunk in [(163_200, 100), (16000 * 7 + 123, 64), (399, 10), (400, 1), (16000, 1000)]:
        spans = g.chunks(n, chunk)
        assert [a for a, *_ in spans] == ([0] if spans else []) + [b for _, b, *_ in spans[:-1]]  # contiguous
        assert (spans[-1][1] if spans else 0) == frame_count(n)
        for a, b, s0, s1 in spans:
            assert b - a <= chunk and s0 == 320 * a and s1 <= n
            assert frame_count(s1 - s0) == b - a  # each chunk's samples give exactly its frames
        if len(spans) > 1:  # near-equal chunks: no sliver at the end
            assert max(b - a for a, b, *_ in spans) - min(b - a for a, b, *_ in spans) <= 1


def test_long_segment_chunked_equals_whole_fp32(model_dir):
    whole = Emotion2vecOnnx(model_dir, int8=False, num_threads=1, front_chunk_s=0)
    chunked = Emotion2vecOnnx(model_dir, int8=False, num_threads=1, front_chunk_s=0.5)
    assert isinstance(chunked.session, SplitSession) and not isinstance(whole.session, SplitSession)
    assert chunked.info.options["front_chunk_s"] == 0.5 and whole.info.options["front_chunk_s"] is None
    chunked.session.front = Counting(chunked.session.front)
    x = noise(7.3, 1)
    a, b = whole.features([x])[0], chunked.features([x])[0]
    assert chunked.session.front.runs == 15  # 364 frames in chunks of at most 25
    assert a.shape == b.shape == (frame_count(len(x)), whole.head.dim)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    chunked.features([noise(0.4, 2)])  # shorter than one chunk: one front-end run
    assert chunked.session.front.runs == 16


def test_padded_batch_chunked_equals_one_by_one_fp32(model_dir):
    # the normalisation is over each row's valid samples: it runs before the chunks, on whole rows
    segs = [seg(noise(s, i), f"s{i}") for i, s in enumerate([3.1, 3.4, 3.0, 3.6])]
    one = Emotion2vecOnnx(model_dir, int8=False, max_batch=1, front_chunk_s=0)
    many = Emotion2vecOnnx(model_dir, int8=False, max_batch=8, max_pad_ratio=1.5, front_chunk_s=0.3)
    a, b = one.score(segs, EmotionOptions()), many.score(segs, EmotionOptions())
    assert many.forward_calls == 1 < one.forward_calls
    for x, y in zip(a, b):
        np.testing.assert_allclose(y.embedding, x.embedding, atol=1e-4)
        np.testing.assert_allclose(y.scores, x.scores, atol=1e-4)


def test_int8_chunked_keeps_the_int8_tolerance_to_fp32(model_dir):
    # per-chunk activation scales differ from the whole run's: held to the int8-vs-fp32 bound of the engine tests
    fp32 = Emotion2vecOnnx(model_dir, int8=False, front_chunk_s=0)
    q = Emotion2vecOnnx(model_dir, int8=True, front_chunk_s=0.5)
    assert isinstance(q.session, SplitSession) and q.model_path.name == "model.int8.onnx"
    segs = [seg(noise(s, 5 + i), f"s{i}") for i, s in enumerate([6.0, 2.2])]
    for x, y in zip(fp32.score(segs, EmotionOptions()), q.score(segs, EmotionOptions())):
        assert np.argmax(x.scores) == np.argmax(y.scores)
        assert cos(x.embedding, y.embedding) >= 0.999


def test_parts_are_derived_once_and_again_when_the_model_changes(tmp_path, model_dir):
    d = tmp_path / "m"
    d.mkdir()
    for f in ("model.onnx", "head.npz", "tokens.txt", "emotion2vec.json"):
        (d / f).write_bytes((model_dir / f).read_bytes())
    files = split_files(d / "model.onnx")
    assert files is not None and files.front == d / "model.front.onnx"
    for p in (files.norm, files.front, files.rest):
        onnx.checker.check_model(str(p))
    stamp = files.rest.stat().st_mtime_ns
    assert split_files(d / "model.onnx") == files and files.rest.stat().st_mtime_ns == stamp  # reused
    os.utime(d / "model.onnx", ns=(stamp + 10**9, stamp + 10**9))  # the model file changed
    assert split_files(d / "model.onnx") == files and files.rest.stat().st_mtime_ns != stamp
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_parts_go_to_the_cache_when_the_model_folder_is_read_only(tmp_path, model_dir, monkeypatch):
    d = tmp_path / "ro"
    d.mkdir()
    (d / "model.onnx").write_bytes((model_dir / "model.onnx").read_bytes())
    real = tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kw):  # refuses writes in the model's folder (as for root, chmod can't)
        if dir is not None and Path(dir) == d:
            raise PermissionError(13, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    files = split_files(d / "model.onnx", cache_dir=tmp_path / "cache")
    assert files is not None and files.front.parent.parent == tmp_path / "cache" and files.front.is_file()
    assert [p.name for p in d.iterdir()] == ["model.onnx"]
    assert split_files(d / "model.onnx", cache_dir=tmp_path / "cache") == files


def test_a_model_without_the_boundary_runs_whole(tmp_path, model_dir):
    d = tmp_path / "old"
    d.mkdir()
    for f in ("head.npz", "tokens.txt", "emotion2vec.json"):
        (d / f).write_bytes((model_dir / f).read_bytes())
    m = onnx.load(str(model_dir / "model.onnx"))  # an export from before the boundary was named
    for n in m.graph.node:
        n.output[:] = ["x_" + o if o == split.FEATURES else o for o in n.output]
        n.input[:] = ["x_" + i if i == split.FEATURES else i for i in n.input]
    onnx.save(m, str(d / "model.onnx"))
    eng = Emotion2vecOnnx(d, int8=False)
    assert not isinstance(eng.session, SplitSession) and eng.info.options["front_chunk_s"] is None
    assert eng.features([noise(3.0)])[0].shape[0] == frame_count(3 * SR)
    assert not list(d.glob("*.front.onnx"))


def test_split_can_be_turned_off(model_dir, monkeypatch):
    monkeypatch.setenv("CALLSENSE_E2V_SPLIT", "0")
    assert not isinstance(Emotion2vecOnnx(model_dir, int8=False).session, SplitSession)


def test_cut_refuses_a_part_that_needs_another_parts_tensors(tmp_path, model_dir):
    from onnx import TensorProto

    types = {split.NORMALISED: (TensorProto.FLOAT, ["n", "s"]), split.FEATURES: (TensorProto.FLOAT, ["n", "t", "c"])}
    out = [tmp_path / "a.onnx"]
    # the transformer's padding mask needs the lengths: fed only the front-end's output it cannot be cut out
    assert not cut(model_dir / "model.onnx", [Part("x", (split.FEATURES,), ("frames",))], out, types)
    assert not cut(model_dir / "model.onnx", [Part("x", ("samples",), ("no_such_tensor",))], out, types)
    assert not out[0].exists()
    assert cut(model_dir / "model.onnx", [Part("x", ("samples", "lengths"), ("frames",))], out, types)
    whole = onnx.load(str(model_dir / "model.onnx"))
    again = onnx.load(str(out[0]))  # the whole graph as one part: the same nodes and weights
    assert [n.SerializeToString() for n in again.graph.node] == [n.SerializeToString() for n in whole.graph.node]
    assert {t.name: t.SerializeToString() for t in again.graph.initializer} == \
        {t.name: t.SerializeToString() for t in whole.graph.initializer}
