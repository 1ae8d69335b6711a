"""Metrics of diarized mono calls: talk ratio, talk-over from the diarization's overlapped speech, dead
air per role, and the timeline per speaker (issue 14 item 5)."""

from __future__ import annotations

import dataclasses

import pytest

from callsense.analysis.metrics import compute_metrics
from callsense.engines.diarization.sherpa import SpeakerTurn
from callsense.pipeline.diarize import speaker_overlaps
from callsense.report.svg import timeline_svg
from callsense.result.model import Separation, SpeakerInfo, SpeakerOverlap
from callsense.testing.results import make_result, seg


def test_overlapping_turns_make_one_overlap_credited_to_the_later_speaker():
    turns = [SpeakerTurn(0, 0, 4000), SpeakerTurn(1, 3000, 8000), SpeakerTurn(0, 7500, 7700),
             SpeakerTurn(0, 9000, 9500), SpeakerTurn(1, 9500, 10000)]  # touching turns do not overlap
    assert speaker_overlaps(turns) == (SpeakerOverlap(3000, 4000, 1, 0), SpeakerOverlap(7500, 7700, 0, 1))
    assert speaker_overlaps([SpeakerTurn(0, 0, 1000), SpeakerTurn(0, 500, 2000)]) == ()


OVERLAPS = (SpeakerOverlap(3000, 4000, 1, 0), SpeakerOverlap(7500, 7700, 0, 1))


def _diarized(roles=("agent", "customer"), overlaps=OVERLAPS):
    # speaker 0 0-4 s (its overlap with 1 went to 0), speaker 1 4-8 s, 8-15 s nobody, 0 15-20 s, 1 20-30 s
    r = make_result([
        seg(roles[0], 0, 4000, "您好请问有什么可以帮您", speaker=0),
        seg(roles[1], 4000, 8000, "我的快递一直没有到", speaker=1),
        seg(roles[0], 15000, 20000, "我帮您查一下", speaker=0),
        seg(roles[1], 20000, 30000, "好的谢谢", speaker=1),
    ], duration_ms=40000, stereo=False)
    method = "diarization" if set(roles) == {"unknown"} else "diarization+roles"
    sep = Separation(method, ("unknown",), 0.8, (SpeakerInfo(0, roles[0], 0.8), SpeakerInfo(1, roles[1], 0.8)),
                     overlaps=overlaps)
    return dataclasses.replace(r, separation=sep)


def test_diarized_talk_ratio_overlap_interruptions_and_dead_air_per_role():
    m = compute_metrics(_diarized())
    assert m.overlap_measurable
    assert m.agent_talk_ratio == pytest.approx(9000 / 23000)
    assert [(o.start_ms, o.end_ms, o.interrupter, o.interrupted) for o in m.overlaps] == [
        (3000, 4000, "customer", "agent"), (7500, 7700, "agent", "customer")]
    first = m.overlaps[0]
    assert (first.interrupter_segment_id, first.interrupted_segment_id) == ("s0002", "s0001")
    assert first.interruption and not m.overlaps[1].interruption  # 200 ms is backchannel
    assert m.overlap_ms == 1200 and m.interruptions == 1
    assert m.role("customer").interruptions == 1 and m.role("customer").talked_over_ms == 1000
    assert m.role("agent").interruptions == 0 and m.role("agent").talked_over_ms == 200
    assert [(d.start_ms, d.end_ms) for d in m.dead_air] == [(8000, 15000)]
    seg_overlap = {s.segment_id: s.overlap_ms for s in m.segments}
    # the agent's 200 ms backchannel is credited to its nearest own segment, s0001
    assert seg_overlap == {"s0001": 1200, "s0002": 1200, "s0003": 0, "s0004": 0}


def test_unknown_roles_still_measure_talk_over_but_no_ratio():
    m = compute_metrics(_diarized(roles=("unknown", "unknown")))
    assert m.overlap_measurable and m.interruptions == 1 and m.agent_talk_ratio is None
    assert m.role("unknown").interruptions == 1 and m.role("unknown").talk_ms == 23000


def test_undiarized_mono_and_one_speaker_are_not_measurable():
    plain = make_result([seg("unknown", 0, 4000, "喂"), seg("unknown", 3000, 5000, "嗯")], stereo=False)
    assert not compute_metrics(plain).overlap_measurable and compute_metrics(plain).overlaps == ()
    one = dataclasses.replace(plain, separation=Separation("diarization", ("unknown",), None,
                                                           (SpeakerInfo(0, "unknown"),)))
    assert not compute_metrics(one).overlap_measurable


def test_timeline_has_one_lane_per_diarized_speaker():
    from callsense.testing.results import emotion

    r = _diarized(roles=("unknown", "unknown"))
    r = dataclasses.replace(r, segments=tuple(dataclasses.replace(s, emotion=emotion("neutral")) for s in r.segments))
    svg = timeline_svg(r)
    assert ">S1 unknown<" in svg and ">S2 unknown<" in svg
    plain = make_result([seg("agent", 0, 1000, "好", emotion_="happy")])
    assert ">agent<" in timeline_svg(plain) and ">S1" not in timeline_svg(plain)
