"""The shipped JSON Schema matches the dataclasses, and results round-trip through JSON."""

from __future__ import annotations

import json

import jsonschema
import pytest

from callsense.errors import ResultFormatError
from callsense.result import CallAnalysis, ProcessingLog, Segment, Separation, SourceInfo, TrackInfo, read_result
from callsense.result.schema import generate_schema, load_schema, validate


def small_result() -> CallAnalysis:
    return CallAnalysis(
        schema_version="1.0",
        call_id="20261121_101500_abcdef12",
        source=SourceInfo(name="a.wav", path="/x/a.wav", sha256="ab" * 32, size_bytes=10, container="wav",
                          codec="pcm_s16le", sample_rate=8000, channels=2, duration_ms=5000, narrowband=True),
        separation=Separation(method="stereo", channel_map=("agent", "customer"), confidence=1.0),
        tracks=(TrackInfo(0, "agent", 5000, 1000), TrackInfo(1, "customer", 5000, 900)),
        segments=(Segment(id="s0001", channel=0, role="agent", start_ms=100, end_ms=1100, text="您好",
                          language="zh", asr_status="ok"),),
        processing=ProcessingLog(callsense_version="0.1.0", pipeline_version="1",
                                 started_at="2026-11-21T10:15:00+00:00", options={}),
    )


def test_shipped_schema_is_the_generated_one():
    assert load_schema() == json.loads(json.dumps(generate_schema(), sort_keys=True)), (
        "result dataclasses changed: run `python -m callsense.result.schema --write` and bump SCHEMA_VERSION "
        "for incompatible changes")


def test_result_validates_and_round_trips(tmp_path):
    result = small_result()
    data = result.to_dict()
    validate(data)
    (tmp_path / "result.json").write_text(json.dumps(data, ensure_ascii=False))
    back = read_result(tmp_path)
    assert back == result


def test_schema_rejects_a_bad_role():
    data = small_result().to_dict()
    data["segments"][0]["role"] = "boss"
    with pytest.raises(jsonschema.ValidationError):
        validate(data)


def test_other_schema_version_is_a_clear_error(tmp_path):
    data = small_result().to_dict()
    data["schema_version"] = "7.0"
    (tmp_path / "result.json").write_text(json.dumps(data))
    with pytest.raises(ResultFormatError, match="schema version 7.0 is not supported"):
        read_result(tmp_path / "result.json")


def test_not_json_is_a_clear_error(tmp_path):
    (tmp_path / "result.json").write_text("{nope")
    with pytest.raises(ResultFormatError, match="not valid JSON"):
        read_result(tmp_path / "result.json")


def test_stereo_results_say_stereo_and_old_channel_map_results_still_read():
    import json

    from callsense.result import result_from_dict
    from callsense.result.schema import validate
    from callsense.testing.results import make_result

    new = make_result([], duration_ms=1000)
    assert new.separation.method == "stereo"
    old = json.loads(json.dumps(new.to_dict()))
    old["separation"]["method"] = "channel_map"  # what results before issue 14 wrote
    validate(old)
    assert result_from_dict(old).separation.method == "stereo"
