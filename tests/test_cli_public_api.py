"""The public library API at the top of the package: cheap to import, one call to analyse a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CALL = REPO / "examples" / "call_stereo.wav"
HEAVY = ("numpy", "onnxruntime", "av", "sherpa_onnx", "sqlalchemy", "typer", "rich", "pydantic")


def test_importing_callsense_loads_no_heavy_module():
    code = f"import sys, json, callsense; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(proc.stdout) == []


def test_public_names_resolve_lazily_to_the_real_objects():
    import callsense
    from callsense.errors import CallsenseError
    from callsense.pipeline import AnalyzeOptions, Analyzer
    from callsense.result.model import CallAnalysis

    assert callsense.Analyzer is Analyzer and callsense.AnalyzeOptions is AnalyzeOptions
    assert callsense.CallAnalysis is CallAnalysis and callsense.CallsenseError is CallsenseError
    assert callable(callsense.load_audio) and isinstance(callsense.__version__, str)
    assert set(callsense.__all__) <= set(dir(callsense))
    with pytest.raises(AttributeError, match="no_such_name"):
        callsense.no_such_name  # noqa: B018


def test_analyze_one_call_on_the_example(with_models):
    import callsense

    result = callsense.analyze(CALL, language="auto", channel_map="customer,agent", metadata={"agent_id": "a7"})
    assert isinstance(result, callsense.CallAnalysis)
    assert result.source.name == CALL.name
    assert {s.role for s in result.segments} == {"agent", "customer"}
    assert {s.role for s in result.segments if s.channel == 0} == {"customer"}  # the shortcut was applied
    assert result.score is not None


def test_analyze_with_an_unknown_option_is_a_usage_error():
    import callsense
    from callsense.errors import UsageError

    with pytest.raises(UsageError, match="langauge") as err:
        callsense.analyze(CALL, langauge="zh")
    assert "language" in str(err.value) and err.value.exit_code == 2


def test_a_missing_file_is_a_callsense_error(with_models, tmp_path):
    import callsense

    with pytest.raises(callsense.CallsenseError) as err:
        callsense.analyze(tmp_path / "nope.wav")
    assert err.value.exit_code == 3 and "nope.wav" in str(err.value)
