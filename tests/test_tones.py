"""The telephone-tone detector (analysis/tones.py): ringback, busy, dial tone and DTMF, and no false tone
on speech-like or noisy audio."""

from __future__ import annotations

import numpy as np
import pytest

from callsense.analysis.tones import detect_tones
from callsense.labels import SAMPLE_RATE as SR


def tone(freqs, ms, amp=0.3):
    t = np.arange(int(SR * ms / 1000)) / SR
    return sum(amp * np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)


def silence(ms):
    return np.zeros(int(SR * ms / 1000), np.float32)


def cadence(freqs, on_ms, off_ms, n):
    return np.concatenate([np.concatenate([tone(freqs, on_ms), silence(off_ms)]) for _ in range(n)])


@pytest.mark.parametrize("freqs", [(450,), (440, 480), (425,)])
def test_ringback_cadence_is_one_event_over_the_ringing(freqs):
    t, = detect_tones(cadence(freqs, 1000, 4000, 6))  # 1 s on, 4 s off, six rings
    assert t.type == "Ringback" and t.start_ms <= 50 and 25_000 <= t.end_ms <= 26_100


def test_busy_and_dial_tones():
    t, = detect_tones(cadence((450,), 350, 350, 8))
    assert t.type == "BusyTone" and t.end_ms > 5000
    t, = detect_tones(tone((350, 440), 5000))
    assert t.type == "DialTone"


def test_dtmf_keys_with_their_times():
    x = np.concatenate([silence(200), tone((770, 1336), 80), silence(100), tone((941, 1477), 100), silence(300)])
    found = detect_tones(x)
    assert [(t.type, t.key) for t in found] == [("DTMF", "5"), ("DTMF", "#")]
    assert 150 <= found[0].start_ms <= 225 and found[1].start_ms >= found[0].end_ms


def test_no_tone_in_noise_speech_like_harmonics_quiet_tones_or_a_short_blip():
    rng = np.random.default_rng(0)
    assert detect_tones((rng.standard_normal(SR * 5) * 0.1).astype(np.float32)) == ()
    t = np.arange(SR * 5) / SR
    voice = sum(0.05 * np.sin(2 * np.pi * 150 * k * t * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) for k in range(1, 20))
    assert detect_tones(voice.astype(np.float32)) == ()
    assert detect_tones(cadence((450,), 1000, 4000, 3) * 0.003) == ()  # under -45 dBFS: silence
    assert detect_tones(np.concatenate([silence(500), tone((450,), 100), silence(500)])) == ()  # < 150 ms
    assert detect_tones(np.zeros(10, np.float32)) == ()


def test_tones_reach_the_result_and_an_unanswered_call_is_not_scored(tmp_path):
    """Through the pipeline's stage: ringback on a track becomes an audio event; the pack then discards it."""
    from callsense.audio.types import Track
    from callsense.pipeline.stages import tone_events
    from callsense.rules import apply_qa
    from callsense.testing.results import make_result

    track = Track(channel=0, role="customer", samples=cadence((450,), 1000, 4000, 6))
    events = tone_events([track])
    assert [(e.type, e.channel, e.role) for e in events] == [("Ringback", 0, "customer")]
    out = apply_qa(make_result([], duration_ms=30000, events=events))
    assert out.score.status == "not_scored" and out.rule_hits[0].rule_id == "call.invalid"
