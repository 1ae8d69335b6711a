"""Decompression bombs: a small compressed file that decodes to hours is refused from its packet count,
before any sample is decoded, whatever its header says (and without memory growing with its length)."""

from __future__ import annotations

import time

import pytest

from audio_bombs import peak_rss_mb, reset_peak_rss, silent_flac
from callsense.audio.decode import load_audio, probe_duration
from callsense.audio.types import AudioOptions
from callsense.errors import AudioLimitError


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    return {"5h": silent_flac(d / "5h.flac", 5 * 3600, hide_length=True),
            "5h-header": silent_flac(d / "5h-header.flac", 5 * 3600),
            "2h": silent_flac(d / "2h.flac", 2 * 3600, hide_length=True)}


def test_probe_counts_packets_when_the_header_hides_the_length(bombs):
    import av

    with av.open(str(bombs["5h"])) as c:
        assert c.streams.audio[0].duration is None  # the header says nothing
    assert probe_duration(bombs["5h"]) == pytest.approx(5 * 3600, abs=1)
    assert probe_duration(bombs["2h"]) == pytest.approx(2 * 3600, abs=1)
    assert probe_duration(bombs["5h"], stop_after_s=60) < 120  # stops counting once past the limit


@pytest.mark.parametrize("name, limit_s", [("5h", 4 * 3600), ("5h-header", 4 * 3600), ("2h", 3600)])
def test_bomb_refused_before_decoding_with_bounded_memory(bombs, name, limit_s):
    before = reset_peak_rss()
    started = time.perf_counter()
    with pytest.raises(AudioLimitError, match="limit") as e:
        load_audio(bombs[name], AudioOptions(max_duration_s=limit_s))
    assert e.value.source == str(bombs[name])
    grown_mb = peak_rss_mb() - before
    # before: 8.7 s and 1.5 GB for the 5-hour file (the buffer grew to the 4-hour limit first)
    assert grown_mb < 100, grown_mb
    assert time.perf_counter() - started < 5


def test_bytes_and_file_objects_are_counted_too(bombs):
    data = bombs["5h"].read_bytes()
    with pytest.raises(AudioLimitError):
        load_audio(data, AudioOptions(max_duration_s=3600), name="bomb.flac")
    with open(bombs["5h"], "rb") as f, pytest.raises(AudioLimitError):
        load_audio(f, AudioOptions(max_duration_s=3600))
