"""Unit tests of the live pieces whose logic is dense: the online segmenter against the offline VAD
post-processing, G.711 decoding, the start message, and which rules are live."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callsense.audio.types import VadOptions
from callsense.audio.vad import WINDOW_MS, spans_from_probabilities
from callsense.errors import LiveProtocolError
from callsense.live.codec import decode_frame, encode_mulaw
from callsense.live.protocol import parse_start
from callsense.live.segmenter import Segmenter


def _online(probs, options, chunk):
    seg = Segmenter(options)
    out = []
    for i in range(0, len(probs), chunk):
        out += seg.push(probs[i:i + chunk])
    out += seg.flush()
    duration = len(probs) * WINDOW_MS
    return [(u.start_ms, min(u.end_ms, duration)) for u in out]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.2, 0.4, 0.45, 0.6, 0.9, 1.0]), min_size=0, max_size=400),
       st.integers(1, 50))
def test_online_segmenter_equals_the_offline_chain(probs, chunk):
    options = VadOptions(max_segment_ms=10**9)  # no splitting: the only documented difference
    p = np.asarray(probs, dtype=np.float32)
    duration = len(p) * WINDOW_MS
    assert _online(p, options, chunk) == spans_from_probabilities(p, options, duration)


def test_long_speech_is_cut_at_the_limit():
    spans = _online(np.ones(1000, dtype=np.float32), VadOptions(max_segment_ms=3200), 7)
    assert all(b - a <= 3200 + 2 * 60 for a, b in spans) and len(spans) >= 9


def test_g711_decoding():
    x = np.linspace(-0.9, 0.9, 101, dtype=np.float32)
    back = decode_frame(encode_mulaw(x), "mulaw", 1)[:, 0]
    assert np.max(np.abs(back - x)) < 0.03  # μ-law's step near full scale is 1/32
    assert decode_frame(b"\xd5\x55", "alaw", 1)[:, 0].tolist() == [8 / 32768, -8 / 32768]
    pcm = np.array([[1, -2], [3, -4]], dtype="<i2")
    assert decode_frame(pcm.tobytes(), "pcm_s16le", 2).tolist() == (pcm / 32768).tolist()


@pytest.mark.parametrize("msg, code", [
    ({"sample_rate": 22050, "encoding": "mulaw", "channels": 1}, "bad_sample_rate"),
    ({"sample_rate": 8000, "encoding": "g729", "channels": 1}, "unsupported_encoding"),
    ({"sample_rate": 8000, "encoding": "mulaw", "channels": 3}, "bad_start"),
    ({"sample_rate": 8000, "encoding": "mulaw", "channels": 2, "roles": ["agent"]}, "bad_start"),
    ({"sample_rate": 8000, "encoding": "mulaw", "channels": 1, "call_id": "../x"}, "bad_start"),
    ({"sample_rate": 8000, "encoding": "mulaw", "channels": 1, "rate": 8000}, "bad_start"),
])
def test_bad_start_messages(msg, code):
    with pytest.raises(LiveProtocolError) as e:
        parse_start({"type": "start", **msg})
    assert e.value.code == code and e.value.message


def test_start_defaults_roles():
    assert parse_start({"type": "start", "sample_rate": 8000, "encoding": "alaw", "channels": 2}).roles == (
        "agent", "customer")


def test_which_rules_are_live():
    from callsense.live.rules import is_live
    from callsense.rules import load_ruleset_text

    rs = load_ruleset_text("""\
rules:
  - id: kw
    name: kw
    conditions: {1: {type: keywords, words: [投诉]}}
  - id: greeting
    name: greeting must come
    conditions: {1: {type: keywords, words: [您好], match: none}}
  - id: negated
    name: negated
    conditions: {1: {type: regex, pattern: "x"}}
    expression: "!1"
  - id: end
    name: end
    scope: {window: {last_s: 30}}
    conditions: {1: {type: emotion, labels: [angry]}}
  - id: angry
    name: angry
    conditions: {1: {type: emotion, labels: [angry], sustained_s: 5}}
""")
    assert {r.id for r in rs.rules if is_live(r)} == {"kw", "angry"}


def test_partials_give_way_to_finals_and_to_each_other(tiny_models, tmp_path):
    """A partial finding a final being decoded, or the server-wide partial slot busy, is skipped (and
    retried at the next frame), never queued; the slot is given back after every partial."""
    import wave

    from callsense.audio.vad import load_vad_model
    from callsense.engines.sensevoice.onnx import SenseVoiceOnnx
    from callsense.live import protocol
    from callsense.live.gate import DecodeGate
    from callsense.live.session import LiveSession
    from callsense.pipeline.options import AnalyzeOptions

    with wave.open(str(Path(__file__).resolve().parent.parent / "examples" / "call_stereo.wav"), "rb") as f:
        assert f.getframerate() == 16000 and f.getnchannels() == 2
        pcm = f.readframes(f.getnframes())
    asr = SenseVoiceOnnx(tiny_models / "sensevoice-small" / "onnx", num_threads=1)

    def session(gate):
        start = protocol.parse_start({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 2})
        return LiveSession(start, call_id="c1", options=AnalyzeOptions(run_emotion=False), asr=asr, emotion=None,
                           live_rules=None, vad_model=load_vad_model(), spool_dir=tmp_path, max_duration_s=600,
                           gate=gate, clock=iter(range(10**6)).__next__)  # every frame is "later"

    def run(s):
        out = []
        for i in range(0, len(pcm), 3200):  # 100 ms frames of 2 x 16-bit
            out += s.feed(pcm[i:i + 3200])
        out += s.finish()
        s.close()
        return [m for m in out if m["type"] == "partial"], [m for m in out if m["type"] == "final"]

    gate = DecodeGate(1)
    assert gate.try_partial()  # another call is decoding its partial
    busy = session(gate)
    partials, finals = run(busy)
    assert partials == [] and busy.partials_skipped > 0 and finals  # finals never wait for the slot
    gate.partial_done()
    with gate.final():  # another call's final is being decoded
        held = session(gate)
        partials, finals = run(held)
        assert partials == [] and finals
    free = session(gate)
    partials, finals = run(free)
    assert partials and free.partials_skipped == 0 and finals
    assert gate.try_partial()  # the slot was given back after every partial


def test_decode_gate_caps_the_partials_share_of_the_time():
    """After a partial that took d seconds, the next waits d·(1/duty − 1); finals are never held."""
    from callsense.live.gate import DecodeGate

    now = [100.0]
    gate = DecodeGate(partial_slots=1, duty=0.25, clock=lambda: now[0])
    assert gate.try_partial()
    assert not gate.try_partial()  # the one slot is taken
    now[0] += 0.2  # the partial took 0.2 s
    gate.partial_done()
    now[0] += 0.5
    assert not gate.try_partial()  # 0.2 * (1/0.25 - 1) = 0.6 s must pass
    now[0] += 0.11
    assert gate.try_partial()
    gate.partial_done()
    with gate.final():
        assert not gate.try_partial()  # a final is being decoded
    assert gate.try_partial()
    gate.partial_done()
    unlimited = DecodeGate(partial_slots=0, duty=1.0, clock=lambda: now[0])
    assert unlimited.try_partial() and unlimited.try_partial()  # no slot limit, no duty cycle


def test_decode_gate_runs_finals_one_at_a_time_when_asked():
    import threading
    import time

    from callsense.live.gate import DecodeGate

    gate = DecodeGate(partial_slots=1, final_slots=1)
    inside, most = [0], [0]
    lock = threading.Lock()

    def final():
        with gate.final():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=final) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.01)
    assert not gate.try_partial()  # finals are waiting or running: no partial
    for t in threads:
        t.join()
    assert most[0] == 1 and gate.try_partial()


def test_default_final_slots_fill_the_cores_at_the_engines_thread_count():
    from callsense.live.manager import default_final_slots

    assert [default_final_slots(t, cpus=2) for t in (1, 2, 4)] == [2, 1, 1]
    assert default_final_slots(2, cpus=8) == 4 and default_final_slots(0, cpus=3) == 3
    assert default_final_slots(1) >= 1  # this machine's own CPU count


class _Overlapping:
    """An engine wrapper whose first call from each thread waits for the other thread's: the two calls'
    first finals are then provably decoded at the same time, on the same engine."""

    def __init__(self, engine, method: str):
        import threading

        self.engine, self.method = engine, method
        self.barrier = threading.Barrier(2, timeout=60)
        self.lock = threading.Lock()
        self.met: set[int] = set()
        self.inside = self.peak = 0

    def __getattr__(self, name):
        if name != self.method:
            return getattr(self.engine, name)

        def call(*args, **kwargs):
            import threading

            with self.lock:
                self.inside += 1
                self.peak = max(self.peak, self.inside)
                first = threading.get_ident() not in self.met
                self.met.add(threading.get_ident())
            try:
                if first:
                    self.barrier.wait()
                return getattr(self.engine, self.method)(*args, **kwargs)
            finally:
                with self.lock:
                    self.inside -= 1

        return call


def test_finals_decoded_at_the_same_time_equal_the_finals_decoded_alone(tiny_models, tmp_path):
    """Two calls whose finals are decoded concurrently on the shared engines (two final slots: the default
    with one thread per model on 2 cores) get exactly the finals each gets alone: same text, tags, emotion
    scores and timeline."""
    import threading
    import wave

    from callsense.audio.vad import load_vad_model
    from callsense.engines.emotion2vec.onnx import Emotion2vecOnnx
    from callsense.engines.sensevoice.onnx import SenseVoiceOnnx
    from callsense.live import protocol
    from callsense.live.gate import DecodeGate
    from callsense.live.session import LiveSession
    from callsense.pipeline.options import AnalyzeOptions

    with wave.open(str(Path(__file__).resolve().parent.parent / "examples" / "call_stereo.wav"), "rb") as f:
        pcm = f.readframes(f.getnframes())
    asr = SenseVoiceOnnx(tiny_models / "sensevoice-small" / "onnx", num_threads=1)
    emotion = Emotion2vecOnnx(tiny_models / "emotion2vec-plus-large" / "onnx", num_threads=1)

    def call(name, gate, asr, emotion):
        start = protocol.parse_start({"type": "start", "sample_rate": 16000, "encoding": "pcm_s16le", "channels": 2})
        s = LiveSession(start, call_id=name, options=AnalyzeOptions(), asr=asr, emotion=emotion, live_rules=None,
                        vad_model=load_vad_model(), spool_dir=tmp_path / name, max_duration_s=600,
                        partial_interval_s=1e9, gate=gate)  # no partials: every engine call is a final's
        out = []
        for i in range(0, len(pcm), 3200):
            out += s.feed(pcm[i:i + 3200])
        out += s.finish()
        s.close()
        return [m["segment"] for m in out if m["type"] == "final"]

    alone = call("alone", DecodeGate(1, final_slots=1), asr, emotion)
    assert len(alone) >= 2 and any(seg["text"] for seg in alone) and all(seg["emotion"] for seg in alone)

    shared_asr, shared_emotion = _Overlapping(asr, "transcribe"), _Overlapping(emotion, "score")
    gate = DecodeGate(1, final_slots=2)
    results: dict[str, list] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, call(n, gate, shared_asr, shared_emotion)))
               for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert shared_asr.peak == 2 and shared_emotion.peak == 2  # the finals did run at the same time
    assert results["a"] == alone and results["b"] == alone
