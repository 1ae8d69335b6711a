"""One clock for every command: `analyze`'s table and `rules run` print a time in ms the same way."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from callsense.cli.app import main
from callsense.cli.render import clock, print_call
from callsense.result import dump_result
from callsense.rules import apply_qa, default_ruleset
from callsense.testing.results import make_result, seg


@pytest.mark.parametrize("ms, text", [(0, "00:00.0"), (19652, "00:19.6"), (19999, "00:19.9"), (60_000, "01:00.0"),
                                      (3_723_450, "62:03.4"), (-5, "00:00.0"), (None, "")])
def test_clock(ms, text):
    assert clock(ms) == text


def test_analyze_and_rules_run_print_19652_ms_alike(tmp_path, capsys):
    result = apply_qa(make_result([seg("agent", 0, 1500, "您好"),
                                   seg("customer", 19652, 23000, "我要投诉", emotion_="angry")], call_id="c-1"),
                      ruleset=default_ruleset())
    assert any(e.start_ms == 19652 for h in result.rule_hits for e in h.evidence)  # the fixture exercises the time
    buf = io.StringIO()
    print_call(Console(file=buf, width=200), result, None)
    assert "00:19.6" in buf.getvalue() and "00:19.7" not in buf.getvalue()

    path = tmp_path / "result.json"
    path.write_text(dump_result(result), encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        main(["rules", "run", "default", str(path)])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "00:19.6" in out and "00:19.7" not in out
